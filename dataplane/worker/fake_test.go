package worker

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/dataplane/neigh"
	"github.com/cgw-project/cgw/dataplane/packet"
	"github.com/cgw-project/cgw/dataplane/tables"
)

// memFrames is a UMEM stand-in in plain memory with the same layout:
// 4096-byte frames, data at offset 384 (registered headroom 128 + the
// kernel's 256).
type memFrames struct {
	mem  []byte
	free []uint64
	size int
}

const memDataOff = 384

func newMemFrames(n int) *memFrames {
	m := &memFrames{mem: make([]byte, n*4096), size: 4096}
	for i := n - 1; i >= 0; i-- {
		m.free = append(m.free, uint64(i*4096))
	}
	return m
}

func (m *memFrames) Alloc() (uint64, bool) {
	if len(m.free) == 0 {
		return 0, false
	}
	a := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	return a, true
}
func (m *memFrames) Frame(a uint64) []byte {
	b := a &^ 4095
	return m.mem[b : b+4096 : b+4096]
}
func (m *memFrames) Free(a uint64)   { m.free = append(m.free, a&^4095) }
func (m *memFrames) DataOffset() int { return memDataOff }
func (m *memFrames) FreeFrames() int { return len(m.free) }

// staticNeigh is a fixed neighbour table.
type staticNeigh struct {
	t        *neigh.Table
	resolves int
}

func (s *staticNeigh) Table() *neigh.Table                { return s.t }
func (s *staticNeigh) Account(hits, misses uint64)        {}
func (s *staticNeigh) Resolve(ifindex int, ip netip.Addr) { s.resolves++ }

// slowSink records what the slow path was given.
type slowSink struct {
	mu   sync.Mutex
	pkts map[uint32][][]byte
}

func (s *slowSink) Deliver(tunnel uint32, pkts [][]byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pkts == nil {
		s.pkts = map[uint32][][]byte{}
	}
	for _, p := range pkts {
		s.pkts[tunnel] = append(s.pkts[tunnel], append([]byte(nil), p...))
	}
	return len(pkts)
}

const (
	ifIn, ifOut = 2, 3
)

var (
	macIn      = [6]byte{2, 0, 0, 0, 0, 1}
	macOut     = [6]byte{2, 0, 0, 0, 0, 2}
	macLAN     = [6]byte{2, 0, 0, 0, 1, 1}
	macRouter  = [6]byte{2, 0, 0, 0, 2, 2}
	gwIn       = netip.MustParseAddr("198.18.0.1")
	gwOut      = netip.MustParseAddr("192.0.2.10")
	peerOut    = netip.MustParseAddr("203.0.113.1")
	nextHopOut = netip.MustParseAddr("192.0.2.1")
	lanHost    = netip.MustParseAddr("198.18.0.2")
	vpcHost    = netip.MustParseAddr("198.19.0.5")
	insideT1   = netip.MustParseAddr("169.254.10.2")
	lanHost6   = netip.MustParseAddr("2001:db8:18::2")
	vpcHost6   = netip.MustParseAddr("2001:db8:19::5")
)

func testNeigh() *staticNeigh {
	return &staticNeigh{t: neigh.NewTable(
		[]neigh.Neighbour{{Ifindex: ifIn, Addr: lanHost, MAC: macLAN}, {Ifindex: ifIn, Addr: vpcHost, MAC: macLAN}, {Ifindex: ifIn, Addr: vpcHost6, MAC: macLAN}, {Ifindex: ifOut, Addr: nextHopOut, MAC: macRouter}},
		[]neigh.Route{
			{Prefix: netip.MustParsePrefix("198.18.0.0/24"), Ifindex: ifIn},
			// The far side's LAN, on-link on the inside of the test's
			// second gateway (both gateways share this table).
			{Prefix: netip.MustParsePrefix("198.19.0.0/24"), Ifindex: ifIn},
			{Prefix: netip.MustParsePrefix("2001:db8:19::/64"), Ifindex: ifIn},
			{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Ifindex: ifOut},
			{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Ifindex: ifOut, Gateway: nextHopOut},
		})}
}

type counterBank [maps.MaxSAs]maps.SACounters

func (c *counterBank) get(i uint32) *maps.SACounters {
	if i == 0 || i >= maps.MaxSAs {
		return nil
	}
	return &c[i]
}

func gcmSA(t testing.TB, spi, tunnel uint32, dir maps.SADir, seed byte, local, remote netip.Addr) maps.SA {
	s, err := transform.ParseSuite("aes128gcm16")
	if err != nil {
		t.Fatal(err)
	}
	sa := maps.SA{Spi: spi, TunnelId: tunnel, Direction: uint8(dir), State: uint8(maps.StateActive), ReplayWindow: 1024}
	sa.LocalAddr, sa.RemoteAddr = maps.Addr16(local), maps.Addr16(remote)
	km := make([]byte, 20)
	for i := range km {
		km[i] = seed + byte(i)
	}
	if err := maps.SetKeys(&sa, s, km); err != nil {
		t.Fatal(err)
	}
	return sa
}

// gateway is one side of a back-to-back pair: its tables hold tunnel 1
// with outbound SA (index 2, SPI out) and inbound SA (index 1, SPI in).
type gateway struct {
	tb     *maps.Tables
	b      *tables.Builder
	tabs   *tables.Tables
	ctr    *counterBank
	frames *memFrames
	neigh  *staticNeigh
	slow   *slowSink
	p      *Pipeline
	out    *Output
}

func newTables(t testing.TB, in, out uint32, inSeed, outSeed byte) *maps.Tables {
	tb := &maps.Tables{
		Generation: 2,
		SAs: map[uint32]maps.SA{
			1: gcmSA(t, in, 1, maps.DirInbound, inSeed, gwOut, peerOut),
			2: gcmSA(t, out, 1, maps.DirOutbound, outSeed, gwOut, peerOut),
		},
		Inbound:    map[uint32]maps.InboundSA{in: {SaIndex: 1, TunnelId: 1}},
		Outbound:   make([]uint32, maps.MaxTunnels),
		Tunnels:    make([]maps.Tunnel, maps.MaxTunnels),
		LocalAddrs: map[netip.Addr]maps.Local{gwOut: maps.LocalOutside, gwIn: maps.LocalInside},
		Routes: []maps.RouteEntry{
			{Prefix: netip.MustParsePrefix("198.19.0.0/16"), Route: maps.Route{TunnelId: 1}},
			{Prefix: netip.MustParsePrefix("2001:db8:19::/48"), Route: maps.Route{TunnelId: 1}},
		},
	}
	tb.Outbound[1] = 2
	tb.Tunnels[1] = maps.Tunnel{Flags: uint32(maps.TunnelUp), Mtu: 1399, Mss: 1379,
		InsideAddr: maps.Addr16(insideT1), InsidePrefixlen: 30}
	return tb
}

func newGateway(t testing.TB, in, out uint32, inSeed, outSeed byte, noCrypto bool) *gateway {
	g := &gateway{ctr: new(counterBank), frames: newMemFrames(1024), neigh: testNeigh(), slow: &slowSink{}, tabs: new(tables.Tables)}
	g.tb = newTables(t, in, out, inSeed, outSeed)
	g.b = tables.NewBuilder(g.ctr.get)
	v := g.b.Build(g.tb)
	if len(v.Problems) > 0 {
		t.Fatal(v.Problems)
	}
	g.tabs.Store(v)
	var err error
	g.p, err = New(Config{Frames: g.frames, Tables: g.tabs, Neighbours: g.neigh, SlowPath: g.slow,
		InsideIfindex: ifIn, OutsideIfindex: ifOut, InsideMAC: macIn, OutsideMAC: macOut,
		Gateway4: gwIn, NoCrypto: noCrypto, Batch: 64})
	if err != nil {
		t.Fatal(err)
	}
	g.out = g.p.NewOutput()
	return g
}

// ipv4 builds an IPv4/UDP packet of n bytes.
func ipv4(src, dst netip.Addr, n int, ttl byte, df bool, seed byte) []byte {
	p := make([]byte, n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	binary.BigEndian.PutUint16(p[4:], uint16(seed)<<8|1)
	if df {
		binary.BigEndian.PutUint16(p[6:], packet.IPv4FlagDF)
	}
	p[8] = ttl
	p[9] = packet.ProtoUDP
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	packet.IPv4HeaderChecksum(p[:20])
	binary.BigEndian.PutUint16(p[20:], 1000)
	binary.BigEndian.PutUint16(p[22:], 2000)
	binary.BigEndian.PutUint16(p[24:], uint16(n-20))
	for i := 28; i < n; i++ {
		p[i] = seed + byte(i)
	}
	return p
}

// frameOf puts an Ethernet frame (dst, src, IP payload) into a new frame
// at the data offset, as the socket would hand it over.
func (g *gateway) frameOf(t testing.TB, dst, src [6]byte, ip []byte) Packet {
	a, ok := g.frames.Alloc()
	if !ok {
		t.Fatal("out of frames")
	}
	fb := g.frames.Frame(a)
	d := fb[memDataOff:]
	copy(d[0:6], dst[:])
	copy(d[6:12], src[:])
	et := uint16(etherTypeIP4)
	if ip[0]>>4 == 6 {
		et = etherTypeIP6
	}
	binary.BigEndian.PutUint16(d[12:], et)
	copy(d[14:], ip)
	return Packet{Buf: fb, Addr: a, Off: memDataOff, Len: EthLen + len(ip)}
}

// setMeta writes the inside XDP program's metadata in front of pk: the
// tunnel it routed the frame to (0: no metadata).
func setMeta(pk *Packet, tunnel uint32) {
	m := pk.Buf[pk.Off-metaLen : pk.Off]
	magic := maps.MetaMagic
	if tunnel == 0 {
		magic = 0
	}
	binary.NativeEndian.PutUint32(m[0:], tunnel)
	binary.NativeEndian.PutUint32(m[4:], magic)
}

// move copies transmitted frames of one gateway into frames of another,
// as a wire would, and frees them at the sender.
func move(t testing.TB, from, to *gateway, pkts []Packet) []Packet {
	var res []Packet
	for _, pk := range pkts {
		d := pk.Data()
		res = append(res, to.frameOf(t, [6]byte(d[0:6]), [6]byte(d[6:12]), d[14:]))
		from.frames.Free(pk.Addr)
	}
	return res
}

func (g *gateway) view() *tables.View { return g.tabs.Load() }

func (g *gateway) drops() map[string]uint64 {
	m := map[string]uint64{}
	for s := Stage(0); s < NumStages; s++ {
		for r := 0; r < maxReasons; r++ {
			if n := g.p.c.Drops[s][r]; n != 0 {
				m[s.String()+"/"+ReasonName(s, r)] += n
			}
		}
	}
	return m
}

// ipv6 builds an IPv6/UDP packet of n bytes.
func ipv6(src, dst netip.Addr, n int, hop byte, seed byte) []byte {
	p := make([]byte, n)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(n-40))
	p[6] = packet.ProtoUDP
	p[7] = hop
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	binary.BigEndian.PutUint16(p[40:], 1000)
	binary.BigEndian.PutUint16(p[42:], 2000)
	binary.BigEndian.PutUint16(p[44:], uint16(n-40))
	for i := 48; i < n; i++ {
		p[i] = seed + byte(i)
	}
	return p
}
