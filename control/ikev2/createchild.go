package ikev2

import (
	"bytes"
	"fmt"
	"log/slog"

	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
	"github.com/cgw-project/cgw/crypto/dh"
)

func (t *Tunnel) respCreateChild(sa *ikeSA, m *message.Message) ([]message.Payload, func()) {
	sp, no := message.Find[*message.SA](m), message.Find[*message.Nonce](m)
	if sp == nil || no == nil || len(sp.Proposals) == 0 {
		return []message.Payload{&message.Notify{NotifyType: message.INVALID_SYNTAX}}, nil
	}
	if why := t.saLimit(sp.Proposals[0].Protocol == message.ProtoIKE); why != "" {
		if line, ok := t.logUnauth(slog.LevelWarn); ok {
			line.Write("refusing the peer's CREATE_CHILD_SA with NO_ADDITIONAL_SAS: " + why)
		}
		return []message.Payload{&message.Notify{NotifyType: message.NO_ADDITIONAL_SAS}}, nil
	}
	if sp.Proposals[0].Protocol == message.ProtoIKE {
		return t.respRekeyIKE(sa, m, no.Data)
	}
	var old *child
	if n := m.Notify(message.REKEY_SA); n != nil {
		old = t.childByOut(spiOf(n.SPI))
		if old == nil {
			return []message.Payload{&message.Notify{NotifyType: message.CHILD_SA_NOT_FOUND, Protocol: message.ProtoESP, SPI: n.SPI}}, nil
		}
		if old.deleting || old.ours != nil {
			// We already replaced it; the peer will see our Delete (§2.25).
			return []message.Payload{&message.Notify{NotifyType: message.TEMPORARY_FAILURE}}, nil
		}
	}
	nr := randBytes(32)
	c, ps, nerr := t.childAsResponder(sa, m, t.espPFS, nil, no.Data, nr, false)
	if nerr != nil {
		return ps, func() {
			if nerr.err != nil {
				t.failed(nerr.n, nerr.err)
			}
		}
	}
	t.preinstall(c) // before the response: the initiator switches on it
	return ps, func() {
		t.install(c)
		if old == nil {
			if t.out == nil {
				t.switchOut(c)
			}
			return
		}
		old.theirs = &rekeyRec{ni: no.Data, nr: nr, child: c}
		// Outbound moves when the initiator deletes the old SA (it has
		// then installed the new inbound one), or at collision resolution.
	}
}

// maxLiveSAs bounds the Child SA pairs, and the IKE SAs, of a tunnel
// that are not on their way out: the one in use, its rekey, a colliding
// rekey of the peer's and one spare. A peer looping CREATE_CHILD_SA
// (new SAs, or rekeys it never follows with a Delete) gets
// NO_ADDITIONAL_SAS (§3.10.1) instead of state without end.
const maxLiveSAs = 4

// saLimit says why the peer may not create another IKE SA (ike) or
// Child SA pair now ("" if it may).
func (t *Tunnel) saLimit(ike bool) string {
	n := 0
	if ike {
		for _, x := range t.sas {
			if x.state == saEstablished && !x.deleting {
				n++
			}
		}
		if n >= maxLiveSAs {
			return fmt.Sprintf("%d IKE SAs of tunnel %s are in use (at most %d)", n, t.name, maxLiveSAs)
		}
		return ""
	}
	for _, c := range t.children {
		if !c.deleting {
			n++
		}
	}
	if n >= maxLiveSAs {
		return fmt.Sprintf("%d Child SA pairs of tunnel %s are in use (at most %d)", n, t.name, maxLiveSAs)
	}
	return ""
}

// childRekeyBusy says why c cannot be rekeyed now ("" if it can): one
// rekey of an SA at a time; a rekeyed or deleted SA is on its way out.
func (t *Tunnel) childRekeyBusy(c *child) string {
	switch {
	case c.rekeying:
		return fmt.Sprintf("child SA 0x%08x is already being rekeyed (started %s ago)", c.InSPI, ike.Ago(t.now(), c.rekeyStarted))
	case c.deleting:
		return fmt.Sprintf("child SA 0x%08x is being deleted", c.InSPI)
	case c.ours != nil:
		return fmt.Sprintf("child SA 0x%08x was already rekeyed (new SA 0x%08x) and is being replaced", c.InSPI, c.ours.child.InSPI)
	}
	return ""
}

func (t *Tunnel) rekeyChildNow(spi uint32) {
	for _, c := range t.children {
		if (c.InSPI == spi || c.OutSPI == spi) && !c.deleting {
			t.rekeyChild(c)
		}
	}
}

func (t *Tunnel) rekeyChild(old *child) {
	sa := t.ike
	if sa == nil || sa.state != saEstablished || t.childRekeyBusy(old) != "" {
		return
	}
	old.rekeying, old.rekeyStarted = true, t.now()
	inSPI := t.newChildSPI()
	ni := randBytes(32)
	g := t.pfsGroup
	props := withSPI(t.espPFS, spiBytes(inSPI))
	var priv dh.Private
	var pub []byte
	if g != 0 {
		var err error
		if priv, pub, err = keyExchange(g); err != nil {
			t.failed(0, fmt.Errorf("tunnel %s: PFS group %d: %v", t.name, g, err))
			old.rekeying = false
			return
		}
		props = preferGroup(props, g)
	}
	ps := []message.Payload{&message.Notify{Protocol: message.ProtoESP, SPI: spiBytes(old.InSPI), NotifyType: message.REKEY_SA},
		&message.SA{Proposals: props}, &message.Nonce{Data: ni}}
	if g != 0 {
		ps = append(ps, &message.KE{Group: message.DHGroup(g), Data: pub})
	}
	ps = append(ps, &message.TrafficSelectors{Selectors: fromIKE(old.LocalTS)}, &message.TrafficSelectors{Responder: true, Selectors: fromIKE(old.RemoteTS)})
	retryLater := func() {
		old.rekeying = false
		if !old.deleting && old.theirs == nil {
			old.rekeyAt = t.now().Add(t.m.tim.ReinitMin)
		}
	}
	t.request(sa, &pending{exch: message.CREATE_CHILD_SA, payloads: ps,
		onResp: func(m *message.Message, _ []byte) {
			if want, ok := invalidKE(m); ok {
				t.releaseSPI(inSPI)
				old.rekeying = false
				if want != g && allowed(t.cfg.Phase2.DHGroups, want) && old.keTry < initRetries {
					old.keTry++ // a peer switching groups back and forth ends here
					t.pfsGroup = want
					t.rekeyChild(old)
				} else {
					t.failed(message.INVALID_KE_PAYLOAD, fmt.Errorf("tunnel %s: peer wants PFS group %d, not in phase 2 groups %v", t.name, want, t.cfg.Phase2.DHGroups))
					retryLater()
				}
				return
			}
			for _, n := range m.Notifies() {
				if n.NotifyType.IsError() {
					t.releaseSPI(inSPI)
					if n.NotifyType != message.TEMPORARY_FAILURE && n.NotifyType != message.CHILD_SA_NOT_FOUND {
						t.failed(n.NotifyType, fmt.Errorf("tunnel %s: peer refused the Child SA rekey with %s; our phase 2 proposals: %s", t.name, n.NotifyType, message.FormatProposals(t.espPFS)))
					}
					retryLater()
					return
				}
			}
			var gir []byte
			defer func() { clear(gir) }()
			if g != 0 {
				ke := message.Find[*message.KE](m)
				var err error
				if ke == nil || uint16(ke.Group) != g {
					err = fmt.Errorf("no KE of group %d", g)
				} else {
					gir, err = priv.SharedSecret(ke.Data)
				}
				if err != nil {
					t.releaseSPI(inSPI)
					t.failed(message.INVALID_SYNTAX, fmt.Errorf("tunnel %s: rekey response: %v", t.name, err))
					retryLater()
					return
				}
			}
			no := message.Find[*message.Nonce](m)
			if no == nil {
				t.releaseSPI(inSPI)
				retryLater()
				return
			}
			c, err := t.childFromResponse(sa, m, t.espPFS, inSPI, gir, ni, no.Data)
			if err != nil {
				t.releaseSPI(inSPI)
				t.failed(message.NO_PROPOSAL_CHOSEN, err)
				retryLater()
				return
			}
			old.rekeying = false
			t.preinstall(c) // before our Delete, on which the peer switches
			t.install(c)
			old.ours = &rekeyRec{ni: ni, nr: no.Data, child: c}
			if old.theirs != nil && bytes.Compare(old.ours.lowest(), old.theirs.lowest()) < 0 {
				// Collision, ours made the lowest nonce: ours is redundant
				// and ours to delete; the peer deletes the old one (§2.8.1).
				t.log.Info("Child SA rekey collision: deleting our redundant SA", "spi_in", fmt.Sprintf("%08x", c.InSPI))
				t.switchOut(old.theirs.child)
				t.deleteChild(c)
				return
			}
			t.switchOut(c)
			t.replaced(old) // the peer's Delete goes once the dataplane switched
		},
		onFail: func(err error) {
			t.releaseSPI(inSPI)
			old.rekeying = false
			if err != errSAGone {
				t.peerDead(err)
			} else {
				retryLater()
			}
		}})
}
