package b2b

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/bench/pktgen"
	"github.com/cgw-project/cgw/bench/procstat"
)

// TestThreadedNAPI: site A's receive work moves into one pinned
// SCHED_FIFO kernel thread per queue, the one of the queue the generator's
// CPU feeds does the work (its CPU time grows with the frames), and
// frames still get through, with the larger rings asked for.
func TestThreadedNAPI(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp := upForTest(ctx, t, Options{Prefix: "b2bn", NoReplay: true, Queues: 2, Workers: 2, RingSize: 4096}, "A")
	var threads [][]int
	for _, dev := range []string{InsideDev, OutsideDev} {
		q, err := tp.ThreadNAPI(ctx, tp.A, dev)
		if err != nil {
			t.Fatal(err)
		}
		if len(q) != 2 {
			t.Fatalf("%s: %d NAPI threads, want one per queue (2)", dev, len(q))
		}
		again, err := tp.ThreadNAPI(ctx, tp.A, dev)
		if err != nil || len(again) != 2 || again[0] != q[0] {
			t.Errorf("%s: a second call gave %v, %v; want the same threads %v", dev, again, err, q)
		}
		threads = append(threads, q)
	}
	if err := PinNAPI(threads, []int{1, 0}); err != nil {
		t.Fatal(err)
	}
	for _, q := range threads {
		for i, pid := range q {
			var set unix.CPUSet
			if err := unix.SchedGetaffinity(pid, &set); err != nil {
				t.Fatal(err)
			}
			if want := 1 - i; set.Count() != 1 || !set.IsSet(want) {
				t.Errorf("NAPI thread %d of queue %d: affinity %v, want CPU %d only", pid, i, set, want)
			}
			a, err := unix.SchedGetAttr(pid, 0)
			if err != nil {
				t.Fatal(err)
			}
			if a.Policy != unix.SCHED_FIFO || a.Priority != 50 {
				t.Errorf("NAPI thread %d: policy %d priority %d, want SCHED_FIFO 50", pid, a.Policy, a.Priority)
			}
		}
	}
	load, err := tp.NewLoad()
	if err != nil {
		t.Fatal(err)
	}
	defer load.Close()
	// The generator on CPU 0 feeds queue 0 of A's inside NIC.
	cpu := func(pid int) time.Duration { d, _ := procstat.CPUTime(pid); return d }
	q0, q1 := cpu(threads[0][0]), cpu(threads[0][1])
	tr, err := load.Trial(ctx, TrialConfig{Dir: Outbound, Mix: pktgen.Fixed(1400), Rate: pktgen.Rate{PPS: 20000}, Duration: time.Second, GenCPU: 0, GenPriority: 40})
	if err != nil {
		t.Fatal(err)
	}
	d0, d1 := cpu(threads[0][0])-q0, cpu(threads[0][1])-q1
	t.Logf("20 kpps for 1 s: delivered %d of %d; queue 0's NAPI thread %v of CPU, queue 1's %v", tr.Delivered, tr.Expected, d0, d1)
	if tr.Sent < 15000 || tr.Delivered < tr.Expected*99/100 {
		t.Errorf("delivered %d of %d (sent %d): traffic must flow through the threaded NAPI", tr.Delivered, tr.Expected, tr.Sent)
	}
	if d0 < 5*time.Millisecond || d0 < 10*d1 {
		t.Errorf("queue 0's NAPI thread ran %v, queue 1's %v: the receive work is not in queue 0's thread", d0, d1)
	}
}
