package ikev2

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/cgw-project/cgw/control/ikev2/message"
)

func (t *Tunnel) newChildSPI() uint32 {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	for {
		var b [4]byte
		rand.Read(b[:])
		spi := binary.BigEndian.Uint32(b[:])
		if spi < 256 { // 1–255 are reserved (RFC 4303 §2.1)
			continue
		}
		if _, used := t.m.childSPI[spi]; !used {
			t.m.childSPI[spi] = t
			return spi
		}
	}
}

func (t *Tunnel) releaseSPI(spis ...uint32) {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	for _, s := range spis {
		if t.m.childSPI[s] == t {
			delete(t.m.childSPI, s)
		}
	}
}

// rekeyTime is lifetime − margin × (1 + fuzz% × random), as strongSwan
// spreads rekeys so both ends rarely start at once.
func (t *Tunnel) rekeyTime(created time.Time, life time.Duration) time.Time {
	margin := t.cfg.RekeyMargin.D()
	if margin >= life {
		margin = life / 2
	}
	fuzz := time.Duration(float64(margin) * float64(t.cfg.RekeyFuzz) / 100 * mrand.Float64())
	at := life - margin - fuzz
	if at < life/10 {
		at = life / 10
	}
	return created.Add(at)
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
	if c == nil || t.m.opt.InstallInbound == nil {
		return
	}
	if err := t.m.opt.InstallInbound(t.name, c.ChildSA); err != nil {
		t.log.Warn("inbound SA not confirmed in the dataplane before the peer may use it", "spi_in", fmt.Sprintf("%08x", c.InSPI), "err", err)
	}
}

func (t *Tunnel) install(c *child) {
	t.children = append(t.children, c)
	t.m.mu.Lock()
	t.m.childSPI[c.InSPI] = t
	t.m.childSPI[c.OutSPI] = t
	t.m.mu.Unlock()
	info := c.ChildSA
	t.emit(Event{Type: ChildSAInstalled, Child: &info})
}

func (t *Tunnel) switchOut(c *child) {
	if c == nil || c == t.out || c.retired {
		return
	}
	t.out = c
	info := c.ChildSA
	t.emit(Event{Type: OutboundSwitch, Child: &info})
	if !t.up && t.ike != nil {
		t.up = true
		t.backoff = 0
		t.emit(Event{Type: TunnelUp, IKE: t.ike.info()})
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
	t.releaseSPI(c.InSPI, c.OutSPI)
	info := c.ChildSA
	t.emit(Event{Type: ChildSARetired, Child: &info})
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
		}
	}
	graceful := func() {
		if c.retireAt.IsZero() {
			c.retireAt = t.now().Add(t.m.tim.Grace)
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
