package ikev1

import (
	"fmt"
	"time"

	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev1/message"
)

// The SA pairs' life cycle: install, switch outbound, retire
// (make-before-break, DESIGN.md §2).

func (t *Tunnel) install(cs ChildSA) *child {
	now := t.now()
	c := &child{sa: cs, created: now, expireAt: now.Add(cs.Lifetime)}
	c.rekeyAt = now.Add(t.rekeyAfter(cs.Lifetime))
	if t.p1 != nil && !t.p1.initiator {
		// IKEv1 has no rekey collision rule: the ISAKMP responder waits
		// half its margin longer, so the initiator's Quick Mode usually
		// comes first and replaces the pair for both.
		c.rekeyAt = c.rekeyAt.Add(c.expireAt.Sub(c.rekeyAt) / 2)
	}
	t.lc.Preinstall(&c.sa)
	t.children = append(t.children, c)
	t.lc.Install(&c.sa)
	t.m.log.Info("SA pair installed", "tunnel", t.name, "in", fmt.Sprintf("%08x", cs.InSPI), "out", fmt.Sprintf("%08x", cs.OutSPI), "suite", cs.Suite.String())
	return c
}

// rekeyAfter is ike.RekeyAfter with the tunnel's margin and fuzz.
func (t *Tunnel) rekeyAfter(life time.Duration) time.Duration {
	return ike.RekeyAfter(life, time.Duration(t.cfg.RekeyMargin), t.cfg.RekeyFuzz)
}

// lifecycle is a fresh SA pair life cycle for t (ike.Lifecycle, as
// ikev2's): events, InstallInbound, SPI release and key wiping.
func (t *Tunnel) lifecycle() ike.Lifecycle {
	l := ike.Lifecycle{Emit: t.emit, Release: t.releaseSPI, Grace: t.m.tim.Grace, Log: t.m.log.With("tunnel", t.name)}
	if f := t.m.opt.InstallInbound; f != nil {
		l.InstallInbound = func(c ChildSA) error { return f(t.name, c) }
	}
	return l
}

// switchOut makes c the outbound pair; the first one brings the tunnel up
// (TunnelUp with the ISAKMP SA it was negotiated under).
func (t *Tunnel) switchOut(c *child) {
	t.out = c
	info := &IKESAInfo{}
	if t.p1 != nil {
		copy(info.SPIi[:], t.p1.ckyI[:])
		copy(info.SPIr[:], t.p1.ckyR[:])
		info.Proposal = t.p1.choice.String()
	}
	if t.lc.Switch(&c.sa, info) {
		t.reinit.Up()
	}
}

// retire removes c after the grace period (packets in flight still
// decrypt); retireAt is checked by tick.
func (t *Tunnel) retire(c *child) {
	if c.retireAt.IsZero() {
		c.retireAt = t.lc.RetireAt(t.now())
	}
	if t.out == c {
		t.out = nil
		for _, o := range t.children {
			if o != c && o.retireAt.IsZero() {
				t.switchOut(o)
			}
		}
	}
}

// removeReplaced removes c at the end of its grace period and, if we
// replaced it, only now sends the peer its Delete: OutboundSwitch reaches
// the dataplane asynchronously (the daemon's map update, then the
// dataplane's next table poll), so a Delete sent at the switch let the
// peer drop the old inbound SA while our last packets on it were still
// being sent (the lab lost a ping across a Quick Mode rekey). Until then
// both pairs are valid at both ends.
func (t *Tunnel) removeReplaced(c *child) {
	if c.tellPeer && !c.deleted && t.p1 != nil && t.p1.state == mmDone {
		t.sendInfo(t.p1, []message.Payload{{Type: message.PayloadDelete, Body: message.Delete{Protocol: message.ProtoESP, SPIs: [][]byte{msgIDBytes(c.sa.InSPI)}}.Encode()}})
	}
	t.removeChild(c)
}

func (t *Tunnel) removeChild(c *child) {
	for i, o := range t.children {
		if o == c {
			t.children = append(t.children[:i], t.children[i+1:]...)
			break
		}
	}
	t.lc.Retire(&c.sa) // frees the inbound SPI, zeroes the KEYMAT
}

func (t *Tunnel) childByIn(spi uint32) *child {
	for _, c := range t.children {
		if c.sa.InSPI == spi {
			return c
		}
	}
	return nil
}

func (t *Tunnel) rekeyChild(c *child) {
	if c == nil || c.rekeying || t.p1 == nil || t.p1.state != mmDone {
		return
	}
	t.startQuick(t.p1, c)
}

func (t *Tunnel) rekeyChildSPI(spi uint32) {
	for _, c := range t.children {
		if c.sa.InSPI == spi || c.sa.OutSPI == spi {
			t.rekeyChild(c)
		}
	}
}

func (t *Tunnel) sendDeletes() {
	sa := t.p1
	if sa == nil || sa.state != mmDone {
		return
	}
	for _, c := range t.children {
		t.sendInfo(sa, []message.Payload{{Type: message.PayloadDelete, Body: message.Delete{Protocol: message.ProtoESP, SPIs: [][]byte{msgIDBytes(c.sa.InSPI)}}.Encode()}})
	}
	t.sendInfo(sa, []message.Payload{{Type: message.PayloadDelete, Body: message.Delete{Protocol: message.ProtoISAKMP, SPIs: [][]byte{append(sa.ckyI[:], sa.ckyR[:]...)}}.Encode()}})
}

// down drops every SA; with restart the tunnel initiates again after a
// back-off (startup action "start").
func (t *Tunnel) down(reason string, err error, restart bool) {
	for len(t.children) > 0 {
		t.removeChild(t.children[0])
	}
	t.out = nil
	if t.p1 != nil {
		for _, q := range t.p1.qms {
			if !q.done {
				t.releaseSPI(q.inSPI)
			}
		}
		t.dropP1(t.p1)
	}
	for _, o := range t.old {
		t.unregisterCky(o)
		o.wipe()
	}
	t.old = nil
	t.lc.Down(reason, err)
	if restart {
		t.scheduleReinit()
	}
}
