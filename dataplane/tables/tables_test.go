package tables

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/crypto/transform"
)

type counters [maps.MaxSAs]maps.SACounters

func (c *counters) get(i uint32) *maps.SACounters {
	if i == 0 || i >= maps.MaxSAs {
		return nil
	}
	return &c[i]
}

func gcm(t *testing.T, spi, tunnel uint32, dir maps.SADir, seed byte) maps.SA {
	t.Helper()
	s, err := transform.ParseSuite("aes128gcm16")
	if err != nil {
		t.Fatal(err)
	}
	sa := maps.SA{Spi: spi, TunnelId: tunnel, Direction: uint8(dir), State: uint8(maps.StateActive), ReplayWindow: 1024}
	sa.LocalAddr = maps.Addr16(netip.MustParseAddr("192.0.2.10"))
	sa.RemoteAddr = maps.Addr16(netip.MustParseAddr("203.0.113.1"))
	km := make([]byte, 20)
	for i := range km {
		km[i] = seed + byte(i)
	}
	if err := maps.SetKeys(&sa, s, km); err != nil {
		t.Fatal(err)
	}
	return sa
}

func snapshot(t *testing.T, gen uint64) *maps.Tables {
	tb := &maps.Tables{
		Generation: gen,
		SAs: map[uint32]maps.SA{
			1: gcm(t, 0x1001, 1, maps.DirInbound, 1),
			2: gcm(t, 0x2001, 1, maps.DirOutbound, 2),
		},
		Inbound:    map[uint32]maps.InboundSA{0x1001: {SaIndex: 1, TunnelId: 1}},
		Outbound:   make([]uint32, maps.MaxTunnels),
		Tunnels:    make([]maps.Tunnel, maps.MaxTunnels),
		LocalAddrs: map[netip.Addr]maps.Local{netip.MustParseAddr("::ffff:192.0.2.10"): maps.LocalOutside},
		Routes:     []maps.RouteEntry{{Prefix: netip.MustParsePrefix("198.19.0.0/16"), Route: maps.Route{TunnelId: 1}}},
	}
	tb.Outbound[1] = 2
	tb.Tunnels[1] = maps.Tunnel{Flags: uint32(maps.TunnelUp), Mtu: 1399, Mss: 1379,
		InsideAddr: maps.Addr16(netip.MustParseAddr("169.254.10.2")), InsidePrefixlen: 30}
	return tb
}

func TestBuild(t *testing.T) {
	var c counters
	b := NewBuilder(c.get)
	v := b.Build(snapshot(t, 2))
	if len(v.Problems) != 0 {
		t.Fatalf("problems: %v", v.Problems)
	}
	in := v.Inbound[0x1001]
	if in == nil || in.Replay == nil || in.Replay.Size() != 1024 || in.Tunnel != 1 {
		t.Fatalf("inbound SA = %+v", in)
	}
	tn := v.Tunnel(1)
	if tn == nil || !tn.Up || tn.MTU != 1399 || tn.MSS != 1379 || tn.Out == nil || tn.InsideAddr != netip.MustParseAddr("169.254.10.2") || tn.Inside != netip.MustParsePrefix("169.254.10.2/30") {
		t.Fatalf("tunnel 1 = %+v", tn)
	}
	if got := v.Route(netip.MustParseAddr("198.19.4.5")); got != 1 {
		t.Fatalf("Route = %d, want 1", got)
	}
	if got := v.Route(netip.MustParseAddr("198.18.4.5")); got != 0 {
		t.Fatalf("Route to unrouted = %d, want 0", got)
	}
	if !v.IsLocal(netip.MustParseAddr("192.0.2.10")) {
		t.Fatal("local address not found unmapped")
	}
	// The outbound sequence counter is the shared one.
	first, ok := tn.Out.ESP.ReserveSeq(3)
	if !ok || first != 1 || c[2].Seq != 3 {
		t.Fatalf("ReserveSeq = %d, %v; counters.Seq = %d (want 1, true, 3)", first, ok, c[2].Seq)
	}
}

// TestCacheKeepsReplayState: a new generation that does not touch an SA
// keeps its objects (replay window, cipher); a state change keeps them
// too; new keys under the same index replace them; a dropped SA leaves
// the cache.
func TestCacheKeepsReplayState(t *testing.T) {
	var c counters
	built := 0
	defer func(f func(transform.Suite, []byte) (transform.Cipher, error)) { newCipher = f }(newCipher)
	orig := newCipher
	newCipher = func(s transform.Suite, k []byte) (transform.Cipher, error) { built++; return orig(s, k) }

	b := NewBuilder(c.get)
	v1 := b.Build(snapshot(t, 2))
	in1 := v1.Inbound[0x1001]
	if _, r := in1.Replay.Check(5); r.String() != "ok" {
		t.Fatalf("Check = %v", r)
	}
	in1.Replay.Update(5)

	s2 := snapshot(t, 4)
	s2.Routes = append(s2.Routes, maps.RouteEntry{Prefix: netip.MustParsePrefix("198.19.7.0/24"), Route: maps.Route{TunnelId: 1}})
	sa := s2.SAs[1]
	sa.State = uint8(maps.StateRetiring)
	s2.SAs[1] = sa
	v2 := b.Build(s2)
	in2 := v2.Inbound[0x1001]
	if in2 != in1 || v2.Tunnel(1).Out != v1.Tunnel(1).Out {
		t.Fatal("unchanged SAs were rebuilt: replay state lost")
	}
	if in2.Replay.Highest() != 5 {
		t.Fatalf("replay highest = %d after a new generation, want 5", in2.Replay.Highest())
	}
	if built != 2 {
		t.Fatalf("built %d ciphers over two generations, want 2", built)
	}

	// Rekey under the same index: new keys, new objects.
	s3 := snapshot(t, 6)
	s3.SAs[1] = gcm(t, 0x1001, 1, maps.DirInbound, 9)
	v3 := b.Build(s3)
	if v3.Inbound[0x1001] == in1 || v3.Inbound[0x1001].Replay.Highest() != 0 {
		t.Fatal("SA with new keys kept the old objects")
	}
	// Dropped SA leaves the cache.
	s4 := snapshot(t, 8)
	delete(s4.Inbound, 0x1001)
	b.Build(s4)
	if _, ok := b.cache[1]; ok {
		t.Fatal("SA 1 still cached after it left the tables")
	}
}

func TestOutboundSwitch(t *testing.T) {
	var c counters
	b := NewBuilder(c.get)
	s := snapshot(t, 2)
	v1 := b.Build(s)
	s2 := snapshot(t, 4)
	s2.SAs[3] = gcm(t, 0x3001, 1, maps.DirOutbound, 3)
	s2.Outbound[1] = 3
	v2 := b.Build(s2)
	if v2.Tunnel(1).Out.ESP.SPI() != 0x3001 || v1.Tunnel(1).Out.ESP.SPI() != 0x2001 {
		t.Fatal("outbound switch not reflected")
	}
}

func TestBadSAReported(t *testing.T) {
	var c counters
	b := NewBuilder(c.get)
	s := snapshot(t, 2)
	sa := s.SAs[1]
	sa.Direction = uint8(maps.DirOutbound)
	s.SAs[1] = sa
	v := b.Build(s)
	if len(v.Problems) != 1 || v.Inbound[0x1001] != nil {
		t.Fatalf("problems %v, inbound %v", v.Problems, v.Inbound)
	}
}

func TestRouteBackup(t *testing.T) {
	var c counters
	b := NewBuilder(c.get)
	s := snapshot(t, 2)
	s.Routes[0].BackupTunnelId = 2
	s.Tunnels[2] = s.Tunnels[1]
	s.SAs[3] = gcm(t, 0x3001, 2, maps.DirOutbound, 3)
	s.Outbound[2] = 3
	s.Tunnels[1].Flags = 0 // down
	v := b.Build(s)
	if got := v.Route(netip.MustParseAddr("198.19.0.1")); got != 2 {
		t.Fatalf("Route with primary down = %d, want backup 2", got)
	}
}

// TestLPM compares the table with a linear scan over random prefixes.
func TestLPM(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var routes []maps.RouteEntry
	seen := map[netip.Prefix]bool{}
	for i := 0; i < 300; i++ {
		var p netip.Prefix
		if i%3 == 0 {
			var a [16]byte
			a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
			a[4] = byte(r.IntN(4))
			p = netip.PrefixFrom(netip.AddrFrom16(a), 32+r.IntN(97)).Masked()
		} else {
			a := [4]byte{198, 18 + byte(r.IntN(2)), byte(r.IntN(4)), byte(r.IntN(256))}
			p = netip.PrefixFrom(netip.AddrFrom4(a), r.IntN(33)).Masked()
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		routes = append(routes, maps.RouteEntry{Prefix: p, Route: maps.Route{TunnelId: uint32(i + 1)}})
	}
	l := NewLPM(routes)
	for i := 0; i < 5000; i++ {
		var a netip.Addr
		if i%3 == 0 {
			var b [16]byte
			b[0], b[1], b[2], b[3], b[4] = 0x20, 0x01, 0x0d, 0xb8, byte(r.IntN(4))
			b[15] = byte(r.IntN(256))
			a = netip.AddrFrom16(b)
		} else {
			a = netip.AddrFrom4([4]byte{198, 18 + byte(r.IntN(2)), byte(r.IntN(4)), byte(r.IntN(256))})
		}
		best, want := -1, uint32(0)
		for _, e := range routes {
			if e.Prefix.Contains(a) && e.Prefix.Bits() > best {
				best, want = e.Prefix.Bits(), e.Route.TunnelId
			}
		}
		got, ok := l.Lookup(a)
		if ok != (best >= 0) || got.TunnelId != want {
			t.Fatalf("Lookup(%v) = %d, %v; want %d", a, got.TunnelId, ok, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { l.Lookup(netip.MustParseAddr("198.18.1.1")) }); n != 0 {
		t.Fatalf("Lookup allocates %v", n)
	}
}

// TestReplayResumesAfterRestart: a dataplane that restarts builds its
// inbound SAs afresh; the window is primed from the shared counter so
// what was delivered before the restart is not accepted again.
func TestReplayResumesAfterRestart(t *testing.T) {
	var c counters
	c[1].Seq = 5000 // highest authenticated by the previous run
	v := NewBuilder(c.get).Build(snapshot(t, 2))
	w := v.Inbound[0x1001].Replay
	for _, seq := range []uint32{5000, 4500, 3977, 1} {
		if _, r := w.Check(seq); r.String() == "ok" {
			t.Errorf("seq %d accepted after the restart (highest before: 5000)", seq)
		}
	}
	if _, r := w.Check(5001); r.String() != "ok" {
		t.Fatalf("seq 5001 refused: %v", r)
	}
}

// TestReplayResumesESNEpoch: an ESN SA whose previous run got past 2^32
// resumes in that epoch (issue #9): what it delivered is refused, the
// next number is inferred with the right high half.
func TestReplayResumesESNEpoch(t *testing.T) {
	var c counters
	hi := uint64(3<<32 + 5000)
	c[1].Seq = hi
	tb := snapshot(t, 2)
	sa := tb.SAs[1]
	sa.Flags |= uint32(maps.SAFlagESN)
	tb.SAs[1] = sa
	w := NewBuilder(c.get).Build(tb).Inbound[0x1001].Replay
	for _, seq := range []uint64{hi, hi - 1, hi - 1000} {
		if got, r := w.Check(uint32(seq)); r.String() == "ok" && got == seq {
			t.Errorf("seq %#x accepted after the restart (highest before: %#x)", seq, hi)
		}
	}
	if got, r := w.Check(uint32(hi + 1)); r.String() != "ok" || got != hi+1 {
		t.Fatalf("next seq inferred as %#x (%v), want %#x", got, r, hi+1)
	}
}

// TestInboundSA: the SPI table answers as the map does, for tables of 0 to
// 300 SAs, for every SPI present and for absent ones (0 among them), and
// a View not made by Build falls back to the map.
func TestInboundSA(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 4, 5, 8, 9, 64, 300} {
		v := &View{Inbound: map[uint32]*SA{}}
		for len(v.Inbound) < n {
			spi := rng.Uint32() | 1
			if n == 300 && len(v.Inbound)%2 == 0 {
				spi = uint32(len(v.Inbound)+1) << 8 // clustered SPIs too
			}
			if spi != 0 {
				v.Inbound[spi] = &SA{Index: spi}
			}
		}
		if v.InboundSA(0x1234) != v.Inbound[0x1234] {
			t.Fatalf("n=%d: a View without the table does not fall back to the map", n)
		}
		v.spis = newSPITable(v.Inbound)
		if got := len(v.spis.slots); got < 2*n || got&(got-1) != 0 {
			t.Fatalf("n=%d: %d slots, want a power of two ≥ %d", n, got, 2*n)
		}
		for spi, sa := range v.Inbound {
			if v.InboundSA(spi) != sa {
				t.Fatalf("n=%d: SPI %#x not found", n, spi)
			}
		}
		for i := 0; i < 2000; i++ {
			spi := rng.Uint32()
			if i == 0 {
				spi = 0
			}
			if got := v.InboundSA(spi); got != v.Inbound[spi] {
				t.Fatalf("n=%d: SPI %#x: table %v, map %v", n, spi, got, v.Inbound[spi])
			}
		}
	}
}

func TestBuildFillsSPITable(t *testing.T) {
	var c counters
	v := NewBuilder(c.get).Build(snapshot(t, 1))
	if v.spis.slots == nil || v.InboundSA(0x1001) == nil || v.InboundSA(0x1001) != v.Inbound[0x1001] || v.InboundSA(0x2001) != nil {
		t.Fatal("Build's View does not answer InboundSA from its SPI table as its map does")
	}
}

// BenchmarkInboundLookup: a lookup per packet when a batch alternates
// between SAs, the Go map against the SPI table, 2 and 64 SAs.
func BenchmarkInboundLookup(b *testing.B) {
	for _, n := range []int{2, 64} {
		v := &View{Inbound: map[uint32]*SA{}}
		spis := make([]uint32, 0, n)
		rng := rand.New(rand.NewPCG(3, 4))
		for len(spis) < n {
			spi := rng.Uint32() | 1
			if _, ok := v.Inbound[spi]; !ok {
				v.Inbound[spi] = &SA{Index: spi}
				spis = append(spis, spi)
			}
		}
		v.spis = newSPITable(v.Inbound)
		b.Run(fmt.Sprintf("map/%d", n), func(b *testing.B) {
			var hit int
			for i := 0; i < b.N; i++ {
				if v.Inbound[spis[i%n]] != nil {
					hit++
				}
			}
			if hit != b.N {
				b.Fatal("miss")
			}
		})
		b.Run(fmt.Sprintf("table/%d", n), func(b *testing.B) {
			var hit int
			for i := 0; i < b.N; i++ {
				if v.InboundSA(spis[i%n]) != nil {
					hit++
				}
			}
			if hit != b.N {
				b.Fatal("miss")
			}
		})
	}
}

// TestNoKeysKept: after Build and WipeKeys no SA key byte is left in the
// snapshot or the SA cache, and the View's SAs still work and are still
// reused for an unchanged SA.
func TestNoKeysKept(t *testing.T) {
	var c counters
	b := NewBuilder(c.get)
	s := snapshot(t, 2)
	v := b.Build(s)
	WipeKeys(s)
	zero := func(what string, sa maps.SA) {
		t.Helper()
		var z maps.SA
		if sa.EncKey != z.EncKey || sa.Salt != z.Salt || sa.IntegKey != z.IntegKey {
			t.Errorf("%s: key bytes left: enc %x salt %x integ %x", what, sa.EncKey, sa.Salt, sa.IntegKey)
		}
	}
	for idx, sa := range s.SAs {
		zero(fmt.Sprintf("snapshot SA %d", idx), sa)
	}
	for idx, cs := range b.cache {
		zero(fmt.Sprintf("cached SA %d", idx), cs.key)
	}
	if v2 := b.Build(snapshot(t, 4)); v2.Tunnel(1).Out != v.Tunnel(1).Out {
		t.Error("unchanged SA rebuilt after its keys were wiped from the cache")
	}
	ref := gcm(t, 0x2001, 1, maps.DirOutbound, 2)
	suite, km, err := maps.Keys(&ref)
	if err != nil {
		t.Fatal(err)
	}
	want, err := transform.New(suite, km)
	if err != nil {
		t.Fatal(err)
	}
	// The cipher was built before the wipe: what it seals opens with a
	// cipher made from the SA's keys.
	pkt := make([]byte, 8+want.IVLen()+16+want.ICVLen())
	copy(pkt[8+want.IVLen():], "payload.........")
	v.Tunnel(1).Out.ESP.Cipher().Seal(pkt, 7, false)
	if err := want.Open(pkt, 7, false); err != nil {
		t.Errorf("outbound cipher after the wipe: %v", err)
	}
}
