package ikev1

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev1/message"
	"github.com/cgw-project/cgw/crypto/dh"
)

// Main Mode (RFC 2409 §5): six messages, identity protected, pre-shared
// keys; the peer's Main Modes run as candidates until message 5 verifies.

func (t *Tunnel) initiate() {
	if t.p1 != nil && t.p1.state != mmDone {
		return
	}
	sa := &p1SA{ckyI: randCky(), initiator: true, state: mmSent1, created: t.now(), qms: map[uint32]*quick{}, infoSeen: map[uint32]bool{}}
	var trs []message.Transform
	for _, c := range t.p1s {
		trs = append(trs, c.transform())
	}
	sa.saiB = message.SA{Proposals: []message.Proposal{{Protocol: message.ProtoISAKMP, Transforms: trs}}}.Encode()
	if t.p1 == nil {
		t.peer = netip.AddrPortFrom(t.cfg.AWSOutside, t.opt.PeerPort)
		t.nat = false
	} else {
		t.old = append(t.old, t.p1)
	}
	sa.peer, sa.nat = t.peer, t.nat
	t.p1 = sa
	t.registerCky(sa)
	pkt := message.Encode(message.Header{CkyI: sa.ckyI, Exchange: message.ExchIdentityProt}, []message.Payload{{Type: message.PayloadSA, Body: sa.saiB},
		{Type: message.PayloadVendor, Body: message.VIDNATT}, {Type: message.PayloadVendor, Body: message.VIDDPD}})
	sa.req = t.newReq(pkt, sa)
	t.m.log.Info("main mode initiated", "tunnel", t.name, "peer", t.peer)
}

func (t *Tunnel) natd(sa *p1SA, a netip.AddrPort) []byte {
	ip := a.Addr().As4()
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], a.Port())
	return sa.hash.Hash(sa.ckyI[:], sa.ckyR[:], ip[:], p[:])
}

func (t *Tunnel) natdPayloads(sa *p1SA) []message.Payload {
	local := netip.AddrPortFrom(t.cfg.LocalOutside, t.m.localPort(sa.nat))
	return []message.Payload{{Type: message.PayloadNATD, Body: t.natd(sa, sa.peer)}, {Type: message.PayloadNATD, Body: t.natd(sa, local)}}
}

// checkNAT compares the peer's NAT-D hashes with the addresses we see
// (RFC 3947 §3.2) and floats to port 4500 if either side is behind a NAT
// or NAT-T is forced.
func (t *Tunnel) checkNAT(sa *p1SA, ps []message.Payload, peerSaw netip.AddrPort, onNATPort bool) {
	var hs [][]byte
	for _, p := range ps {
		if p.Type == message.PayloadNATD {
			hs = append(hs, p.Body)
		}
	}
	if len(hs) < 2 {
		return // the peer does no NAT-T
	}
	local := netip.AddrPortFrom(t.cfg.LocalOutside, t.m.localPort(onNATPort))
	localNAT := !hmac.Equal(hs[0], t.natd(sa, local))
	peerNAT := true
	for _, h := range hs[1:] {
		if hmac.Equal(h, t.natd(sa, peerSaw)) {
			peerNAT = false
		}
	}
	if localNAT || peerNAT || t.cfg.NATTraversal == config.NATForce {
		sa.nat = true
		sa.peer = netip.AddrPortFrom(sa.peer.Addr(), t.opt.PeerNATPort)
		t.m.log.Info("NAT-T: floating to port 4500", "tunnel", t.name, "local_nat", localNAT, "peer_nat", peerNAT)
	}
}

func (t *Tunnel) deriveP1(sa *p1SA, gxy []byte) error {
	sa.keys = sa.hash.IKEv1PSK([]byte(t.cfg.PreSharedKey), sa.ni, sa.nr, gxy, sa.ckyI[:], sa.ckyR[:])
	key := sa.hash.IKEv1EncryptionKey(sa.keys.SKEYIDe, sa.choice.keyBits/8)
	c, err := message.NewCrypter(key, sa.hash)
	clear(key)
	if err != nil {
		return err
	}
	sa.crypt = c
	sa.iv = c.Phase1IV(sa.gxi, sa.gxr)
	return nil
}

func (t *Tunnel) idBody() []byte { return message.AddrID(t.cfg.LocalOutside).Encode() }

func (t *Tunnel) peerIDOK(b []byte) bool {
	id, err := message.ParseID(b)
	if err != nil {
		return false
	}
	// AWS and strongSwan identify by address; the PSK is per tunnel, so
	// the hash proves the peer, and the ID is only checked loosely.
	return id.Type == message.IDIPv4Addr || id.Type == 2 || id.Type == 3 || id.Type == 11
}

func (t *Tunnel) handleMain(d datagram) {
	sa := t.findMM(d.h)
	if sa != nil && sa.lastIn != nil && string(sa.lastIn) == string(d.b) {
		// A retransmission: answered only to the exchange's own address,
		// never reflected to the sender.
		if sa.lastReply != nil {
			to, nat := t.dest(sa)
			t.m.send(sa.lastReply, to, nat)
		}
		return
	}
	if sa == nil {
		if d.h.CkyR != ([8]byte{}) {
			if line, ok := t.m.unauth(); ok {
				line.Write("main mode message for no exchange", "tunnel", t.name, "from", d.from)
			}
			return
		}
		t.respondMain1(d)
		return
	}
	if !sa.initiator && sa.state != mmDone {
		t.candidateMain(sa, d)
		return
	}
	var err error
	switch sa.state {
	case mmSent1:
		err = t.initMain2(sa, d)
	case mmSent3:
		err = t.initMain4(sa, d)
	case mmSent5:
		err = t.initMain6(sa, d)
	default:
		return
	}
	if err != nil {
		var n uint16
		if errors.Is(err, errPSK) {
			n = message.NotifyAuthFailed
		}
		t.failed(n, err)
		if sa.state != mmDone {
			t.dropP1(sa)
			if sa.initiator {
				t.scheduleReinit()
			}
		}
		return
	}
	sa.lastIn = d.b
}

func (t *Tunnel) respondMain1(d datagram) {
	m, err := message.Decode(d.b)
	if err != nil {
		return
	}
	p := message.Find(m.Payloads, message.PayloadSA)
	if p == nil {
		return
	}
	sai, err := message.ParseSA(p.Body)
	if err != nil {
		if line, ok := t.m.unauth(); ok {
			line.Write("main mode message 1 dropped", "tunnel", t.name, "from", d.from, "err", err)
		}
		return
	}
	c, tr, ok := matchPhase1(sai, t.p1s)
	if !ok {
		t.failed(message.NotifyNoProposalChosen, errors.New("main mode: no acceptable phase 1 proposal from the peer (check encryption, integrity, DH groups and pre-shared-key authentication)"))
		return
	}
	// Anyone can send this with the peer's address: it becomes a
	// candidate beside the tunnel's SAs and exchanges, and replaces
	// nothing before its message 5 verifies (issue #9).
	sa := &p1SA{ckyI: d.h.CkyI, ckyR: randCky(), state: mmWait3, choice: c, hash: lookupHash(c.hash), saiB: p.Body, created: t.now(),
		peer: d.from, nat: d.nat, qms: map[uint32]*quick{}, infoSeen: map[uint32]bool{}}
	if !t.registerCky(sa) {
		return
	}
	if len(t.cands) >= maxCands {
		t.dropCand(t.cands[0])
	}
	t.cands = append(t.cands, sa)
	tr.Num = 1
	sar := message.SA{Proposals: []message.Proposal{{Num: sai.Proposals[0].Num, Protocol: message.ProtoISAKMP, Transforms: []message.Transform{tr}}}}
	pkt := message.Encode(message.Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: message.ExchIdentityProt},
		[]message.Payload{{Type: message.PayloadSA, Body: sar.Encode()}, {Type: message.PayloadVendor, Body: message.VIDNATT}, {Type: message.PayloadVendor, Body: message.VIDDPD}})
	sa.lastIn, sa.lastReply = d.b, pkt
	t.m.send(pkt, sa.peer, sa.nat)
}

// maxCands bounds the Main Modes the peer may have under way at once per
// tunnel; a new one replaces the oldest (the real peer retransmits).
const maxCands = 4

func (t *Tunnel) dropCand(sa *p1SA) {
	for i, o := range t.cands {
		if o == sa {
			t.cands = append(t.cands[:i], t.cands[i+1:]...)
			t.unregisterCky(sa)
			sa.wipe()
			return
		}
	}
}

// candidateMain runs messages 3 and 5 of a Main Mode the peer started.
// Until message 5 verifies nothing it receives is authenticated: a
// message that does not fit is dropped and the exchange waits for the
// right one (or expires), so a forged one cannot end it either.
func (t *Tunnel) candidateMain(sa *p1SA, d datagram) {
	var err error
	switch sa.state {
	case mmWait3:
		err = t.respMain3(sa, d)
	case mmWait5:
		err = t.respMain5(sa, d)
		if err != nil && !sa.authFail {
			// Reported once per exchange: the operator's wrong key, or a
			// forgery (which then needed messages 2 and 4).
			sa.authFail = true
			var n uint16
			if errors.Is(err, errPSK) {
				n = message.NotifyAuthFailed
			}
			t.failed(n, err)
			return
		}
	}
	if err != nil {
		if line, ok := t.m.unauth(); ok {
			line.Write("main mode message from the peer dropped", "tunnel", t.name, "from", d.from, "err", err)
		}
		return
	}
	sa.lastIn = d.b
}

func (t *Tunnel) keNonce(sa *p1SA) ([]message.Payload, error) {
	g, err := dh.Lookup(sa.choice.group)
	if err != nil {
		return nil, err
	}
	priv, pub, err := g.Generate(rand.Reader)
	if err != nil {
		return nil, err
	}
	sa.priv = priv
	n := nonce()
	if sa.initiator {
		sa.gxi, sa.ni = pub, n
	} else {
		sa.gxr, sa.nr = pub, n
	}
	return []message.Payload{{Type: message.PayloadKE, Body: pub}, {Type: message.PayloadNonce, Body: n}}, nil
}

func (t *Tunnel) initMain2(sa *p1SA, d datagram) error {
	m, err := message.Decode(d.b)
	if err != nil {
		return err
	}
	p := message.Find(m.Payloads, message.PayloadSA)
	if p == nil {
		return t.notifyErr(m, "main mode message 2 has no SA payload")
	}
	sar, err := message.ParseSA(p.Body)
	if err != nil {
		return err
	}
	c, _, ok := matchPhase1(sar, t.p1s)
	if !ok {
		return errors.New("main mode: the peer chose a transform we did not offer")
	}
	sa.ckyR, sa.choice, sa.hash = d.h.CkyR, c, lookupHash(c.hash)
	ps, err := t.keNonce(sa)
	if err != nil {
		return err
	}
	ps = append(ps, t.natdPayloads(sa)...)
	sa.state = mmSent3
	sa.req = t.newReq(message.Encode(message.Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: message.ExchIdentityProt}, ps), sa)
	return nil
}

func (t *Tunnel) notifyErr(m message.Message, what string) error {
	if n := message.Find(m.Payloads, message.PayloadNotify); n != nil {
		if nt, err := message.ParseNotify(n.Body); err == nil {
			return fmt.Errorf("%s; the peer sent notify %d", what, nt.Type)
		}
	}
	return errors.New(what)
}

func (sa *p1SA) peerKE(m message.Message) ([]byte, []byte, error) {
	ke, no := message.Find(m.Payloads, message.PayloadKE), message.Find(m.Payloads, message.PayloadNonce)
	if ke == nil || no == nil {
		return nil, nil, errors.New("main mode: KE or Nonce payload missing")
	}
	if len(no.Body) < 8 || len(no.Body) > 256 {
		return nil, nil, fmt.Errorf("main mode: nonce of %d bytes (RFC 2409 §5: 8–256)", len(no.Body))
	}
	gxy, err := sa.priv.SharedSecret(ke.Body)
	if err != nil {
		return nil, nil, err
	}
	return ke.Body, gxy, nil
}

func (t *Tunnel) initMain4(sa *p1SA, d datagram) error {
	m, err := message.Decode(d.b)
	if err != nil {
		return err
	}
	ke, gxy, err := sa.peerKE(m)
	if err != nil {
		return err
	}
	sa.gxr, sa.nr = ke, message.Find(m.Payloads, message.PayloadNonce).Body
	err = t.deriveP1(sa, gxy)
	clear(gxy)
	if err != nil {
		return err
	}
	t.checkNAT(sa, m.Payloads, d.from, d.nat)
	idb := t.idBody()
	hashI := sa.hash.IKEv1HashI(sa.keys.SKEYID, sa.gxi, sa.gxr, sa.ckyI[:], sa.ckyR[:], sa.saiB, idb)
	ps := []message.Payload{{Type: message.PayloadID, Body: idb}, {Type: message.PayloadHash, Body: hashI}}
	if len(t.old) == 0 {
		// INITIAL-CONTACT (RFC 2407 §4.6.3.3): the peer drops SAs it
		// still holds from before (our restart, DPD).
		ps = append(ps, message.Payload{Type: message.PayloadNotify, Body: message.Notify{Protocol: message.ProtoISAKMP, Type: message.NotifyInitialContact, SPI: append(sa.ckyI[:], sa.ckyR[:]...)}.Encode()})
	}
	var pkt []byte
	pkt, sa.iv = sa.crypt.Seal(message.Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: message.ExchIdentityProt}, ps, sa.iv)
	sa.state = mmSent5
	sa.req = t.newReq(pkt, sa)
	return nil
}

func (t *Tunnel) initMain6(sa *p1SA, d datagram) error {
	if d.h.Flags&message.FlagEncryption == 0 {
		m, _ := message.Decode(d.b)
		return t.notifyErr(m, "main mode message 6 is not encrypted")
	}
	m, next, err := sa.crypt.Open(d.h, d.b, sa.iv)
	if err != nil {
		return fmt.Errorf("main mode message 6 does not decrypt (%v): %w", err, errPSK)
	}
	id, h := message.Find(m.Payloads, message.PayloadID), message.Find(m.Payloads, message.PayloadHash)
	if id == nil || h == nil || !t.peerIDOK(id.Body) {
		return errors.New("main mode message 6: ID or HASH payload missing (wrong pre-shared key?)")
	}
	want := sa.hash.IKEv1HashR(sa.keys.SKEYID, sa.gxi, sa.gxr, sa.ckyI[:], sa.ckyR[:], sa.saiB, id.Body)
	if !hmac.Equal(want, h.Body) {
		return fmt.Errorf("main mode: HASH_R does not verify: %w", errPSK)
	}
	sa.iv, sa.p1last = next, next
	sa.req = nil
	follow(&sa.peer, &sa.nat, d)
	t.established(sa)
	return nil
}

// respMain3 answers with our KE and nonce. The shared secret waits for
// message 5: a forged message 3 costs one key generation, not two.
func (t *Tunnel) respMain3(sa *p1SA, d datagram) error {
	m, err := message.Decode(d.b)
	if err != nil {
		return err
	}
	ke, no := message.Find(m.Payloads, message.PayloadKE), message.Find(m.Payloads, message.PayloadNonce)
	if ke == nil || no == nil {
		return errors.New("main mode message 3: KE or Nonce payload missing")
	}
	if len(no.Body) < 8 || len(no.Body) > 256 {
		return fmt.Errorf("main mode: nonce of %d bytes (RFC 2409 §5: 8–256)", len(no.Body))
	}
	if _, err := t.keNonce(sa); err != nil {
		return err
	}
	sa.gxiWait, sa.ni = ke.Body, no.Body
	sa.peer, sa.nat = d.from, d.nat
	ps := []message.Payload{{Type: message.PayloadKE, Body: sa.gxr}, {Type: message.PayloadNonce, Body: sa.nr}}
	if message.Find(m.Payloads, message.PayloadNATD) != nil {
		ps = append(ps, t.natdPayloads(sa)...)
		t.checkNAT(sa, m.Payloads, d.from, d.nat)
		sa.peer, sa.nat = d.from, d.nat // answer where message 3 came from; the initiator floats
	}
	pkt := message.Encode(message.Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: message.ExchIdentityProt}, ps)
	sa.lastReply = pkt
	sa.state = mmWait5
	t.m.send(pkt, sa.peer, sa.nat)
	return nil
}

func (t *Tunnel) respMain5(sa *p1SA, d datagram) error {
	if d.h.Flags&message.FlagEncryption == 0 {
		return errors.New("main mode message 5 is not encrypted")
	}
	if sa.crypt == nil {
		gxy, err := sa.priv.SharedSecret(sa.gxiWait)
		if err != nil {
			return err
		}
		sa.gxi = sa.gxiWait
		err = t.deriveP1(sa, gxy)
		clear(gxy)
		if err != nil {
			return err
		}
	}
	m, next, err := sa.crypt.Open(d.h, d.b, sa.iv)
	if err != nil {
		return fmt.Errorf("main mode message 5 does not decrypt (%v): %w", err, errPSK)
	}
	id, h := message.Find(m.Payloads, message.PayloadID), message.Find(m.Payloads, message.PayloadHash)
	if id == nil || h == nil || !t.peerIDOK(id.Body) {
		return errors.New("main mode message 5: ID or HASH payload missing (wrong pre-shared key?)")
	}
	want := sa.hash.IKEv1HashI(sa.keys.SKEYID, sa.gxi, sa.gxr, sa.ckyI[:], sa.ckyR[:], sa.saiB, id.Body)
	if !hmac.Equal(want, h.Body) {
		return fmt.Errorf("main mode: HASH_I does not verify: %w", errPSK)
	}
	idb := t.idBody()
	hashR := sa.hash.IKEv1HashR(sa.keys.SKEYID, sa.gxi, sa.gxr, sa.ckyI[:], sa.ckyR[:], sa.saiB, idb)
	pkt, last := sa.crypt.Seal(message.Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: message.ExchIdentityProt},
		[]message.Payload{{Type: message.PayloadID, Body: idb}, {Type: message.PayloadHash, Body: hashR}}, next)
	sa.iv, sa.p1last = last, last
	sa.lastReply, sa.lastIn = pkt, d.b
	follow(&sa.peer, &sa.nat, d)
	t.m.send(pkt, sa.peer, sa.nat)
	t.adopt(sa)
	t.established(sa)
	return nil
}

// adopt makes an authenticated candidate the tunnel's ISAKMP SA: the
// current one is replaced (deleted after the grace period), a Main Mode
// of ours under way is abandoned.
func (t *Tunnel) adopt(sa *p1SA) {
	for i, o := range t.cands {
		if o == sa {
			t.cands = append(t.cands[:i], t.cands[i+1:]...)
		}
	}
	if t.p1 != nil && t.p1.state != mmDone {
		t.dropP1(t.p1)
	}
	if t.p1 != nil {
		t.old = append(t.old, t.p1)
	}
	t.p1 = sa
}

func (t *Tunnel) established(sa *p1SA) {
	t.peer, t.nat = sa.peer, sa.nat
	t.lastInbound = t.now()
	sa.state = mmDone
	sa.created = t.now()
	sa.dpdNext = time.Time{}
	t.m.log.Info("ISAKMP SA established", "tunnel", t.name, "proposal", sa.choice.String(), "initiator", sa.initiator, "nat", t.nat)
	// A replaced ISAKMP SA is deleted once its successor is up; Quick
	// Mode SAs are independent of it (RFC 2409 §5.5).
	if len(t.old) > 0 {
		info := &IKESAInfo{Proposal: sa.choice.String()}
		copy(info.SPIi[:], sa.ckyI[:])
		copy(info.SPIr[:], sa.ckyR[:])
		t.emit(Event{Type: IKERekeyed, IKE: info})
	}
	// The peer moves its SA pairs to the new ISAKMP SA once that is up
	// (strongSwan adopts them); deleting the old SA at once could race
	// with that, so it goes after the grace period.
	for _, o := range t.old {
		o.deleteAt = t.now().Add(t.m.tim.Grace)
	}
	if sa.initiator && t.out == nil {
		t.startQuick(sa, nil)
	}
}

func (t *Tunnel) dropP1(sa *p1SA) {
	t.unregisterCky(sa)
	sa.wipe()
	if t.p1 == sa {
		t.p1 = nil
	}
	for i, o := range t.old {
		if o == sa {
			t.old = append(t.old[:i], t.old[i+1:]...)
			break
		}
	}
}

func (t *Tunnel) scheduleReinit() {
	if t.cfg.StartupAction != config.StartupStart {
		return
	}
	t.reinit.Schedule(t.now(), t.m.tim)
}

func (t *Tunnel) rekeyIKE() {
	if t.p1 == nil || t.p1.state != mmDone {
		return
	}
	t.initiate()
}
