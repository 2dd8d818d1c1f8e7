package ikev2

import (
	"slices"
	"time"

	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

// newChildSPI allocates an inbound ESP SPI for a Child SA of ours; it is
// released when the pair is retired or its negotiation fails.
func (t *Tunnel) newChildSPI() uint32 { return t.m.spis.Alloc(t) }

// releaseSPI frees inbound SPIs (and outbound ones looked up by
// ChildNeedsRekey) that t holds.
func (t *Tunnel) releaseSPI(spis ...uint32) {
	t.m.spis.Release(t, spis...)
	t.m.mu.Lock()
	for _, s := range spis {
		if t.m.outSPI[s] == t {
			delete(t.m.outSPI, s)
		}
	}
	t.m.mu.Unlock()
}

// rekeyTime is when an SA created at created with lifetime life is
// rekeyed: the one policy both engines follow (ike.RekeyAfter).
func (t *Tunnel) rekeyTime(created time.Time, life time.Duration) time.Time {
	return created.Add(ike.RekeyAfter(life, t.cfg.RekeyMargin.D(), t.cfg.RekeyFuzz))
}

func (t *Tunnel) newChild(sa *ikeSA) *child {
	now := t.now()
	c := &child{created: now, owner: sa}
	c.Local, c.Peer = t.cfg.LocalOutside, sa.peer.Addr()
	c.Encap = sa.nat
	if sa.nat {
		c.LocalPort, c.PeerPort = t.m.sock.port4500, sa.peer.Port()
	}
	c.ReplayWindow = t.cfg.ReplayWindow
	life := t.cfg.Phase2.Lifetime.D()
	c.Lifetime = life
	if life > 0 {
		c.rekeyAt = t.rekeyTime(now, life)
		c.expireAt = now.Add(life)
	}
	return c
}

// preinstall hands c's inbound SA to Options.InstallInbound before the
// peer may send on it (make-before-break, DESIGN §2).
func (t *Tunnel) preinstall(c *child) {
	if c != nil {
		t.lc.Preinstall(&c.ChildSA)
	}
}

func (t *Tunnel) install(c *child) {
	t.children = append(t.children, c)
	t.m.mu.Lock()
	t.m.outSPI[c.OutSPI] = t
	t.m.mu.Unlock()
	t.lc.Install(&c.ChildSA)
}

func (t *Tunnel) switchOut(c *child) {
	if c == nil || c == t.out || c.retired {
		return
	}
	t.out = c
	var info *IKESAInfo
	if t.ike != nil {
		info = t.ike.info()
	}
	if t.lc.Switch(&c.ChildSA, info) {
		t.reinit.Up()
	}
}

func (t *Tunnel) retire(c *child) {
	if c.retired {
		return
	}
	c.retired = true
	i := slices.Index(t.children, c)
	if i >= 0 {
		t.children = slices.Delete(t.children, i, i+1)
	}
	t.releaseSPI(c.OutSPI)
	t.lc.Retire(&c.ChildSA) // frees the inbound SPI, zeroes the keys
	if t.out == c {
		t.out = nil
		if s := t.successor(); s != nil {
			t.switchOut(s)
		}
	}
}

// successor is the newest Child SA that is not being deleted.
func (t *Tunnel) successor() *child {
	for i := len(t.children) - 1; i >= 0; i-- {
		if c := t.children[i]; !c.deleting && !c.retired {
			return c
		}
	}
	return nil
}

func (t *Tunnel) childByOut(spi uint32) *child {
	for _, c := range t.children {
		if c.OutSPI == spi {
			return c
		}
	}
	return nil
}

// deleteChild tells the peer to delete c (§1.4.1) and retires it a grace
// period after the answer, so packets already in flight still decrypt.
func (t *Tunnel) deleteChild(c *child) {
	if c.deleting {
		return
	}
	c.deleting = true
	if t.out == c {
		if s := t.successor(); s != nil {
			t.switchOut(s)
			t.syncDataplane() // best effort: c must go now (its hard lifetime)
		}
	}
	t.tellPeer(c)
}

// replaced marks old, which our rekey has just switched away from, on its
// way out and tells the peer to delete it once the dataplane sends on
// the new pair: at once if Options.SyncDataplane confirms that, else a
// grace period later (in tick). OutboundSwitch reaches the dataplane
// asynchronously (the daemon's map update, then the dataplane's next
// table poll), so a Delete sent at the switch let a peer drop the old SA
// while our last packets on it were still being sent. The peer, as the
// rekey's responder, keeps sending on old until that Delete (§2.8), so
// our inbound half stays until a grace period after its answer.
func (t *Tunnel) replaced(old *child) {
	if old.deleting {
		return
	}
	old.deleting = true
	if t.syncDataplane() {
		t.tellPeer(old)
		return
	}
	old.tellPeerAt = t.lc.RetireAt(t.now())
}

// syncDataplane reports whether the dataplane confirms it sends on the
// pair of our last OutboundSwitch (Options.SyncDataplane).
func (t *Tunnel) syncDataplane() bool {
	f := t.m.opt.SyncDataplane
	if f == nil {
		return false
	}
	if err := f(t.name); err != nil {
		t.log.Warn("the dataplane did not confirm the outbound switch to the new Child SA", "err", err)
		return false
	}
	return true
}

// peerGone retires c, which the peer no longer has (it deleted c or the
// IKE SA c lived under), a grace period from now unless already due, and
// cancels a Delete still to be sent for it.
func (t *Tunnel) peerGone(c *child) {
	c.deleting = true
	c.tellPeerAt = time.Time{}
	if c.retireAt.IsZero() {
		c.retireAt = t.lc.RetireAt(t.now())
	}
}

// tellPeer sends the peer the Delete for c and retires c a grace period
// after its answer (or from now if there is no IKE SA to send it on).
func (t *Tunnel) tellPeer(c *child) {
	c.tellPeerAt = time.Time{}
	graceful := func() {
		if c.retireAt.IsZero() {
			c.retireAt = t.lc.RetireAt(t.now())
		}
	}
	if t.ike == nil {
		graceful()
		return
	}
	t.request(t.ike, &pending{exch: message.INFORMATIONAL,
		payloads: []message.Payload{&message.Delete{Protocol: message.ProtoESP, SPIs: []uint32{c.InSPI}}},
		onResp:   func(*message.Message, []byte) { graceful() },
		onFail:   func(error) { graceful() }})
}
