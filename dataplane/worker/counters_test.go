package worker

import (
	"reflect"
	"testing"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/dataplane/esp"
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
		b.tb.SAs[10+i] = gcmSA(t, spi, 1, maps.DirInbound, 1, gwOut, peerOut)
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
	if c := b.p.Counters(); c.Packets[In] != nSA || c.Bytes[In] != bytes || *c != b.p.c.Counters {
		t.Fatalf("worker counters published: %d packets %d bytes, want %d and %d (all published: %v)",
			c.Packets[In], c.Bytes[In], nSA, bytes, *c == b.p.c.Counters)
	}
}

// TestSPIJustInstalled: XDP steers a new SPI as soon as control writes
// it, before the worker's view has the SA. A view published since the
// batch's was loaded is used for it; if none is yet, the drop is counted
// as spi_not_applied (not unknown_spi) and one snapshot is asked for per
// generation.
func TestSPIJustInstalled(t *testing.T) {
	a, b := pair(t)
	// b's tables without its inbound SA: the view before the install.
	old := newTables(t, 0xa0a0a0a0, 0xb0b0b0b0, 1, 2)
	delete(old.Inbound, 0xa0a0a0a0)
	old.Generation = 1
	stale := b.b.Build(old)
	if stale.InboundSA(0xa0a0a0a0) != nil {
		t.Fatal("setup: the old view has the SA")
	}

	// The newer view is published while the batch runs with the old one.
	sendOut(t, a, ipv4(lanHost, vpcHost, 100, 64, false, 1))
	batch := append(b.p.NewBatch(), move(t, a, b, a.out.Outside)...)
	b.out.Reset()
	b.p.Inbound(stale, batch, b.out)
	if len(b.out.Inside) != 1 || b.p.c.LateView != 1 {
		t.Fatalf("with a newer view published: delivered %d, late %d; drops %v", len(b.out.Inside), b.p.c.LateView, b.drops())
	}

	// No newer view yet, but the maps moved on: counted apart, one refresh.
	gen, refreshes := uint64(4), 0
	b.p.cfg.Generation = func() uint64 { return gen }
	b.p.cfg.Refresh = func() { refreshes++ }
	b.tabs.Store(stale)
	for i := 0; i < 2; i++ {
		sendOut(t, a, ipv4(lanHost, vpcHost, 100, 64, false, 2), ipv4(lanHost, vpcHost, 100, 64, false, 3))
		recvIn(t, b, move(t, a, b, a.out.Outside))
	}
	if d := b.drops(); d["spi_lookup/spi_not_applied"] != 4 || d["spi_lookup/unknown_spi"] != 0 || refreshes != 1 {
		t.Fatalf("maps ahead of the view: drops %v, refreshes %d (want 4 spi_not_applied, 1 refresh)", d, refreshes)
	}
	// Maps and view agree: the SPI is simply unknown.
	gen = stale.Generation
	sendOut(t, a, ipv4(lanHost, vpcHost, 100, 64, false, 4))
	recvIn(t, b, move(t, a, b, a.out.Outside))
	if d := b.drops(); d["spi_lookup/unknown_spi"] != 1 || refreshes != 1 {
		t.Fatalf("up-to-date view: drops %v, refreshes %d", d, refreshes)
	}
}

// TestPublishEveryCounter: publish carries every field of the tally
// into the published Counters (a counter added to Counters but not to
// publish fails here), and later publishes carry what drop and sent
// changed.
func TestPublishEveryCounter(t *testing.T) {
	var c tally
	n := uint64(0)
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Uint64:
			n++
			v.SetUint(n)
		case reflect.Array:
			for i := range v.Len() {
				fill(v.Index(i))
			}
		case reflect.Struct:
			for i := range v.NumField() {
				fill(v.Field(i))
			}
		default:
			t.Fatalf("Counters holds a %s: publish and this test know uint64 only", v.Type())
		}
	}
	fill(reflect.ValueOf(&c.Counters).Elem())
	for s := range c.drops {
		c.drops[s] = ^uint32(0)
		c.dropStages |= 1 << s
	}
	for d := range c.tunnels {
		for w := range c.tunnels[d] {
			c.tunnels[d][w] = ^uint64(0)
			c.tunnelWord |= 1 << (d*tunnelWords + w)
		}
	}
	var pub Counters
	c.publish(&pub)
	if pub != c.Counters {
		t.Fatal("publish left counters out of the published copy")
	}
	c.drop(StageDecap, uint8(esp.Replayed))
	c.sent(In, 7, 3, 4500)
	c.publish(&pub)
	if pub != c.Counters {
		t.Fatal("a drop or a tunnel's packets counted after the first publish were not published")
	}
}
