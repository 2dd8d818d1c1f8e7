package ikev1

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev1/message"
)

// TestUnauthLogRefusedAllocs: under a flood, once the log budget is
// spent, a refused line about unauthenticated input costs no allocation
// (issue #9): a datagram for no tunnel (Manager.Deliver, which allocates
// nothing else), a quick mode message for no ISAKMP SA, and an
// informational with a bad hash (measured against decrypting it alone).
func TestUnauthLogRefusedAllocs(t *testing.T) {
	_, b, _ := syncPair(t, testTunnel("t1"))
	b.m.log = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b.m.unauthLog.Budget = &ike.LogBudget{}
	sa := b.t.p1
	stranger := netip.MustParseAddrPort("192.0.2.99:500")
	noTunnel := message.EncodeRaw(message.Header{CkyI: [8]byte{9}, CkyR: [8]byte{9}, Exchange: message.ExchQuickMode}, make([]byte, 32))
	h := message.Header{CkyI: [8]byte{7}, CkyR: [8]byte{7}, Exchange: message.ExchQuickMode, Flags: message.FlagEncryption}
	noSA := datagram{b: message.EncodeRaw(h, make([]byte, 32)), from: stranger}
	noSA.h, _ = message.DecodeHeader(noSA.b)
	var info datagram
	info.b = protected(sa, message.ExchInformation, 0x1234, sa.crypt.ExchangeIV(sa.p1last, 0x1234), message.PayloadNotify, make([]byte, 16), true)
	info.h, _ = message.DecodeHeader(info.b)
	info.from = netip.AddrPortFrom(loop, 1500)
	for range 10 { // spend the limiter and the budget (the fake clock stands still)
		b.m.Deliver(noTunnel, stranger, false)
	}
	if ok, _ := b.m.unauthLog.Allow(b.m.clock.Now()); ok {
		t.Fatal("the log budget is not spent")
	}
	if n := testing.AllocsPerRun(1000, func() { b.m.Deliver(noTunnel, stranger, false) }); n != 0 {
		t.Errorf("datagram for no tunnel, line refused: %v allocations", n)
	}
	if n := testing.AllocsPerRun(1000, func() { b.t.handle(noSA) }); n != 0 {
		t.Errorf("quick mode message for no ISAKMP SA, line refused: %v allocations", n)
	}
	decrypt := testing.AllocsPerRun(1000, func() {
		b.t.findP1(info.h)
		m, _, err := sa.crypt.Open(info.h, info.b, sa.crypt.ExchangeIV(sa.p1last, info.h.MsgID))
		if err == nil {
			sa.checkHash(m, msgIDBytes(info.h.MsgID))
		}
	})
	if n := testing.AllocsPerRun(1000, func() { b.t.handle(info) }); n != decrypt {
		t.Errorf("informational with a bad hash, line refused: %v allocations, %v of them decrypting it", n, decrypt)
	}
}

// BenchmarkDeliverNoTunnel is a flood of datagrams for no tunnel once
// the log budget is spent: the cost of each refused line.
func BenchmarkDeliverNoTunnel(b *testing.B) {
	m, err := New(Options{Conn500: newMemConn(1500), Conn4500: newMemConn(14500), Clock: ike.NewFakeClock(time.Unix(1_800_000_000, 0)),
		Log: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(b.Context())
	m.unauthLog.Budget = &ike.LogBudget{}
	pkt := message.EncodeRaw(message.Header{CkyI: [8]byte{9}, CkyR: [8]byte{9}, Exchange: message.ExchQuickMode}, make([]byte, 32))
	from := netip.MustParseAddrPort("192.0.2.99:500")
	for range 10 {
		m.Deliver(pkt, from, false)
	}
	b.ReportAllocs()
	for b.Loop() {
		m.Deliver(pkt, from, false)
	}
}
