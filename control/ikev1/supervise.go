package ikev1

import (
	"fmt"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
)

// safely runs one step of the tunnel's goroutine. A panic (a bug, or
// input no test thought of) is recovered there: logged once with its
// stack, counted (Manager.Panics, and ike.Panics: the process's
// cgw_control_panics_total, shared with ikev2), and this tunnel alone
// restarts from nothing; the other tunnels, each on its own goroutine,
// never notice (issue #9).
func (t *Tunnel) safely(f func()) {
	defer func() {
		if r := recover(); r != nil {
			t.m.panics.Add(1)
			ike.Panics.Recovered(t.m.log, r, "tunnel", t.name)
			t.restart(fmt.Errorf("internal error: %v", r))
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
				t.m.log.Error("tunnel cleanup after a panic panicked too", "tunnel", t.name, "panic", fmt.Sprint(r))
			}
		}()
		for len(t.cands) > 0 {
			t.dropCand(t.cands[0])
		}
		t.down("internal error", err, false)
	}()
	t.forget()
	t.p1, t.old, t.cands, t.children, t.out = nil, nil, nil, nil, nil
	t.lc = t.lifecycle() // down, if it got that far, reported the tunnel down
	t.reinitAt, t.reinitWait = time.Time{}, 0
	if t.cfg.StartupAction == config.StartupStart {
		t.scheduleReinit()
	}
}

// forget drops every cookie routed to t and every SPI it may still hold
// (if down did not get that far).
func (t *Tunnel) forget() {
	t.m.mu.Lock()
	for c, o := range t.m.byCky {
		if o == t {
			delete(t.m.byCky, c)
		}
	}
	t.m.mu.Unlock()
	for _, c := range t.children {
		t.releaseSPI(c.sa.InSPI)
		c.sa.Wipe()
	}
	for _, sa := range append(append([]*p1SA{t.p1}, t.old...), t.cands...) {
		if sa == nil {
			continue
		}
		for _, q := range sa.qms {
			t.releaseSPI(q.inSPI)
		}
		sa.wipe()
	}
}

// Panics is how many times a tunnel's goroutine panicked and was
// restarted since New (for metrics).
func (m *Manager) Panics() uint64 { return m.panics.Load() }
