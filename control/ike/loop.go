package ike

import (
	"fmt"
	"sync"
	"time"
)

// Loop is the goroutine a tunnel's state lives in, the same in both
// engines: what an operator or the Manager asks (Do, Call), what the peer
// sent (Post, of the engine's datagram type D) and the tunnel's timers are
// handled there one at a time, each step under the Supervisor.
type Loop[D any] struct {
	sup  Supervisor
	cmds chan func()
	in   chan D
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

// NewLoop makes the loop of one tunnel; Run starts it.
func NewLoop[D any](s Supervisor) *Loop[D] {
	return &Loop[D]{sup: s, cmds: make(chan func(), 16), in: make(chan D, 64),
		quit: make(chan struct{}), done: make(chan struct{})}
}

// Steps are what a tunnel's goroutine runs: the engine's protocol.
type Steps[D any] struct {
	// Start runs first (initiating at once); nil waits for the peer.
	Start func()
	// Handle handles one received datagram.
	Handle func(D)
	// Tick checks the tunnel's timers, when either Every or Next says.
	Tick func()
	// Every polls the timers at a fixed period (ikev1: it keeps no list
	// of its deadlines).
	Every time.Duration
	// Next is the tunnel's earliest deadline (zero: none; the loop still
	// wakes within an hour) on Clock. Any command or datagram may move it,
	// so with Next, Tick also runs after each of them (ikev2).
	Next  func() time.Time
	Clock Clock
}

// Run is the tunnel's goroutine; it returns once Stop is called.
func (l *Loop[D]) Run(s Steps[D]) {
	defer close(l.done)
	if s.Start != nil {
		l.sup.Safely(s.Start)
	}
	var poll <-chan time.Time
	if s.Every > 0 {
		tk := time.NewTicker(s.Every)
		defer tk.Stop()
		poll = tk.C
	}
	for {
		wake, stop := poll, func() bool { return false }
		if s.Next != nil {
			wait := time.Hour
			if next := s.Next(); !next.IsZero() {
				wait = max(next.Sub(s.Clock.Now()), 0)
			}
			tm := s.Clock.NewTimer(wait)
			wake, stop = tm.C(), tm.Stop
		}
		tick := s.Next != nil
		select {
		case <-l.quit:
			stop()
			return
		case f := <-l.cmds:
			l.sup.Safely(f)
		case d := <-l.in:
			l.sup.Safely(func() { s.Handle(d) })
		case <-wake:
			tick = true
		}
		stop()
		if tick {
			l.sup.Safely(s.Tick)
		}
	}
}

// Do runs f on the goroutine; false once it has ended.
func (l *Loop[D]) Do(f func()) bool {
	select {
	case l.cmds <- f:
		return true
	case <-l.done:
		return false
	}
}

// Post queues a received datagram without blocking: when the tunnel is
// behind, it is dropped (the peer retransmits) and Post returns false.
func (l *Loop[D]) Post(d D) bool {
	select {
	case l.in <- d:
		return true
	default:
		return false
	}
}

// Inbox is the queue Post fills, for tests that drive a tunnel by hand
// without its goroutine.
func (l *Loop[D]) Inbox() <-chan D { return l.in }

// Done is closed when the goroutine has ended.
func (l *Loop[D]) Done() <-chan struct{} { return l.done }

// Stop ends the goroutine once its current step is done and waits for it.
func (l *Loop[D]) Stop() {
	l.once.Do(func() { close(l.quit) })
	<-l.done
}

// Call runs f on the goroutine of tunnel name and returns its answer, so
// an operator's command learns whether it started; a panic in f answers
// an error (and the tunnel restarts), a stopped tunnel says so.
func (l *Loop[D]) Call(name string, f func() error) error {
	res := make(chan error, 1)
	stopped := fmt.Errorf("tunnel %s: stopped (cgw-control is shutting down or the tunnel was removed)", name)
	if !l.Do(func() {
		err := fmt.Errorf("tunnel %s: the command failed with an internal error; the tunnel was restarted", name)
		defer func() { res <- err }() // also when f panics (Safely recovers)
		err = f()
	}) {
		return stopped
	}
	select {
	case err := <-res:
		return err
	case <-l.done:
		return stopped
	}
}

// Status runs f, the snapshot of tunnel name, on the goroutine: State is
// "restarting" when f panicked, "stopped" once the goroutine has ended.
func (l *Loop[D]) Status(name string, f func() TunnelStatus) TunnelStatus {
	ch := make(chan TunnelStatus, 1)
	if !l.Do(func() {
		s := TunnelStatus{Name: name, State: "restarting"}
		defer func() { ch <- s }() // also when f panics (Safely recovers)
		s = f()
	}) {
		return TunnelStatus{Name: name, State: "stopped"}
	}
	select {
	case s := <-ch:
		return s
	case <-l.done: // ended before running f
		return TunnelStatus{Name: name, State: "stopped"}
	}
}
