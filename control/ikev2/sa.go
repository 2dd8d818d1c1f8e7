package ikev2

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
	"github.com/cgw-project/cgw/crypto/dh"
	"github.com/cgw-project/cgw/crypto/prf"
)

type saState int

const (
	saInitSent      saState = iota + 1 // initiator: IKE_SA_INIT sent
	saAuthSent                         // initiator: IKE_AUTH sent
	saResponderInit                    // responder: IKE_SA_INIT answered, waiting for IKE_AUTH
	saEstablished
)

func (s saState) String() string {
	switch s {
	case saInitSent:
		return "IKE_SA_INIT sent"
	case saAuthSent:
		return "IKE_AUTH sent"
	case saResponderInit:
		return "half-open"
	case saEstablished:
		return "established"
	}
	return "?"
}

// ikeSA is one IKE SA of a tunnel: the current one, a half-open one, or
// an old one being deleted after a rekey.
type ikeSA struct {
	initiator  bool // original initiator (sets the I flag, picks SK_ei/SK_ai)
	spiI, spiR message.SPI
	state      saState
	prop       message.Proposal
	prf        *prf.PRF
	sk         prf.IKESAKeys
	keys       *message.Keys
	ni, nr     []byte
	group      uint16
	cookie     []byte
	cookieTry  int
	keTry      int

	// Our IKE_SA_INIT exchange: its DH key, and the last answer that did
	// not complete it (reported if no valid one comes).
	initPriv   dh.Private
	initNotify message.NotifyType
	initErr    error

	ourInit, peerInit []byte // the IKE_SA_INIT messages, signed by AUTH (§2.15)

	nextMID   uint32          // our next request
	expectMID uint32          // the peer's next request
	lastResp  []byte          // cached response to the peer's last request (§2.1)
	lastReq   []byte          // that request, as received
	resends   ike.TokenBucket // of lastResp: not a log budget
	pend      *pending
	queue     []*pending

	peer      netip.AddrPort
	nat       bool      // on port 4500 with the non-ESP marker
	natSelf   bool      // we are behind a NAT (send keepalives)
	halfOpen  bool      // counted in Socket.halfOpen
	started   time.Time // IKE_SA_INIT sent or received
	created   time.Time // established
	rekeyAt   time.Time
	expireAt  time.Time
	lastHeard time.Time

	rekeyInFlight bool
	rekeyKETry    int       // INVALID_KE_PAYLOAD answers to our rekeys followed
	rekeyStarted  time.Time // when rekeyInFlight was set (status API's answer)
	ours, theirs  *rekeyRec // rekeys of this SA, for collisions (§2.8.1)
	deleting      bool
}

// wipe zeroes sa's secrets once it is gone (its ciphers in keys are
// opaque to us: dropping them is all Go allows).
func (sa *ikeSA) wipe() {
	for _, b := range [][]byte{sa.sk.SKd, sa.sk.SKai, sa.sk.SKar, sa.sk.SKei, sa.sk.SKer, sa.sk.SKpi, sa.sk.SKpr} {
		clear(b)
	}
	sa.initPriv = nil
}

func (sa *ikeSA) ourSPI() message.SPI {
	if sa.initiator {
		return sa.spiI
	}
	return sa.spiR
}

func (sa *ikeSA) info() *IKESAInfo {
	return &IKESAInfo{SPIi: ike.SPI(sa.spiI), SPIr: ike.SPI(sa.spiR), Proposal: sa.prop.String()}
}

// pending is a request of ours: sent and waiting for its response, or
// queued behind the one that is (we keep a window of one, §2.3).
type pending struct {
	exch     message.ExchangeType
	payloads []message.Payload
	raw      []byte
	mid      uint32
	next     time.Time
	wait     time.Duration
	tries    int
	maxTries int
	dpd      bool
	onResp   func(m *message.Message, raw []byte)
	onFail   func(err error)
}

// child is one Child SA pair.
type child struct {
	ChildSA
	owner    *ikeSA // the IKE SA it was made under (moved on IKE rekeys)
	created  time.Time
	rekeyAt  time.Time
	expireAt time.Time
	retireAt time.Time
	// tellPeerAt, when set, is when the peer is told to delete this pair
	// we replaced: a grace period after the switch away from it, not at
	// the switch (see replaced).
	tellPeerAt time.Time
	rekeying   bool
	keTry      int // INVALID_KE_PAYLOAD answers to our rekeys followed
	deleting   bool
	retired    bool
	// rekeyStarted is when rekeying was set (status API's answer).
	rekeyStarted time.Time
	ours         *rekeyRec
	theirs       *rekeyRec
}

// rekeyRec is one completed rekey exchange of an SA: its nonces decide a
// collision (§2.8.1: the SA made with the lowest of the four nonces is
// redundant).
type rekeyRec struct {
	ni, nr []byte
	child  *child
	sa     *ikeSA
}

func (r *rekeyRec) lowest() []byte {
	if bytes.Compare(r.ni, r.nr) < 0 {
		return r.ni
	}
	return r.nr
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randSPI() message.SPI {
	var s message.SPI
	for s.IsZero() {
		rand.Read(s[:])
	}
	return s
}

func spiBytes(spi uint32) []byte { return binary.BigEndian.AppendUint32(nil, spi) }

func spiOf(b []byte) uint32 {
	if len(b) != 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

type netipAddrPortT = netip.AddrPort

func netipAddrPort(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }
