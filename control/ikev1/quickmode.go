package ikev1

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cgw-project/cgw/control/ikev1/message"
	"github.com/cgw-project/cgw/crypto/dh"
)

// Quick Mode (RFC 2409 §5.5): the ESP SA pair, with PFS when phase 2
// has DH groups.

func (t *Tunnel) newSPI() uint32 { return t.m.spis.Alloc(t) }

func (t *Tunnel) releaseSPI(spis ...uint32) { t.m.spis.Release(t, spis...) }

func (t *Tunnel) encapMode() uint64 {
	if t.nat {
		return message.EncapUDPTunnel
	}
	return message.EncapTunnel
}

func (t *Tunnel) idPayloads() []message.Payload {
	return []message.Payload{{Type: message.PayloadID, Body: message.SubnetID(t.opt.LocalTS[0]).Encode()}, {Type: message.PayloadID, Body: message.SubnetID(t.opt.RemoteTS[0]).Encode()}}
}

func (t *Tunnel) startQuick(sa *p1SA, replaces *child) {
	if sa == nil || sa.state != mmDone {
		return
	}
	for _, q := range sa.qms {
		if q.initiator && !q.done {
			return
		}
	}
	cs := phase2Choices(t.cfg.Phase2)
	q := &quick{msgID: newMsgID(), initiator: true, choice: cs[0], ni: nonce(), inSPI: t.newSPI(), replaces: replaces}
	var trs []message.Transform
	for _, c := range cs {
		trs = append(trs, c.transform(t.encapMode()))
	}
	ps := []message.Payload{{Type: message.PayloadSA, Body: message.SA{Proposals: []message.Proposal{{Protocol: message.ProtoESP, SPI: binary.BigEndian.AppendUint32(nil, q.inSPI), Transforms: trs}}}.Encode()},
		{Type: message.PayloadNonce, Body: q.ni}}
	if g := cs[0].group; g != 0 {
		grp, err := dh.Lookup(g)
		if err != nil {
			t.failed(0, err)
			return
		}
		priv, pub, err := grp.Generate(rand.Reader)
		if err != nil {
			t.failed(0, err)
			return
		}
		q.priv = priv
		ps = append(ps, message.Payload{Type: message.PayloadKE, Body: pub})
	}
	ps = append(ps, t.idPayloads()...)
	q.iv0 = sa.crypt.ExchangeIV(sa.p1last, q.msgID)
	var pkt []byte
	pkt, q.iv = sa.sealHashed(message.ExchQuickMode, q.msgID, q.iv0, [][]byte{msgIDBytes(q.msgID)}, ps)
	sa.qms[q.msgID] = q
	q.req = t.newReq(pkt, nil)
	if replaces != nil {
		replaces.rekeying = true
	}
}

func (t *Tunnel) handleQuick(d datagram) {
	sa := t.findP1(d.h)
	if sa == nil || sa.state != mmDone || d.h.Flags&message.FlagEncryption == 0 {
		if line, ok := t.m.unauth(); ok {
			line.Write("quick mode message for no ISAKMP SA dropped", "tunnel", t.name, "from", d.from)
		}
		return
	}
	q := sa.qms[d.h.MsgID]
	if q != nil && string(q.lastIn) == string(d.b) {
		if q.lastReply != nil {
			t.m.send(q.lastReply, t.peer, t.nat)
		}
		return
	}
	var err error
	switch {
	case q == nil:
		if n := sa.peerQuicks(); n >= maxPeerQuick {
			if line, ok := t.m.unauth(); ok {
				line.Write("quick mode from the peer refused: too many under way", "tunnel", t.name, "under_way", n)
			}
			return
		}
		err = t.respQuick1(sa, d)
	case q.initiator && !q.done:
		err = t.initQuick2(sa, q, d)
	case !q.initiator && !q.done:
		err = t.respQuick3(sa, q, d)
	}
	if errors.Is(err, errUnauth) {
		// Nothing changed: the exchange waits for the real message.
		if line, ok := t.m.unauth(); ok {
			line.Write("quick mode message dropped", "tunnel", t.name, "from", d.from, "err", err)
		}
		return
	}
	if err != nil {
		t.failed(0, err)
		if q != nil && !q.done {
			t.dropQuick(sa, q)
		}
	}
}

// errUnauth marks a message that failed before its hash verified.
var errUnauth = errors.New("not authenticated")

func unauthErr(what string, err error) error {
	if err == nil {
		return fmt.Errorf("%s: %w", what, errUnauth)
	}
	return fmt.Errorf("%s (%v): %w", what, err, errUnauth)
}

// maxPeerQuick caps the Quick Modes the peer may have under way at once
// on one ISAKMP SA: each installs an inbound SA (a looping peer).
const maxPeerQuick = 4

func (sa *p1SA) peerQuicks() int {
	n := 0
	for _, q := range sa.qms {
		if !q.initiator && !q.done {
			n++
		}
	}
	return n
}

// dropQuick abandons an unfinished Quick Mode, removing the pair a
// responder already installed.
func (t *Tunnel) dropQuick(sa *p1SA, q *quick) {
	delete(sa.qms, q.msgID)
	if c := t.childByIn(q.inSPI); c != nil {
		t.removeChild(c)
	} else {
		t.releaseSPI(q.inSPI)
	}
	if q.replaces != nil {
		q.replaces.rekeying = false
	}
}

func (t *Tunnel) keymat(sa *p1SA, q *quick, gqm []byte) ChildSA {
	n := q.choice.suite.KeymatLen()
	in := sa.hash.IKEv1QuickKeymat(sa.keys.SKEYIDd, gqm, message.ProtoESP, msgIDBytes(q.inSPI), q.ni, q.nr, n)
	out := sa.hash.IKEv1QuickKeymat(sa.keys.SKEYIDd, gqm, message.ProtoESP, msgIDBytes(q.outSPI), q.ni, q.nr, n)
	c := ChildSA{InSPI: q.inSPI, OutSPI: q.outSPI, Suite: q.choice.suite, InKeymat: in, OutKeymat: out,
		Encap: t.nat, Local: t.cfg.LocalOutside, Peer: t.peer.Addr(), ReplayWindow: t.cfg.ReplayWindow, Lifetime: q.choice.lifetime}
	if t.nat {
		c.LocalPort, c.PeerPort = t.m.localPort(true), t.peer.Port()
	}
	return c
}

func (t *Tunnel) respQuick1(sa *p1SA, d datagram) error {
	iv0 := sa.crypt.ExchangeIV(sa.p1last, d.h.MsgID)
	m, next, err := sa.crypt.Open(d.h, d.b, iv0)
	if err != nil {
		return unauthErr("quick mode message 1 does not decrypt", err)
	}
	if !sa.checkHash(m, msgIDBytes(d.h.MsgID)) {
		return unauthErr("quick mode message 1: HASH(1) does not verify", nil)
	}
	t.heard(d)
	sp, np := message.Find(m.Payloads, message.PayloadSA), message.Find(m.Payloads, message.PayloadNonce)
	if sp == nil || np == nil {
		return errors.New("quick mode message 1: SA or Nonce missing")
	}
	sai, err := message.ParseSA(sp.Body)
	if err != nil {
		return err
	}
	keLen := -1
	if ke := message.Find(m.Payloads, message.PayloadKE); ke != nil {
		keLen = len(ke.Body)
	}
	c, spi, encap, ok := matchPhase2(sai, t.cfg.Phase2, keLen)
	if !ok {
		t.sendInfo(sa, []message.Payload{{Type: message.PayloadNotify, Body: message.Notify{Protocol: message.ProtoESP, Type: message.NotifyNoProposalChosen}.Encode()}})
		return errors.New("quick mode: no acceptable ESP proposal from the peer (check phase 2 encryption, integrity and PFS groups)")
	}
	q := &quick{msgID: d.h.MsgID, choice: c, ni: np.Body, nr: nonce(), outSPI: binary.BigEndian.Uint32(spi), encap: encap != message.EncapTunnel}
	var gqm []byte
	var kePub []byte
	if c.group != 0 {
		ke := message.Find(m.Payloads, message.PayloadKE)
		if ke == nil {
			return errors.New("quick mode: PFS group chosen but no KE payload")
		}
		grp, _ := dh.Lookup(c.group)
		priv, pub, err := grp.Generate(rand.Reader)
		if err != nil {
			return err
		}
		if gqm, err = priv.SharedSecret(ke.Body); err != nil {
			return err
		}
		kePub = pub
	}
	q.inSPI = t.newSPI()
	tr := c.transform(encap)
	ps := []message.Payload{{Type: message.PayloadSA, Body: message.SA{Proposals: []message.Proposal{{Num: sai.Proposals[0].Num, Protocol: message.ProtoESP, SPI: binary.BigEndian.AppendUint32(nil, q.inSPI), Transforms: []message.Transform{tr}}}}.Encode()},
		{Type: message.PayloadNonce, Body: q.nr}}
	if kePub != nil {
		ps = append(ps, message.Payload{Type: message.PayloadKE, Body: kePub})
	}
	for _, p := range m.Payloads {
		if p.Type == message.PayloadID {
			ps = append(ps, message.Payload{Type: message.PayloadID, Body: p.Body})
		}
	}
	t.install(t.keymat(sa, q, gqm))
	clear(gqm)
	pkt, iv := sa.sealHashed(message.ExchQuickMode, q.msgID, next, [][]byte{msgIDBytes(q.msgID), q.ni}, ps)
	q.iv, q.lastIn, q.lastReply = iv, d.b, pkt
	sa.qms[q.msgID] = q
	t.m.send(pkt, t.peer, t.nat)
	q.req = &request{pkt: pkt, next: t.now().Add(t.m.tim.RetransmitTimeout), wait: t.m.tim.RetransmitTimeout}
	return nil
}

func (t *Tunnel) respQuick3(sa *p1SA, q *quick, d datagram) error {
	m, _, err := sa.crypt.Open(d.h, d.b, q.iv)
	if err != nil {
		return unauthErr("quick mode message 3 does not decrypt", err)
	}
	if !sa.checkHash(m, []byte{0}, msgIDBytes(q.msgID), q.ni, q.nr) {
		return unauthErr("quick mode message 3: HASH(3) does not verify", nil)
	}
	t.heard(d)
	q.done, q.req, q.lastIn, q.lastReply = true, nil, d.b, nil
	c := t.childByIn(q.inSPI)
	if c == nil {
		return nil
	}
	old := t.out
	t.switchOut(c)
	if old != nil && old != c {
		// The peer replaced the pair. strongSwan keeps a rekeyed IKEv1 SA
		// until it expires (charon.delete_rekeyed = no), so we retire it
		// after the grace period and then tell the peer, as its initiator
		// would.
		old.tellPeer = true
		t.retire(old)
	}
	return nil
}

func (t *Tunnel) initQuick2(sa *p1SA, q *quick, d datagram) error {
	m, next, err := sa.crypt.Open(d.h, d.b, q.iv)
	if err != nil {
		return unauthErr("quick mode message 2 does not decrypt", err)
	}
	if !sa.checkHash(m, msgIDBytes(q.msgID), q.ni) {
		return unauthErr("quick mode message 2: HASH(2) does not verify", nil)
	}
	t.heard(d)
	sp, np := message.Find(m.Payloads, message.PayloadSA), message.Find(m.Payloads, message.PayloadNonce)
	if sp == nil || np == nil {
		return errors.New("quick mode message 2: SA or Nonce missing")
	}
	sar, err := message.ParseSA(sp.Body)
	if err != nil {
		return err
	}
	c, spi, encap, ok := matchPhase2(sar, t.cfg.Phase2, -1)
	if !ok {
		return errors.New("quick mode: the peer chose an ESP transform we did not offer")
	}
	q.choice, q.nr, q.outSPI, q.encap = c, np.Body, binary.BigEndian.Uint32(spi), encap != message.EncapTunnel
	var gqm []byte
	if q.priv != nil {
		ke := message.Find(m.Payloads, message.PayloadKE)
		if ke == nil {
			return errors.New("quick mode: PFS offered but the peer sent no KE payload")
		}
		if gqm, err = q.priv.SharedSecret(ke.Body); err != nil {
			return err
		}
	}
	cs := t.keymat(sa, q, gqm)
	clear(gqm)
	ch := t.install(cs)
	pkt, _ := sa.sealHashed(message.ExchQuickMode, q.msgID, next, [][]byte{{0}, msgIDBytes(q.msgID), q.ni, q.nr}, nil)
	// HASH(3) has no payloads after it: sealHashed hashes 0|M-ID|Ni|Nr.
	q.done, q.req, q.lastIn, q.lastReply = true, nil, d.b, pkt
	t.m.send(pkt, t.peer, t.nat)
	if old := q.replaces; old != nil && old != ch && t.out == old {
		// A rekey: keep sending on the old pair until the peer has had
		// time to install the new one (tick switches and deletes).
		ch.switchAt, ch.replaces = t.now().Add(rekeySwitchDelay), old
		return nil
	}
	ch.replaces = q.replaces
	t.finishRekey(ch)
	return nil
}

// finishRekey switches outbound from the replaced pair to c and retires
// the old pair after the grace period, telling the peer then.
func (t *Tunnel) finishRekey(c *child) {
	old := c.replaces
	c.switchAt, c.replaces = time.Time{}, nil
	if !c.retireAt.IsZero() {
		return
	}
	t.switchOut(c)
	if old != nil && old.retireAt.IsZero() {
		old.tellPeer = true
		t.retire(old)
	}
}
