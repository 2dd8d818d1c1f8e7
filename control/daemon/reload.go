package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/bgp"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/rib"
	"github.com/cgw-project/cgw/control/status"
)

// Reload implements status.Reloader (cgwctl reload, SIGHUP): it reads
// Options.ConfigPath again and applies it (ReloadConfig).
func (d *Daemon) Reload() (*status.ReloadResult, error) {
	if d.opt.ConfigPath == "" {
		return nil, errors.New("reload: cgw-control was started without a configuration file")
	}
	cfg, err := config.Load(d.opt.ConfigPath)
	if err != nil {
		return &status.ReloadResult{Config: d.opt.ConfigPath, Problems: []string{err.Error()}}, nil
	}
	r := d.ReloadConfig(cfg)
	r.Config = d.opt.ConfigPath
	return r, nil
}

// ReloadConfig applies a new configuration to the running gateway: it is
// checked as cgwctl config check does and refused whole (nothing changes)
// when a problem is found or a setting needs a restart; else only the
// difference is applied (see plan): removed and changed tunnels are
// deleted (the peer is told), changed and added ones negotiated again,
// the others keep their SAs and BGP sessions; the RIB's static routes and
// the BGP neighbours follow the new connections.
func (d *Daemon) ReloadConfig(cfg *config.Config) *status.ReloadResult {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	res := &status.ReloadResult{}
	for _, p := range cfg.Validate() {
		res.Problems = append(res.Problems, p.String())
	}
	if len(res.Problems) > 0 {
		d.log.Warn("reload refused: the new configuration has problems; nothing changed", "problems", len(res.Problems))
		return res
	}
	d.mu.Lock()
	old, closing := d.cfg, d.closing
	d.mu.Unlock()
	if closing {
		res.Problems = []string{"cgw-control is stopping"}
		return res
	}
	p := diffConfigs(old, cfg, engines{ikev1: d.ike1 != nil, listen: d.listen})
	res.Added, res.Removed, res.Changed, res.Unchanged, res.Notes = p.added, p.removed, p.changed, p.kept, p.notes
	if len(p.refused) > 0 {
		res.Problems = p.refused
		d.log.Warn("reload refused: the new configuration needs a restart; nothing changed", "problems", p.refused)
		return res
	}
	for _, w := range cfg.Warnings() {
		res.Notes = append(res.Notes, w.String())
	}
	d.log.Info("reloading the configuration", "added", p.added, "removed", p.removed, "changed", p.changed, "unchanged", len(p.kept))

	// Down first: their events (Child SAs retired, tunnel down) reach the
	// loop before it rebuilds the tunnel list.
	var errs []error
	for _, name := range slices.Concat(p.removed, p.changed) {
		d.mu.Lock()
		t := d.byName[name]
		d.mu.Unlock()
		if t == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := d.engineOf(t).RemoveTunnel(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("tunnel %s: %w", name, err))
		}
		cancel()
	}
	var start []*tunnel
	if err := d.inLoop(func() { start, errs = d.rebuild(cfg, p, errs) }); err != nil {
		errs = append(errs, err)
	}
	for _, t := range start {
		var err error
		if t.cfg.IKEVersion == 1 {
			err = d.ike1.AddTunnel(*t.cfg, ike.TunnelOptions{})
		} else {
			err = d.ike.AddTunnel(*t.cfg, ike.TunnelOptions{})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("tunnel %s: %w", t.cfg.Name, err))
		}
	}
	res.Applied = true
	for _, err := range errs {
		res.Errors = append(res.Errors, err.Error())
		d.log.Error("reload", "err", err)
	}
	if d.opt.OnReload != nil {
		var names []string
		for _, t := range start {
			names = append(names, t.cfg.Name)
		}
		d.opt.OnReload(names)
	}
	return res
}

// rebuild runs on the loop: it takes removed tunnels out of the maps, the
// RIB and BGP, points kept and changed ones at the new configuration,
// adds the new ones, and returns the tunnels to negotiate.
func (d *Daemon) rebuild(cfg *config.Config, p plan, errs []error) ([]*tunnel, []error) {
	fail := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	d.mu.Lock()
	byName := d.byName
	d.mu.Unlock()
	freeIDs := map[uint32]bool{}
	for _, name := range p.removed {
		t := byName[name]
		if t == nil {
			continue
		}
		d.clearTunnel(t)
		fail(d.w.SetTunnel(t.id, maps.Tunnel{})) // the dataplane removes its TUN device
		fail(d.rib.RemoveTunnel(t.id))
		freeIDs[t.id] = true
		delete(byName, name)
	}
	inUse := map[uint32]bool{}
	for _, t := range byName {
		inUse[t.id] = true
	}
	nextID := func() uint32 {
		for id := uint32(1); id < maps.MaxTunnels; id++ {
			if !inUse[id] {
				inUse[id] = true
				return id
			}
		}
		return 0
	}
	var tunnels, start []*tunnel
	next := map[string]*tunnel{}
	ids := map[string]uint32{}
	for ci := range cfg.Connections {
		c := &cfg.Connections[ci]
		for ti := range c.Tunnels {
			tc := &c.Tunnels[ti]
			t := byName[tc.Name]
			switch {
			case t == nil:
				t = &tunnel{id: nextID(), cfg: tc, conn: c, children: map[uint32]*child{}}
				fail(d.rib.AddTunnel(rib.Tunnel{ID: t.id, Name: tc.Name, Connection: c.Name}))
				fail(d.w.AddLocalAddr(tc.LocalOutside, maps.LocalOutside))
				start = append(start, t)
			case slices.Contains(p.changed, tc.Name):
				d.clearTunnel(t)
				d.mu.Lock()
				t.cfg, t.conn, t.lastErr = tc, c, ""
				d.mu.Unlock()
				start = append(start, t)
			default:
				d.mu.Lock()
				t.cfg, t.conn = tc, c // equal settings, the new config's memory
				d.mu.Unlock()
			}
			if t != nil && t.id != 0 && slices.Contains(start, t) {
				var flags uint32
				if tc.ClearDF {
					flags |= uint32(maps.TunnelClearDF)
				}
				fail(d.w.SetTunnel(t.id, d.tunnelEntry(t, flags)))
			}
			tunnels = append(tunnels, t)
			next[tc.Name] = t
			ids[tc.Name] = t.id
		}
	}
	d.mu.Lock()
	d.tunnels, d.byName, d.cfg = tunnels, next, cfg
	d.mu.Unlock()
	d.setNames()

	// Routing: kernel guards for the new configuration, static routes of
	// every connection (unchanged ones are no change), then the BGP
	// neighbours.
	d.configureGuards(cfg)
	fail(d.rib.ConfigStatic(cfg))
	nbs, err := bgp.NeighborsFromConfig(cfg, ids)
	fail(err)
	switch {
	case err != nil:
	case d.bgp != nil:
		fail(d.bgp.SetNeighbors(nbs))
	case len(nbs) > 0:
		s, err := bgp.Start(d.rib, d.bgpOptions(cfg, false), nbs)
		fail(err)
		if err == nil {
			d.mu.Lock()
			d.bgp = s
			d.mu.Unlock()
		}
	}
	// A kept tunnel whose neighbour was added again starts its session.
	if d.bgp != nil {
		for _, t := range tunnels {
			d.mu.Lock()
			up := t.up
			d.mu.Unlock()
			if up {
				fail(d.bgp.TunnelUp(t.id))
			}
		}
	}
	return start, errs
}

// clearTunnel takes a tunnel whose IKE side was removed out of the maps:
// any SA still installed, its outbound SA, its up flag and its routes.
func (d *Daemon) clearTunnel(t *tunnel) {
	var err error
	if d.bgp != nil {
		err = d.bgp.TunnelDown(t.id)
	} else {
		err = d.rib.SetTunnelUp(t.id, false)
	}
	if err != nil {
		d.log.Warn("routing: tunnel down", "tunnel", t.cfg.Name, "err", err)
	}
	d.w.SetTunnelUp(t.id, false)
	d.w.SetOutboundSA(t.id, 0)
	d.mu.Lock()
	cs := make([]*child, 0, len(t.children))
	for _, c := range t.children {
		cs = append(cs, c)
	}
	t.up, t.upSince, t.out = false, time.Time{}, 0
	d.mu.Unlock()
	for _, c := range cs {
		if err := d.removeChild(t, c); err != nil {
			d.log.Warn("reload: removing a Child SA", "tunnel", t.cfg.Name, "err", err)
		}
	}
	d.retireStale(t)
}

var errStopping = errors.New("cgw-control is stopping")

// inLoop runs f on the loop goroutine, which owns the SA slots, after the
// IKE events already queued.
func (d *Daemon) inLoop(f func()) error {
	done := make(chan struct{})
	select {
	case d.ops <- func() { f(); close(done) }:
	case <-d.quit:
		return errStopping
	}
	select {
	case <-done:
		return nil
	case <-d.loopDone:
		return errStopping
	}
}
