package gateway

import (
	"errors"
	"fmt"
	"log"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/dataplane/afxdp"
	"github.com/cgw-project/cgw/dataplane/nic"
	"github.com/cgw-project/cgw/dataplane/worker"
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
// passed, backing off from 1 ms to 50 ms: the queue is usually free again
// within a few milliseconds, and every one of them is traffic lost by a
// restart. It returns the attempts made.
func retryBusy(what string, f func() error) (int, error) {
	deadline := time.Now().Add(bindBudget)
	wait := time.Millisecond
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
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// loadMaps opens the instance's maps and loads the programs in the
// background (no network namespace involved); the function returned waits
// for them.
func loadMaps(instance string) func() (*maps.Objects, *maps.Reader, error) {
	type result struct {
		objs   *maps.Objects
		reader *maps.Reader
		err    error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		if r.objs, r.err = maps.Load(instance); r.err != nil {
			r.err = fmt.Errorf("loading the pinned maps of instance %s: %w", instance, r.err)
		} else {
			r.reader, r.err = maps.NewReader(r.objs)
		}
		done <- r
	}()
	return func() (*maps.Objects, *maps.Reader, error) {
		r := <-done
		return r.objs, r.reader, r.err
	}
}

// umemSet holds the workers' UMEMs made ahead (worker.WorkerConfig.UMEM).
type umemSet []*afxdp.UMEM

// newUMEMs makes n UMEMs on the calling thread: each one's socket becomes
// the worker's first socket, which binds in that thread's network
// namespace. On a failure it stops; NewWorker then makes its own UMEM and
// reports the error.
func newUMEMs(n, ringSize int) umemSet {
	us := make(umemSet, n)
	for q := range us {
		u, err := worker.NewUMEM(worker.WorkerConfig{ID: q, RingSize: ringSize})
		if err != nil {
			break
		}
		us[q] = u
	}
	return us
}

// take hands over queue q's UMEM, or nil.
func (us umemSet) take(q int) *afxdp.UMEM {
	u := us[q]
	us[q] = nil
	return u
}

// close releases the UMEMs not taken.
func (us umemSet) close() {
	for q, u := range us {
		if u != nil {
			u.Close()
			us[q] = nil
		}
	}
}
