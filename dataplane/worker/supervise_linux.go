package worker

import (
	"log"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// A panic in one worker must not take every tunnel down with the process
// (issue #9): Run recovers it, logs its stack once, counts it
// (cgw_dataplane_worker_panics_total) and restarts the loop on the same
// queue and sockets while the other workers go on. The batch in hand is
// dropped — never transmitted, so nothing meant for a tunnel leaves in
// clear — and its frames go back to the UMEM. Fragment frames the
// pipeline had appended past the batch are not tracked and stay lost (at
// most Batch×maxFragments per panic).

// supervision is a worker's panic bookkeeping.
type supervision struct {
	panics   atomic.Uint64
	lastLog  time.Time
	stackLog bool // the first panic's stack was logged
}

// Panics returns how many panics the worker recovered from.
func (w *Worker) Panics() uint64 { return w.sup.panics.Load() }

// serve runs the loop until Stop (true) or a panic, which it recovers
// (false: Run calls it again).
func (w *Worker) serve(l *loop) (stopped bool) {
	defer func() {
		if r := recover(); r != nil {
			w.recovered(r, debug.Stack(), l)
		}
	}()
	w.run(l)
	return true
}

// recovered counts and logs a recovered panic and undoes what the
// batch in hand left behind.
func (w *Worker) recovered(r any, stack []byte, l *loop) {
	n := w.sup.panics.Add(1)
	now := time.Now()
	switch {
	case !w.sup.stackLog:
		w.sup.stackLog, w.sup.lastLog = true, now
		log.Printf("worker %d (queue %d): panic: %v; batch dropped, worker restarted (please report this with the stack below)\n%s",
			w.cfg.ID, w.cfg.Queue, r, stack)
	case now.Sub(w.sup.lastLog) >= time.Second:
		w.sup.lastLog = now
		log.Printf("worker %d (queue %d): panic: %v; batch dropped, worker restarted (%d panics so far; stack logged at the first)",
			w.cfg.ID, w.cfg.Queue, r, n)
	}
	if l.busy {
		for i := range l.pkts {
			w.umem.Reclaim(l.pkts[i].Addr)
		}
		for _, q := range [][]Packet{l.out.Outside, l.out.Inside} {
			for i := range q {
				w.umem.Reclaim(q[i].Addr)
			}
		}
		l.busy = false
	}
	l.pkts, l.out.Outside, l.out.Inside = l.pkts[:0], l.out.Outside[:0], l.out.Inside[:0]
	w.p.abort()
}

// testHook, when set (SetTestHook), runs on a worker's goroutine for
// every batch it receives, before the pipeline: tests inject panics with
// it.
var testHook atomic.Pointer[func(worker int)]

// SetTestHook makes f run for every batch any worker receives, with the
// worker's ID, until it is called with nil. For tests only (a panic
// injected this way exercises the supervision); production never sets it.
func SetTestHook(f func(worker int)) {
	if f == nil {
		testHook.Store(nil)
		return
	}
	testHook.Store(&f)
}

func (w *Worker) hook() {
	if f := testHook.Load(); f != nil {
		(*f)(w.cfg.ID)
	}
}
