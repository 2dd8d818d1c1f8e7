package ikev2

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"fmt"
	"slices"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
	"github.com/cgw-project/cgw/crypto/dh"
	"github.com/cgw-project/cgw/crypto/prf"
)

func authFailedErr(name string) error {
	return fmt.Errorf("tunnel %s: authentication failed: check the pre-shared key (both sides must match)", name)
}

// keyExchange makes our half of group g and the shared secret with the
// peer's KE data (nil peer: only generate).
func keyExchange(g uint16) (dh.Private, []byte, error) {
	grp, err := dh.Lookup(dh.ID(g))
	if err != nil {
		return nil, nil, err
	}
	return grp.Generate(rand.Reader)
}

func allowed(groups []int, g uint16) bool { return slices.Contains(groups, int(g)) }

// deriveIKE computes an IKE SA's keys from SKEYSEED (§2.14).
func deriveIKE(sa *ikeSA, skeyseed []byte) error {
	p, err := prfOf(sa.prop)
	if err != nil {
		return err
	}
	e, a, err := message.SKLengths(sa.prop)
	if err != nil {
		return err
	}
	sk, err := p.IKESAKeys(skeyseed, sa.ni, sa.nr, sa.spiI[:], sa.spiR[:], prf.KeyLens{Encr: e, Integ: a})
	if err != nil {
		return err
	}
	keys, err := message.NewKeys(sa.prop, sk.SKei, sk.SKai, sk.SKer, sk.SKar)
	if err != nil {
		return err
	}
	sa.prf, sa.sk, sa.keys = p, sk, keys
	return nil
}

func prfOf(p message.Proposal) (*prf.PRF, error) {
	t, ok := p.Chosen(message.TransformPRF)
	if !ok {
		return nil, fmt.Errorf("IKE proposal %s has no PRF", p)
	}
	return prf.Lookup(prf.ID(t.ID))
}

func (t *Tunnel) establish(sa *ikeSA) {
	now := t.now()
	sa.state = saEstablished
	sa.created = now
	sa.lastHeard = now
	if sa.halfOpen {
		sa.halfOpen = false
		t.m.sock.halfOpen.Add(-1)
	}
	if life := t.cfg.Phase1.Lifetime.D(); life > 0 {
		sa.rekeyAt = t.rekeyTime(now, life)
		sa.expireAt = now.Add(life)
	}
	t.nextKA = now.Add(t.m.tim.Keepalive)
}

// adopt makes a newly established sa the tunnel's IKE SA and reports
// whether it did. A new IKE SA replaces an older one: the peer set it up
// afresh (after a restart it also says INITIAL_CONTACT, and then the old
// one is forgotten silently, §2.4; otherwise it is deleted with a Delete).
// When both ends set up an IKE SA at the same time (the old one was
// established after the new one started), the one created with the
// lowest nonce goes, as §2.8.1 decides for rekeys, so both ends keep the
// same one.
func (t *Tunnel) adopt(sa *ikeSA, initialContact bool) bool {
	t.contacted = true
	for _, x := range slices.Clone(t.sas) {
		if x != sa && x.state == saInitSent {
			x.pend, x.queue = nil, nil
			t.removeSA(x, "superseded", nil) // an attempt of ours nobody answered yet
		}
	}
	old := t.ike
	if old == nil || old == sa {
		t.ike = sa
		return true
	}
	concurrent := !old.created.Before(sa.started)
	if concurrent && bytes.Compare(lowestNonce(sa), lowestNonce(old)) < 0 {
		t.log.Info("both ends set up an IKE SA at once; deleting the redundant one", "spi_i", sa.spiI)
		t.deleteIKE(sa)
		return false
	}
	t.ike = sa
	for _, c := range t.children {
		if c.owner == old && !c.deleting {
			c.deleting = true
			c.retireAt = t.now().Add(t.m.tim.Grace)
		}
	}
	if initialContact && !concurrent {
		t.removeSA(old, "replaced after the peer's INITIAL_CONTACT", nil)
	} else {
		t.deleteIKE(old)
	}
	return true
}

func lowestNonce(sa *ikeSA) []byte {
	if bytes.Compare(sa.ni, sa.nr) < 0 {
		return sa.ni
	}
	return sa.nr
}

// moveChildren hands the Child SAs of IKE SAs that a rekey replaced to
// the current one (§2.18: they belong to the new IKE SA).
func (t *Tunnel) moveChildren(from ...*ikeSA) {
	for _, c := range t.children {
		if slices.Contains(from, c.owner) {
			c.owner = t.ike
		}
	}
}

// --- initiator: IKE_SA_INIT and IKE_AUTH (§1.2) ---

func (t *Tunnel) initiate() {
	sa := &ikeSA{initiator: true, state: saInitSent, spiI: randSPI(), ni: randBytes(32),
		peer: netipAddrPort(t.cfg.AWSOutside, t.opt.PeerPort), created: t.now(), started: t.now()}
	t.addSA(sa)
	t.log.Info("initiating IKE SA", "peer", sa.peer, "spi", sa.spiI)
	t.sendInit(sa)
}

func (t *Tunnel) sendInit(sa *ikeSA) {
	sa.group = t.ikeGroup
	priv, pub, err := keyExchange(sa.group)
	if err != nil {
		t.failed(0, fmt.Errorf("tunnel %s: DH group %d: %v", t.name, sa.group, err))
		t.removeSA(sa, "local error", nil)
		t.scheduleReinit()
		return
	}
	var zero message.SPI
	src := message.NATDetectionHash(sa.spiI[:], zero[:], t.cfg.LocalOutside, t.m.sock.port500)
	if t.cfg.NATTraversal == config.NATForce {
		copy(src[:], randBytes(20)) // a hash nobody matches makes both sides float (as strongSwan's encap=yes)
	}
	dst := message.NATDetectionHash(sa.spiI[:], zero[:], sa.peer.Addr(), sa.peer.Port())
	var ps []message.Payload
	if sa.cookie != nil {
		ps = append(ps, &message.Notify{NotifyType: message.COOKIE, Data: sa.cookie})
	}
	ps = append(ps, &message.SA{Proposals: preferGroup(t.ikeProps, sa.group)}, &message.KE{Group: message.DHGroup(sa.group), Data: pub},
		&message.Nonce{Data: sa.ni})
	if t.cfg.NATTraversal != config.NATOff {
		ps = append(ps, &message.Notify{NotifyType: message.NAT_DETECTION_SOURCE_IP, Data: src[:]},
			&message.Notify{NotifyType: message.NAT_DETECTION_DESTINATION_IP, Data: dst[:]})
	}
	m := &message.Message{Header: message.Header{SPIi: sa.spiI, Exchange: message.IKE_SA_INIT, Flags: message.FlagInitiator}, Payloads: ps}
	raw, err := message.Encode(m)
	if err != nil {
		t.failed(0, fmt.Errorf("tunnel %s: encoding IKE_SA_INIT: %v", t.name, err))
		return
	}
	sa.ourInit = raw
	sa.nextMID = 0
	sa.pend = nil
	t.transmit(sa, &pending{exch: message.IKE_SA_INIT, raw: raw,
		onResp: func(r *message.Message, rraw []byte) { t.initResponse(sa, priv, r, rraw) },
		onFail: func(err error) { t.setupFailed(sa, 0, err) }})
}

// setupFailed ends a negotiation that did not produce an IKE SA.
func (t *Tunnel) setupFailed(sa *ikeSA, n message.NotifyType, err error) {
	if err == errSAGone {
		return
	}
	t.failed(n, err)
	t.removeSA(sa, "negotiation failed", err)
	if t.ike == nil && !t.stopping && t.cfg.StartupAction != config.StartupAdd && sa.initiator {
		t.scheduleReinit()
	}
}

func (t *Tunnel) initResponse(sa *ikeSA, priv dh.Private, m *message.Message, raw []byte) {
	if n := m.Notify(message.COOKIE); n != nil && sa.cookieTry < 3 {
		sa.cookieTry++
		sa.cookie = append([]byte(nil), n.Data...)
		t.log.Info("peer asks for a cookie (§2.6); retrying")
		t.sendInit(sa)
		return
	}
	if g, ok := invalidKE(m); ok {
		if g != sa.group && allowed(t.cfg.Phase1.DHGroups, g) {
			t.log.Info("peer wants another DH group (INVALID_KE_PAYLOAD); retrying", "group", message.DHGroup(g))
			t.ikeGroup = g
			t.sendInit(sa)
			return
		}
		t.setupFailed(sa, message.INVALID_KE_PAYLOAD, fmt.Errorf("tunnel %s: peer wants DH group %d, which phase 1 does not allow (%v)", t.name, g, t.cfg.Phase1.DHGroups))
		return
	}
	for _, n := range m.Notifies() {
		if n.NotifyType.IsError() {
			err := fmt.Errorf("tunnel %s: peer refused IKE_SA_INIT with %s", t.name, n.NotifyType)
			if n.NotifyType == message.NO_PROPOSAL_CHOSEN {
				err = fmt.Errorf("tunnel %s: NO_PROPOSAL_CHOSEN: the peer accepts none of our phase 1 proposals; ours: %s (phase 1 must match the peer's exactly)",
					t.name, message.FormatProposals(t.ikeProps))
			}
			t.setupFailed(sa, n.NotifyType, err)
			return
		}
	}
	sp, ke, no := message.Find[*message.SA](m), message.Find[*message.KE](m), message.Find[*message.Nonce](m)
	if sp == nil || ke == nil || no == nil || len(sp.Proposals) != 1 || m.SPIr.IsZero() {
		t.setupFailed(sa, message.INVALID_SYNTAX, fmt.Errorf("tunnel %s: IKE_SA_INIT response lacks SA, KE or Nonce", t.name))
		return
	}
	prop := sp.Proposals[0]
	if !message.Accepts(t.ikeProps, prop) || chosenDH(prop) != uint16(ke.Group) || uint16(ke.Group) != sa.group {
		t.setupFailed(sa, message.NO_PROPOSAL_CHOSEN, fmt.Errorf("tunnel %s: peer chose %s, which we did not offer (%s)", t.name, prop, message.FormatProposals(t.ikeProps)))
		return
	}
	gir, err := priv.SharedSecret(ke.Data)
	if err != nil {
		t.setupFailed(sa, message.INVALID_SYNTAX, fmt.Errorf("tunnel %s: peer's KE: %v", t.name, err))
		return
	}
	t.m.sock.unregister(sa.spiI)
	sa.spiR = m.SPIr
	t.m.sock.register(sa.spiI, t)
	sa.prop, sa.nr, sa.peerInit = prop, no.Data, raw
	p, err := prfOf(prop)
	if err == nil {
		err = deriveIKE(sa, p.SKEYSEED(sa.ni, sa.nr, gir))
	}
	if err != nil {
		t.setupFailed(sa, 0, fmt.Errorf("tunnel %s: deriving keys: %v", t.name, err))
		return
	}
	sa.expectMID = 0
	t.natDetect(sa, m, sa.peer, t.m.sock.port500)
	sa.state = saAuthSent
	t.sendAuth(sa)
}

// natDetect compares the peer's NAT_DETECTION hashes with the addresses
// we see (§2.23) and floats to port 4500 when a NAT is in the way, when
// NAT-T is forced, or when the peer fakes a NAT (libipsec's encap=yes).
func (t *Tunnel) natDetect(sa *ikeSA, m *message.Message, peer netipAddrPortT, localPort uint16) {
	src, dst := m.Notify(message.NAT_DETECTION_SOURCE_IP), m.Notify(message.NAT_DETECTION_DESTINATION_IP)
	force := t.cfg.NATTraversal == config.NATForce
	if src == nil || dst == nil || t.cfg.NATTraversal == config.NATOff {
		return
	}
	spir := sa.spiR
	if !sa.initiator {
		spir = message.SPI{} // the request's hashes were made before our SPI existed
	}
	wantDst := message.NATDetectionHash(sa.spiI[:], spir[:], t.cfg.LocalOutside, localPort)
	wantSrc := message.NATDetectionHash(sa.spiI[:], spir[:], peer.Addr(), peer.Port())
	// Forced NAT-T also keeps the mapping of a NAT we cannot see alive.
	sa.natSelf = !bytes.Equal(dst.Data, wantDst[:]) || force
	natPeer := !bytes.Equal(src.Data, wantSrc[:])
	if sa.natSelf || natPeer || force {
		t.log.Info("NAT-T: using UDP 4500", "nat_local", sa.natSelf, "nat_peer", natPeer, "forced", force)
		if sa.initiator {
			sa.nat = true
			sa.peer = netipAddrPort(peer.Addr(), t.opt.PeerNATPort)
		}
	}
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

// --- responder: IKE_SA_INIT and IKE_AUTH ---

func (t *Tunnel) respondInit(d datagram) {
	m, err := message.Decode(d.b)
	if err != nil {
		return
	}
	reply := func(n message.Notify) {
		if b, err := message.Encode(m.ErrorReply(n)); err == nil {
			t.m.sock.send(b, d.from, d.nat)
		}
	}
	sp, ke, no := message.Find[*message.SA](m), message.Find[*message.KE](m), message.Find[*message.Nonce](m)
	if sp == nil || ke == nil || no == nil {
		reply(message.Notify{NotifyType: message.INVALID_SYNTAX})
		return
	}
	prop, ok := selectWithKE(t.ikeProps, sp.Proposals, uint16(ke.Group))
	if !ok {
		err := fmt.Errorf("tunnel %s: NO_PROPOSAL_CHOSEN: peer %s offered %s; we accept %s (phase 1 must match exactly)",
			t.name, d.from, message.FormatProposals(sp.Proposals), message.FormatProposals(t.ikeProps))
		t.failed(message.NO_PROPOSAL_CHOSEN, err)
		reply(message.Notify{NotifyType: message.NO_PROPOSAL_CHOSEN})
		return
	}
	if g := chosenDH(prop); g != uint16(ke.Group) {
		t.log.Info("asking the peer for another DH group (INVALID_KE_PAYLOAD)", "offered", ke.Group, "want", message.DHGroup(g))
		reply(message.InvalidKE(message.DHGroup(g)))
		return
	}
	priv, pub, err := keyExchange(uint16(ke.Group))
	if err != nil {
		return
	}
	gir, err := priv.SharedSecret(ke.Data)
	if err != nil {
		reply(message.Notify{NotifyType: message.INVALID_SYNTAX})
		return
	}
	sa := &ikeSA{state: saResponderInit, spiI: m.SPIi, spiR: randSPI(), ni: no.Data, nr: randBytes(32),
		group: uint16(ke.Group), peer: d.from, nat: d.nat, created: t.now(), started: t.now(), peerInit: d.b, expectMID: 1, nextMID: 0}
	prop.SPI = nil
	sa.prop = prop
	p, err := prfOf(prop)
	if err == nil {
		err = deriveIKE(sa, p.SKEYSEED(sa.ni, sa.nr, gir))
	}
	if err != nil {
		t.failed(0, fmt.Errorf("tunnel %s: deriving keys: %v", t.name, err))
		return
	}
	ps := []message.Payload{&message.SA{Proposals: []message.Proposal{prop}}, &message.KE{Group: ke.Group, Data: pub}, &message.Nonce{Data: sa.nr}}
	if m.Notify(message.NAT_DETECTION_SOURCE_IP) != nil && t.cfg.NATTraversal != config.NATOff {
		t.natDetect(sa, m, d.from, t.localPort(d.nat))
		src := message.NATDetectionHash(sa.spiI[:], sa.spiR[:], t.cfg.LocalOutside, t.localPort(d.nat))
		if t.cfg.NATTraversal == config.NATForce {
			copy(src[:], randBytes(20))
		}
		dst := message.NATDetectionHash(sa.spiI[:], sa.spiR[:], d.from.Addr(), d.from.Port())
		ps = append(ps, &message.Notify{NotifyType: message.NAT_DETECTION_SOURCE_IP, Data: src[:]},
			&message.Notify{NotifyType: message.NAT_DETECTION_DESTINATION_IP, Data: dst[:]})
	}
	r := &message.Message{Header: m.Reply(), Payloads: ps}
	r.SPIr = sa.spiR
	raw, err := message.Encode(r)
	if err != nil {
		return
	}
	sa.ourInit, sa.lastResp, sa.hasLastResp = raw, raw, true
	sa.halfOpen = true
	t.m.sock.halfOpen.Add(1)
	t.addSA(sa)
	t.m.sock.send(raw, d.from, d.nat)
}

func (t *Tunnel) localPort(nat bool) uint16 {
	if nat {
		return t.m.sock.port4500
	}
	return t.m.sock.port500
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

// --- CREATE_CHILD_SA as responder (§1.3) ---

func (t *Tunnel) respCreateChild(sa *ikeSA, m *message.Message) ([]message.Payload, func()) {
	sp, no := message.Find[*message.SA](m), message.Find[*message.Nonce](m)
	if sp == nil || no == nil || len(sp.Proposals) == 0 {
		return []message.Payload{&message.Notify{NotifyType: message.INVALID_SYNTAX}}, nil
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

// --- Child SA rekey as initiator (§1.3.3) ---

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
				if want != g && allowed(t.cfg.Phase2.DHGroups, want) {
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
			t.deleteChild(old)
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

// --- IKE SA rekey (§1.3.2, §2.18) ---

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
				if want != g && allowed(t.cfg.Phase1.DHGroups, want) {
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

// --- INFORMATIONAL (§1.4) ---

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
			for _, spi := range d.SPIs {
				c := t.childByOut(spi)
				if c == nil {
					continue
				}
				if !c.deleting {
					ours = append(ours, c.InSPI)
				}
				after = append(after, func() { t.peerDeletedChild(c) })
			}
			if len(ours) > 0 {
				resp = append(resp, &message.Delete{Protocol: message.ProtoESP, SPIs: ours})
			}
		}
	}
	return resp, func() {
		for _, f := range after {
			f()
		}
	}
}

func (t *Tunnel) peerDeletedChild(c *child) {
	c.deleting = true
	if c.retireAt.IsZero() {
		c.retireAt = t.now().Add(t.m.tim.Grace)
	}
	if t.out == c {
		if s := t.successor(); s != nil {
			t.switchOut(s)
			return
		}
		// The peer deleted our only Child SA: make a new one.
		t.log.Info("peer deleted the last Child SA; the tunnel is down until a new one is made")
		t.out = nil
		if t.up {
			t.up = false
			t.emit(Event{Type: TunnelDown, Reason: "child SA deleted by peer"})
		}
		if t.cfg.StartupAction != config.StartupAdd && t.ike != nil {
			sa := t.ike
			t.ike = nil
			t.deleteIKE(sa)
			t.scheduleReinit()
		}
	}
}
