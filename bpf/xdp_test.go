package bpf_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/cgw-project/cgw/bpf"
)

var instanceSeq atomic.Int32

// load loads a fresh, uniquely named instance and removes it at the end.
func load(t testing.TB) *bpf.Objects {
	t.Helper()
	if testing.Short() {
		t.Skip("loads BPF programs: needs root; run without -short")
	}
	if os.Geteuid() != 0 {
		t.Fatalf("loading BPF programs needs root (run the tests as root)")
	}
	name := fmt.Sprintf("test-%d-%d", os.Getpid(), instanceSeq.Add(1))
	objs, err := bpf.LoadPinned(name)
	if err != nil {
		t.Fatalf("LoadPinned: %v", err)
	}
	t.Cleanup(func() {
		objs.Close()
		if err := bpf.Remove(name); err != nil {
			t.Errorf("Remove: %v", err)
		}
	})
	return objs
}

// Frame builders: just enough header for the XDP programs' decisions.

func ether(proto uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], []byte{2, 0, 0, 0, 0, 1})
	copy(b[6:12], []byte{2, 0, 0, 0, 0, 2})
	binary.BigEndian.PutUint16(b[12:], proto)
	return append(b, payload...)
}

func ipv4(proto byte, src, dst string, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(payload)))
	b[8] = 64
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return ether(0x0800, append(b, payload...))
}

func ipv6(next byte, src, dst string, payload []byte) []byte {
	b := make([]byte, 40, 40+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = next
	b[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return ether(0x86dd, append(b, payload...))
}

func udp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func esp(spi uint32, n int) []byte {
	b := make([]byte, 8+n)
	binary.BigEndian.PutUint32(b[0:], spi)
	binary.BigEndian.PutUint32(b[4:], 1)
	return b
}

func padTo60(f []byte) []byte {
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

const (
	protoESP    = 50
	protoUDP    = 17
	protoICMPv6 = 58
	local4      = "192.0.2.10"
	peer4       = "203.0.113.1"
	local6      = "2001:db8:1::10"
	peer6       = "2001:db8:2::1"
	knownSPI    = 0xc0ffee01
)

func addr16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

// outsideFixture: local addresses and one known inbound SPI.
func outsideFixture(t testing.TB, o *bpf.Objects) {
	t.Helper()
	for _, a := range []string{local4, local6} {
		if err := o.LocalAddrs.Put(bpf.CgwLocalAddr{Addr: addr16(a)}, uint32(bpf.CgwLocalOutside)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.InboundSpi.Put(uint32(knownSPI), bpf.CgwInboundSa{SaIndex: 1, TunnelId: 1}); err != nil {
		t.Fatal(err)
	}
}

func stats(t *testing.T, o *bpf.Objects) [bpf.CgwStatNumStats]uint64 {
	t.Helper()
	s, err := o.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStatNames(t *testing.T) {
	seen := map[string]bool{}
	for s := bpf.CgwStat(0); s < bpf.CgwStatNumStats; s++ {
		n := s.String()
		if n == fmt.Sprintf("stat_%d", s) || seen[n] {
			t.Errorf("stat %d has no name, or a duplicate one (%q): update statNames in bpf/stats.go", s, n)
		}
		seen[n] = true
	}
}

const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

// run runs prog on frame and checks the action and that exactly the
// counter want moved, by one. It returns the frame as the program left it
// (metadata included) for XDP_PASS/XDP_REDIRECT.
func run(t *testing.T, o *bpf.Objects, prog *ebpf.Program, frame []byte, wantAct uint32, want bpf.CgwStat) []byte {
	t.Helper()
	before := stats(t, o)
	out := make([]byte, len(frame)+256)
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, DataOut: out})
	if err != nil {
		t.Fatalf("BPF_PROG_RUN: %v", err)
	}
	after := stats(t, o)
	if ret != wantAct {
		t.Errorf("action %d, want %d", ret, wantAct)
	}
	for i := range after {
		d := after[i] - before[i]
		switch {
		case bpf.CgwStat(i) == want && d != 1:
			t.Errorf("counter %v moved by %d, want 1", bpf.CgwStat(i), d)
		case bpf.CgwStat(i) != want && d != 0:
			t.Errorf("counter %v moved by %d, want 0 (expected only %v)", bpf.CgwStat(i), d, want)
		}
	}
	return out
}

func TestOutsideDecisions(t *testing.T) {
	o := load(t)
	outsideFixture(t, o)
	p := o.XdpOutside
	marker := make([]byte, 40) // non-ESP marker + IKE header
	cases := []struct {
		name  string
		frame []byte
		act   uint32
		stat  bpf.CgwStat
	}{
		// Ours but no socket (dataplane stopped): the kernel has no SA.
		{"esp known spi, no socket", ipv4(protoESP, peer4, local4, esp(knownSPI, 64)), xdpDrop, bpf.CgwStatOutDropNoSocket},
		{"esp-in-udp known spi, no socket", ipv4(protoUDP, peer4, local4, udp(4500, 4500, esp(knownSPI, 64))), xdpDrop, bpf.CgwStatOutDropNoSocket},
		{"esp over ipv6 known spi", ipv6(protoESP, peer6, local6, esp(knownSPI, 64)), xdpDrop, bpf.CgwStatOutDropNoSocket},
		{"esp unknown spi", ipv4(protoESP, peer4, local4, esp(0x1234, 64)), xdpPass, bpf.CgwStatOutUnknownSpi},
		{"esp-in-udp unknown spi", ipv4(protoUDP, peer4, local4, udp(4500, 4500, esp(0x1234, 64))), xdpPass, bpf.CgwStatOutUnknownSpi},
		{"esp to another address", ipv4(protoESP, peer4, "192.0.2.99", esp(knownSPI, 64)), xdpPass, bpf.CgwStatOutNotLocal},
		{"ike 500", ipv4(protoUDP, peer4, local4, udp(500, 500, make([]byte, 40))), xdpPass, bpf.CgwStatOutIke},
		{"ike 4500 with marker", ipv4(protoUDP, peer4, local4, udp(4500, 4500, marker)), xdpPass, bpf.CgwStatOutIke},
		{"nat-t keepalive", ipv4(protoUDP, peer4, local4, udp(4500, 4500, []byte{0xff})), xdpPass, bpf.CgwStatOutKeepalive},
		{"nat-t keepalive padded to 60", padTo60(ipv4(protoUDP, peer4, local4, udp(4500, 4500, []byte{0xff}))), xdpPass, bpf.CgwStatOutKeepalive},
		{"other udp", ipv4(protoUDP, peer4, local4, udp(53, 53, make([]byte, 20))), xdpPass, bpf.CgwStatOutOther},
		{"icmp", ipv4(1, peer4, local4, make([]byte, 16)), xdpPass, bpf.CgwStatOutOther},
		{"arp", padTo60(ether(0x0806, make([]byte, 28))), xdpPass, bpf.CgwStatOutArp},
		{"truncated esp", ipv4(protoESP, peer4, local4, []byte{1, 2, 3}), xdpPass, bpf.CgwStatOutShort},
	}
	frag := ipv4(protoESP, peer4, local4, esp(knownSPI, 64))
	frag[14+6] = 0x20 // more fragments
	badIHL := ipv4(protoESP, peer4, local4, esp(knownSPI, 64))
	badIHL[14] = 0x44
	cases = append(cases, []struct {
		name  string
		frame []byte
		act   uint32
		stat  bpf.CgwStat
	}{
		{"esp fragment", frag, xdpPass, bpf.CgwStatOutFragment},
		{"ipv4 header length < 20", badIHL, xdpPass, bpf.CgwStatOutShort},
	}...)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { run(t, o, p, c.frame, c.act, c.stat) })
	}
}

func TestOutsideRedirect(t *testing.T) {
	o := load(t)
	outsideFixture(t, o)
	fd := xskSocket(t)
	if err := o.XsksOutside.Put(uint32(0), uint32(fd)); err != nil {
		t.Fatalf("XSKMAP insert: %v", err)
	}
	run(t, o, o.XdpOutside, ipv4(protoESP, peer4, local4, esp(knownSPI, 64)), xdpRedirect, bpf.CgwStatOutRedirect)
	run(t, o, o.XdpOutside, ipv4(protoUDP, peer4, local4, udp(4500, 4500, esp(knownSPI, 64))), xdpRedirect, bpf.CgwStatOutRedirect)
	// IKE still reaches the kernel with a socket bound (DESIGN §4).
	run(t, o, o.XdpOutside, ipv4(protoUDP, peer4, local4, udp(4500, 4500, make([]byte, 40))), xdpPass, bpf.CgwStatOutIke)
}

const (
	tunUp   = 1
	tunDown = 2
	tunAlt  = 3
)

func insideFixture(t testing.TB, o *bpf.Objects) {
	t.Helper()
	put := func(id uint32, flags bpf.CgwTunnelFlag) {
		if err := o.Tunnels.Put(id, bpf.CgwTunnel{Flags: uint32(flags), Mtu: 1399}); err != nil {
			t.Fatal(err)
		}
	}
	put(tunUp, bpf.CgwTunnelFlagUp)
	put(tunDown, 0)
	put(tunAlt, bpf.CgwTunnelFlagUp)
	r4 := func(p string, r bpf.CgwRoute) {
		pf := netip.MustParsePrefix(p)
		k := bpf.CgwRoute4Key{Prefixlen: uint32(pf.Bits()), Addr: pf.Addr().As4()}
		if err := o.RoutesV4.Put(k, r); err != nil {
			t.Fatal(err)
		}
	}
	r4("198.19.0.0/16", bpf.CgwRoute{TunnelId: tunUp})
	r4("198.19.5.0/24", bpf.CgwRoute{TunnelId: tunDown})
	r4("198.19.6.0/24", bpf.CgwRoute{TunnelId: tunDown, BackupTunnelId: tunAlt})
	r4("0.0.0.0/0", bpf.CgwRoute{TunnelId: tunUp})
	r6 := func(p string, r bpf.CgwRoute) {
		pf := netip.MustParsePrefix(p)
		if err := o.RoutesV6.Put(bpf.CgwRoute6Key{Prefixlen: uint32(pf.Bits()), Addr: pf.Addr().As16()}, r); err != nil {
			t.Fatal(err)
		}
	}
	r6("2001:db8:100::/48", bpf.CgwRoute{TunnelId: tunUp})
	r6("2001:db8:105::/48", bpf.CgwRoute{TunnelId: tunDown})
	for _, a := range []string{"198.18.0.1", "198.19.5.254"} {
		if err := o.LocalAddrs.Put(bpf.CgwLocalAddr{Addr: addr16(a)}, uint32(bpf.CgwLocalInside)); err != nil {
			t.Fatal(err)
		}
	}
}

// meta returns the tunnel id from metadata the program left in front of
// the frame (BPF_PROG_RUN returns data from data_meta).
func meta(t *testing.T, out []byte) (tunnel uint32, ok bool) {
	t.Helper()
	n := int(unsafe.Sizeof(bpf.CgwXdpMeta{}))
	if binary.LittleEndian.Uint32(out[4:8]) != uint32(bpf.CgwLimitsMetaMagic) {
		return 0, false
	}
	if out[n+12] != 0x08 && out[n+12] != 0x86 {
		t.Errorf("frame does not follow the %d metadata bytes", n)
	}
	return binary.LittleEndian.Uint32(out[0:4]), true
}

func TestInsideDecisions(t *testing.T) {
	o := load(t)
	insideFixture(t, o)
	p := o.XdpInside
	lan := "198.18.0.50"
	cases := []struct {
		name  string
		frame []byte
		act   uint32
		stat  bpf.CgwStat
		tun   uint32 // expected metadata tunnel, 0 = none
	}{
		// Fail closed (DESIGN §6): tunnel-bound traffic with no socket
		// (dataplane stopped) or with every tunnel down is dropped, never
		// passed to a kernel that would forward it in clear.
		{"route to up tunnel, no socket", ipv4(protoUDP, lan, "198.19.1.1", udp(1000, 2000, make([]byte, 32))), xdpDrop, bpf.CgwStatInDropNoSocket, tunUp},
		{"default route, no socket", ipv4(protoUDP, lan, "198.51.100.7", udp(1000, 2000, nil)), xdpDrop, bpf.CgwStatInDropNoSocket, tunUp},
		{"route to down tunnel", ipv4(protoUDP, lan, "198.19.5.1", udp(1000, 2000, nil)), xdpDrop, bpf.CgwStatInDropTunnelDown, 0},
		{"route to down tunnel, icmp", ipv4(1, lan, "198.19.5.1", make([]byte, 16)), xdpDrop, bpf.CgwStatInDropTunnelDown, 0},
		{"down tunnel with up backup", ipv4(protoUDP, lan, "198.19.6.1", udp(1000, 2000, nil)), xdpDrop, bpf.CgwStatInDropNoSocket, tunAlt},
		{"ipv6 route, no socket", ipv6(protoUDP, "2001:db8:1::50", "2001:db8:100::1", udp(1000, 2000, nil)), xdpDrop, bpf.CgwStatInDropNoSocket, tunUp},
		{"ipv6 route to down tunnel", ipv6(protoUDP, "2001:db8:1::50", "2001:db8:105::1", udp(1000, 2000, nil)), xdpDrop, bpf.CgwStatInDropTunnelDown, 0},
		// Not cgw's: the kernel decides (its guard routes, control/guard).
		{"ipv6 no route", ipv6(protoUDP, "2001:db8:1::50", "2001:db8:200::1", udp(1000, 2000, nil)), xdpPass, bpf.CgwStatInNoRoute, 0},
		{"ipv6 neighbour solicitation", ipv6(protoICMPv6, "2001:db8:1::50", "2001:db8:100::1", []byte{135, 0, 0, 0, 0, 0, 0, 0}), xdpPass, bpf.CgwStatInNd, 0},
		{"ipv6 link-local", ipv6(protoUDP, "fe80::1", "fe80::2", udp(1, 2, nil)), xdpPass, bpf.CgwStatInLocal, 0},
		{"to the gateway itself", ipv4(1, lan, "198.18.0.1", make([]byte, 16)), xdpPass, bpf.CgwStatInLocal, 0},
		{"to the gateway inside a down route", ipv4(1, lan, "198.19.5.254", make([]byte, 16)), xdpPass, bpf.CgwStatInLocal, 0},
		{"broadcast", ipv4(protoUDP, lan, "255.255.255.255", udp(68, 67, nil)), xdpPass, bpf.CgwStatInLocal, 0},
		{"arp", padTo60(ether(0x0806, make([]byte, 28))), xdpPass, bpf.CgwStatInArp, 0},
		{"other ethertype", padTo60(ether(0x88cc, make([]byte, 28))), xdpPass, bpf.CgwStatInOther, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := run(t, o, p, c.frame, c.act, c.stat)
			tun, ok := meta(t, out)
			if c.tun != 0 && (!ok || tun != c.tun) {
				t.Errorf("metadata: tunnel %d (magic present %v), want tunnel %d", tun, ok, c.tun)
			}
			if c.tun == 0 && ok {
				t.Errorf("metadata written (tunnel %d) for a frame not steered", tun)
			}
		})
	}

	// No route at all: remove the default route.
	if err := o.RoutesV4.Delete(bpf.CgwRoute4Key{}); err != nil {
		t.Fatal(err)
	}
	run(t, o, p, ipv4(protoUDP, lan, "198.51.100.7", udp(1000, 2000, nil)), xdpPass, bpf.CgwStatInNoRoute)
	// Both tunnels of a route down: dropped, not passed.
	if err := o.Tunnels.Put(uint32(tunAlt), bpf.CgwTunnel{Mtu: 1399}); err != nil {
		t.Fatal(err)
	}
	run(t, o, p, ipv4(protoUDP, lan, "198.19.6.1", udp(1000, 2000, nil)), xdpDrop, bpf.CgwStatInDropTunnelDown)
}

func TestInsideRedirect(t *testing.T) {
	o := load(t)
	insideFixture(t, o)
	fd := xskSocket(t)
	if err := o.XsksInside.Put(uint32(0), uint32(fd)); err != nil {
		t.Fatalf("XSKMAP insert: %v", err)
	}
	frame := ipv4(protoUDP, "198.18.0.50", "198.19.1.1", udp(1000, 2000, make([]byte, 32)))
	out := run(t, o, o.XdpInside, frame, xdpRedirect, bpf.CgwStatInRedirect)
	if tun, ok := meta(t, out); !ok || tun != tunUp {
		t.Errorf("metadata: tunnel %d (magic present %v), want %d", tun, ok, tunUp)
	}
	run(t, o, o.XdpInside, padTo60(ether(0x0806, make([]byte, 28))), xdpPass, bpf.CgwStatInArp)
}

func TestPassProgram(t *testing.T) {
	o := load(t)
	ret, err := o.XdpPass.Run(&ebpf.RunOptions{Data: padTo60(ether(0x0800, nil))})
	if err != nil || ret != xdpPass {
		t.Fatalf("xdp_pass: ret %d err %v, want XDP_PASS", ret, err)
	}
}

// BenchmarkXDP: cost of one decision per program and path (BPF_PROG_RUN,
// repeat inside the kernel).
func BenchmarkXDP(b *testing.B) {
	o := load(b)
	outsideFixture(b, o)
	insideFixture(b, o)
	cases := []struct {
		name  string
		prog  *ebpf.Program
		frame []byte
	}{
		{"outside/esp-known-spi", o.XdpOutside, ipv4(protoESP, peer4, local4, esp(knownSPI, 64))},
		{"outside/natt-known-spi", o.XdpOutside, ipv4(protoUDP, peer4, local4, udp(4500, 4500, esp(knownSPI, 64)))},
		{"outside/ike", o.XdpOutside, ipv4(protoUDP, peer4, local4, udp(500, 500, make([]byte, 40)))},
		{"inside/route-up", o.XdpInside, ipv4(protoUDP, "198.18.0.50", "198.19.1.1", udp(1000, 2000, make([]byte, 32)))},
		{"inside/ipv6-route", o.XdpInside, ipv6(protoUDP, "2001:db8:1::50", "2001:db8:100::1", udp(1000, 2000, nil))},
		{"pass", o.XdpPass, ipv4(protoUDP, peer4, local4, udp(500, 500, nil))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			const repeat = 100000
			var total time.Duration
			for b.Loop() {
				_, d, err := c.prog.Benchmark(c.frame, repeat, nil)
				if err != nil {
					b.Fatal(err)
				}
				total += d
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/decision")
		})
	}
}
