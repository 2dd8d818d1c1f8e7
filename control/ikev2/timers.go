package ikev2

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cgw-project/cgw/config"
)

// nextWake is the earliest deadline of any timer the tunnel keeps.
func (t *Tunnel) nextWake() time.Time {
	var next time.Time
	at := func(x time.Time) {
		if !x.IsZero() && (next.IsZero() || x.Before(next)) {
			next = x
		}
	}
	for _, sa := range t.sas {
		if sa.pend != nil {
			at(sa.pend.next)
		}
		if sa.state == saEstablished && !sa.deleting {
			at(sa.rekeyAt)
			at(sa.expireAt)
		}
		if sa.state == saResponderInit {
			at(sa.created.Add(t.m.tim.HalfOpenTimeout))
		}
	}
	for _, c := range t.children {
		at(c.retireAt)
		at(c.tellPeerAt)
		if !c.deleting {
			at(c.rekeyAt)
			at(c.expireAt)
		}
	}
	at(t.reinit.At)
	at(t.dpdDue())
	if t.ike != nil && t.ike.natSelf {
		at(t.nextKA)
	}
	return next
}

func (t *Tunnel) dpdEnabled() bool {
	return t.cfg.DPD.Interval > 0 && t.cfg.DPD.Action != config.DPDNone
}

func (t *Tunnel) dpdDue() time.Time {
	sa := t.ike
	if sa == nil || !t.dpdEnabled() || sa.pend != nil || len(sa.queue) > 0 {
		return time.Time{}
	}
	last := sa.lastHeard
	if t.lastInbound.After(last) {
		last = t.lastInbound
	}
	return last.Add(t.cfg.DPD.Interval.D())
}

func (t *Tunnel) tick() {
	now := t.now()
	for _, sa := range slices.Clone(t.sas) {
		if p := sa.pend; p != nil && !now.Before(p.next) {
			t.retransmit(sa, p)
		}
	}
	for _, sa := range slices.Clone(t.sas) {
		if !slices.Contains(t.sas, sa) {
			continue
		}
		if sa.state == saResponderInit && now.Sub(sa.created) >= t.m.tim.HalfOpenTimeout {
			if line, ok := t.logUnauth(slog.LevelInfo); ok {
				line.Write("half-open IKE SA timed out", "spi", sa.spiI)
			}
			t.removeSA(sa, "half-open timeout", nil)
			continue
		}
		if sa.state != saEstablished || sa.deleting {
			continue
		}
		if !sa.expireAt.IsZero() && !now.Before(sa.expireAt) {
			t.log.Warn("IKE SA reached its hard lifetime without a rekey; deleting it", "spi", sa.spiI)
			t.deleteIKE(sa)
			if sa == t.ike {
				t.down("IKE SA lifetime expired", nil, true)
			}
			continue
		}
		if !sa.rekeyAt.IsZero() && !now.Before(sa.rekeyAt) && sa == t.ike {
			sa.rekeyAt = time.Time{}
			t.rekeyIKE(sa)
		}
	}
	for _, c := range slices.Clone(t.children) {
		switch {
		case !c.retireAt.IsZero() && !now.Before(c.retireAt):
			t.retire(c)
		case !c.tellPeerAt.IsZero() && !now.Before(c.tellPeerAt):
			t.tellPeer(c)
		case c.deleting:
		case !c.expireAt.IsZero() && !now.Before(c.expireAt):
			t.log.Warn("Child SA reached its hard lifetime; deleting it", "spi_in", fmt.Sprintf("%08x", c.InSPI))
			t.deleteChild(c)
		case !c.rekeyAt.IsZero() && !now.Before(c.rekeyAt):
			c.rekeyAt = time.Time{}
			t.rekeyChild(c)
		}
	}
	if due := t.dpdDue(); !due.IsZero() && !now.Before(due) {
		t.sendLiveness(t.ike)
	}
	if t.ike != nil && t.ike.natSelf && !now.Before(t.nextKA) {
		t.m.sock.sendKeepalive(t.ike.peer)
		t.nextKA = now.Add(t.m.tim.Keepalive)
	}
	if t.reinit.Due(now) {
		if t.ike == nil && !t.connecting() && !t.stopping {
			t.initiate()
		}
	}
}

func (t *Tunnel) scheduleReinit() {
	t.reinit.Schedule(t.now(), t.m.tim)
}
