package worker

import (
	"testing"

	"github.com/cgw-project/cgw/bpf"
)

// TestEveryReasonNamed: each Reason has its own metrics label, never the
// "unknown" a missing reasonNames entry gives.
func TestEveryReasonNamed(t *testing.T) {
	seen := map[string]Reason{}
	for r := Reason(1); r < NumReasons; r++ {
		n := r.String()
		if n == "unknown" || n == "" {
			t.Errorf("reason %d has no name in reasonNames", r)
			continue
		}
		if o, dup := seen[n]; dup {
			t.Errorf("reasons %d and %d share the name %q", o, r, n)
		}
		seen[n] = r
	}
}

// TestAccountManySAs: one inbound batch holding packets of more SAs than
// the per-batch accounting slots still counts every decrypted packet in
// the worker's totals as well as in each SA's shared counters.
func TestAccountManySAs(t *testing.T) {
	const nSA = 12 // more than cap(accts)
	b := newGateway(t, 0x1000, 0xb0b0b0b0, 1, 2, false)
	for i := uint32(1); i < nSA; i++ {
		spi := 0x1000 + i
		b.tb.SAs[10+i] = gcmSA(t, spi, 1, bpf.CgwSaDirInbound, 1, gwOut, peerOut)
		b.tb.Inbound[spi] = b.tb.Inbound[0x1000]
		in := b.tb.Inbound[spi]
		in.SaIndex = 10 + i
		b.tb.Inbound[spi] = in
	}
	b.tabs.Store(b.b.Build(b.tb))
	var pkts []Packet
	var bytes uint64
	for i := uint32(0); i < nSA; i++ {
		a := newGateway(t, 0xb0b0b0b0, 0x1000+i, 2, 1, false)
		sendOut(t, a, ipv4(lanHost, vpcHost, 100+int(i), 64, false, byte(i)))
		if len(a.out.Outside) != 1 {
			t.Fatalf("sender %d: drops %v", i, a.drops())
		}
		bytes += uint64(100 + i)
		pkts = append(pkts, move(t, a, b, a.out.Outside)...)
	}
	recvIn(t, b, pkts)
	if len(b.out.Inside) != nSA {
		t.Fatalf("delivered %d of %d; drops %v", len(b.out.Inside), nSA, b.drops())
	}
	var saPkts uint64
	for i := range b.ctr {
		saPkts += b.ctr[i].Packets
	}
	if saPkts != nSA {
		t.Fatalf("SA counters hold %d packets, want %d", saPkts, nSA)
	}
	if b.p.C.Packets[In] != nSA || b.p.C.Bytes[In] != bytes {
		t.Fatalf("worker counters: %d packets %d bytes, want %d and %d", b.p.C.Packets[In], b.p.C.Bytes[In], nSA, bytes)
	}
}
