package ikev1

import (
	"errors"

	"github.com/cgw-project/cgw/control/ikev1/message"
)

// The tunnel's timers: re-initiation, retransmission, expiry, rekeys,
// NAT keepalives.

func (t *Tunnel) tick() {
	now := t.now()
	if t.reinit.Due(now) {
		if t.p1 == nil {
			t.initiate()
		}
	}
	for _, o := range append([]*p1SA(nil), t.old...) {
		if !o.deleteAt.IsZero() && !now.Before(o.deleteAt) {
			t.sendInfo(o, []message.Payload{{Type: message.PayloadDelete, Body: message.Delete{Protocol: message.ProtoISAKMP, SPIs: [][]byte{append(o.ckyI[:], o.ckyR[:]...)}}.Encode()}})
			t.dropP1(o)
		}
	}
	for _, sa := range append([]*p1SA(nil), t.cands...) {
		if now.Sub(sa.created) > t.m.tim.HalfOpenTimeout {
			t.dropCand(sa) // abandoned, or never the peer's
		}
	}
	for _, sa := range append([]*p1SA{t.p1}, t.old...) {
		if sa == nil {
			continue
		}
		if !sa.initiator && sa.state != mmDone && now.Sub(sa.created) > t.m.tim.HalfOpenTimeout {
			// A responder's Main Mode the initiator abandoned.
			t.dropP1(sa)
			continue
		}
		if !t.retry(sa.req) {
			sa.req = nil
			t.failed(0, errors.New("main mode: the peer did not answer (check the peer address, UDP 500/4500 reachability)"))
			t.dropP1(sa)
			if sa.initiator {
				t.scheduleReinit()
			}
			continue
		}
		for id, q := range sa.qms {
			if q.done {
				if len(sa.qms) > 8 {
					delete(sa.qms, id) // keep a few to answer retransmissions
				}
				continue
			}
			if !t.retry(q.req) {
				q.req = nil
				t.dropQuick(sa, q)
				t.failed(0, errors.New("quick mode: the peer did not answer"))
			}
		}
	}
	for _, c := range append([]*child(nil), t.children...) {
		switch {
		case !c.switchAt.IsZero() && !now.Before(c.switchAt):
			t.finishRekey(c)
		case !c.retireAt.IsZero() && !now.Before(c.retireAt):
			t.removeReplaced(c)
		case c.retireAt.IsZero() && !now.Before(c.expireAt):
			t.retire(c)
		case c.retireAt.IsZero() && !c.rekeying && t.out == c && !now.Before(c.rekeyAt):
			t.rekeyChild(c)
		}
	}
	if t.p1 != nil && t.p1.state == mmDone && len(t.old) == 0 {
		// The initiator replaces the ISAKMP SA before it expires; a
		// responder whose peer did not does so at expiry.
		life := t.p1.choice.lifetime
		at := t.p1.created.Add(life)
		if t.p1.initiator {
			at = t.p1.created.Add(t.rekeyAfter(life))
		}
		if life > 0 && !now.Before(at) {
			t.rekeyIKE()
		}
	}
	if t.lc.Up() && t.out == nil {
		t.down("SA pair expired without a successor", nil, true)
	}
	t.dpd(now)
	if t.nat && t.p1 != nil && now.Sub(t.lastKeep) >= t.m.tim.Keepalive {
		t.lastKeep = now
		t.m.udp.Keepalive(t.peer)
	}
}
