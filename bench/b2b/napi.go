package b2b

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ThreadNAPI makes the receive side of a site's device behave like a
// NIC queue whose interrupt is steered to a core: each receive queue's
// NAPI poll (the site's XDP program and, in AF_XDP copy mode, the copy
// into the socket's UMEM) runs in its own kernel thread, which PinNAPI
// places. Without it a veth polls on the sending CPU, so the generator's
// core pays for the gateway's receive copy and no pinning can keep one
// worker's work on one core. The device must have its NAPI instances
// (XDP attached, or GRO on) when this is called; it returns the threads,
// one per queue in queue order, and the same threads again on later calls.
func (t *Topology) ThreadNAPI(ctx context.Context, s *Site, dev string) ([]int, error) {
	key := s.Role + "/" + dev
	t.mu.Lock()
	got := t.napi[key]
	t.mu.Unlock()
	if got != nil {
		return got, nil
	}
	before, err := napiThreads()
	if err != nil {
		return nil, err
	}
	if out, err := t.Exec(ctx, s.Role, "sh", "-c", "echo 1 > /sys/class/net/"+dev+"/threaded"); err != nil {
		return nil, fmt.Errorf("b2b: threaded NAPI on %s %s (needs its XDP program attached, kernel 5.12+): %v: %s", s.Name, dev, err, out)
	}
	after, err := napiThreads()
	if err != nil {
		return nil, err
	}
	// The threads are named napi/<dev>-<napi id>, ids given in queue
	// order; another namespace's device may share the name, so only the
	// threads that this write created are ours.
	type th struct{ pid, id int }
	var mine []th
	prefix := "napi/" + dev + "-"
	for pid, comm := range after {
		if _, old := before[pid]; old || !strings.HasPrefix(comm, prefix) {
			continue
		}
		id, err := strconv.Atoi(strings.TrimPrefix(comm, prefix))
		if err != nil {
			return nil, fmt.Errorf("b2b: NAPI thread %d named %q: no id", pid, comm)
		}
		mine = append(mine, th{pid, id})
	}
	if len(mine) == 0 {
		return nil, fmt.Errorf("b2b: no NAPI thread appeared for %s %s (was it threaded already?)", s.Name, dev)
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].id < mine[j].id })
	pids := make([]int, len(mine))
	for i, m := range mine {
		pids[i] = m.pid
	}
	t.mu.Lock()
	if t.napi == nil {
		t.napi = map[string][]int{}
	}
	t.napi[key] = pids
	t.mu.Unlock()
	return pids, nil
}

// PinNAPI puts queue i's NAPI thread of each device on cpus[i], at
// SCHED_FIFO priority 50 (what a threaded interrupt gets): a NIC's receive
// interrupt preempts the worker on its core at once, and so does this
// thread when the sender wakes it. At normal priority the scheduler would
// let a busy worker run out its slice first while the veth's 256-frame
// ring overflows, and the loss would be the scheduler's, not cgw's.
func PinNAPI(threads [][]int, cpus []int) error {
	for _, q := range threads {
		for i, pid := range q {
			if i >= len(cpus) {
				break
			}
			var set unix.CPUSet
			set.Set(cpus[i])
			if err := unix.SchedSetaffinity(pid, &set); err != nil {
				return fmt.Errorf("b2b: pinning NAPI thread %d to CPU %d: %w", pid, cpus[i], err)
			}
			if err := unix.SchedSetAttr(pid, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 50}, 0); err != nil {
				return fmt.Errorf("b2b: NAPI thread %d to SCHED_FIFO: %w", pid, err)
			}
		}
	}
	return nil
}

// napiThreads lists the kernel's napi/* threads by pid.
func napiThreads() (map[int]string, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	m := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil {
			continue
		}
		if c := strings.TrimSpace(string(b)); strings.HasPrefix(c, "napi/") {
			m[pid] = c
		}
	}
	return m, nil
}
