package gateway

import (
	"errors"
	"log"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/dataplane/nic"
)

// channelsInUse returns how many RX queues of dev are in use (nic.RxQueues).
func channelsInUse(dev string) (int, error) { return nic.RxQueues(dev) }

// rxQueues is channelsInUse, or 1 (logged) when the driver does not say.
func rxQueues(dev string) int {
	n, err := channelsInUse(dev)
	if err != nil {
		log.Printf("%s: RX queues in use unknown (%v): serving queue 0 only; -queues sets the count", dev, err)
		return 1
	}
	return n
}

// allowedCPUs lists the CPUs this process may run on (its affinity mask,
// which taskset or a cgroup may have narrowed), lowest first.
func allowedCPUs() []int {
	var set unix.CPUSet
	var cpus []int
	if err := unix.SchedGetaffinity(0, &set); err == nil {
		for c := 0; c < len(set)*64; c++ {
			if set.IsSet(c) {
				cpus = append(cpus, c)
			}
		}
	}
	if len(cpus) == 0 {
		cpus = []int{0}
	}
	return cpus
}

// bindBudget is how long a worker whose queue is still held (EBUSY) is
// retried: the kernel releases a stopped process's AF_XDP sockets a
// moment after it exited.
const bindBudget = 2 * time.Second

// retryBusy calls f until it does not fail with EBUSY or bindBudget has
// passed, backing off from 10 ms to 200 ms; it returns the attempts made.
func retryBusy(what string, f func() error) (int, error) {
	deadline := time.Now().Add(bindBudget)
	wait := 10 * time.Millisecond
	for try := 1; ; try++ {
		err := f()
		if err == nil || !errors.Is(err, unix.EBUSY) || time.Now().Add(wait).After(deadline) {
			if err == nil && try > 1 {
				log.Printf("%s: bound after %d attempts", what, try)
			}
			return try, err
		}
		if try == 1 {
			log.Printf("%s: queue busy (a previous dataplane's sockets not yet released?): retrying for up to %v", what, bindBudget)
		}
		time.Sleep(wait)
		wait = min(2*wait, 200*time.Millisecond)
	}
}
