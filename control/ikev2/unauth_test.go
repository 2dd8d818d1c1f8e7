package ikev2

import (
	"context"
	"encoding/binary"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"

	"github.com/cgw-project/cgw/control/ikev2/message"
)

// withChain replaces the payload chain of message raw (header kept) by
// chain, whose first payload is of type first, fixing the lengths.
func withChain(raw []byte, first message.PayloadType, chain []byte) []byte {
	b := append(append([]byte(nil), raw[:message.HeaderLen]...), chain...)
	b[16] = byte(first)
	binary.BigEndian.PutUint32(b[24:], uint32(len(b)))
	return b
}

// TestUnauthenticatedRequestDropped: requests from the peer's address
// with the SA's SPIs and the next message ID that fail before or at the
// integrity check — ICV, SK length, outer payload chain, an unknown
// critical payload outside SK — are dropped silently: no INVALID_SYNTAX
// (or any) answer, no message-ID advance, no change of the cached
// response (RFC 7296 §2.21.2, §3.10.1).
func TestUnauthenticatedRequestDropped(t *testing.T) {
	a, b, _ := syncPair(t, testTunnel("t1"), Options{})
	sa := b.t.ike
	from := netipAddrPort(loop, 1500)
	good := forged(sa, message.INFORMATIONAL, sa.expectMID, false, randBytes(80))
	skLen := len(good) - message.HeaderLen
	cases := map[string][]byte{
		"ICV":                good,
		"SK too short":       forged(sa, message.INFORMATIONAL, sa.expectMID, false, []byte{1, 2, 3}),
		"outer chain":        withChain(good, message.PayloadSK, []byte{0, 0, 0xff, 0xff, 1, 2, 3}),
		"SK length":          withChain(good, message.PayloadSK, append([]byte{0, 0, byte((skLen + 9) >> 8), byte(skLen + 9)}, good[message.HeaderLen+4:]...)),
		"critical unknown":   withChain(good, 200, append([]byte{byte(message.PayloadSK), 0x80, 0, 4}, good[message.HeaderLen:]...)),
		"CREATE_CHILD_SA":    forged(sa, message.CREATE_CHILD_SA, sa.expectMID, false, randBytes(80)),
		"IKE_AUTH":           forged(sa, message.IKE_AUTH, sa.expectMID, false, randBytes(80)),
		"unknown exchange":   forged(sa, 60, sa.expectMID, false, randBytes(80)),
		"response":           forged(sa, message.INFORMATIONAL, sa.nextMID, true, randBytes(80)),
		"response bad chain": withChain(forged(sa, message.INFORMATIONAL, sa.nextMID, true, nil), message.PayloadSK, []byte{0, 0, 0, 2}),
	}
	a.sent()
	for name, raw := range cases {
		before := snapshot(b.t)
		for _, nat := range []bool{false, true} {
			in := raw
			f := from
			if nat {
				in, f = message.AppendMarked(nil, raw), netipAddrPort(loop, 14500)
			}
			b.inject(in, f, nat)
			if s := b.sent(); len(s) > 0 {
				t.Errorf("%s (nat %v): answered with %d datagrams", name, nat, len(s))
			}
			if after := snapshot(b.t); after != before {
				t.Errorf("%s (nat %v) changed the tunnel:\n%s\nwas\n%s", name, nat, after, before)
			}
		}
	}
	// The tunnel still works: a liveness check from a is answered.
	a.t.sendLiveness(a.t.ike)
	pump(a, b)
	if a.t.ike.pend != nil || b.t.ike.expectMID != sa.expectMID {
		t.Fatalf("liveness check after the forgeries: pending %v, b expects %d", a.t.ike.pend != nil, b.t.ike.expectMID)
	}
}

// TestAuthenticatedMalformedAnswered: a request that authenticates but
// holds a malformed payload gets INVALID_SYNTAX and uses up its message
// ID (§2.21.2): the distinction is the integrity check, not the error.
func TestAuthenticatedMalformedAnswered(t *testing.T) {
	_, b, _ := syncPair(t, testTunnel("t1"), Options{})
	sa := b.t.ike
	mid := sa.expectMID
	b.inject(sealed(sa, message.INFORMATIONAL, mid, &message.Raw{PayloadType: message.PayloadKE, Data: []byte{1}}), netipAddrPort(loop, 1500), false)
	s := b.sent()
	if len(s) != 1 {
		t.Fatalf("%d answers, want 1", len(s))
	}
	m, err := message.DecodeEncrypted(s[0].b, sa.keys)
	if err != nil || m.Notify(message.INVALID_SYNTAX) == nil || !m.IsResponse() || m.MessageID != mid {
		t.Fatalf("answer %v (%v), want INVALID_SYNTAX for message %d", m, err, mid)
	}
	if sa.expectMID != mid+1 {
		t.Fatalf("expecting message %d, want %d", sa.expectMID, mid+1)
	}
}

// TestRetransmitAnswer: a retransmitted request is answered with the
// cached response only when it is byte-identical to the one answered and
// comes from the SA's peer address; the answer goes to the peer, at most
// resendBurst at once and then one a second (§2.1).
func TestRetransmitAnswer(t *testing.T) {
	a, b, clock := syncPair(t, testTunnel("t1"), Options{})
	peer := netipAddrPort(loop, 1500)
	a.t.sendLiveness(a.t.ike)
	req := a.sent()[0].b
	b.inject(req, peer, false)
	resp := b.sent()
	if len(resp) != 1 {
		t.Fatalf("%d answers to the liveness check", len(resp))
	}
	check := func(what string, want int) {
		t.Helper()
		s := b.sent()
		if len(s) != want {
			t.Fatalf("%s: %d answers, want %d", what, len(s), want)
		}
		for _, p := range s {
			if string(p.b) != string(resp[0].b) || p.to != peer {
				t.Fatalf("%s: answered %x… to %v, want the cached response to %v", what, p.b[:min(len(p.b), 32)], p.to, peer)
			}
		}
	}
	b.inject(req, netipAddrPort(mustAddr("192.0.2.99"), 1500), false)
	check("from another address", 0)
	b.t.handle(datagram{b: req, from: netipAddrPort(mustAddr("192.0.2.99"), 1500)})
	check("from another address, past the Socket", 0)
	for _, i := range []int{message.HeaderLen + 8, len(req) - 1} {
		bad := append([]byte(nil), req...)
		bad[i] ^= 1
		b.inject(bad, peer, false)
		check("not byte-identical", 0)
	}
	b.inject(append(req, 0), peer, false)
	check("trailing byte", 0)
	for i := 0; i < 10; i++ {
		b.inject(req, netipAddrPort(loop, 7), false) // same address, other port: still the peer
	}
	check("a burst of 10", resendBurst)
	clock.Advance(time.Second)
	b.inject(req, peer, false)
	b.inject(req, peer, false)
	check("a second later", 1)

	// The same for a responder's IKE_SA_INIT.
	cfg := testTunnel("t1")
	init := initRequest(t, cfg, message.SPI{9, 9, 9, 9, 9, 9, 9, 9})
	b.inject(init, peer, false)
	first := b.sent()
	if len(first) != 1 {
		t.Fatalf("%d answers to IKE_SA_INIT", len(first))
	}
	other := initRequest(t, cfg, message.SPI{9, 9, 9, 9, 9, 9, 9, 9})
	b.inject(other, peer, false)
	if s := b.sent(); len(s) != 0 {
		t.Fatalf("another IKE_SA_INIT with the same SPI got %d answers", len(s))
	}
	b.inject(init, peer, false)
	if s := b.sent(); len(s) != 1 || string(s[0].b) != string(first[0].b) {
		t.Fatalf("retransmitted IKE_SA_INIT: %d answers, want the cached one", len(s))
	}
}

// TestUnknownSourceNoState: our SPIs are on the wire for anyone to copy,
// but from an address that is not the tunnel's peer they reach nothing:
// an IKE_SA_INIT whose SPIi is one of ours makes no half-open SA, and a
// genuine request replayed from elsewhere is neither processed nor
// answered there.
func TestUnknownSourceNoState(t *testing.T) {
	a, b, _ := syncPair(t, testTunnel("t1"), Options{})
	evil := netipAddrPort(mustAddr("192.0.2.99"), 500)
	cfg := testTunnel("t1")
	nsas := len(b.t.sas)
	before := snapshot(b.t)
	for _, spi := range []message.SPI{b.t.ike.spiR, b.t.ike.spiI} {
		b.inject(initRequest(t, cfg, spi), evil, false)
		b.inject(message.AppendMarked(nil, initRequest(t, cfg, spi)), netipAddrPort(evil.Addr(), 4500), true)
	}
	a.t.sendLiveness(a.t.ike)
	req := a.sent()[0].b
	b.inject(req, evil, false)
	b.inject(forged(b.t.ike, message.INFORMATIONAL, b.t.ike.expectMID, false, randBytes(64)), evil, false)
	if s := b.sent(); len(s) != 0 {
		t.Fatalf("%d datagrams sent, the first to %v", len(s), s[0].to)
	}
	if len(b.t.sas) != nsas || b.m.sock.halfOpen.Load() != 0 {
		t.Fatalf("IKE SAs %d (was %d), half-open %d", len(b.t.sas), nsas, b.m.sock.halfOpen.Load())
	}
	if after := snapshot(b.t); after != before {
		t.Fatalf("input from %v changed the tunnel:\n%s\nwas\n%s", evil, after, before)
	}
	b.inject(req, netipAddrPort(loop, 1500), false)
	if s := b.sent(); len(s) != 1 || s[0].to != netipAddrPort(loop, 1500) {
		t.Fatalf("the genuine request from the peer: %d answers", len(s))
	}
}

type countHandler struct{ n *atomic.Int64 }

func (h countHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h countHandler) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h countHandler) WithGroup(string) slog.Handler             { return h }

// TestUnauthLogsLimited: a flood of unauthenticated input of every kind
// (IKE_SA_INIT from unknown addresses, forged requests and responses,
// IKE_SA_INIT from the peer's address that we must refuse) costs a few
// log lines, not one per datagram.
func TestUnauthLogsLimited(t *testing.T) {
	var lines atomic.Int64
	_, b, clock := syncPair(t, testTunnel("t1"), Options{Log: slog.New(countHandler{&lines})})
	lines.Store(0)
	cfg := testTunnel("t1")
	bad := cfg
	bad.Phase1.Encryption = []string{config.AES128}
	bad.Phase1.Integrity = []string{config.SHA1}
	sa := b.t.ike
	peer := netipAddrPort(loop, 1500)
	for i := 0; i < 200; i++ {
		b.inject(initRequest(t, cfg, randSPI()), netipAddrPort(mustAddr("192.0.2.99"), uint16(1000+i)), false)
		b.inject(forged(sa, message.INFORMATIONAL, sa.expectMID, false, randBytes(64)), peer, false)
		b.inject(forged(sa, message.INFORMATIONAL, sa.nextMID, true, randBytes(64)), peer, false)
		b.inject(initRequest(t, bad, randSPI()), peer, false)
		if i%50 == 0 {
			clock.Advance(time.Millisecond)
		}
	}
	b.sent()
	if n := lines.Load(); n > 10 {
		t.Fatalf("%d log lines for 800 unauthenticated datagrams in a moment", n)
	}
}
