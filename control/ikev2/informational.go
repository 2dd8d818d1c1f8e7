package ikev2

import (
	"fmt"
	"slices"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

func (t *Tunnel) respInformational(sa *ikeSA, m *message.Message) ([]message.Payload, func()) {
	var resp []message.Payload
	var after []func()
	if n := m.Notify(message.AUTHENTICATION_FAILED); n != nil {
		// The initiator did not accept our AUTH (§2.21.2).
		return nil, func() {
			t.failed(message.AUTHENTICATION_FAILED, authFailedErr(t.name))
			if sa == t.ike {
				t.ike = nil
				t.down("authentication failed", authFailedErr(t.name), false)
			}
			t.removeSA(sa, "authentication failed", nil)
		}
	}
	for _, p := range m.Payloads {
		d, ok := p.(*message.Delete)
		if !ok {
			continue
		}
		switch d.Protocol {
		case message.ProtoIKE:
			return nil, func() {
				t.log.Info("peer deleted the IKE SA", "spi_i", sa.spiI)
				if t.takeTheirRekey(sa) {
					t.removeSA(sa, "rekeyed by peer", nil)
					return
				}
				if sa == t.ike {
					t.ike = nil
					t.removeSA(sa, "deleted by peer", nil)
					t.down("deleted by peer", nil, false)
					return
				}
				t.removeSA(sa, "deleted by peer", nil)
			}
		case message.ProtoESP:
			var ours []uint32
			var gone []*child
			for _, spi := range d.SPIs {
				c := t.childByOut(spi)
				if c == nil {
					continue
				}
				gone = append(gone, c)
				if !c.deleting || !c.tellPeerAt.IsZero() {
					// Ours too, unless our own Delete already went
					// (crossed Deletes, §1.4.1).
					ours = append(ours, c.InSPI)
				}
				after = append(after, func() { t.peerDeletedChild(c) })
			}
			if len(ours) > 0 {
				resp = append(resp, &message.Delete{Protocol: message.ProtoESP, SPIs: ours})
			}
			t.switchBeforeAnswer(gone)
		}
	}
	return resp, func() {
		for _, f := range after {
			f()
		}
	}
}

// switchBeforeAnswer moves outbound off the pair the peer is deleting
// (after its rekey: to the newest pair left) before our answer goes out,
// and waits until the dataplane sends on the new pair: the answer carries
// our half of the Delete (§1.4.1), on which the peer may drop the old
// pair's inbound SA, so nothing may leave on the old pair after it.
func (t *Tunnel) switchBeforeAnswer(gone []*child) {
	if !slices.Contains(gone, t.out) {
		return
	}
	for i := len(t.children) - 1; i >= 0; i-- {
		s := t.children[i]
		if s.deleting || s.retired || slices.Contains(gone, s) {
			continue
		}
		t.switchOut(s)
		t.syncDataplane() // the answer goes anyway: the peer is waiting
		return
	}
}

func (t *Tunnel) peerDeletedChild(c *child) {
	t.peerGone(c)
	if t.out == c {
		if s := t.successor(); s != nil {
			t.switchOut(s)
			return
		}
		// The peer deleted our only Child SA: make a new one.
		t.log.Info("peer deleted the last Child SA; the tunnel is down until a new one is made")
		t.out = nil
		t.lc.Down("child SA deleted by peer", nil)
		if t.cfg.StartupAction != config.StartupAdd && t.ike != nil {
			sa := t.ike
			t.ike = nil
			t.deleteIKE(sa)
			t.scheduleReinit()
		}
	}
}

// sendLiveness sends the first liveness check one DPD interval after the
// peer was last heard; the peer is dead interval × retries after that
// (AWS's "DPD timeout", 10 s × 3 = 30 s; RFC 7296 §2.4 leaves the timing
// to us), so retries − 1 checks one interval apart, at least one.
func (t *Tunnel) sendLiveness(sa *ikeSA) {
	t.request(sa, &pending{exch: message.INFORMATIONAL, dpd: true,
		wait: t.cfg.DPD.Interval.D(), maxTries: max(t.cfg.DPD.Retries-2, 0),
		onFail: func(err error) {
			if err == errSAGone || sa != t.ike {
				return
			}
			t.peerDead(fmt.Errorf("tunnel %s: dead peer: %s answered no liveness check for %s (DPD %s × %d)",
				t.name, sa.peer, t.cfg.DPD.Interval.D()*time.Duration(max(t.cfg.DPD.Retries, 1)), t.cfg.DPD.Interval.D(), t.cfg.DPD.Retries))
		}})
}
