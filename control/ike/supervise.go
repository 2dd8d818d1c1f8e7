package ike

import (
	"fmt"
	"log/slog"
	"sync/atomic"
)

// Supervisor keeps a panic on one tunnel's goroutine (a bug, or input no
// test thought of) to that tunnel (issue #9): Safely recovers it, logs it
// once with its stack, counts it (Count, the engine's Manager.Panics, and
// Panics, the process's metric) and restarts the tunnel from nothing; the
// other tunnels, each on its own goroutine, never notice.
type Supervisor struct {
	// Log is the tunnel's logger (it names the tunnel).
	Log *slog.Logger
	// Count is the engine's count of recovered panics; nil: none.
	Count *atomic.Uint64
	// Cleanup drops every SA the tunnel holds the way the protocol does
	// (the dataplane told through the usual events). It is best effort:
	// the state may be what panicked, and a panic in Cleanup is logged
	// and goes no further.
	Cleanup func(err error)
	// Reset forgets whatever Cleanup left (routes, SPIs, keys) and starts
	// the tunnel again as a fresh one would.
	Reset func()
}

// Safely runs one step of the tunnel's goroutine, restarting the tunnel
// if it panics.
func (s *Supervisor) Safely(f func()) {
	defer func() {
		if r := recover(); r != nil {
			if s.Count != nil {
				s.Count.Add(1)
			}
			Panics.Recovered(s.Log, r)
			s.restart(fmt.Errorf("internal error: %v", r))
		}
	}()
	f()
}

func (s *Supervisor) restart(err error) {
	func() {
		defer func() {
			if r := recover(); r != nil {
				s.Log.Error("tunnel cleanup after a panic panicked too", "panic", fmt.Sprint(r))
			}
		}()
		if s.Cleanup != nil {
			s.Cleanup(err)
		}
	}()
	if s.Reset != nil {
		s.Reset()
	}
}
