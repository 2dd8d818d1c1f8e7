package daemon

import (
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/control/ike"
)

// loop applies IKE events in order (one goroutine owns the SA table) and
// reads the dataplane's counters every CounterInterval.
func (d *Daemon) loop() {
	defer close(d.loopDone)
	tick := time.NewTicker(d.opt.CounterInterval)
	defer tick.Stop()
	pre := d.mbb.ch()
	for {
		select {
		case e := <-d.events:
			d.apply(e)
		case op := <-d.ops:
			// After the events queued before it (a reload's RemoveTunnel).
			for len(d.events) > 0 {
				d.apply(<-d.events)
			}
			op()
		case r := <-pre:
			d.preinstall(r)
		case <-tick.C:
			d.pollCounters()
			d.sweepRoutes()
			d.resyncGuards()
			d.sweepStaleTunnels()
			d.sweepPending(pendingTimeout)
		case <-d.quit:
			for {
				select {
				case e := <-d.events:
					d.apply(e)
				default:
					d.sweepPending(0)
					return
				}
			}
		}
	}
}

func (d *Daemon) apply(e ike.Event) {
	d.mu.Lock()
	t := d.byName[e.Tunnel]
	d.mu.Unlock()
	if t == nil {
		return
	}
	var err error
	switch e.Type {
	case ike.ChildSAInstalled:
		err = d.installChild(t, e.Child)
	case ike.OutboundSwitch:
		err = d.switchOut(t, e.Child)
	case ike.ChildSARetired:
		d.mu.Lock()
		c := t.children[e.Child.InSPI]
		d.mu.Unlock()
		if c != nil {
			err = d.retireChild(t, c)
		}
	case ike.TunnelUp:
		err = d.tunnelUp(t)
	case ike.TunnelDown:
		d.tunnelDown(t, e)
	case ike.NegotiationFailed, ike.DPDTimeout:
		// The notify name (what the peer's logs show) and the operator's hint.
		msg := e.Reason
		if msg == "" {
			msg = e.Type.String()
		}
		if e.Err != nil {
			msg += ": " + e.Err.Error()
		}
		d.mu.Lock()
		t.lastErr = msg
		if e.Type == ike.NegotiationFailed {
			// A rekey the counters asked for may be what failed: ask
			// again soon if the limit still holds (the engine ignores
			// the request while one is in flight).
			for _, c := range t.children {
				if again := time.Now().Add(d.opt.RekeyFailRetry); !c.rekeyAgain.IsZero() && again.Before(c.rekeyAgain) {
					c.rekeyAgain = again
				}
			}
		}
		d.mu.Unlock()
	}
	if err != nil {
		d.log.Error("applying IKE event to the dataplane maps", "tunnel", t.cfg.Name, "event", e.Type.String(), "err", err)
		d.mu.Lock()
		t.lastErr = fmt.Sprintf("%v: %v", e.Type, err)
		d.mu.Unlock()
	}
	d.publishIKE(e)
	if d.opt.OnEvent != nil {
		d.opt.OnEvent(e)
	}
}

// saEntry builds one direction's map entry from a negotiated Child SA.
func (d *Daemon) saEntry(t *tunnel, c *ike.ChildSA, dir maps.SADir) (maps.SA, error) {
	sa := maps.SA{TunnelId: t.id, Direction: uint8(dir), State: uint8(maps.StateActive),
		LocalAddr: maps.Addr16(c.Local), RemoteAddr: maps.Addr16(c.Peer)}
	keymat := c.OutKeymat
	sa.Spi = c.OutSPI
	if dir == maps.DirInbound {
		keymat, sa.Spi = c.InKeymat, c.InSPI
		sa.ReplayWindow = uint32(c.ReplayWindow)
	}
	if c.ESN {
		sa.Flags |= uint32(maps.SAFlagESN)
	}
	// The dataplane stops using an outbound SA at the hard limit; the soft
	// one is where this daemon asks for a rekey (pollCounters).
	sa.LifeSoftBytes, sa.LifeHardBytes = byteLimits(t, c.InSPI)
	if c.Encap {
		// RFC 3948: ESP in UDP between our NAT-T port and the peer's.
		// strongSwan's libipsec always forces this (DESIGN §4).
		sa.Flags |= uint32(maps.SAFlagUDPEncap)
		if dir == maps.DirOutbound {
			sa.EncapSport, sa.EncapDport = c.LocalPort, c.PeerPort
		} else {
			sa.EncapSport, sa.EncapDport = c.PeerPort, c.LocalPort
		}
	}
	if err := maps.SetKeys(&sa, c.Suite, keymat); err != nil {
		return sa, err
	}
	return sa, nil
}

func (d *Daemon) installChild(t *tunnel, c *ike.ChildSA) error {
	in, err := d.saEntry(t, c, maps.DirInbound)
	if err != nil {
		return err
	}
	out, err := d.saEntry(t, c, maps.DirOutbound)
	if err != nil {
		return err
	}
	// The inbound SA may be in place already (installInbound, before the
	// IKE message that lets the peer use it went out).
	inIdx, pre := d.takePending(c.InSPI)
	if !pre {
		if inIdx, err = d.alloc(); err != nil {
			return err
		}
	}
	outIdx, err := d.alloc()
	if err != nil {
		if pre {
			d.w.RetireSA(inIdx)
		}
		d.used[inIdx] = false
		return err
	}
	if !pre {
		if err := d.w.InstallInboundSA(inIdx, in); err != nil {
			d.used[inIdx], d.used[outIdx] = false, false
			return err
		}
	}
	if err := d.w.InstallSA(outIdx, out); err != nil {
		d.w.RetireSA(inIdx)
		d.used[inIdx], d.used[outIdx] = false, false
		return err
	}
	d.mu.Lock()
	nc := &child{sa: *c, inIdx: inIdx, outIdx: outIdx, installed: time.Now()}
	nc.softBytes, nc.hardBytes = byteLimits(t, c.InSPI)
	t.children[c.InSPI] = nc
	t.nat = c.Encap
	d.mu.Unlock()
	d.log.Info("child SA installed", "tunnel", t.cfg.Name, "in", fmt.Sprintf("%08x", c.InSPI), "out", fmt.Sprintf("%08x", c.OutSPI),
		"suite", c.Suite.String(), "encap", c.Encap, "slots", fmt.Sprintf("%d/%d", inIdx, outIdx))
	return nil
}

// switchOut points the tunnel at the new outbound SA in one map update
// (make-before-break), then retires what a previous process left.
func (d *Daemon) switchOut(t *tunnel, c *ike.ChildSA) error {
	d.mu.Lock()
	ch := t.children[c.InSPI]
	d.mu.Unlock()
	if ch == nil {
		return fmt.Errorf("outbound switch to SPI %08x that was never installed", c.OutSPI)
	}
	if err := d.w.SetOutboundSA(t.id, ch.outIdx); err != nil {
		return err
	}
	d.mu.Lock()
	for _, o := range t.children {
		o.active = o == ch
	}
	t.out = ch.outIdx
	d.mu.Unlock()
	d.retireStale(t)
	return nil
}

// retireStale removes the SAs a previous control process installed for
// the tunnel, once ours carry its traffic.
func (d *Daemon) retireStale(t *tunnel) {
	d.mu.Lock()
	stale := t.stale
	t.stale = nil
	d.mu.Unlock()
	var keep []uint32
	for _, idx := range stale {
		if err := d.w.RetireSA(idx); err != nil {
			d.log.Warn("removing an SA left by the previous cgw-control", "tunnel", t.cfg.Name, "index", idx, "err", err)
			keep = append(keep, idx)
			continue
		}
		d.used[idx] = false
	}
	if len(stale) > 0 {
		d.log.Info("removed SAs left by the previous cgw-control", "tunnel", t.cfg.Name, "count", len(stale)-len(keep))
	}
	d.mu.Lock()
	t.stale = append(t.stale, keep...)
	d.mu.Unlock()
}

func (d *Daemon) retireChild(t *tunnel, c *child) error {
	if t.out == c.outIdx {
		// The engine switches to the successor right after this event;
		// do it first so no packet finds the tunnel without an SA.
		var next *child
		d.mu.Lock()
		for _, o := range t.children {
			if o != c && (next == nil || o.installed.After(next.installed)) {
				next = o
			}
		}
		d.mu.Unlock()
		target := uint32(0)
		if next != nil {
			target = next.outIdx
		}
		if err := d.w.SetOutboundSA(t.id, target); err != nil {
			return err
		}
		d.mu.Lock()
		t.out = target
		if next != nil {
			next.active = true
		}
		d.mu.Unlock()
	}
	return d.removeChild(t, c)
}

func (d *Daemon) removeChild(t *tunnel, c *child) error {
	var errs []error
	for _, idx := range []uint32{c.inIdx, c.outIdx} {
		if idx == c.inIdx && c.inExpired {
			continue // removed at its hard byte limit; the slot may be reused
		}
		if err := d.w.RetireSA(idx); err != nil {
			errs = append(errs, err)
			continue
		}
		d.used[idx] = false
	}
	d.mu.Lock()
	delete(t.children, c.sa.InSPI)
	d.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("retiring child SA in %08x: %v", c.sa.InSPI, errs)
	}
	return nil
}

func (d *Daemon) tunnelUp(t *tunnel) error {
	if err := d.w.SetTunnelUp(t.id, true); err != nil {
		return err
	}
	d.mu.Lock()
	t.up, t.upSince, t.lastErr = true, time.Now(), ""
	d.mu.Unlock()
	d.log.Info("tunnel up", "tunnel", t.cfg.Name, "id", t.id)
	if d.bgp != nil {
		return d.bgp.TunnelUp(t.id)
	}
	return d.rib.SetTunnelUp(t.id, true)
}

func (d *Daemon) tunnelDown(t *tunnel, e ike.Event) {
	d.log.Info("tunnel down", "tunnel", t.cfg.Name, "reason", e.Reason, "err", e.Err)
	// RIB first: traffic fails over to the other tunnel at once.
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
	d.mu.Lock()
	t.up = false
	t.upSince = time.Time{}
	if !d.closing {
		t.lastErr = e.Reason
		if e.Err != nil {
			t.lastErr = e.Reason + ": " + e.Err.Error()
		}
	}
	d.mu.Unlock()
}

// byteLimits returns the soft and hard byte lifetimes of the Child SA with
// inbound SPI spi (0, 0: none). As strongSwan's rekey_bytes/life_bytes:
// the rekey starts 10 % before the limit, earlier by up to
// rekey_fuzz_percent of that margin at random (seeded by the SPI, so both
// directions' entries agree), so the two ends do not rekey at once.
func byteLimits(t *tunnel, spi uint32) (soft, hard uint64) {
	hard = t.cfg.Phase2.LifetimeBytes
	if hard == 0 {
		return 0, 0
	}
	margin := hard / 10
	if f := uint64(max(t.cfg.RekeyFuzz, 0)); f > 0 && margin > 0 {
		r := rand.New(rand.NewPCG(uint64(spi), hard))
		margin += r.Uint64N(margin*f/100 + 1)
	}
	return hard - min(margin, hard-1), hard
}

// pollCounters reads each installed SA's counters: the inbound SA's last
// packet time is DPD's evidence of life (RFC 7296 §1.4: no liveness check
// while traffic arrives); the outbound sequence number nearing its limit
// (RFC 4303 §3.3.3: never cycle) or either direction's bytes reaching the
// soft byte lifetime triggers a rekey, and an inbound SA at the hard byte
// lifetime is removed (the dataplane itself stops sending on an outbound
// SA at its hard limit, sa.life_hard_bytes).
func (d *Daemon) pollCounters() {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	mono := uint64(ts.Nano())
	now := time.Now()
	for _, t := range d.tunnels {
		d.mu.Lock()
		cs := make([]*child, 0, len(t.children))
		for _, c := range t.children {
			cs = append(cs, c)
		}
		d.mu.Unlock()
		for _, c := range cs {
			var in maps.SACounters
			ierr := errInboundExpired
			if !c.inExpired {
				in, ierr = d.w.ReadSACounters(c.inIdx)
			}
			out, oerr := d.w.ReadSACounters(c.outIdx)
			d.mu.Lock()
			if ierr == nil {
				c.in = in
			}
			if oerr == nil {
				c.out = out
			}
			d.mu.Unlock()
			if ierr == nil && in.LastNs != 0 && in.LastNs != c.lastSeen && in.LastNs <= mono {
				c.lastSeen = in.LastNs
				d.engineOf(t).LastInbound(c.sa.InSPI, now.Add(-time.Duration(mono-in.LastNs)))
			}
			if ierr == nil && c.hardBytes != 0 && in.Bytes >= c.hardBytes {
				d.expireInbound(t, c, in.Bytes)
			}
			limit := uint64(seqSoftLimit)
			if c.sa.ESN {
				limit = seqSoftLimitESN
			}
			reason := ""
			switch {
			case oerr == nil && out.Seq >= limit:
				reason = "sequence"
			case c.softBytes != 0 && ((ierr == nil && in.Bytes >= c.softBytes) || (oerr == nil && out.Bytes >= c.softBytes)):
				reason = "bytes"
			}
			if reason == "" || !d.rekeyWanted(t, c, now) {
				continue
			}
			d.mu.Lock()
			c.rekeyAgain = now.Add(d.opt.RekeyRetry)
			d.mu.Unlock()
			d.log.Info("Child SA near its "+reason+" limit: rekeying", "tunnel", t.cfg.Name, "spi", fmt.Sprintf("%08x", c.sa.OutSPI),
				"seq", out.Seq, "bytes_in", c.in.Bytes, "bytes_out", out.Bytes, "soft_bytes", c.softBytes)
			// By our (inbound) SPI: unique among our SAs, and the only
			// one control/ikev1 looks Child SAs up by.
			d.engineOf(t).ChildNeedsRekey(c.sa.InSPI)
			if d.opt.OnRekeyRequest != nil {
				d.opt.OnRekeyRequest(t.cfg.Name, reason)
			}
		}
	}
}

var errInboundExpired = fmt.Errorf("inbound SA removed at its hard byte lifetime")

// rekeyWanted tells whether the counters should ask for a rekey of c now:
// not while a successor is installed (the rekey succeeded, or the peer
// rekeyed) and not again while an earlier request may still be in flight.
func (d *Daemon) rekeyWanted(t *tunnel, c *child, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range t.children {
		if o != c && o.installed.After(c.installed) {
			return false
		}
	}
	return c.rekeyAgain.IsZero() || !now.Before(c.rekeyAgain)
}

// expireInbound removes an inbound SA that carried its hard byte lifetime:
// the peer's packets on it are dropped from now on (unknown SPI) until the
// rekey asked for at the soft limit replaces it.
func (d *Daemon) expireInbound(t *tunnel, c *child, bytes uint64) {
	if err := d.w.RetireSA(c.inIdx); err != nil {
		d.log.Warn("removing an inbound SA at its hard byte lifetime (will retry)", "tunnel", t.cfg.Name, "spi", fmt.Sprintf("%08x", c.sa.InSPI), "err", err)
		return
	}
	d.used[c.inIdx] = false
	d.mu.Lock()
	c.inExpired = true
	d.mu.Unlock()
	d.log.Warn("inbound SA reached its hard byte lifetime before a rekey replaced it: removed", "tunnel", t.cfg.Name,
		"spi", fmt.Sprintf("%08x", c.sa.InSPI), "bytes", bytes, "lifetime_bytes", c.hardBytes)
}

// sweepStaleTunnels gives up on the SAs a previous process left for a
// tunnel that has not come back within ConvergeTimeout: they would keep
// the tunnel marked up and its traffic going to a peer that no longer
// holds the SAs, where marking it down lets XDP fail over to the backup
// tunnel.
func (d *Daemon) sweepStaleTunnels() {
	if time.Since(d.started) < d.opt.ConvergeTimeout {
		return
	}
	for _, t := range d.tunnels {
		d.mu.Lock()
		n, up := len(t.stale), t.up
		d.mu.Unlock()
		if n == 0 || up {
			continue
		}
		d.log.Warn("tunnel did not come back: removing the SAs the previous cgw-control left and marking it down", "tunnel", t.cfg.Name, "after", d.opt.ConvergeTimeout)
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
		if err := d.w.SetOutboundSA(t.id, 0); err != nil {
			d.log.Warn("clearing the outbound SA", "tunnel", t.cfg.Name, "err", err)
		}
		d.retireStale(t)
	}
}

// sweepRoutes removes the routes a previous process left that the RIB has
// not selected again (rib.SweepStale), once every tunnel is up and every
// BGP session established (plus a few seconds for the updates), or after
// ConvergeTimeout.
func (d *Daemon) sweepRoutes() {
	if d.routesSwept && d.guardsSwept {
		return
	}
	all := true
	for _, t := range d.tunnels {
		d.mu.Lock()
		up := t.up
		d.mu.Unlock()
		if !up {
			all = false
			break
		}
		if d.bgp != nil {
			if st, ok := d.bgp.State(t.id); ok && st != "established" {
				all = false
				break
			}
		}
	}
	now := time.Now()
	if all && d.converged.IsZero() {
		d.converged = now
	}
	d.sweepGuards(all && now.Sub(d.converged) > 5*time.Second)
	if d.routesSwept {
		return
	}
	if !(all && now.Sub(d.converged) > 5*time.Second) && now.Sub(d.started) < d.opt.ConvergeTimeout {
		return
	}
	n, err := d.rib.SweepStale()
	if err != nil {
		d.log.Warn("removing routes left by the previous cgw-control (will retry)", "err", err)
		return
	}
	d.routesSwept = true
	d.log.Info("routes left by the previous cgw-control re-selected or removed", "count", n)
}
