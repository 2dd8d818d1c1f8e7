package daemon

import (
	"net/netip"
	"slices"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/kernelguard"
	"github.com/cgw-project/cgw/control/rib"
)

// Kernel guards (control/kernelguard): an unreachable route at a low priority
// for every prefix cgw routes into a tunnel and every inside /30, so the
// kernel drops what XDP no longer handles instead of forwarding it in
// clear. They are configured at start and on every reload, learnt from
// each route the RIB writes (before the map write), checked against the
// kernel every GuardResync, swept of a previous process's leftovers once
// routing has converged, and kept when cgw-control exits unless
// Options.RemoveGuards.

// openGuards adopts the guards a previous process left in the kernel and
// the routes it left in the map, then installs cfg's.
func (d *Daemon) openGuards(cfg *config.Config) error {
	var err error
	if d.guards, err = kernelguard.Open(kernelguard.Options{State: d.opt.GuardState}); err != nil && d.guards == nil {
		return err
	} else if err != nil {
		d.log.Error("kernel guards: the state file is unreadable; guarding what the kernel and the configuration hold", "err", err)
	}
	d.guards.Exempt(guardExempt(cfg))
	adopted := make([]netip.Prefix, len(d.adopted))
	for i, r := range d.adopted {
		adopted[i] = r.Prefix
	}
	if err := d.guards.Adopt(adopted); err != nil {
		d.log.Error("kernel guards (unreachable routes)", "err", err)
	}
	d.configureGuards(cfg)
	return nil
}

// configureGuards makes the kernel hold the guards for cfg and for the
// prefixes with a BGP path. It runs before the RIB takes cfg's static
// routes, so those are guarded before they reach the dataplane.
func (d *Daemon) configureGuards(cfg *config.Config) {
	var learnt []netip.Prefix
	if d.rib != nil {
		learnt = d.bgpPrefixes()
	}
	d.guards.Exempt(guardExempt(cfg))
	if err := d.guards.Configure(kernelguard.Configured(cfg), learnt); err != nil {
		d.log.Error("kernel guards (unreachable routes)", "err", err)
		return
	}
	d.log.Info("kernel guards in place: unreachable routes at a low priority for the prefixes routed into tunnels",
		"count", len(d.guards.Prefixes()), "metric", kernelguard.Metric, "proto", int(kernelguard.Protocol))
}

// guardExempt are the addresses no guard may cover (kernelguard.Exempt):
// our outside addresses and the AWS endpoints, which IKE must reach.
func guardExempt(cfg *config.Config) []netip.Addr {
	var out []netip.Addr
	if a := cfg.Gateway.Outside.Address.Addr(); a.IsValid() {
		out = append(out, a)
	}
	for _, c := range cfg.Connections {
		for _, t := range c.Tunnels {
			out = append(out, t.AWSOutside, t.LocalOutside)
		}
	}
	return out
}

// learnGuard guards p before its route reaches the dataplane; a failure is
// logged (at most every 10 s) and retried with the next route.
func (d *Daemon) learnGuard(p netip.Prefix) {
	err := d.guards.Learn(p)
	if err == nil {
		return
	}
	now := time.Now().UnixNano()
	if last := d.guardWarned.Load(); now-last > int64(10*time.Second) && d.guardWarned.CompareAndSwap(last, now) {
		d.log.Error("kernel guards (unreachable routes)", "prefix", p, "err", err)
	}
}

// bgpPrefixes are the prefixes the RIB routes into a tunnel with a BGP
// path among their candidates.
func (d *Daemon) bgpPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range d.rib.Table() {
		ex, _ := d.rib.Explain(s.Prefix)
		if slices.ContainsFunc(ex.Candidates, func(c rib.Candidate) bool { return c.Source == rib.SourceBGP }) {
			out = append(out, s.Prefix)
		}
	}
	return out
}

// sweepGuards removes the guards a previous process left that nothing
// configures or routes any more, once every tunnel and session is up (not
// at ConvergeTimeout: with a tunnel still down, its prefixes may just not
// be re-learnt yet, and they are the ones to keep guarded).
func (d *Daemon) sweepGuards(converged bool) {
	if d.guardsSwept || !converged {
		return
	}
	var routed []netip.Prefix
	for _, s := range d.rib.Table() {
		if !s.Stale { // a previous process's route nothing re-learnt
			routed = append(routed, s.Prefix)
		}
	}
	n, err := d.guards.SweepAdopted(routed)
	if err != nil {
		d.log.Warn("removing kernel guards left by the previous cgw-control (will retry)", "err", err)
		return
	}
	d.guardsSwept = true
	if n > 0 {
		d.log.Info("kernel guards left by the previous cgw-control and no longer routed removed", "count", n)
	}
}

// resyncGuards puts back, every GuardResync, guards removed behind cgw's
// back (a route flush, a network manager) and retries failed ones.
func (d *Daemon) resyncGuards() {
	if time.Since(d.guardsSeen) < d.opt.GuardResync {
		return
	}
	d.guardsSeen = time.Now()
	if err := d.guards.Resync(); err != nil {
		d.log.Error("kernel guards (unreachable routes)", "err", err)
	}
}

// closeGuards runs at Stop: the guards stay in the kernel (a stopped
// control is one of the states they cover) unless Options.RemoveGuards.
func (d *Daemon) closeGuards() {
	if d.guards == nil {
		return
	}
	if d.opt.RemoveGuards {
		if err := d.guards.Remove(); err != nil {
			d.log.Error("removing kernel guards", "err", err)
		} else {
			d.log.Info("kernel guards removed (-remove-guards)")
		}
	}
	d.guards.Close()
}
