package main

import (
	"errors"
	"fmt"
	"log"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolChannels is struct ethtool_channels (linux/ethtool.h).
type ethtoolChannels struct {
	cmd                                         uint32
	maxRx, maxTx, maxOther, maxCombined         uint32
	rxCount, txCount, otherCount, combinedCount uint32
}

// ifreqData is struct ifreq with ifr_data.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// channelsInUse returns how many RX queues of dev are in use: the RX-only
// plus combined channels the driver reports (ETHTOOL_GCHANNELS, what
// `ethtool -l` prints under "Current hardware settings"). An AF_XDP
// socket binds only to one of those, not up to the maximum the device
// was created with. The ioctl goes to a socket of this process's network
// namespace, which is where dev is looked up.
func channelsInUse(dev string) (int, error) {
	if len(dev) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("interface name %q too long", dev)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ch := ethtoolChannels{cmd: unix.ETHTOOL_GCHANNELS}
	var ifr ifreqData
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(&ch)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&ch)
	if e != 0 {
		return 0, fmt.Errorf("ETHTOOL_GCHANNELS on %s: %w", dev, e)
	}
	n := int(ch.rxCount + ch.combinedCount)
	if n < 1 {
		return 0, fmt.Errorf("%s reports no RX or combined channels in use", dev)
	}
	return n, nil
}

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
