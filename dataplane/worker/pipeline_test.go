package worker

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/dataplane/packet"
)

// pair returns two gateways whose SAs match: a's outbound is b's inbound
// and the other way round.
func pair(t testing.TB) (a, b *gateway) {
	a = newGateway(t, 0xb0b0b0b0, 0xa0a0a0a0, 2, 1, false)
	b = newGateway(t, 0xa0a0a0a0, 0xb0b0b0b0, 1, 2, false)
	return a, b
}

func sendOut(t testing.TB, g *gateway, ips ...[]byte) {
	batch := g.p.NewBatch()
	for _, ip := range ips {
		batch = append(batch, g.frameOf(t, macIn, macLAN, ip))
	}
	g.out.Reset()
	g.p.Outbound(g.view(), batch, g.out)
}

func recvIn(t testing.TB, g *gateway, pkts []Packet) {
	batch := g.p.NewBatch()
	batch = append(batch, pkts...)
	g.out.Reset()
	g.p.Inbound(g.view(), batch, g.out)
}

func TestRoundTrip(t *testing.T) {
	a, b := pair(t)
	ip := ipv4(lanHost, vpcHost, 200, 64, false, 7)
	want := append([]byte(nil), ip...)
	sendOut(t, a, ip)
	if len(a.out.Outside) != 1 || len(a.out.Inside) != 0 {
		t.Fatalf("outbound: %d outside, %d inside; drops %v", len(a.out.Outside), len(a.out.Inside), a.drops())
	}
	o := a.out.Outside[0].Data()
	if !bytes.Equal(o[0:6], macRouter[:]) || !bytes.Equal(o[6:12], macOut[:]) || o[14+9] != packet.ProtoESP {
		t.Fatalf("outer frame header % x", o[:34])
	}
	if spi := binary.BigEndian.Uint32(o[34:]); spi != 0xa0a0a0a0 {
		t.Fatalf("SPI %#x", spi)
	}
	if got := a.ctr[2].Seq; got != 1 {
		t.Fatalf("outbound SA's shared seq = %d, want 1", got)
	}
	if a.ctr[2].Packets != 1 || a.ctr[2].Bytes != 200 {
		t.Fatalf("outbound accounting %+v", a.ctr[2])
	}
	recvIn(t, b, move(t, a, b, a.out.Outside))
	if len(b.out.Inside) != 1 {
		t.Fatalf("inbound: %d inside; drops %v", len(b.out.Inside), b.drops())
	}
	d := b.out.Inside[0].Data()
	if !bytes.Equal(d[0:6], macLAN[:]) || !bytes.Equal(d[6:12], macIn[:]) {
		t.Fatalf("inner frame header % x", d[:14])
	}
	// TTL decremented once at each gateway, checksum still right.
	want[8] -= 2
	binary.BigEndian.PutUint16(want[10:], 0)
	packet.IPv4HeaderChecksum(want[:20])
	if !bytes.Equal(d[14:], want) {
		t.Fatalf("inner packet differs:\n got % x\nwant % x", d[14:60], want[:46])
	}
	if b.ctr[1].Packets != 1 || b.ctr[1].Seq != 1 || b.ctr[1].LastNs == 0 {
		t.Fatalf("inbound accounting %+v", b.ctr[1])
	}
	// The same ESP packet again is a replay.
}

func TestReplayDropped(t *testing.T) {
	a, b := pair(t)
	sendOut(t, a, ipv4(lanHost, vpcHost, 100, 64, false, 1))
	d := a.out.Outside[0].Data()
	dup := b.frameOf(t, [6]byte(d[0:6]), [6]byte(d[6:12]), d[14:])
	recvIn(t, b, move(t, a, b, a.out.Outside))
	recvIn(t, b, []Packet{dup})
	if len(b.out.Inside) != 0 || b.drops()["esp_decap/replayed"] != 1 || b.ctr[1].DropReplay != 1 {
		t.Fatalf("replay: %d delivered, drops %v, SA drop_replay %d", len(b.out.Inside), b.drops(), b.ctr[1].DropReplay)
	}
}

func TestOutboundDrops(t *testing.T) {
	a, _ := pair(t)
	free := a.frames.FreeFrames()
	sendOut(t, a,
		ipv4(lanHost, vpcHost, 100, 1, false, 1),                              // TTL exceeded
		ipv4(lanHost, netip.MustParseAddr("198.51.100.1"), 100, 64, false, 1), // no route
		[]byte{0x45, 0, 0, 10},                                                // short
	)
	want := map[string]uint64{"ttl/ttl_exceeded": 1, "route/no_route": 1, "parse/short_frame": 1}
	got := a.drops()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("drop %s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	if len(a.out.Outside) != 0 || a.frames.FreeFrames() != free {
		t.Fatalf("%d sent, %d frames lost", len(a.out.Outside), free-a.frames.FreeFrames())
	}
	// Tunnel down.
	a.tb.Tunnels[1].Flags = 0
	a.tabs.Store(a.b.Build(a.tb))
	sendOut(t, a, ipv4(lanHost, vpcHost, 100, 64, false, 1))
	if a.drops()["route/no_route"] != 2 { // the route's only tunnel is down: no route
		t.Fatalf("tunnel down: drops %v", a.drops())
	}
	// Metadata names the tunnel: the route stage checks it is up.
	batch := a.p.NewBatch()
	pk := a.frameOf(t, macIn, macLAN, ipv4(lanHost, vpcHost, 100, 64, false, 1))
	setMeta(&pk, 1)
	a.out.Reset()
	a.p.Outbound(a.view(), append(batch, pk), a.out)
	if a.drops()["route/tunnel_down"] != 1 {
		t.Fatalf("tunnel down via metadata: drops %v", a.drops())
	}
}

func TestNoNeighbour(t *testing.T) {
	a, _ := pair(t)
	a.neigh.t = nil // empty table: every lookup misses
	sendOut(t, a, ipv4(lanHost, vpcHost, 100, 64, false, 1))
	if len(a.out.Outside) != 0 || a.drops()["neigh_outside/no_neighbour"] != 1 {
		t.Fatalf("drops %v", a.drops())
	}
}

func TestFragmentBeforeEncryption(t *testing.T) {
	a, b := pair(t)
	sendOut(t, a, ipv4(lanHost, vpcHost, 1500, 64, false, 3))
	if len(a.out.Outside) != 2 || a.p.c.Fragments != 1 {
		t.Fatalf("1500 B without DF: %d ESP packets, %d fragments; drops %v", len(a.out.Outside), a.p.c.Fragments, a.drops())
	}
	recvIn(t, b, move(t, a, b, a.out.Outside))
	if len(b.out.Inside) != 2 {
		t.Fatalf("fragments delivered %d; drops %v", len(b.out.Inside), b.drops())
	}
	total := 0
	for _, pk := range b.out.Inside {
		ip := pk.Data()[14:]
		if len(ip) > 1399 {
			t.Fatalf("fragment of %d bytes > MTU", len(ip))
		}
		total += len(ip) - 20
	}
	if total != 1480 {
		t.Fatalf("fragments carry %d payload bytes, want 1480", total)
	}
}

func TestFragNeededToSender(t *testing.T) {
	a, _ := pair(t)
	free := a.frames.FreeFrames()
	sendOut(t, a, ipv4(lanHost, vpcHost, 1500, 64, true, 3))
	if len(a.out.Outside) != 0 || len(a.out.Inside) != 1 || a.drops()["frag/icmp_frag_needed"] != 1 {
		t.Fatalf("DF 1500 B: %d out, %d inside, drops %v", len(a.out.Outside), len(a.out.Inside), a.drops())
	}
	e := a.out.Inside[0].Data()
	if !bytes.Equal(e[0:6], macLAN[:]) || !bytes.Equal(e[6:12], macIn[:]) {
		t.Fatalf("ICMP error Ethernet % x", e[:14])
	}
	ip := e[14:]
	if ip[9] != 1 || ip[20] != 3 || ip[21] != 4 || binary.BigEndian.Uint16(ip[26:]) != 1399 {
		t.Fatalf("ICMP error: proto %d type %d code %d mtu %d", ip[9], ip[20], ip[21], binary.BigEndian.Uint16(ip[26:]))
	}
	if [4]byte(ip[16:20]) != lanHost.As4() || [4]byte(ip[12:16]) != gwIn.As4() {
		t.Fatalf("ICMP error %v -> %v", netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20])))
	}
	a.frames.Free(a.out.Inside[0].Addr)
	if a.frames.FreeFrames() != free {
		t.Fatalf("%d frames lost", free-a.frames.FreeFrames())
	}
}

func TestClearDF(t *testing.T) {
	a, _ := pair(t)
	a.tb.Tunnels[1].Flags |= 2 // clear_df
	a.tabs.Store(a.b.Build(a.tb))
	sendOut(t, a, ipv4(lanHost, vpcHost, 1500, 64, true, 3))
	if len(a.out.Outside) != 2 {
		t.Fatalf("clear_df: %d ESP packets; drops %v", len(a.out.Outside), a.drops())
	}
}

func TestMSSClamped(t *testing.T) {
	a, b := pair(t)
	// A TCP SYN with MSS 1460.
	ip := ipv4(lanHost, vpcHost, 44, 64, true, 0)
	ip[9] = packet.ProtoTCP
	packet.IPv4HeaderChecksum(func() []byte { ip[10], ip[11] = 0, 0; return ip[:20] }())
	tcp := ip[20:]
	for i := range tcp {
		tcp[i] = 0
	}
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 179)
	tcp[12] = 6 << 4 // 24-byte header
	tcp[13] = 0x02   // SYN
	tcp[20], tcp[21] = 2, 4
	binary.BigEndian.PutUint16(tcp[22:], 1460)
	sendOut(t, a, ip)
	recvIn(t, b, move(t, a, b, a.out.Outside))
	if len(b.out.Inside) != 1 {
		t.Fatalf("drops a %v b %v", a.drops(), b.drops())
	}
	got := b.out.Inside[0].Data()[14+20:]
	if m := binary.BigEndian.Uint16(got[22:]); m != 1379 {
		t.Fatalf("MSS after the tunnel = %d, want 1379", m)
	}
}

func TestLocalToSlowPath(t *testing.T) {
	a, b := pair(t)
	sendOut(t, a, ipv4(lanHost, vpcHost, 100, 64, false, 1))
	// b receives a packet to its tunnel inside address: the kernel's.
	a.out.Reset()
	batch := a.p.NewBatch()
	pk := a.frameOf(t, macIn, macLAN, ipv4(netip.MustParseAddr("169.254.10.1"), insideT1, 80, 64, false, 2))
	setMeta(&pk, 1)
	a.p.Outbound(a.view(), append(batch, pk), a.out)
	recvIn(t, b, move(t, a, b, a.out.Outside))
	if len(b.out.Inside) != 0 || len(b.slow.pkts[1]) != 1 || b.p.c.SlowToKernel != 1 {
		t.Fatalf("to kernel: inside %d, slow %d; drops %v", len(b.out.Inside), len(b.slow.pkts[1]), b.drops())
	}
	if d := b.slow.pkts[1][0]; len(d) != 80 || [4]byte(d[16:20]) != insideT1.As4() || d[8] != 63 {
		t.Fatalf("slow-path packet % x", d[:20])
	}
}

func TestFromKernel(t *testing.T) {
	a, b := pair(t)
	ip := ipv4(insideT1, netip.MustParseAddr("169.254.10.1"), 60, 1, false, 5)
	fa, _ := a.frames.Alloc()
	fb := a.frames.Frame(fa)
	copy(fb[memDataOff:], ip)
	batch := append(a.p.NewBatch(), Packet{Buf: fb, Addr: fa, Off: memDataOff, Len: len(ip)})
	a.out.Reset()
	a.p.FromKernel(a.view(), 1, batch, a.out)
	if len(a.out.Outside) != 1 {
		t.Fatalf("from kernel: drops %v", a.drops())
	}
	recvIn(t, b, move(t, a, b, a.out.Outside))
	// To 169.254.10.1, which is not b's inside address in this test: b
	// forwards it (TTL 1 → dropped at b's ttl stage).
	if b.drops()["ttl/ttl_exceeded"] != 1 {
		t.Fatalf("b drops %v", b.drops())
	}
}

func TestUnknownSPI(t *testing.T) {
	a, _ := pair(t)
	c := newGateway(t, 0x12345678, 0x9999, 1, 2, false)
	sendOut(t, a, ipv4(lanHost, vpcHost, 100, 64, false, 1))
	recvIn(t, c, move(t, a, c, a.out.Outside))
	if c.drops()["spi_lookup/unknown_spi"] != 1 {
		t.Fatalf("drops %v", c.drops())
	}
}

// TestNoCryptoForward: -no-crypto runs every outbound stage but ESP:
// route (a tunnel that is up, no SA needed), TTL, MSS clamp, size, and the
// outside next hop of the tunnel's remote; the inner packet goes out as
// it is, and no SA counter moves.
func TestNoCryptoForward(t *testing.T) {
	g := newGateway(t, 1, 2, 1, 2, true)
	ip := ipv4(lanHost, vpcHost, 100, 64, false, 1)
	sendOut(t, g, ip)
	if len(g.out.Outside) != 1 {
		t.Fatalf("drops %v", g.drops())
	}
	d := g.out.Outside[0].Data()
	if !bytes.Equal(d[0:6], macRouter[:]) || !bytes.Equal(d[6:12], macOut[:]) || len(d) != 114 {
		t.Fatalf("forwarded frame % x", d[:14])
	}
	if d[14+8] != 63 || !packet.IPv4HeaderValid(d[14:34]) {
		t.Fatalf("TTL %d (want 63) or header checksum wrong after the ttl stage", d[14+8])
	}
	if g.ctr[2].Seq != 0 || g.ctr[2].Packets != 0 || g.p.c.Packets[Out] != 1 || g.p.c.TunnelPackets[Out][1] != 1 {
		t.Fatalf("counters: SA %+v, worker %d, tunnel %d", g.ctr[2], g.p.c.Packets[Out], g.p.c.TunnelPackets[Out][1])
	}

	// Not routed to a tunnel, or its tunnel down: dropped at route, as
	// the gateway would.
	sendOut(t, g, ipv4(lanHost, netip.MustParseAddr("203.0.113.9"), 100, 64, false, 1))
	if len(g.out.Outside) != 0 || g.drops()["route/no_route"] != 1 {
		t.Fatalf("unrouted: %d sent, drops %v", len(g.out.Outside), g.drops())
	}
	// Bigger than the tunnel MTU: fragmented, as before encryption.
	sendOut(t, g, ipv4(lanHost, vpcHost, 2000, 64, false, 2))
	if len(g.out.Outside) != 2 || g.p.c.Fragments != 1 {
		t.Fatalf("2000 bytes at MTU 1399: %d sent, %d fragments; drops %v", len(g.out.Outside), g.p.c.Fragments, g.drops())
	}

	// A tunnel without an outbound SA: the tunnel table's remote is the
	// outer next hop.
	g.tb.Outbound[1] = 0
	delete(g.tb.SAs, 2)
	tn := g.tb.Tunnels[1]
	tn.RemoteAddr = maps.Addr16(peerOut)
	g.tb.Tunnels[1] = tn
	g.tabs.Store(g.b.Build(g.tb))
	sendOut(t, g, ipv4(lanHost, vpcHost, 100, 64, false, 3))
	if len(g.out.Outside) != 1 || !bytes.Equal(g.out.Outside[0].Data()[0:6], macRouter[:]) {
		t.Fatalf("no SA: %d sent; drops %v", len(g.out.Outside), g.drops())
	}
	g.tb.Tunnels[1].Flags = 0
	g.tabs.Store(g.b.Build(g.tb))
	sendOut(t, g, ipv4(lanHost, vpcHost, 100, 64, false, 4))
	if len(g.out.Outside) != 0 || g.drops()["route/no_route"] != 2 { // the one above and this
		t.Fatalf("tunnel down: %d sent, drops %v", len(g.out.Outside), g.drops())
	}
}

func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation count is meaningless under -race (sync.Pool drops items)")
	}
	a, b := pair(t)
	ips := make([][]byte, 32)
	for i := range ips {
		ips[i] = ipv4(lanHost, vpcHost, 1300, 64, false, byte(i))
	}
	batchA, batchB := a.p.NewBatch(), b.p.NewBatch()
	allocs := testing.AllocsPerRun(50, func() {
		batchA = batchA[:0]
		for _, ip := range ips {
			batchA = append(batchA, a.frameOf(t, macIn, macLAN, ip))
		}
		a.out.Reset()
		a.p.Outbound(a.view(), batchA, a.out)
		batchB = batchB[:0]
		for _, pk := range a.out.Outside {
			d := pk.Data()
			batchB = append(batchB, b.frameOf(t, [6]byte(d[0:6]), [6]byte(d[6:12]), d[14:]))
			a.frames.Free(pk.Addr)
		}
		b.out.Reset()
		b.p.Inbound(b.view(), batchB, b.out)
		for _, pk := range b.out.Inside {
			b.frames.Free(pk.Addr)
		}
	})
	if len(b.out.Inside) != 32 {
		t.Fatalf("delivered %d of 32; drops a %v b %v", len(b.out.Inside), a.drops(), b.drops())
	}
	if allocs != 0 {
		t.Fatalf("pipeline allocates %v times per 32-packet round trip", allocs)
	}
}

func TestRoundTripIPv6(t *testing.T) {
	a, b := pair(t)
	ip := ipv6(lanHost6, vpcHost6, 300, 64, 4)
	want := append([]byte(nil), ip...)
	want[7] -= 2
	sendOut(t, a, ip)
	recvIn(t, b, move(t, a, b, a.out.Outside))
	if len(b.out.Inside) != 1 {
		t.Fatalf("IPv6 through the tunnel: drops a %v, b %v", a.drops(), b.drops())
	}
	d := b.out.Inside[0].Data()
	if binary.BigEndian.Uint16(d[12:]) != 0x86dd || !bytes.Equal(d[14:], want) {
		t.Fatalf("IPv6 packet after the tunnel: ethertype %#x\n% x", binary.BigEndian.Uint16(d[12:]), d[14:60])
	}
	// Too big for the tunnel: ICMPv6 Packet Too Big back to the sender
	// (needs an IPv6 source for the error: none configured here, so it
	// is dropped without one).
	sendOut(t, a, ipv6(lanHost6, vpcHost6, 1500, 64, 4))
	if len(a.out.Outside) != 0 || a.drops()["frag/too_big_no_icmp"] != 1 {
		t.Fatalf("1500-byte IPv6: %d sent; drops %v", len(a.out.Outside), a.drops())
	}
}

// TestOutboundSAExhausted: an SA at its hard packet limit, or out of
// sequence numbers (counter in the shared memory near 2^32), sends
// nothing more; each drop is counted where it happened.
func TestOutboundSAExhausted(t *testing.T) {
	a, _ := pair(t)
	sa := a.tb.SAs[2]
	sa.LifeHardPackets = 5
	a.tb.SAs[2] = sa
	a.tabs.Store(a.b.Build(a.tb))
	a.ctr[2].Packets = 5
	sendOut(t, a, ipv4(lanHost, vpcHost, 100, 64, false, 1))
	if len(a.out.Outside) != 0 || a.drops()["esp_encap/sa_expired"] != 1 {
		t.Fatalf("hard limit: %d sent, drops %v", len(a.out.Outside), a.drops())
	}

	a, _ = pair(t)
	a.ctr[2].Seq = 1<<32 - 2 // two numbers left without ESN
	sendOut(t, a, ipv4(lanHost, vpcHost, 100, 64, false, 1), ipv4(lanHost, vpcHost, 100, 64, false, 2), ipv4(lanHost, vpcHost, 100, 64, false, 3))
	if len(a.out.Outside) != 0 || a.drops()["esp_encap/seq_exhausted"] != 3 {
		t.Fatalf("3 packets with 2 sequence numbers left: %d sent, drops %v", len(a.out.Outside), a.drops())
	}
	sendOut(t, a, ipv4(lanHost, vpcHost, 100, 64, false, 1))
	if a.drops()["route/no_sa"] != 1 {
		t.Fatalf("after exhaustion: drops %v", a.drops())
	}
}

func TestFromKernelRefusesJunk(t *testing.T) {
	a, _ := pair(t)
	batch := a.p.NewBatch()
	for _, junk := range [][]byte{{0x45, 0, 0}, {0x60, 0, 0, 0, 0, 0, 0, 0}, {0x4f, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		fa, _ := a.frames.Alloc()
		fb := a.frames.Frame(fa)
		copy(fb[memDataOff:], junk)
		batch = append(batch, Packet{Buf: fb, Addr: fa, Off: memDataOff, Len: len(junk)})
	}
	a.out.Reset()
	a.p.FromKernel(a.view(), 1, batch, a.out)
	if len(a.out.Outside) != 0 || a.drops()["parse/bad_ip"] != 3 {
		t.Fatalf("junk from the kernel: %d sent, drops %v", len(a.out.Outside), a.drops())
	}
}

// TestInboundMixedBatch: one inbound batch in which packets fail at
// different steps of the single pass (parse, esp_decap, ttl), one for the
// gateway and one without a resolved next hop go to the slow path (the
// gateway's own first, as when the stages ran one after the other), and
// the good ones come out in their order; every frame not transmitted is
// freed.
func TestInboundMixedBatch(t *testing.T) {
	a, b := pair(t)
	out := a.p.NewBatch()
	for _, ip := range [][]byte{
		ipv4(lanHost, vpcHost, 100, 64, false, 1),
		ipv4(lanHost, netip.MustParseAddr("198.18.0.99"), 90, 64, false, 7), // on-link inside, no neighbour entry
		ipv4(lanHost, vpcHost, 100, 2, false, 2),                            // TTL 1 when it reaches b
		ipv4(netip.MustParseAddr("169.254.10.1"), insideT1, 80, 64, false, 3),
		ipv4(lanHost, vpcHost, 100, 64, false, 4), // ICV corrupted below
		ipv4(lanHost, vpcHost, 300, 64, false, 5),
		ipv4(lanHost, vpcHost, 100, 64, false, 6),
	} {
		pk := a.frameOf(t, macIn, macLAN, ip)
		setMeta(&pk, 1) // as the inside XDP program would
		out = append(out, pk)
	}
	a.out.Reset()
	a.p.Outbound(a.view(), out, a.out)
	if len(a.out.Outside) != 7 {
		t.Fatalf("a sent %d of 7; drops %v", len(a.out.Outside), a.drops())
	}
	pkts := move(t, a, b, a.out.Outside)
	bad := pkts[4].Data()
	bad[len(bad)-1] ^= 1
	short := b.frameOf(t, macOut, macRouter, []byte{0x45})
	pkts = append(pkts[:5], append([]Packet{short}, pkts[5:]...)...)
	free := b.frames.FreeFrames()
	recvIn(t, b, pkts)
	var ids []byte
	for _, pk := range b.out.Inside {
		ids = append(ids, pk.Data()[EthLen+4])
	}
	if string(ids) != "\x01\x05\x06" {
		t.Fatalf("delivered IDs %v, want [1 5 6]; drops %v", ids, b.drops())
	}
	want := map[string]uint64{"parse/short_frame": 1, "esp_decap/bad_icv": 1, "ttl/ttl_exceeded": 1}
	if d := b.drops(); len(d) != len(want) || d["parse/short_frame"] != 1 || d["esp_decap/bad_icv"] != 1 || d["ttl/ttl_exceeded"] != 1 {
		t.Fatalf("drops %v, want %v", d, want)
	}
	sp := b.slow.pkts[1]
	if len(sp) != 2 || sp[0][4] != 3 || sp[1][4] != 7 || b.p.c.SlowMisses != 1 || b.p.c.Packets[In] != 6 {
		t.Fatalf("slow path got %d packets (IDs first, want 3 then 7), misses %d want 1; decrypted %d, want 6",
			len(sp), b.p.c.SlowMisses, b.p.c.Packets[In])
	}
	if got := b.frames.FreeFrames(); got != free+len(pkts)-3 {
		t.Fatalf("free frames %d after the batch, want %d (all but the 3 transmitted)", got, free+len(pkts)-3)
	}
}
