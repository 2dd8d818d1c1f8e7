package ikev1

import (
	"net/netip"
	"time"
)

// Requests we send until answered (RFC 2408 §5: the initiator of an
// exchange retransmits; responders answer retransmissions from their
// last reply).

// dest is where messages of exchange sa go: an authenticated SA's to the
// tunnel's peer, an exchange in progress to its own address.
func (t *Tunnel) dest(sa *p1SA) (netip.AddrPort, bool) {
	if sa == nil || sa.state == mmDone {
		return t.peer, t.nat
	}
	return sa.peer, sa.nat
}

func (t *Tunnel) sendReq(r *request) {
	to, nat := t.dest(r.sa)
	t.m.send(r.pkt, to, nat)
	if r.wait == 0 {
		r.wait = t.m.tim.RetransmitTimeout
	} else {
		r.wait = time.Duration(float64(r.wait) * t.m.tim.RetransmitFactor)
	}
	r.next = t.now().Add(r.wait)
}

func (t *Tunnel) newReq(pkt []byte, sa *p1SA) *request {
	r := &request{pkt: pkt, sa: sa}
	t.sendReq(r)
	return r
}

// retry retransmits r if due; false once it has run out of tries.
func (t *Tunnel) retry(r *request) bool {
	if r == nil || t.now().Before(r.next) {
		return true
	}
	if r.tries >= t.m.tim.RetransmitTries {
		return false
	}
	r.tries++
	t.emit(Event{Type: Retransmit, Count: r.tries})
	t.sendReq(r)
	return true
}
