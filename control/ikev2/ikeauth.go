package ikev2

import (
	"crypto/hmac"
	"fmt"

	"github.com/cgw-project/cgw/control/ikev2/message"
	"github.com/cgw-project/cgw/crypto/dh"
)

func authFailedErr(name string) error {
	return fmt.Errorf("tunnel %s: authentication failed: check the pre-shared key (both sides must match)", name)
}

func (t *Tunnel) sendAuth(sa *ikeSA) {
	inSPI := t.newChildSPI()
	idi := message.IDAddr(t.cfg.LocalOutside)
	auth := sa.prf.PSKAuth([]byte(t.cfg.PreSharedKey), sa.prf.AuthOctets(sa.ourInit, sa.nr, sa.sk.SKpi, idi.Body()))
	ps := []message.Payload{&idi}
	ic := !t.contacted
	if ic {
		ps = append(ps, &message.Notify{NotifyType: message.INITIAL_CONTACT})
	}
	ps = append(ps, &message.Auth{Method: message.AuthSharedKeyMIC, Data: auth},
		&message.SA{Proposals: withSPI(t.espProps, spiBytes(inSPI))},
		&message.TrafficSelectors{Selectors: selectors(t.opt.LocalTS)},
		&message.TrafficSelectors{Responder: true, Selectors: selectors(t.opt.RemoteTS)})
	t.request(sa, &pending{exch: message.IKE_AUTH, payloads: ps,
		onResp: func(m *message.Message, _ []byte) { t.authResponse(sa, inSPI, ic, m) },
		onFail: func(err error) { t.releaseSPI(inSPI); t.setupFailed(sa, 0, err) }})
}

func (t *Tunnel) authResponse(sa *ikeSA, inSPI uint32, ic bool, m *message.Message) {
	idr, auth := message.Find[*message.ID](m), message.Find[*message.Auth](m)
	if n := m.Notify(message.AUTHENTICATION_FAILED); n != nil || idr == nil || auth == nil {
		t.releaseSPI(inSPI)
		nt := message.AUTHENTICATION_FAILED
		err := authFailedErr(t.name)
		if n == nil {
			for _, x := range m.Notifies() {
				if x.NotifyType.IsError() {
					nt, err = x.NotifyType, fmt.Errorf("tunnel %s: peer refused IKE_AUTH with %s", t.name, x.NotifyType)
				}
			}
		}
		t.setupFailed(sa, nt, err)
		return
	}
	want := sa.prf.PSKAuth([]byte(t.cfg.PreSharedKey), sa.prf.AuthOctets(sa.peerInit, sa.ni, sa.sk.SKpr, idr.Body()))
	if auth.Method != message.AuthSharedKeyMIC || !hmac.Equal(want, auth.Data) {
		t.releaseSPI(inSPI)
		t.setupFailed(sa, message.AUTHENTICATION_FAILED, fmt.Errorf("%w (the peer %s signed with another key)", authFailedErr(t.name), idr))
		t.deleteIKEUnestablished(sa)
		return
	}
	t.establish(sa)
	if !t.adopt(sa, false) {
		t.releaseSPI(inSPI)
		return
	}
	t.log.Info("IKE SA established", "spi_i", sa.spiI, "spi_r", sa.spiR, "proposal", sa.prop.String(), "encap", sa.nat)
	// The first Child SA (§1.2); its errors leave the IKE SA up (§2.21.3).
	for _, n := range m.Notifies() {
		if n.NotifyType.IsError() {
			t.releaseSPI(inSPI)
			err := fmt.Errorf("tunnel %s: peer refused the Child SA with %s; our phase 2 proposals: %s", t.name, n.NotifyType, message.FormatProposals(t.espProps))
			t.failed(n.NotifyType, err)
			t.deleteIKE(sa)
			t.ike = nil
			t.down("child SA refused", err, false)
			return
		}
	}
	c, err := t.childFromResponse(sa, m, t.espProps, inSPI, nil, sa.ni, sa.nr)
	if err != nil {
		t.releaseSPI(inSPI)
		t.failed(message.NO_PROPOSAL_CHOSEN, err)
		t.deleteIKE(sa)
		t.ike = nil
		t.down("child SA refused", err, false)
		return
	}
	t.preinstall(c)
	t.install(c)
	t.switchOut(c)
}

func (t *Tunnel) deleteIKEUnestablished(sa *ikeSA) {
	// The keys are there, so tell the peer (§2.21.2) and forget.
	sa.state = saEstablished
	sa.pend, sa.queue = nil, nil
	t.deleteIKE(sa)
}

// childFromResponse builds the Child SA an exchange we initiated produced.
func (t *Tunnel) childFromResponse(sa *ikeSA, m *message.Message, ours []message.Proposal, inSPI uint32, gir, ni, nr []byte) (*child, error) {
	sp := message.Find[*message.SA](m)
	if sp == nil || len(sp.Proposals) != 1 {
		return nil, fmt.Errorf("tunnel %s: Child SA response without a single proposal", t.name)
	}
	prop := sp.Proposals[0]
	if !message.Accepts(ours, prop) {
		return nil, fmt.Errorf("tunnel %s: peer chose %s, which we did not offer (%s)", t.name, prop, message.FormatProposals(ours))
	}
	suite, esn, err := prop.ESPSuite()
	if err != nil {
		return nil, fmt.Errorf("tunnel %s: %v", t.name, err)
	}
	iToR, rToI, err := sa.prf.ChildSAKeys(sa.sk.SKd, gir, ni, nr, suite)
	if err != nil {
		return nil, err
	}
	c := t.newChild(sa)
	c.InSPI, c.OutSPI = inSPI, spiOf(prop.SPI)
	c.Suite, c.ESN = suite, esn
	c.OutKeymat, c.InKeymat = iToR, rToI
	for _, p := range m.Payloads {
		if ts, ok := p.(*message.TrafficSelectors); ok {
			if ts.Responder {
				c.RemoteTS = toIKE(ts.Selectors)
			} else {
				c.LocalTS = toIKE(ts.Selectors)
			}
		}
	}
	return c, nil
}

func (t *Tunnel) respAuth(sa *ikeSA, m *message.Message) ([]message.Payload, func()) {
	idi, auth := message.Find[*message.ID](m), message.Find[*message.Auth](m)
	fail := func() ([]message.Payload, func()) {
		return []message.Payload{&message.Notify{NotifyType: message.AUTHENTICATION_FAILED}}, func() {
			t.failed(message.AUTHENTICATION_FAILED, authFailedErr(t.name))
			t.removeSA(sa, "authentication failed", nil)
		}
	}
	if idi == nil || auth == nil || idi.Responder || auth.Method != message.AuthSharedKeyMIC {
		return fail()
	}
	want := sa.prf.PSKAuth([]byte(t.cfg.PreSharedKey), sa.prf.AuthOctets(sa.peerInit, sa.nr, sa.sk.SKpi, idi.Body()))
	if !hmac.Equal(want, auth.Data) {
		return fail()
	}
	idr := message.IDAddr(t.cfg.LocalOutside)
	idr.Responder = true
	ours := sa.prf.PSKAuth([]byte(t.cfg.PreSharedKey), sa.prf.AuthOctets(sa.ourInit, sa.ni, sa.sk.SKpr, idr.Body()))
	ps := []message.Payload{&idr, &message.Auth{Method: message.AuthSharedKeyMIC, Data: ours}}
	ic := m.Notify(message.INITIAL_CONTACT) != nil
	c, cps, nerr := t.childAsResponder(sa, m, t.espProps, nil, sa.ni, sa.nr, true)
	ps = append(ps, cps...)
	if nerr == nil {
		t.preinstall(c) // before the response: the peer may send at once
	}
	return ps, func() {
		t.establish(sa)
		if !t.adopt(sa, ic) {
			if c != nil {
				t.releaseSPI(c.InSPI)
			}
			return
		}
		t.log.Info("IKE SA established (responder)", "spi_i", sa.spiI, "spi_r", sa.spiR, "proposal", sa.prop.String(), "encap", sa.nat)
		if nerr != nil {
			t.failed(nerr.n, nerr.err)
			return
		}
		t.install(c)
		t.switchOut(c)
	}
}

type notifyErr struct {
	n   message.NotifyType
	err error
}

// childAsResponder selects and keys a Child SA the peer asked for
// (IKE_AUTH or CREATE_CHILD_SA). It returns the response payloads (SA,
// [Nr, KEr,] TSi, TSr, or one error Notify).
func (t *Tunnel) childAsResponder(sa *ikeSA, m *message.Message, ours []message.Proposal, priv dh.Private, ni, nr []byte, inAuth bool) (*child, []message.Payload, *notifyErr) {
	sp := message.Find[*message.SA](m)
	var tsi, tsr *message.TrafficSelectors
	for _, p := range m.Payloads {
		if ts, ok := p.(*message.TrafficSelectors); ok {
			if ts.Responder {
				tsr = ts
			} else {
				tsi = ts
			}
		}
	}
	nerr := func(n message.NotifyType, err error) (*child, []message.Payload, *notifyErr) {
		return nil, []message.Payload{&message.Notify{NotifyType: n}}, &notifyErr{n, err}
	}
	if sp == nil || tsi == nil || tsr == nil {
		return nerr(message.INVALID_SYNTAX, fmt.Errorf("tunnel %s: Child SA request without SA or TS payloads", t.name))
	}
	theirs := sp.Proposals
	if inAuth {
		theirs = withoutDH(theirs)
	}
	var prop message.Proposal
	var ok bool
	ke := message.Find[*message.KE](m)
	if ke != nil {
		prop, ok = selectWithKE(ours, theirs, uint16(ke.Group))
	} else {
		prop, ok = message.Select(ours, theirs)
	}
	if !ok {
		return nerr(message.NO_PROPOSAL_CHOSEN, fmt.Errorf("tunnel %s: NO_PROPOSAL_CHOSEN for the Child SA: peer offered %s; we accept %s (phase 2 must match exactly)",
			t.name, message.FormatProposals(sp.Proposals), message.FormatProposals(ours)))
	}
	g := chosenDH(prop)
	if g != 0 && (ke == nil || uint16(ke.Group) != g) {
		n := message.InvalidKE(message.DHGroup(g))
		return nil, []message.Payload{&n}, &notifyErr{message.INVALID_KE_PAYLOAD, nil}
	}
	locTS := narrow(tsr.Selectors, t.opt.LocalTS)
	remTS := narrow(tsi.Selectors, t.opt.RemoteTS)
	if len(locTS) == 0 || len(remTS) == 0 {
		return nerr(message.TS_UNACCEPTABLE, fmt.Errorf("tunnel %s: TS_UNACCEPTABLE: peer proposed %s === %s; our policy is %v === %v",
			t.name, tsi, tsr, t.opt.RemoteTS, t.opt.LocalTS))
	}
	suite, esn, err := prop.ESPSuite()
	if err != nil {
		return nerr(message.NO_PROPOSAL_CHOSEN, err)
	}
	var gir, pub []byte
	defer func() { clear(gir) }()
	if g != 0 {
		var p dh.Private
		if p, pub, err = keyExchange(g); err == nil {
			gir, err = p.SharedSecret(ke.Data)
		}
		if err != nil {
			return nerr(message.INVALID_SYNTAX, fmt.Errorf("tunnel %s: peer's KE: %v", t.name, err))
		}
	}
	iToR, rToI, err := sa.prf.ChildSAKeys(sa.sk.SKd, gir, ni, nr, suite)
	if err != nil {
		return nerr(message.NO_PROPOSAL_CHOSEN, err)
	}
	c := t.newChild(sa)
	c.InSPI = t.newChildSPI()
	c.OutSPI = spiOf(prop.SPI)
	c.Suite, c.ESN = suite, esn
	c.InKeymat, c.OutKeymat = iToR, rToI
	c.LocalTS, c.RemoteTS = toIKE(locTS), toIKE(remTS)
	prop.SPI = spiBytes(c.InSPI)
	ps := []message.Payload{&message.SA{Proposals: []message.Proposal{prop}}}
	if !inAuth {
		ps = append(ps, &message.Nonce{Data: nr})
		if g != 0 {
			ps = append(ps, &message.KE{Group: message.DHGroup(g), Data: pub})
		}
	}
	ps = append(ps, &message.TrafficSelectors{Selectors: remTS}, &message.TrafficSelectors{Responder: true, Selectors: locTS})
	return c, ps, nil
}
