package ikev2

import (
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

// TestCookieSecret: a cookie made with an all-zero (or any guessable)
// secret never validates, in either slot; a real one validates for at
// most two rotation periods even if no cookie is made in between (§2.6).
func TestCookieSecret(t *testing.T) {
	clock := ike.NewFakeClock(time.Unix(1_800_000_000, 0))
	n := newSyncNode(t, clock, testTunnel("t1"), Options{}, 2500, 24500, 1500, 14500)
	s := n.m.sock
	ni, ip, spi := randBytes(32), loop, message.SPI{1, 2, 3, 4, 5, 6, 7, 8}
	var zero [32]byte
	for _, ver := range []byte{s.secretVer, s.secretVer - 1, s.secretVer + 1} {
		if s.validCookie(cookieWith(ver, zero[:], ni, ip, spi), ni, ip, spi) {
			t.Fatalf("a cookie made with an all-zero secret (version %d) validates", ver)
		}
	}
	c := s.makeCookie(ni, ip, spi)
	if !s.validCookie(c, ni, ip, spi) {
		t.Fatal("a fresh cookie does not validate")
	}
	if s.validCookie(c, ni, mustAddr("192.0.2.99"), spi) || s.validCookie(c, randBytes(32), ip, spi) {
		t.Fatal("a cookie validates for another address or nonce")
	}
	clock.Advance(cookieSecretRotation + time.Second)
	if !s.validCookie(c, ni, ip, spi) {
		t.Fatal("a cookie of the previous secret does not validate")
	}
	clock.Advance(cookieSecretRotation)
	if s.validCookie(c, ni, ip, spi) {
		t.Fatal("a cookie validates after two rotation periods")
	}
	for _, ver := range []byte{s.secretVer, s.secretVer - 1} {
		if s.validCookie(cookieWith(ver, zero[:], ni, ip, spi), ni, ip, spi) {
			t.Fatalf("after rotation a cookie made with an all-zero secret (version %d) validates", ver)
		}
	}
}

func countHalfOpen(t *Tunnel) int {
	n := 0
	for _, sa := range t.sas {
		if sa.state == saResponderInit {
			n++
		}
	}
	return n
}

// TestCookieFlood: IKE_SA_INIT requests spoofed from the peer's address
// (the spoofer cannot read our answers, so returns no cookie) leave at
// most cookiePerPeer half-open SAs, whatever the global threshold; ones
// that do return cookies (an on-path sender) at most maxHalfOpenPerPeer,
// the oldest replaced; and the real initiator still gets through, with
// its cookie.
func TestCookieFlood(t *testing.T) {
	cfg := testTunnel("t1")
	clock := ike.NewFakeClock(time.Unix(1_800_000_000, 0))
	a := newSyncNode(t, clock, cfg, Options{}, 1500, 14500, 2500, 24500)
	cb := cfg
	cb.StartupAction = config.StartupAdd
	b := newSyncNode(t, clock, cb, Options{}, 2500, 24500, 1500, 14500)
	peer := netipAddrPort(loop, 1500)
	for i := 0; i < 40; i++ {
		b.inject(initRequest(t, cfg, randSPI()), peer, false)
	}
	cookies := 0
	for _, p := range b.sent() {
		if m, err := message.Decode(p.b); err == nil && m.Notify(message.COOKIE) != nil {
			cookies++
		}
	}
	// Literal bounds: the test checks the limits, not the constants.
	if h := countHalfOpen(b.t); h > 2 || cookies != 40-h {
		t.Fatalf("40 spoofed IKE_SA_INIT: %d half-open (want ≤ 2), %d COOKIE answers", h, cookies)
	}
	for i := 0; i < 10; i++ {
		spi := randSPI()
		m, _ := message.Decode(initRequest(t, cfg, spi))
		no := message.Find[*message.Nonce](m)
		m.Payloads = append([]message.Payload{&message.Notify{NotifyType: message.COOKIE, Data: b.m.sock.makeCookie(no.Data, loop, spi)}}, m.Payloads...)
		raw, err := message.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		b.inject(raw, peer, false)
		clock.Advance(time.Millisecond)
	}
	b.sent()
	if h := countHalfOpen(b.t); h > 4 || int(b.t.halfOpen.Load()) != h || b.m.sock.halfOpen.Load() != int64(h) {
		t.Fatalf("after 10 with cookies: %d half-open (want ≤ 4), counted %d/%d", h, b.t.halfOpen.Load(), b.m.sock.halfOpen.Load())
	}
	a.t.initiate()
	pump(a, b)
	if !a.t.lc.Up() || !b.t.lc.Up() {
		t.Fatalf("the real initiator did not get through: a up %v, b up %v", a.t.lc.Up(), b.t.lc.Up())
	}
	if a.t.ike.cookie == nil {
		t.Fatal("the real initiator was not asked for a cookie")
	}
}

// TestInitWithResponderSPI: an IKE_SA_INIT request must have a zero SPIr
// (§3.1); one that carries one of our SPIs (copied from the wire) is
// dropped, not routed by that SPI past the cookie check and the limits.
func TestInitWithResponderSPI(t *testing.T) {
	_, b, _ := syncPair(t, testTunnel("t1"), Options{CookieThreshold: -1})
	b.sent()
	for _, spi := range []message.SPI{b.t.ike.spiR, b.t.ike.spiI} {
		raw := initRequest(t, testTunnel("t1"), randSPI())
		copy(raw[8:16], spi[:])
		b.inject(raw, netipAddrPort(loop, 1500), false)
	}
	if n, s := countHalfOpen(b.t), b.sent(); n != 0 || len(s) != 0 {
		t.Fatalf("IKE_SA_INIT with our SPI as SPIr: %d half-open SAs, %d answers", n, len(s))
	}
}
