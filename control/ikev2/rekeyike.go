package ikev2

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

// ikeRekeyBusy is childRekeyBusy for an IKE SA.
func (t *Tunnel) ikeRekeyBusy(sa *ikeSA) string {
	switch {
	case sa.rekeyInFlight:
		return fmt.Sprintf("IKE SA %s is already being rekeyed (started %s ago)", sa.ourSPI(), ike.Ago(t.now(), sa.rekeyStarted))
	case sa.deleting:
		return fmt.Sprintf("IKE SA %s is being deleted", sa.ourSPI())
	case sa.ours != nil:
		return fmt.Sprintf("IKE SA %s was already rekeyed (new IKE SA %s) and is being replaced", sa.ourSPI(), sa.ours.sa.ourSPI())
	}
	return ""
}

func (t *Tunnel) rekeyIKE(sa *ikeSA) {
	if t.ikeRekeyBusy(sa) != "" {
		return
	}
	sa.rekeyInFlight, sa.rekeyStarted = true, t.now()
	spi := randSPI()
	ni := randBytes(32)
	g := sa.group
	priv, pub, err := keyExchange(g)
	if err != nil {
		sa.rekeyInFlight = false
		return
	}
	t.m.sock.register(spi, t)
	ps := []message.Payload{&message.SA{Proposals: withSPI(preferGroup(t.ikeProps, g), spi[:])}, &message.Nonce{Data: ni},
		&message.KE{Group: message.DHGroup(g), Data: pub}}
	retry := func() {
		t.m.sock.unregister(spi)
		sa.rekeyInFlight = false
		if t.takeTheirRekey(sa) {
			return
		}
		if !sa.deleting {
			sa.rekeyAt = t.now().Add(t.m.tim.ReinitMin)
		}
	}
	t.request(sa, &pending{exch: message.CREATE_CHILD_SA, payloads: ps,
		onResp: func(m *message.Message, _ []byte) {
			if want, ok := invalidKE(m); ok {
				t.m.sock.unregister(spi)
				sa.rekeyInFlight = false
				if want != g && allowed(t.cfg.Phase1.DHGroups, want) && sa.rekeyKETry < initRetries {
					sa.rekeyKETry++ // a peer switching groups back and forth ends here
					sa.group = want
					t.rekeyIKE(sa)
				} else {
					retry()
				}
				return
			}
			for _, n := range m.Notifies() {
				if n.NotifyType.IsError() {
					if n.NotifyType != message.TEMPORARY_FAILURE {
						t.failed(n.NotifyType, fmt.Errorf("tunnel %s: peer refused the IKE SA rekey with %s", t.name, n.NotifyType))
					}
					retry()
					return
				}
			}
			sp, ke, no := message.Find[*message.SA](m), message.Find[*message.KE](m), message.Find[*message.Nonce](m)
			if sp == nil || ke == nil || no == nil || len(sp.Proposals) != 1 || len(sp.Proposals[0].SPI) != 8 ||
				!message.Accepts(t.ikeProps, sp.Proposals[0]) || uint16(ke.Group) != g {
				t.failed(message.NO_PROPOSAL_CHOSEN, fmt.Errorf("tunnel %s: unusable IKE rekey response", t.name))
				retry()
				return
			}
			gir, err := priv.SharedSecret(ke.Data)
			defer clear(gir)
			if err != nil {
				retry()
				return
			}
			nsa := &ikeSA{initiator: true, spiI: spi, prop: sp.Proposals[0], ni: ni, nr: no.Data, group: g,
				peer: sa.peer, nat: sa.nat, natSelf: sa.natSelf}
			copy(nsa.spiR[:], nsa.prop.SPI)
			nsa.prop.SPI = nil
			if err := deriveIKE(nsa, sa.prf.RekeySKEYSEED(sa.sk.SKd, gir, ni, no.Data)); err != nil {
				retry()
				return
			}
			t.m.sock.unregister(spi)
			t.establish(nsa)
			t.addSA(nsa)
			sa.rekeyInFlight = false
			sa.ours = &rekeyRec{ni: ni, nr: no.Data, sa: nsa}
			if sa.theirs != nil && bytes.Compare(sa.ours.lowest(), sa.theirs.lowest()) < 0 {
				t.log.Info("IKE SA rekey collision: deleting our redundant IKE SA")
				t.ike = sa.theirs.sa
				t.moveChildren(sa, nsa)
				t.deleteIKE(nsa)
				t.emit(Event{Type: IKERekeyed, IKE: t.ike.info()})
				return
			}
			t.ike = nsa
			t.moveChildren(sa)
			if sa.theirs != nil {
				t.moveChildren(sa.theirs.sa) // the peer deletes its redundant one
			}
			t.deleteIKE(sa)
			t.emit(Event{Type: IKERekeyed, IKE: nsa.info()})
		},
		onFail: func(err error) {
			t.m.sock.unregister(spi)
			sa.rekeyInFlight = false
			if err != errSAGone && sa == t.ike {
				t.peerDead(err)
			}
		}})
}

func (t *Tunnel) respRekeyIKE(sa *ikeSA, m *message.Message, ni []byte) ([]message.Payload, func()) {
	sp, ke := message.Find[*message.SA](m), message.Find[*message.KE](m)
	if sa.ours != nil || sa.deleting || sa != t.ike {
		return []message.Payload{&message.Notify{NotifyType: message.TEMPORARY_FAILURE}}, nil
	}
	if ke == nil {
		return []message.Payload{&message.Notify{NotifyType: message.INVALID_SYNTAX}}, nil
	}
	prop, ok := selectWithKE(t.ikeProps, sp.Proposals, uint16(ke.Group))
	if !ok || len(prop.SPI) != 8 {
		err := fmt.Errorf("tunnel %s: NO_PROPOSAL_CHOSEN for the IKE SA rekey: peer offered %s; we accept %s",
			t.name, message.FormatProposals(sp.Proposals), message.FormatProposals(t.ikeProps))
		return []message.Payload{&message.Notify{NotifyType: message.NO_PROPOSAL_CHOSEN}}, func() { t.failed(message.NO_PROPOSAL_CHOSEN, err) }
	}
	g := chosenDH(prop)
	if g != uint16(ke.Group) {
		n := message.InvalidKE(message.DHGroup(g))
		return []message.Payload{&n}, nil
	}
	priv, pub, err := keyExchange(g)
	var gir []byte
	defer func() { clear(gir) }()
	if err == nil {
		gir, err = priv.SharedSecret(ke.Data)
	}
	if err != nil {
		return []message.Payload{&message.Notify{NotifyType: message.INVALID_SYNTAX}}, nil
	}
	nr := randBytes(32)
	nsa := &ikeSA{initiator: false, spiR: randSPI(), ni: ni, nr: nr, group: g, peer: sa.peer, nat: sa.nat, natSelf: sa.natSelf}
	copy(nsa.spiI[:], prop.SPI)
	prop.SPI = nil
	nsa.prop = prop
	if err := deriveIKE(nsa, sa.prf.RekeySKEYSEED(sa.sk.SKd, gir, ni, nr)); err != nil {
		return []message.Payload{&message.Notify{NotifyType: message.NO_PROPOSAL_CHOSEN}}, nil
	}
	resp := prop
	resp.SPI = nsa.spiR[:]
	ps := []message.Payload{&message.SA{Proposals: []message.Proposal{resp}}, &message.Nonce{Data: nr}, &message.KE{Group: message.DHGroup(g), Data: pub}}
	return ps, func() {
		t.establish(nsa)
		t.addSA(nsa)
		sa.theirs = &rekeyRec{ni: ni, nr: nr, sa: nsa}
		if !sa.rekeyInFlight {
			t.ike = nsa
			t.moveChildren(sa)
			t.emit(Event{Type: IKERekeyed, IKE: nsa.info()})
		}
	}
}

// takeTheirRekey switches to the IKE SA the peer's rekey of sa made, when
// ours did not happen (refused, or the peer finished first and deletes
// sa): the Child SAs move to it. It reports whether it did.
func (t *Tunnel) takeTheirRekey(sa *ikeSA) bool {
	if sa != t.ike || sa.theirs == nil || sa.ours != nil || !slices.Contains(t.sas, sa.theirs.sa) {
		return false
	}
	t.ike = sa.theirs.sa
	t.moveChildren(sa)
	t.emit(Event{Type: IKERekeyed, IKE: t.ike.info()})
	return true
}
