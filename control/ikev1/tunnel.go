package ikev1

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/crypto/dh"
	"github.com/cgw-project/cgw/crypto/prf"
)

// errPSK: Main Mode's encrypted messages or hashes do not check out.
var errPSK = errors.New("the pre-shared keys differ (check pre_shared_key against the AWS tunnel's)")

type datagram struct {
	b    []byte
	h    Header
	from netip.AddrPort
	nat  bool
}

// Main Mode states.
const (
	mmSent1 = iota + 1 // initiator: waiting for message 2
	mmSent3            // initiator: waiting for message 4
	mmSent5            // initiator: waiting for message 6
	mmWait3            // responder: sent 2, waiting for 3
	mmWait5            // responder: sent 4, waiting for 5
	mmDone
)

// request is a message we retransmit until answered: a Main Mode
// message to its exchange's address (sa), any other to the tunnel's peer.
type request struct {
	pkt   []byte
	sa    *p1SA
	tries int
	next  time.Time
	wait  time.Duration
}

// p1SA is one ISAKMP SA.
type p1SA struct {
	ckyI, ckyR [8]byte
	initiator  bool
	state      int
	// peer and nat are where this exchange talks until it is
	// authenticated; only then do they become the tunnel's.
	peer      netip.AddrPort
	nat       bool
	gxiWait   []byte // responder: g^xi, kept until message 5 (DH deferred)
	authFail  bool   // responder: a message 5 failed to verify (reported once)
	choice    p1Choice
	hash      *prf.PRF
	saiB      []byte
	priv      dh.Private
	gxi, gxr  []byte
	ni, nr    []byte
	keys      prf.IKEv1Keys
	crypt     *Crypter
	iv        []byte // Phase 1 CBC chain
	p1last    []byte // last CBC block of Phase 1: seeds exchange IVs
	created   time.Time
	req       *request
	lastIn    []byte // last message received, to answer retransmissions
	lastReply []byte
	dpdSeq    uint32
	dpdSince  time.Time // first unanswered R-U-THERE
	dpdNext   time.Time
	deleteAt  time.Time // a replaced SA: when to delete it
	qms       map[uint32]*quick
	infoSeen  map[uint32]bool
}

// quick is one Quick Mode exchange.
type quick struct {
	msgID     uint32
	initiator bool
	iv0, iv   []byte
	choice    p2Choice
	ni, nr    []byte
	priv      dh.Private
	inSPI     uint32
	outSPI    uint32
	encap     bool
	req       *request
	lastIn    []byte
	lastReply []byte
	replaces  *child
	done      bool
}

// child is one installed SA pair.
type child struct {
	sa       ChildSA
	created  time.Time
	rekeyAt  time.Time
	expireAt time.Time
	retireAt time.Time
	rekeying bool
	deleted  bool
	// switchAt, when set, is when our Quick Mode rekey switches outbound
	// from replaces to this pair (see initQuick2).
	switchAt time.Time
	replaces *child
}

// rekeySwitchDelay is how long the Quick Mode initiator keeps sending on
// the pair it replaces after message 3: the responder installs its new
// inbound SA only when message 3 arrives (strongSwan does so in a worker
// thread while ESP is already flowing), so switching at once can lose the
// first packets. Both pairs are valid meanwhile.
const rekeySwitchDelay = 300 * time.Millisecond

// Tunnel runs one IKEv1 tunnel; its state lives in its goroutine.
type Tunnel struct {
	m    *Manager
	cfg  config.Tunnel
	opt  TunnelOptions
	name string
	cmds chan func()
	in   chan datagram
	quit chan struct{}
	done chan struct{}

	p1  *p1SA
	old []*p1SA // replaced ISAKMP SAs awaiting deletion
	// cands are Main Modes the peer (or anyone using its address)
	// started: unauthenticated, they touch nothing of the tunnel until
	// message 5 verifies (issue #9); at most maxCands, oldest replaced.
	cands       []*p1SA
	peer        netip.AddrPort
	nat         bool
	children    []*child
	out         *child
	up          bool
	lastInbound time.Time
	lastKeep    time.Time
	reinitAt    time.Time
	reinitWait  time.Duration
	p1s         []p1Choice
}

func newTunnel(m *Manager, c config.Tunnel, o TunnelOptions) (*Tunnel, error) {
	t := &Tunnel{m: m, cfg: c, opt: o, name: c.Name, cmds: make(chan func(), 16), in: make(chan datagram, 64),
		quit: make(chan struct{}), done: make(chan struct{}), peer: netip.AddrPortFrom(c.AWSOutside, o.PeerPort)}
	t.p1s = phase1Choices(c.Phase1)
	if len(t.p1s) == 0 {
		return nil, fmt.Errorf("tunnel %s: phase 1 has no IKEv1 proposal (IKEv1 needs AES-CBC with SHA1/SHA2 and a DH group)", c.Name)
	}
	if len(phase2Choices(c.Phase2)) == 0 {
		return nil, fmt.Errorf("tunnel %s: phase 2 has no ESP proposal", c.Name)
	}
	for _, g := range append(append([]int{}, c.Phase1.DHGroups...), c.Phase2.DHGroups...) {
		if _, err := dh.Lookup(dh.ID(g)); err != nil {
			return nil, fmt.Errorf("tunnel %s: DH group %d: %w", c.Name, g, err)
		}
	}
	return t, nil
}

// Name is the tunnel's name.
func (t *Tunnel) Name() string { return t.name }

func (t *Tunnel) post(d datagram) {
	select {
	case t.in <- d:
	default:
	}
}

func (t *Tunnel) do(f func()) bool {
	select {
	case t.cmds <- f:
		return true
	case <-t.done:
		return false
	}
}

func (t *Tunnel) now() time.Time { return t.m.clock.Now() }

func (t *Tunnel) emit(e Event) {
	e.Tunnel, e.Time = t.name, t.now()
	t.m.emit(e)
}

func (t *Tunnel) run() {
	defer close(t.done)
	if t.cfg.StartupAction == config.StartupStart {
		t.safely(t.initiate)
	}
	tick := time.NewTicker(t.m.opt.Tick)
	defer tick.Stop()
	for {
		select {
		case <-t.quit:
			return
		case f := <-t.cmds:
			t.safely(f)
		case d := <-t.in:
			t.safely(func() { t.handle(d) })
		case <-tick.C:
			t.safely(t.tick)
		}
	}
}

func (t *Tunnel) stop(ctx context.Context) {
	ch := make(chan struct{})
	if t.do(func() {
		defer close(ch)
		t.sendDeletes()
		t.down("shutdown", nil, false)
		for len(t.cands) > 0 {
			t.dropCand(t.cands[0])
		}
	}) {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	select {
	case <-t.quit:
	default:
		close(t.quit)
	}
	<-t.done
}

func randCky() (c [8]byte) {
	rand.Read(c[:])
	return c
}

func nonce() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// registerCky routes sa's messages to t; false if another tunnel's SA
// already has the cookie (a forged message 1 cannot take it over).
func (t *Tunnel) registerCky(sa *p1SA) bool {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	if o, ok := t.m.byCky[sa.ckyI]; ok && o != t {
		return false
	}
	t.m.byCky[sa.ckyI] = t
	return true
}

func (t *Tunnel) unregisterCky(sa *p1SA) {
	t.m.mu.Lock()
	if t.m.byCky[sa.ckyI] == t {
		delete(t.m.byCky, sa.ckyI)
	}
	t.m.mu.Unlock()
}

// ---- sending ----

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

// ---- Main Mode ----

func (t *Tunnel) initiate() {
	if t.p1 != nil && t.p1.state != mmDone {
		return
	}
	sa := &p1SA{ckyI: randCky(), initiator: true, state: mmSent1, created: t.now(), qms: map[uint32]*quick{}, infoSeen: map[uint32]bool{}}
	var trs []Transform
	for _, c := range t.p1s {
		trs = append(trs, c.transform())
	}
	sa.saiB = SA{Proposals: []Proposal{{Protocol: ProtoISAKMP, Transforms: trs}}}.Encode()
	if t.p1 == nil {
		t.peer = netip.AddrPortFrom(t.cfg.AWSOutside, t.opt.PeerPort)
		t.nat = false
	} else {
		t.old = append(t.old, t.p1)
	}
	sa.peer, sa.nat = t.peer, t.nat
	t.p1 = sa
	t.registerCky(sa)
	pkt := Encode(Header{CkyI: sa.ckyI, Exchange: ExchIdentityProt}, []Payload{{Type: PayloadSA, Body: sa.saiB},
		{Type: PayloadVID, Body: VIDNATT}, {Type: PayloadVID, Body: VIDDPD}})
	sa.req = t.newReq(pkt, sa)
	t.m.log.Info("main mode initiated", "tunnel", t.name, "peer", t.peer)
}

func (t *Tunnel) natd(sa *p1SA, a netip.AddrPort) []byte {
	ip := a.Addr().As4()
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], a.Port())
	return sa.hash.Hash(sa.ckyI[:], sa.ckyR[:], ip[:], p[:])
}

func (t *Tunnel) natdPayloads(sa *p1SA) []Payload {
	local := netip.AddrPortFrom(t.cfg.LocalOutside, t.m.localPort(sa.nat))
	return []Payload{{Type: PayloadNATD, Body: t.natd(sa, sa.peer)}, {Type: PayloadNATD, Body: t.natd(sa, local)}}
}

// checkNAT compares the peer's NAT-D hashes with the addresses we see
// (RFC 3947 §3.2) and floats to port 4500 if either side is behind a NAT
// or NAT-T is forced.
func (t *Tunnel) checkNAT(sa *p1SA, ps []Payload, peerSaw netip.AddrPort, onNATPort bool) {
	var hs [][]byte
	for _, p := range ps {
		if p.Type == PayloadNATD {
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
	c, err := NewCrypter(key, sa.hash)
	clear(key)
	if err != nil {
		return err
	}
	sa.crypt = c
	sa.iv = c.Phase1IV(sa.gxi, sa.gxr)
	return nil
}

func (t *Tunnel) idBody() []byte { return AddrID(t.cfg.LocalOutside).Encode() }

func (t *Tunnel) peerIDOK(b []byte) bool {
	id, err := ParseID(b)
	if err != nil {
		return false
	}
	// AWS and strongSwan identify by address; the PSK is per tunnel, so
	// the hash proves the peer, and the ID is only checked loosely.
	return id.Type == IDIPv4Addr || id.Type == 2 || id.Type == 3 || id.Type == 11
}

// follow moves an address to where an authenticated message came from:
// the peer floated (RFC 3947 §4) or moved behind a NAT, so answer on 4500
// where it came from; on 500 only while not floated.
func follow(peer *netip.AddrPort, nat *bool, d datagram) {
	switch {
	case d.nat:
		*peer, *nat = d.from, true
	case !*nat:
		*peer = d.from
	}
}

// heard records a message of the established SA whose hash verified: it
// shows the peer alive (RFC 3706 §5.3) and where it sends from. Nothing
// unauthenticated gets here (issue #9).
func (t *Tunnel) heard(d datagram) {
	t.lastInbound = t.now()
	follow(&t.peer, &t.nat, d)
}

func (t *Tunnel) handle(d datagram) {
	switch d.h.Exchange {
	case ExchIdentityProt:
		t.handleMain(d)
	case ExchQuickMode:
		t.handleQuick(d)
	case ExchInformation:
		t.handleInfo(d)
	}
}

// findP1 finds the ISAKMP SA (current or replaced) a header names.
func (t *Tunnel) findP1(h Header) *p1SA { return findCky(h, append([]*p1SA{t.p1}, t.old...)) }

// findMM is findP1 that also finds the peer's candidate Main Modes.
func (t *Tunnel) findMM(h Header) *p1SA {
	if sa := t.findP1(h); sa != nil {
		return sa
	}
	return findCky(h, t.cands)
}

func findCky(h Header, sas []*p1SA) *p1SA {
	for _, sa := range sas {
		// A zero responder cookie is message 1 (or its retransmission):
		// it belongs to the SA with that initiator cookie.
		if sa != nil && sa.ckyI == h.CkyI && (sa.ckyR == h.CkyR || sa.ckyR == [8]byte{} || h.CkyR == [8]byte{}) {
			return sa
		}
	}
	return nil
}

func (t *Tunnel) failed(n uint16, err error) {
	t.m.log.Warn("negotiation failed", "tunnel", t.name, "err", err, "notify", n)
	reason := "timeout or local error"
	if n != 0 {
		reason = NotifyName(n)
	}
	t.emit(Event{Type: NegotiationFailed, Notify: n, Err: err, Reason: reason})
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
			t.m.unauth("main mode message for no exchange", "tunnel", t.name, "from", d.from)
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
			n = NotifyAuthFailed
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
	m, err := Decode(d.b)
	if err != nil {
		return
	}
	p := Find(m.Payloads, PayloadSA)
	if p == nil {
		return
	}
	sai, err := ParseSA(p.Body)
	if err != nil {
		t.m.unauth("main mode message 1 dropped", "tunnel", t.name, "from", d.from, "err", err)
		return
	}
	c, tr, ok := matchPhase1(sai, t.p1s)
	if !ok {
		t.failed(NotifyNoProposalChosen, errors.New("main mode: no acceptable phase 1 proposal from the peer (check encryption, integrity, DH groups and pre-shared-key authentication)"))
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
	sar := SA{Proposals: []Proposal{{Num: sai.Proposals[0].Num, Protocol: ProtoISAKMP, Transforms: []Transform{tr}}}}
	pkt := Encode(Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: ExchIdentityProt},
		[]Payload{{Type: PayloadSA, Body: sar.Encode()}, {Type: PayloadVID, Body: VIDNATT}, {Type: PayloadVID, Body: VIDDPD}})
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
				n = NotifyAuthFailed
			}
			t.failed(n, err)
			return
		}
	}
	if err != nil {
		t.m.unauth("main mode message from the peer dropped", "tunnel", t.name, "from", d.from, "err", err)
		return
	}
	sa.lastIn = d.b
}

func (t *Tunnel) keNonce(sa *p1SA) ([]Payload, error) {
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
	return []Payload{{Type: PayloadKE, Body: pub}, {Type: PayloadNonce, Body: n}}, nil
}

func (t *Tunnel) initMain2(sa *p1SA, d datagram) error {
	m, err := Decode(d.b)
	if err != nil {
		return err
	}
	p := Find(m.Payloads, PayloadSA)
	if p == nil {
		return t.notifyErr(m, "main mode message 2 has no SA payload")
	}
	sar, err := ParseSA(p.Body)
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
	sa.req = t.newReq(Encode(Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: ExchIdentityProt}, ps), sa)
	return nil
}

func (t *Tunnel) notifyErr(m Message, what string) error {
	if n := Find(m.Payloads, PayloadN); n != nil {
		if nt, err := ParseNotify(n.Body); err == nil {
			return fmt.Errorf("%s; the peer sent notify %d", what, nt.Type)
		}
	}
	return errors.New(what)
}

func (sa *p1SA) peerKE(m Message) ([]byte, []byte, error) {
	ke, no := Find(m.Payloads, PayloadKE), Find(m.Payloads, PayloadNonce)
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
	m, err := Decode(d.b)
	if err != nil {
		return err
	}
	ke, gxy, err := sa.peerKE(m)
	if err != nil {
		return err
	}
	sa.gxr, sa.nr = ke, Find(m.Payloads, PayloadNonce).Body
	err = t.deriveP1(sa, gxy)
	clear(gxy)
	if err != nil {
		return err
	}
	t.checkNAT(sa, m.Payloads, d.from, d.nat)
	idb := t.idBody()
	hashI := sa.hash.IKEv1HashI(sa.keys.SKEYID, sa.gxi, sa.gxr, sa.ckyI[:], sa.ckyR[:], sa.saiB, idb)
	ps := []Payload{{Type: PayloadID, Body: idb}, {Type: PayloadHash, Body: hashI}}
	if len(t.old) == 0 {
		// INITIAL-CONTACT (RFC 2407 §4.6.3.3): the peer drops SAs it
		// still holds from before (our restart, DPD).
		ps = append(ps, Payload{Type: PayloadN, Body: Notify{Protocol: ProtoISAKMP, Type: NotifyInitialContact, SPI: append(sa.ckyI[:], sa.ckyR[:]...)}.Encode()})
	}
	var pkt []byte
	pkt, sa.iv = sa.crypt.Seal(Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: ExchIdentityProt}, ps, sa.iv)
	sa.state = mmSent5
	sa.req = t.newReq(pkt, sa)
	return nil
}

func (t *Tunnel) initMain6(sa *p1SA, d datagram) error {
	if d.h.Flags&FlagEncryption == 0 {
		m, _ := Decode(d.b)
		return t.notifyErr(m, "main mode message 6 is not encrypted")
	}
	m, next, err := sa.crypt.Open(d.h, d.b, sa.iv)
	if err != nil {
		return fmt.Errorf("main mode message 6 does not decrypt (%v): %w", err, errPSK)
	}
	id, h := Find(m.Payloads, PayloadID), Find(m.Payloads, PayloadHash)
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
	m, err := Decode(d.b)
	if err != nil {
		return err
	}
	ke, no := Find(m.Payloads, PayloadKE), Find(m.Payloads, PayloadNonce)
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
	ps := []Payload{{Type: PayloadKE, Body: sa.gxr}, {Type: PayloadNonce, Body: sa.nr}}
	if Find(m.Payloads, PayloadNATD) != nil {
		ps = append(ps, t.natdPayloads(sa)...)
		t.checkNAT(sa, m.Payloads, d.from, d.nat)
		sa.peer, sa.nat = d.from, d.nat // answer where message 3 came from; the initiator floats
	}
	pkt := Encode(Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: ExchIdentityProt}, ps)
	sa.lastReply = pkt
	sa.state = mmWait5
	t.m.send(pkt, sa.peer, sa.nat)
	return nil
}

func (t *Tunnel) respMain5(sa *p1SA, d datagram) error {
	if d.h.Flags&FlagEncryption == 0 {
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
	id, h := Find(m.Payloads, PayloadID), Find(m.Payloads, PayloadHash)
	if id == nil || h == nil || !t.peerIDOK(id.Body) {
		return errors.New("main mode message 5: ID or HASH payload missing (wrong pre-shared key?)")
	}
	want := sa.hash.IKEv1HashI(sa.keys.SKEYID, sa.gxi, sa.gxr, sa.ckyI[:], sa.ckyR[:], sa.saiB, id.Body)
	if !hmac.Equal(want, h.Body) {
		return fmt.Errorf("main mode: HASH_I does not verify: %w", errPSK)
	}
	idb := t.idBody()
	hashR := sa.hash.IKEv1HashR(sa.keys.SKEYID, sa.gxi, sa.gxr, sa.ckyI[:], sa.ckyR[:], sa.saiB, idb)
	pkt, last := sa.crypt.Seal(Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: ExchIdentityProt},
		[]Payload{{Type: PayloadID, Body: idb}, {Type: PayloadHash, Body: hashR}}, next)
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
	t.reinitWait = 0
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
	if t.reinitWait == 0 {
		t.reinitWait = t.m.tim.ReinitMin
	} else {
		t.reinitWait = min(t.reinitWait*2, t.m.tim.ReinitMax)
	}
	t.reinitAt = t.now().Add(t.reinitWait)
}

func (t *Tunnel) rekeyIKE() {
	if t.p1 == nil || t.p1.state != mmDone {
		return
	}
	t.initiate()
}

// ---- protected exchanges ----

func msgIDBytes(id uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], id)
	return b[:]
}

func newMsgID() uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		if v := binary.BigEndian.Uint32(b[:]); v != 0 {
			return v
		}
	}
}

// sealHashed builds HDR*, HASH(x), ps with HASH(x) = prf(SKEYID_a,
// pre | payloads after HASH) (RFC 2409 §5.5, §5.7).
func (sa *p1SA) sealHashed(exch uint8, msgID uint32, iv []byte, pre [][]byte, ps []Payload) (pkt, next []byte) {
	rest := EncodePayloads(ps)
	h := sa.hash.Sum(sa.keys.SKEYIDa, append(pre, rest)...)
	all := append([]Payload{{Type: PayloadHash, Body: h}}, ps...)
	return sa.crypt.Seal(Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: exch, MsgID: msgID}, all, iv)
}

// checkHash verifies that m starts with HASH(x) over pre | the rest.
func (sa *p1SA) checkHash(m Message, pre ...[]byte) bool {
	if len(m.Payloads) == 0 || m.Payloads[0].Type != PayloadHash {
		return false
	}
	h := sa.hash.Sum(sa.keys.SKEYIDa, append(pre, m.Raw[m.Payloads[0].End:])...)
	return hmac.Equal(h, m.Payloads[0].Body)
}

func (t *Tunnel) sendInfo(sa *p1SA, ps []Payload) {
	if sa == nil || sa.state != mmDone {
		return
	}
	id := newMsgID()
	iv := sa.crypt.ExchangeIV(sa.p1last, id)
	pkt, _ := sa.sealHashed(ExchInformation, id, iv, [][]byte{msgIDBytes(id)}, ps)
	t.m.send(pkt, t.peer, t.nat)
}

func (t *Tunnel) handleInfo(d datagram) {
	sa := t.findP1(d.h)
	if sa == nil {
		return
	}
	if d.h.Flags&FlagEncryption == 0 {
		if m, err := Decode(d.b); err == nil && sa.state != mmDone {
			err := t.notifyErr(m, "main mode failed")
			t.failed(0, err)
			t.dropP1(sa)
			if sa.initiator {
				t.scheduleReinit()
			}
		}
		return
	}
	if sa.state != mmDone || sa.infoSeen[d.h.MsgID] {
		return
	}
	if len(sa.infoSeen) > 1024 {
		clear(sa.infoSeen) // only replays of recent ones matter
	}
	m, _, err := sa.crypt.Open(d.h, d.b, sa.crypt.ExchangeIV(sa.p1last, d.h.MsgID))
	if err != nil || !sa.checkHash(m, msgIDBytes(d.h.MsgID)) {
		t.m.unauth("informational with bad hash dropped", "tunnel", t.name, "from", d.from)
		return
	}
	sa.infoSeen[d.h.MsgID] = true
	t.heard(d)
	for _, p := range m.Payloads[1:] {
		switch p.Type {
		case PayloadN:
			n, err := ParseNotify(p.Body)
			if err != nil {
				continue
			}
			switch n.Type {
			case NotifyRUThere:
				t.sendInfo(sa, []Payload{{Type: PayloadN, Body: Notify{Protocol: ProtoISAKMP, Type: NotifyRUThereAck, SPI: n.SPI, Data: n.Data}.Encode()}})
			case NotifyRUThereAck:
				if len(n.Data) == 4 && binary.BigEndian.Uint32(n.Data) == sa.dpdSeq {
					sa.dpdSince = time.Time{}
				}
			}
		case PayloadD:
			del, err := ParseDelete(p.Body)
			if err != nil {
				continue
			}
			t.peerDelete(sa, del)
		}
	}
}

func (t *Tunnel) peerDelete(sa *p1SA, d Delete) {
	switch d.Protocol {
	case ProtoISAKMP:
		t.m.log.Info("peer deleted the ISAKMP SA", "tunnel", t.name)
		t.dropP1(sa)
		if t.p1 == nil && t.out == nil {
			t.down("deleted by peer", nil, true)
		}
	case ProtoESP:
		for _, s := range d.SPIs {
			if len(s) != 4 {
				continue
			}
			spi := binary.BigEndian.Uint32(s)
			for _, c := range t.children {
				if c.sa.OutSPI == spi || c.sa.InSPI == spi {
					c.deleted = true
					t.retire(c)
					break
				}
			}
		}
		if t.out == nil {
			t.down("child SA deleted by peer", nil, true)
		}
	}
}

// ---- Quick Mode ----

func (t *Tunnel) newSPI() uint32 { return t.m.spis.Alloc(t) }

func (t *Tunnel) releaseSPI(spis ...uint32) { t.m.spis.Release(t, spis...) }

func (t *Tunnel) encapMode() uint64 {
	if t.nat {
		return EncapUDPTunnel
	}
	return EncapTunnel
}

func (t *Tunnel) idPayloads() []Payload {
	return []Payload{{Type: PayloadID, Body: SubnetID(t.opt.LocalTS[0]).Encode()}, {Type: PayloadID, Body: SubnetID(t.opt.RemoteTS[0]).Encode()}}
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
	var trs []Transform
	for _, c := range cs {
		trs = append(trs, c.transform(t.encapMode()))
	}
	ps := []Payload{{Type: PayloadSA, Body: SA{Proposals: []Proposal{{Protocol: ProtoESP, SPI: binary.BigEndian.AppendUint32(nil, q.inSPI), Transforms: trs}}}.Encode()},
		{Type: PayloadNonce, Body: q.ni}}
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
		ps = append(ps, Payload{Type: PayloadKE, Body: pub})
	}
	ps = append(ps, t.idPayloads()...)
	q.iv0 = sa.crypt.ExchangeIV(sa.p1last, q.msgID)
	var pkt []byte
	pkt, q.iv = sa.sealHashed(ExchQuickMode, q.msgID, q.iv0, [][]byte{msgIDBytes(q.msgID)}, ps)
	sa.qms[q.msgID] = q
	q.req = t.newReq(pkt, nil)
	if replaces != nil {
		replaces.rekeying = true
	}
}

func (t *Tunnel) handleQuick(d datagram) {
	sa := t.findP1(d.h)
	if sa == nil || sa.state != mmDone || d.h.Flags&FlagEncryption == 0 {
		t.m.unauth("quick mode message for no ISAKMP SA dropped", "tunnel", t.name, "from", d.from)
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
			t.m.unauth("quick mode from the peer refused: too many under way", "tunnel", t.name, "under_way", n)
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
		t.m.unauth("quick mode message dropped", "tunnel", t.name, "from", d.from, "err", err)
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
	in := sa.hash.IKEv1QuickKeymat(sa.keys.SKEYIDd, gqm, ProtoESP, msgIDBytes(q.inSPI), q.ni, q.nr, n)
	out := sa.hash.IKEv1QuickKeymat(sa.keys.SKEYIDd, gqm, ProtoESP, msgIDBytes(q.outSPI), q.ni, q.nr, n)
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
	sp, np := Find(m.Payloads, PayloadSA), Find(m.Payloads, PayloadNonce)
	if sp == nil || np == nil {
		return errors.New("quick mode message 1: SA or Nonce missing")
	}
	sai, err := ParseSA(sp.Body)
	if err != nil {
		return err
	}
	keLen := -1
	if ke := Find(m.Payloads, PayloadKE); ke != nil {
		keLen = len(ke.Body)
	}
	c, spi, encap, ok := matchPhase2(sai, t.cfg.Phase2, keLen)
	if !ok {
		t.sendInfo(sa, []Payload{{Type: PayloadN, Body: Notify{Protocol: ProtoESP, Type: NotifyNoProposalChosen}.Encode()}})
		return errors.New("quick mode: no acceptable ESP proposal from the peer (check phase 2 encryption, integrity and PFS groups)")
	}
	q := &quick{msgID: d.h.MsgID, choice: c, ni: np.Body, nr: nonce(), outSPI: binary.BigEndian.Uint32(spi), encap: encap != EncapTunnel}
	var gqm []byte
	var kePub []byte
	if c.group != 0 {
		ke := Find(m.Payloads, PayloadKE)
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
	ps := []Payload{{Type: PayloadSA, Body: SA{Proposals: []Proposal{{Num: sai.Proposals[0].Num, Protocol: ProtoESP, SPI: binary.BigEndian.AppendUint32(nil, q.inSPI), Transforms: []Transform{tr}}}}.Encode()},
		{Type: PayloadNonce, Body: q.nr}}
	if kePub != nil {
		ps = append(ps, Payload{Type: PayloadKE, Body: kePub})
	}
	for _, p := range m.Payloads {
		if p.Type == PayloadID {
			ps = append(ps, Payload{Type: PayloadID, Body: p.Body})
		}
	}
	t.install(t.keymat(sa, q, gqm))
	clear(gqm)
	pkt, iv := sa.sealHashed(ExchQuickMode, q.msgID, next, [][]byte{msgIDBytes(q.msgID), q.ni}, ps)
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
		// after the grace period and tell the peer, as its initiator would.
		t.sendInfo(sa, []Payload{{Type: PayloadD, Body: Delete{Protocol: ProtoESP, SPIs: [][]byte{msgIDBytes(old.sa.InSPI)}}.Encode()}})
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
	sp, np := Find(m.Payloads, PayloadSA), Find(m.Payloads, PayloadNonce)
	if sp == nil || np == nil {
		return errors.New("quick mode message 2: SA or Nonce missing")
	}
	sar, err := ParseSA(sp.Body)
	if err != nil {
		return err
	}
	c, spi, encap, ok := matchPhase2(sar, t.cfg.Phase2, -1)
	if !ok {
		return errors.New("quick mode: the peer chose an ESP transform we did not offer")
	}
	q.choice, q.nr, q.outSPI, q.encap = c, np.Body, binary.BigEndian.Uint32(spi), encap != EncapTunnel
	var gqm []byte
	if q.priv != nil {
		ke := Find(m.Payloads, PayloadKE)
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
	pkt, _ := sa.sealHashed(ExchQuickMode, q.msgID, next, [][]byte{{0}, msgIDBytes(q.msgID), q.ni, q.nr}, nil)
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

// finishRekey switches outbound from the replaced pair to c, tells the
// peer the old pair is gone and retires it after the grace period.
func (t *Tunnel) finishRekey(c *child) {
	old := c.replaces
	c.switchAt, c.replaces = time.Time{}, nil
	if !c.retireAt.IsZero() {
		return
	}
	t.switchOut(c)
	if old != nil && old.retireAt.IsZero() {
		if t.p1 != nil {
			t.sendInfo(t.p1, []Payload{{Type: PayloadD, Body: Delete{Protocol: ProtoESP, SPIs: [][]byte{msgIDBytes(old.sa.InSPI)}}.Encode()}})
		}
		t.retire(old)
	}
}

// ---- Child SA life cycle (make-before-break, DESIGN.md §2) ----

func (t *Tunnel) install(cs ChildSA) *child {
	now := t.now()
	c := &child{sa: cs, created: now, expireAt: now.Add(cs.Lifetime)}
	c.rekeyAt = now.Add(t.rekeyAfter(cs.Lifetime))
	if t.p1 != nil && !t.p1.initiator {
		// IKEv1 has no rekey collision rule: the ISAKMP responder waits
		// half its margin longer, so the initiator's Quick Mode usually
		// comes first and replaces the pair for both.
		c.rekeyAt = c.rekeyAt.Add(c.expireAt.Sub(c.rekeyAt) / 2)
	}
	if f := t.m.opt.InstallInbound; f != nil {
		if err := f(t.name, keymatCopy(cs)); err != nil {
			t.m.log.Warn("inbound SA install failed", "tunnel", t.name, "spi", fmt.Sprintf("%08x", cs.InSPI), "err", err)
		}
	}
	t.children = append(t.children, c)
	cc := keymatCopy(c.sa)
	t.emit(Event{Type: ChildSAInstalled, Child: &cc})
	t.m.log.Info("SA pair installed", "tunnel", t.name, "in", fmt.Sprintf("%08x", cs.InSPI), "out", fmt.Sprintf("%08x", cs.OutSPI), "suite", cs.Suite.String())
	return c
}

// rekeyAfter is ike.RekeyAfter with the tunnel's margin and fuzz.
func (t *Tunnel) rekeyAfter(life time.Duration) time.Duration {
	return ike.RekeyAfter(life, time.Duration(t.cfg.RekeyMargin), t.cfg.RekeyFuzz)
}

func (t *Tunnel) switchOut(c *child) {
	t.out = c
	cc := keymatCopy(c.sa)
	t.emit(Event{Type: OutboundSwitch, Child: &cc})
	if !t.up {
		t.up = true
		info := &IKESAInfo{}
		if t.p1 != nil {
			copy(info.SPIi[:], t.p1.ckyI[:])
			copy(info.SPIr[:], t.p1.ckyR[:])
			info.Proposal = t.p1.choice.String()
		}
		t.emit(Event{Type: TunnelUp, IKE: info})
	}
}

// retire removes c after the grace period (packets in flight still
// decrypt); retireAt is checked by tick.
func (t *Tunnel) retire(c *child) {
	if c.retireAt.IsZero() {
		c.retireAt = t.now().Add(t.m.tim.Grace)
	}
	if t.out == c {
		t.out = nil
		for _, o := range t.children {
			if o != c && o.retireAt.IsZero() {
				t.switchOut(o)
			}
		}
	}
}

func (t *Tunnel) removeChild(c *child) {
	for i, o := range t.children {
		if o == c {
			t.children = append(t.children[:i], t.children[i+1:]...)
			break
		}
	}
	t.releaseSPI(c.sa.InSPI)
	cc := keymatCopy(c.sa)
	wipeKeymat(&c.sa)
	t.emit(Event{Type: ChildSARetired, Child: &cc})
}

func (t *Tunnel) childByIn(spi uint32) *child {
	for _, c := range t.children {
		if c.sa.InSPI == spi {
			return c
		}
	}
	return nil
}

func (t *Tunnel) rekeyChild(c *child) {
	if c == nil || c.rekeying || t.p1 == nil || t.p1.state != mmDone {
		return
	}
	t.startQuick(t.p1, c)
}

func (t *Tunnel) rekeyChildSPI(spi uint32) {
	for _, c := range t.children {
		if c.sa.InSPI == spi || c.sa.OutSPI == spi {
			t.rekeyChild(c)
		}
	}
}

func (t *Tunnel) sendDeletes() {
	sa := t.p1
	if sa == nil || sa.state != mmDone {
		return
	}
	for _, c := range t.children {
		t.sendInfo(sa, []Payload{{Type: PayloadD, Body: Delete{Protocol: ProtoESP, SPIs: [][]byte{msgIDBytes(c.sa.InSPI)}}.Encode()}})
	}
	t.sendInfo(sa, []Payload{{Type: PayloadD, Body: Delete{Protocol: ProtoISAKMP, SPIs: [][]byte{append(sa.ckyI[:], sa.ckyR[:]...)}}.Encode()}})
}

// down drops every SA; with restart the tunnel initiates again after a
// back-off (startup action "start").
func (t *Tunnel) down(reason string, err error, restart bool) {
	for len(t.children) > 0 {
		t.removeChild(t.children[0])
	}
	t.out = nil
	if t.p1 != nil {
		for _, q := range t.p1.qms {
			if !q.done {
				t.releaseSPI(q.inSPI)
			}
		}
		t.dropP1(t.p1)
	}
	for _, o := range t.old {
		t.unregisterCky(o)
		o.wipe()
	}
	t.old = nil
	if t.up {
		t.up = false
		t.emit(Event{Type: TunnelDown, Reason: reason, Err: err})
	}
	if restart {
		t.scheduleReinit()
	}
}

// ---- timers ----

func (t *Tunnel) tick() {
	now := t.now()
	if !t.reinitAt.IsZero() && !now.Before(t.reinitAt) {
		t.reinitAt = time.Time{}
		if t.p1 == nil {
			t.initiate()
		}
	}
	for _, o := range append([]*p1SA(nil), t.old...) {
		if !o.deleteAt.IsZero() && !now.Before(o.deleteAt) {
			t.sendInfo(o, []Payload{{Type: PayloadD, Body: Delete{Protocol: ProtoISAKMP, SPIs: [][]byte{append(o.ckyI[:], o.ckyR[:]...)}}.Encode()}})
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
			t.removeChild(c)
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
	if t.up && t.out == nil {
		t.down("SA pair expired without a successor", nil, true)
	}
	t.dpd(now)
	if t.nat && t.p1 != nil && now.Sub(t.lastKeep) >= t.m.tim.Keepalive {
		t.lastKeep = now
		t.m.opt.Conn4500.WriteTo([]byte{0xff}, net.UDPAddrFromAddrPort(t.peer))
	}
}

// dpd sends R-U-THERE when neither IKE nor ESP was heard for the interval
// (RFC 3706 §5.3) and acts after interval × retries without an answer.
func (t *Tunnel) dpd(now time.Time) {
	sa := t.p1
	iv := time.Duration(t.cfg.DPD.Interval)
	if sa == nil || sa.state != mmDone || iv <= 0 || t.cfg.DPD.Action == config.DPDNone {
		return
	}
	if !sa.dpdSince.IsZero() && now.Sub(sa.dpdSince) >= iv*time.Duration(max(t.cfg.DPD.Retries, 1)) {
		err := fmt.Errorf("tunnel %s: dead peer: %s answered no R-U-THERE for %s (DPD %s × %d)", t.name, t.peer,
			now.Sub(sa.dpdSince), iv, t.cfg.DPD.Retries)
		t.emit(Event{Type: DPDTimeout, Err: err})
		t.m.log.Warn("peer is not answering", "err", err, "action", t.cfg.DPD.Action)
		t.down("dead peer", err, false)
		if t.cfg.DPD.Action == config.DPDRestart {
			t.initiate()
		} else {
			t.scheduleReinit()
		}
		return
	}
	if now.Before(sa.dpdNext) {
		return
	}
	if sa.dpdSince.IsZero() && now.Sub(t.lastInbound) < iv {
		sa.dpdNext = t.lastInbound.Add(iv)
		return
	}
	sa.dpdSeq++
	if sa.dpdSince.IsZero() {
		sa.dpdSince = now
	}
	sa.dpdNext = now.Add(iv)
	t.sendInfo(sa, []Payload{{Type: PayloadN, Body: Notify{Protocol: ProtoISAKMP, Type: NotifyRUThere,
		SPI: append(sa.ckyI[:], sa.ckyR[:]...), Data: binary.BigEndian.AppendUint32(nil, sa.dpdSeq)}.Encode()}})
}

// Status returns a snapshot of the tunnel.
func (t *Tunnel) Status() TunnelStatus {
	ch := make(chan TunnelStatus, 1)
	if !t.do(func() {
		s := TunnelStatus{Name: t.name, State: "down"}
		defer func() { ch <- s }() // also when status panics (safely recovers)
		s = t.status()
	}) {
		return TunnelStatus{Name: t.name, State: "down"}
	}
	return <-ch
}

func (t *Tunnel) status() TunnelStatus {
	now := t.now()
	s := TunnelStatus{Name: t.name, Peer: t.peer, Encap: t.nat, State: "down"}
	switch {
	case t.up:
		s.State = "up"
	case t.p1 != nil:
		s.State = "connecting"
	}
	if sa := t.p1; sa != nil && sa.state == mmDone {
		is := &IKEStatus{Initiator: sa.initiator, Proposal: sa.choice.String(), Age: now.Sub(sa.created), LifetimeLeft: sa.created.Add(sa.choice.lifetime).Sub(now)}
		copy(is.SPIi[:], sa.ckyI[:])
		copy(is.SPIr[:], sa.ckyR[:])
		s.IKE = is
	}
	for _, c := range t.children {
		s.Children = append(s.Children, ChildStatus{InSPI: c.sa.InSPI, OutSPI: c.sa.OutSPI, Suite: c.sa.Suite.String(), Active: c == t.out,
			Deleting: !c.retireAt.IsZero(), Age: now.Sub(c.created), LifetimeLeft: c.expireAt.Sub(now), RekeyIn: c.rekeyAt.Sub(now)})
	}
	return s
}
