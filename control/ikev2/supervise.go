package ikev2

import (
	"fmt"
	"slices"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
)

// safely runs one step of the tunnel's goroutine. A panic (a bug, or
// input no test thought of) is recovered there: logged once with its
// stack, counted (Manager.Panics and ike.Panics, the metric), and this
// tunnel alone restarts from nothing; the other tunnels, each on its own
// goroutine, never notice (issue #9).
func (t *Tunnel) safely(f func()) {
	defer func() {
		if r := recover(); r != nil {
			t.m.panics.Add(1)
			ike.Panics.Recovered(t.log, r)
			t.restart(fmt.Errorf("tunnel %s: internal error: %v", t.name, r))
		}
	}()
	f()
}

// restart drops every SA of the tunnel (telling the dataplane through
// the usual events, best effort: the state may be what panicked) and
// starts again as a fresh tunnel would.
func (t *Tunnel) restart(err error) {
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.log.Error("tunnel cleanup after a panic panicked too", "panic", fmt.Sprint(r))
			}
		}()
		for _, sa := range slices.Clone(t.sas) {
			t.removeSA(sa, "internal error", err)
		}
		t.down("internal error", err, false)
	}()
	t.forget()
	t.sas, t.ike, t.children, t.out = nil, nil, nil, nil
	t.lc = t.lifecycle()
	t.contacted, t.reinitAt, t.backoff = false, time.Time{}, 0
	if !t.stopping && t.cfg.StartupAction != config.StartupAdd {
		t.scheduleReinit()
	}
}

// forget undoes what the cleanup may not have: routes of our IKE SPIs to
// t, the half-open counts, the Child SAs' SPIs and keys.
func (t *Tunnel) forget() {
	s := t.m.sock
	s.mu.Lock()
	for spi, o := range s.bySPI {
		if o == t {
			delete(s.bySPI, spi)
		}
	}
	s.mu.Unlock()
	s.halfOpen.Add(-int64(t.halfOpen.Swap(0)))
	for _, c := range t.children {
		t.releaseSPI(c.InSPI, c.OutSPI)
		clear(c.InKeymat)
		clear(c.OutKeymat)
	}
}

// Panics is how many times a tunnel's goroutine panicked and was
// restarted since New.
func (m *Manager) Panics() uint64 { return m.panics.Load() }
