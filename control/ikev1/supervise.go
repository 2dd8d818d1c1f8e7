package ikev1

import (
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
)

// supervisor restarts t alone after a panic on its goroutine
// (ike.Supervisor).
func (t *Tunnel) supervisor() ike.Supervisor {
	return ike.Supervisor{Log: t.m.log.With("tunnel", t.name), Count: &t.m.panics, Cleanup: t.cleanup, Reset: t.reset}
}

// cleanup drops every SA of the tunnel, telling the dataplane through the
// usual events.
func (t *Tunnel) cleanup(err error) {
	for len(t.cands) > 0 {
		t.dropCand(t.cands[0])
	}
	t.down("internal error", err, false)
}

// reset starts again as a fresh tunnel would.
func (t *Tunnel) reset() {
	t.forget()
	t.p1, t.old, t.cands, t.children, t.out = nil, nil, nil, nil, nil
	t.lc = t.lifecycle() // down, if it got that far, reported the tunnel down
	t.reinit = ike.Reinit{}
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
