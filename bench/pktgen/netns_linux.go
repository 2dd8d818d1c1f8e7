package pktgen

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNetns runs fn on a fresh OS thread that has entered network namespace
// ns (a name under /run/netns, as `ip netns add` makes; "" means the
// caller's namespace). The thread stays locked and is discarded when fn
// returns, so no other goroutine ever runs in that namespace by accident.
func InNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: Go ends the thread with the goroutine
		if ns != "" {
			f, err := os.Open(filepath.Join("/run/netns", ns))
			if err != nil {
				errc <- fmt.Errorf("network namespace %s: %w (create it with ip netns add)", ns, err)
				return
			}
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
			if err != nil {
				errc <- fmt.Errorf("entering network namespace %s: %w", ns, err)
				return
			}
		}
		errc <- fn()
	}()
	return <-errc
}

// PinThread pins the calling OS thread (lock it first) to cpu.
func PinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pinning to CPU %d: %w", cpu, err)
	}
	return nil
}
