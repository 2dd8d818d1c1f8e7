package ikev1

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev1/message"
	"github.com/cgw-project/cgw/crypto/dh"
	"github.com/cgw-project/cgw/crypto/prf"
)

// errPSK: Main Mode's encrypted messages or hashes do not check out.
var errPSK = errors.New("the pre-shared keys differ (check pre_shared_key against the AWS tunnel's)")

type datagram struct {
	b    []byte
	h    message.Header
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
	crypt     *message.Crypter
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
	// tellPeer: we replaced the pair, so the peer gets a Delete for it —
	// when we remove it, not at the switch (see removeReplaced).
	tellPeer bool
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
	loop *ike.Loop[datagram]

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
	lc          ike.Lifecycle // the SA pairs' events; up once one carries traffic
	lastInbound time.Time
	lastKeep    time.Time
	reinit      ike.Reinit
	p1s         []p1Choice
}

func newTunnel(m *Manager, c config.Tunnel, o TunnelOptions) (*Tunnel, error) {
	t := &Tunnel{m: m, cfg: c, opt: o, name: c.Name, peer: netip.AddrPortFrom(c.AWSOutside, o.PeerPort)}
	t.loop = ike.NewLoop[datagram](t.supervisor())
	t.lc = t.lifecycle()
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

// do runs f in the tunnel's goroutine.
func (t *Tunnel) do(f func()) bool { return t.loop.Do(f) }

func (t *Tunnel) now() time.Time { return t.m.clock.Now() }

func (t *Tunnel) emit(e Event) {
	e.Tunnel, e.Time = t.name, t.now()
	t.m.emit(e)
}

// run is the tunnel's goroutine. IKEv1's timers keep no list of their
// deadlines: tick polls them every Options.Tick.
func (t *Tunnel) run() {
	s := ike.Steps[datagram]{Handle: t.handle, Tick: t.tick, Every: t.m.opt.Tick}
	if t.cfg.StartupAction == config.StartupStart {
		s.Start = t.initiate
	}
	t.loop.Run(s)
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
	t.loop.Stop()
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
	case message.ExchIdentityProt:
		t.handleMain(d)
	case message.ExchQuickMode:
		t.handleQuick(d)
	case message.ExchInformation:
		t.handleInfo(d)
	}
}

// findP1 finds the ISAKMP SA (current or replaced) a header names.
func (t *Tunnel) findP1(h message.Header) *p1SA { return findCky(h, append([]*p1SA{t.p1}, t.old...)) }

// findMM is findP1 that also finds the peer's candidate Main Modes.
func (t *Tunnel) findMM(h message.Header) *p1SA {
	if sa := t.findP1(h); sa != nil {
		return sa
	}
	return findCky(h, t.cands)
}

func findCky(h message.Header, sas []*p1SA) *p1SA {
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
		reason = message.NotifyName(n)
	}
	t.emit(Event{Type: NegotiationFailed, Notify: n, Err: err, Reason: reason})
}

// Status returns a snapshot of the tunnel.
func (t *Tunnel) Status() TunnelStatus { return t.loop.Status(t.name, t.status) }

func (t *Tunnel) status() TunnelStatus {
	now := t.now()
	s := TunnelStatus{Name: t.name, Peer: t.peer, Encap: t.nat, State: "down"}
	switch {
	case t.lc.Up():
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
