package ikev2

import (
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

// TestUnauthLogRefusedAllocs: under a flood, once the log budget is
// spent, a refused line about unauthenticated input costs no allocation
// (issue #9): neither an IKE_SA_INIT from an unknown address (the socket's
// limiter, a path that allocates nothing else) nor a request failing its
// integrity check (the tunnel's; measured against copying and decoding
// it alone).
func TestUnauthLogRefusedAllocs(t *testing.T) {
	var lines atomic.Int64
	_, b, _ := syncPair(t, testTunnel("t1"), Options{Log: slog.New(countHandler{&lines})})
	budget := &ike.LogBudget{}
	b.m.sock.unknown.Budget, b.t.unauth.Budget = budget, budget
	cfg := testTunnel("t1")
	unknown := initRequest(t, cfg, randSPI())
	stranger := netipAddrPort(mustAddr("192.0.2.99"), 500)
	sa := b.t.ike
	bad := forged(sa, message.INFORMATIONAL, sa.expectMID, false, randBytes(80))
	peer := netipAddrPort(loop, 1500)
	for range 20 { // spend the limiters and the budget (the fake clock stands still)
		b.inject(unknown, stranger, false)
		b.inject(bad, peer, false)
	}
	lines.Store(0)
	if n := testing.AllocsPerRun(1000, func() { b.inject(unknown, stranger, false) }); n != 0 {
		t.Errorf("IKE_SA_INIT from an unknown address, line refused: %v allocations", n)
	}
	// What the drop costs without its log line: the copy handed to the
	// tunnel's loop, the decoding and the error's inspection.
	decode := testing.AllocsPerRun(1000, func() {
		_, err := message.DecodeEncrypted(append([]byte(nil), bad...), sa.keys)
		message.Verified(err)
	})
	if n := testing.AllocsPerRun(1000, func() { b.inject(bad, peer, false) }); n != decode {
		t.Errorf("request failing its integrity check, line refused: %v allocations, %v of them decoding it", n, decode)
	}
	if n := lines.Load(); n != 0 {
		t.Fatalf("%d lines written with the budget spent", n)
	}
	b.sent()
}

// BenchmarkDeliverUnknownPeer is a flood of IKE_SA_INIT from an unknown
// address once the log budget is spent: the cost of each refused line.
func BenchmarkDeliverUnknownPeer(b *testing.B) {
	_, n, _ := syncPair(b, testTunnel("t1"), Options{})
	n.m.sock.unknown.Budget = &ike.LogBudget{}
	pkt := initRequest(b, testTunnel("t1"), randSPI())
	from := netipAddrPort(mustAddr("192.0.2.99"), 500)
	for range 10 {
		n.m.sock.Deliver(pkt, from, false)
	}
	b.ReportAllocs()
	for b.Loop() {
		n.m.sock.Deliver(pkt, from, false)
	}
}
