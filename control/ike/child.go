package ike

import (
	"bytes"
	"fmt"
	"log/slog"
	"time"
)

// Lifecycle is a tunnel's make-before-break life cycle of Child SA pairs
// (DESIGN §2), the one both engines follow and the order the dataplane
// relies on:
//
//	Preinstall  the new inbound SA reaches the dataplane before the IKE
//	            message that lets the peer use it goes out
//	Install     ChildSAInstalled: the pair exists; outbound stays ready
//	Switch      OutboundSwitch: the tunnel's traffic uses the pair
//	            (TunnelUp with the first)
//	Retire      ChildSARetired, a grace period after the switch away, so
//	            packets in flight still decrypt; the inbound SPI is freed
//	            and the keys are zeroed
//
// Which pair comes next and when (rekeys, collisions, deletes) is the
// engine's protocol; Lifecycle only keeps these steps in order and the
// keys' ownership clear: the Install event and InstallInbound carry a
// copy of the keys the receiver owns; the engine's copy is wiped at
// Retire; the other events carry no keys.
type Lifecycle struct {
	// Emit sends an event (the engine adds the tunnel's name and time).
	Emit func(Event)
	// InstallInbound is the engine's Options.InstallInbound for this
	// tunnel; nil skips Preinstall.
	InstallInbound func(ChildSA) error
	// Release frees the tunnel's inbound SPIs (SPIs.Release).
	Release func(spis ...uint32)
	// Grace is how long a pair outlives the switch away from it.
	Grace time.Duration
	Log   *slog.Logger

	up bool
}

// Preinstall hands c's inbound SA to the dataplane and waits for it; a
// failure is logged and changes nothing (Install follows as always).
func (l *Lifecycle) Preinstall(c *ChildSA) {
	if c == nil || l.InstallInbound == nil {
		return
	}
	if err := l.InstallInbound(c.withKeyCopy()); err != nil && l.Log != nil {
		l.Log.Warn("inbound SA not confirmed in the dataplane before the peer may use it", "spi_in", fmt.Sprintf("%08x", c.InSPI), "err", err)
	}
}

// Install announces c.
func (l *Lifecycle) Install(c *ChildSA) {
	info := c.withKeyCopy()
	l.Emit(Event{Type: ChildSAInstalled, Child: &info})
}

// Switch makes c the outbound pair. The first switch of a tunnel that is
// down also brings it up (TunnelUp with ike, the IKE SA it runs under;
// nil when there is none, and then the tunnel stays down); it reports
// whether it did.
func (l *Lifecycle) Switch(c *ChildSA, ike *IKESAInfo) (wentUp bool) {
	info := c.withoutKeys()
	l.Emit(Event{Type: OutboundSwitch, Child: &info})
	if l.up || ike == nil {
		return false
	}
	l.up = true
	l.Emit(Event{Type: TunnelUp, IKE: ike})
	return true
}

// RetireAt is when a pair switched away from (or deleted) at now goes.
func (l *Lifecycle) RetireAt(now time.Time) time.Time { return now.Add(l.Grace) }

// Retire removes c: the dataplane drops both SAs, the inbound SPI is freed
// and the keys are zeroed.
func (l *Lifecycle) Retire(c *ChildSA) {
	info := c.withoutKeys()
	l.Emit(Event{Type: ChildSARetired, Child: &info})
	if l.Release != nil {
		l.Release(c.InSPI)
	}
	c.Wipe()
}

// Up reports whether the tunnel is up (a pair carries its traffic).
func (l *Lifecycle) Up() bool { return l.up }

// Down reports the tunnel down once (TunnelDown), if it was up.
func (l *Lifecycle) Down(reason string, err error) bool {
	if !l.up {
		return false
	}
	l.up = false
	l.Emit(Event{Type: TunnelDown, Reason: reason, Err: err})
	return true
}

// Wipe zeroes the pair's KEYMAT (Go lets us clear our own slices; the
// ciphers the dataplane built are its own).
func (c *ChildSA) Wipe() {
	clear(c.InKeymat)
	clear(c.OutKeymat)
}

func (c *ChildSA) withKeyCopy() ChildSA {
	x := *c
	x.InKeymat, x.OutKeymat = bytes.Clone(c.InKeymat), bytes.Clone(c.OutKeymat)
	x.LocalTS, x.RemoteTS = cloneTS(c.LocalTS), cloneTS(c.RemoteTS)
	return x
}

func (c *ChildSA) withoutKeys() ChildSA {
	x := *c
	x.InKeymat, x.OutKeymat = nil, nil
	x.LocalTS, x.RemoteTS = cloneTS(c.LocalTS), cloneTS(c.RemoteTS)
	return x
}

func cloneTS(ts []TrafficSelector) []TrafficSelector {
	if ts == nil {
		return nil
	}
	return append([]TrafficSelector(nil), ts...)
}

// Zero clears secrets held in byte slices (SK_d, SK_a, SK_e, SKEYSEED,
// DH shared secrets) once their SA is gone; nil slices are skipped.
func Zero(secrets ...[]byte) {
	for _, b := range secrets {
		clear(b)
	}
}
