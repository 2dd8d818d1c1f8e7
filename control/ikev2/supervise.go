package ikev2

import (
	"slices"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
)

// supervisor restarts t alone after a panic on its goroutine
// (ike.Supervisor).
func (t *Tunnel) supervisor() ike.Supervisor {
	return ike.Supervisor{Log: t.log, Count: &t.m.panics, Cleanup: t.cleanup, Reset: t.reset}
}

// cleanup drops every SA of the tunnel, telling the dataplane through the
// usual events.
func (t *Tunnel) cleanup(err error) {
	for _, sa := range slices.Clone(t.sas) {
		t.removeSA(sa, "internal error", err)
	}
	t.down("internal error", err, false)
}

// reset starts again as a fresh tunnel would.
func (t *Tunnel) reset() {
	t.forget()
	t.sas, t.ike, t.children, t.out = nil, nil, nil, nil
	t.lc = t.lifecycle()
	t.contacted, t.reinit = false, ike.Reinit{}
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
