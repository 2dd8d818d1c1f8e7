package ikev2

import (
	"bytes"
	"fmt"
	"log/slog"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

func (t *Tunnel) initiate() {
	sa := &ikeSA{initiator: true, state: saInitSent, spiI: randSPI(), ni: randBytes(32), group: t.ikeGroup,
		peer: netipAddrPort(t.cfg.AWSOutside, t.opt.PeerPort), created: t.now(), started: t.now()}
	t.addSA(sa)
	t.log.Info("initiating IKE SA", "peer", sa.peer, "spi", sa.spiI)
	t.sendInit(sa)
}

// sendInit sends our IKE_SA_INIT request with sa's group, cookie and
// nonce (the same Ni when a cookie or another group is asked for, §2.6).
func (t *Tunnel) sendInit(sa *ikeSA) {
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
	sa.ourInit, sa.initPriv = raw, priv
	sa.nextMID = 0
	sa.pend = nil
	t.transmit(sa, &pending{exch: message.IKE_SA_INIT, raw: raw,
		onFail: func(err error) {
			if sa.initErr != nil && err != errSAGone {
				// Say what the answers said, though nothing proves who sent them.
				err = fmt.Errorf("%w; nothing else answered before IKE_SA_INIT timed out (its answers are not authenticated, so the exchange waits for a valid one, RFC 7296 §2.21.1)", sa.initErr)
				t.setupFailed(sa, sa.initNotify, err)
				return
			}
			t.setupFailed(sa, 0, err)
		}})
}

// initRetries bounds the IKE_SA_INIT requests a COOKIE or an
// INVALID_KE_PAYLOAD answer makes us send again, each.
const initRetries = 3

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

// initResponse handles an answer to our IKE_SA_INIT. Nothing in it is
// authenticated: one that does not complete the exchange (an error
// notification, a proposal we did not offer, a malformed one) is noted
// and the exchange keeps waiting for a valid answer until it times out
// (§2.21.1); a COOKIE or INVALID_KE_PAYLOAD restarts it a bounded number
// of times, the group changed for this exchange only.
func (t *Tunnel) initResponse(sa *ikeSA, m *message.Message, raw []byte) {
	ignore := func(n message.NotifyType, err error) {
		sa.initNotify, sa.initErr = n, err
		if line, ok := t.logUnauth(slog.LevelWarn); ok {
			line.Write("IKE_SA_INIT answer ignored: it is not authenticated, so the exchange waits for a valid one until it times out", "err", err)
		}
	}
	if n := m.Notify(message.COOKIE); n != nil {
		if sa.cookieTry >= initRetries {
			ignore(message.COOKIE, fmt.Errorf("tunnel %s: the peer asked for a cookie %d times", t.name, sa.cookieTry+1))
			return
		}
		sa.cookieTry++
		sa.cookie = append([]byte(nil), n.Data...)
		t.log.Info("peer asks for a cookie (§2.6); retrying")
		t.sendInit(sa)
		return
	}
	if g, ok := invalidKE(m); ok {
		if g == sa.group || !allowed(t.cfg.Phase1.DHGroups, g) || sa.keTry >= initRetries {
			ignore(message.INVALID_KE_PAYLOAD, fmt.Errorf("tunnel %s: peer wants DH group %d; phase 1 allows %v (asked %d times)", t.name, g, t.cfg.Phase1.DHGroups, sa.keTry+1))
			return
		}
		sa.keTry++
		t.log.Info("peer wants another DH group (INVALID_KE_PAYLOAD); retrying", "group", message.DHGroup(g))
		sa.group = g
		t.sendInit(sa)
		return
	}
	for _, n := range m.Notifies() {
		if n.NotifyType.IsError() {
			err := fmt.Errorf("tunnel %s: peer refused IKE_SA_INIT with %s", t.name, n.NotifyType)
			if n.NotifyType == message.NO_PROPOSAL_CHOSEN {
				err = fmt.Errorf("tunnel %s: NO_PROPOSAL_CHOSEN: the peer accepts none of our phase 1 proposals; ours: %s (phase 1 must match the peer's exactly)",
					t.name, message.FormatProposals(t.ikeProps))
			}
			ignore(n.NotifyType, err)
			return
		}
	}
	sp, ke, no := message.Find[*message.SA](m), message.Find[*message.KE](m), message.Find[*message.Nonce](m)
	if sp == nil || ke == nil || no == nil || len(sp.Proposals) != 1 || m.SPIr.IsZero() {
		ignore(message.INVALID_SYNTAX, fmt.Errorf("tunnel %s: IKE_SA_INIT response lacks SA, KE or Nonce", t.name))
		return
	}
	prop := sp.Proposals[0]
	if !message.Accepts(t.ikeProps, prop) || chosenDH(prop) != uint16(ke.Group) || uint16(ke.Group) != sa.group {
		ignore(message.NO_PROPOSAL_CHOSEN, fmt.Errorf("tunnel %s: peer chose %s, which we did not offer (%s)", t.name, prop, message.FormatProposals(t.ikeProps)))
		return
	}
	gir, err := sa.initPriv.SharedSecret(ke.Data)
	defer clear(gir)
	if err != nil {
		ignore(message.INVALID_SYNTAX, fmt.Errorf("tunnel %s: peer's KE: %v", t.name, err))
		return
	}
	sa.pend, sa.initPriv = nil, nil
	sa.lastHeard = t.now()
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
		t.failedUnauth(message.NO_PROPOSAL_CHOSEN, err)
		reply(message.Notify{NotifyType: message.NO_PROPOSAL_CHOSEN})
		return
	}
	if g := chosenDH(prop); g != uint16(ke.Group) {
		if line, ok := t.logUnauth(slog.LevelInfo); ok {
			line.Write("asking the peer for another DH group (INVALID_KE_PAYLOAD)", "offered", ke.Group, "want", message.DHGroup(g))
		}
		reply(message.InvalidKE(message.DHGroup(g)))
		return
	}
	priv, pub, err := keyExchange(uint16(ke.Group))
	if err != nil {
		return
	}
	gir, err := priv.SharedSecret(ke.Data)
	defer clear(gir)
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
		t.failedUnauth(0, fmt.Errorf("tunnel %s: deriving keys: %v", t.name, err))
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
	sa.ourInit = raw
	t.makeHalfOpenRoom()
	t.countHalfOpen(sa, true)
	t.addSA(sa)
	t.m.sock.send(raw, d.from, d.nat)
}

// maxHalfOpenPerPeer bounds the half-open SAs of one tunnel: the oldest
// goes for a new one (past cookiePerPeer each new one returned a cookie).
const maxHalfOpenPerPeer = 4

func (t *Tunnel) makeHalfOpenRoom() {
	var oldest *ikeSA
	n := 0
	for _, x := range t.sas {
		if x.state == saResponderInit {
			n++
			if oldest == nil || x.started.Before(oldest.started) {
				oldest = x
			}
		}
	}
	if n >= maxHalfOpenPerPeer {
		t.removeSA(oldest, "replaced by a newer half-open SA", nil)
	}
}

func (t *Tunnel) localPort(nat bool) uint16 {
	if nat {
		return t.m.sock.port4500
	}
	return t.m.sock.port500
}
