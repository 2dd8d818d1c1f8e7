package bpf_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/cgw-project/cgw/bpf"
)

// classifyOutside is the outside program's decision written plainly in Go
// (a reference model for the differential fuzz test), for the fixture of
// outsideFixture and no socket bound.
func classifyOutside(f []byte) bpf.CgwStat {
	if len(f) < 14 {
		return bpf.CgwStatOutShort
	}
	var proto byte
	var l4 []byte
	var dst netip.Addr
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		ip := f[14:]
		if len(ip) < 20 || ip[0]&0xf < 5 {
			return bpf.CgwStatOutShort
		}
		if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return bpf.CgwStatOutFragment
		}
		proto = ip[9]
		ihl := int(ip[0]&0xf) * 4
		if ihl > len(ip) {
			l4 = nil
		} else {
			l4 = ip[ihl:]
		}
		dst = netip.AddrFrom4([4]byte(ip[16:20]))
	case 0x86dd:
		ip := f[14:]
		if len(ip) < 40 {
			return bpf.CgwStatOutShort
		}
		proto, l4 = ip[6], ip[40:]
		dst = netip.AddrFrom16([16]byte(ip[24:40]))
	case 0x0806:
		return bpf.CgwStatOutArp
	default:
		return bpf.CgwStatOutOther
	}
	var spi uint32
	switch proto {
	case protoESP:
		if len(l4) < 8 {
			return bpf.CgwStatOutShort
		}
		spi = binary.BigEndian.Uint32(l4)
	case protoUDP:
		if len(l4) < 8 {
			return bpf.CgwStatOutShort
		}
		switch binary.BigEndian.Uint16(l4[2:]) {
		case 500:
			return bpf.CgwStatOutIke
		case 4500:
		default:
			return bpf.CgwStatOutOther
		}
		pl := l4[8:]
		if binary.BigEndian.Uint16(l4[4:]) == 9 {
			if len(pl) < 1 {
				return bpf.CgwStatOutShort
			}
			if pl[0] == 0xff {
				return bpf.CgwStatOutKeepalive
			}
			return bpf.CgwStatOutOther
		}
		if len(pl) < 8 {
			return bpf.CgwStatOutShort
		}
		spi = binary.BigEndian.Uint32(pl)
		if spi == 0 {
			return bpf.CgwStatOutIke
		}
	default:
		return bpf.CgwStatOutOther
	}
	if dst != netip.MustParseAddr(local4) && dst != netip.MustParseAddr(local6) {
		return bpf.CgwStatOutNotLocal
	}
	if spi != knownSPI {
		return bpf.CgwStatOutUnknownSpi
	}
	return bpf.CgwStatOutDropNoSocket
}

// actionOf is the verdict the programs give with no socket bound: the
// fail-closed drops, and XDP_PASS for the rest.
func actionOf(s bpf.CgwStat) uint32 {
	switch s {
	case bpf.CgwStatOutDropNoSocket, bpf.CgwStatInDropNoSocket, bpf.CgwStatInDropTunnelDown:
		return xdpDrop
	}
	return xdpPass
}

// FuzzOutside compares xdp_outside with the Go model on arbitrary frames:
// every frame must get the model's verdict (no socket is bound: ESP with our
// SPI dropped, the rest passed) and be counted under the model's reason. Run bounded: go test -fuzz FuzzOutside -fuzztime 20s ./bpf
func FuzzOutside(f *testing.F) {
	for _, fr := range [][]byte{
		ipv4(protoESP, peer4, local4, esp(knownSPI, 16)),
		ipv4(protoUDP, peer4, local4, udp(4500, 4500, esp(knownSPI, 16))),
		ipv4(protoUDP, peer4, local4, udp(4500, 4500, []byte{0xff})),
		ipv4(protoUDP, peer4, local4, udp(4500, 4500, make([]byte, 12))),
		ipv4(protoUDP, peer4, local4, udp(500, 500, make([]byte, 12))),
		ipv6(protoESP, peer6, local6, esp(knownSPI, 16)),
		ipv6(protoUDP, peer6, local6, udp(4500, 4500, esp(0x77, 16))),
		ether(0x0806, make([]byte, 28)),
	} {
		f.Add(fr)
	}
	o := load(f)
	outsideFixture(f, o)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 1500 {
			return // the kernel refuses test input shorter than Ethernet
		}
		before, err := o.Stats()
		if err != nil {
			t.Fatal(err)
		}
		ret, err := o.XdpOutside.Run(&ebpf.RunOptions{Data: frame})
		if err != nil {
			t.Fatal(err)
		}
		after, _ := o.Stats()
		want := classifyOutside(frame)
		if ret != actionOf(want) {
			t.Errorf("frame %x: action %d, want %d (%v)", frame, ret, actionOf(want), want)
		}
		for i := range after {
			d := after[i] - before[i]
			if (bpf.CgwStat(i) == want) != (d == 1) || d > 1 {
				t.Fatalf("frame %x: counter %v moved by %d; model says %v", frame, bpf.CgwStat(i), d, want)
			}
		}
	})
}

// classifyInside models xdp_inside for insideFixture with no socket bound;
// it returns the counter and the tunnel the metadata must name (0: none).
func classifyInside(f []byte) (bpf.CgwStat, uint32) {
	if len(f) < 14 {
		return bpf.CgwStatInShort, 0
	}
	var dst netip.Addr
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		ip := f[14:]
		if len(ip) < 20 {
			return bpf.CgwStatInShort, 0
		}
		dst = netip.AddrFrom4([4]byte(ip[16:20]))
		if ip[16] >= 224 {
			return bpf.CgwStatInLocal, 0
		}
	case 0x86dd:
		ip := f[14:]
		if len(ip) < 40 {
			return bpf.CgwStatInShort, 0
		}
		if ip[6] == protoICMPv6 {
			if len(ip) < 41 {
				return bpf.CgwStatInShort, 0
			}
			if ip[40] >= 133 && ip[40] <= 137 {
				return bpf.CgwStatInNd, 0
			}
		}
		// Raw ff00::/8 and fe80::/10: netip would treat ::ffff:224.x as
		// multicast, the program (rightly) does not.
		if ip[24] == 0xff || ip[24] == 0xfe && ip[25]&0xc0 == 0x80 {
			return bpf.CgwStatInLocal, 0
		}
		dst = netip.AddrFrom16([16]byte(ip[24:40]))
	case 0x0806:
		return bpf.CgwStatInArp, 0
	default:
		return bpf.CgwStatInOther, 0
	}
	// local_addrs holds 16-byte keys: ::ffff:198.18.0.1 in an IPv6
	// header matches the IPv4 address too.
	if u := dst.Unmap(); u == netip.MustParseAddr("198.18.0.1") || u == netip.MustParseAddr("198.19.5.254") {
		return bpf.CgwStatInLocal, 0
	}
	// insideFixture's routes, most specific first.
	routes := []struct {
		p           string
		tun, backup uint32
	}{
		{"198.19.5.0/24", tunDown, 0},
		{"198.19.6.0/24", tunDown, tunAlt},
		{"198.19.0.0/16", tunUp, 0},
		{"0.0.0.0/0", tunUp, 0},
		{"2001:db8:100::/48", tunUp, 0},
		{"2001:db8:105::/48", tunDown, 0},
	}
	for _, r := range routes {
		if !netip.MustParsePrefix(r.p).Contains(dst) {
			continue
		}
		for _, id := range []uint32{r.tun, r.backup} {
			if id == tunUp || id == tunAlt {
				return bpf.CgwStatInDropNoSocket, id
			}
		}
		return bpf.CgwStatInDropTunnelDown, 0
	}
	return bpf.CgwStatInNoRoute, 0
}

// FuzzInside compares xdp_inside, including the metadata it writes, with
// the Go model. Run bounded: go test -fuzz FuzzInside -fuzztime 20s ./bpf
func FuzzInside(f *testing.F) {
	for _, fr := range [][]byte{
		ipv4(protoUDP, "198.18.0.50", "198.19.1.1", udp(1, 2, nil)),
		ipv4(protoUDP, "198.18.0.50", "198.19.5.1", udp(1, 2, nil)),
		ipv4(protoUDP, "198.18.0.50", "198.19.6.1", udp(1, 2, nil)),
		ipv4(1, "198.18.0.50", "198.18.0.1", make([]byte, 8)),
		ipv6(protoUDP, "2001:db8:1::50", "2001:db8:100::1", udp(1, 2, nil)),
		ipv6(protoICMPv6, "fe80::1", "ff02::1", []byte{134, 0, 0, 0}),
		ether(0x0806, make([]byte, 28)),
	} {
		f.Add(fr)
	}
	o := load(f)
	insideFixture(f, o)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 1500 {
			return
		}
		before, err := o.Stats()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, len(frame)+64)
		ret, err := o.XdpInside.Run(&ebpf.RunOptions{Data: frame, DataOut: out})
		if err != nil {
			t.Fatal(err)
		}
		after, _ := o.Stats()
		want, tun := classifyInside(frame)
		if ret != actionOf(want) {
			t.Errorf("frame %x: action %d, want %d (%v)", frame, ret, actionOf(want), want)
		}
		for i := range after {
			d := after[i] - before[i]
			if (bpf.CgwStat(i) == want) != (d == 1) || d > 1 {
				t.Fatalf("frame %x: counter %v moved by %d; model says %v", frame, bpf.CgwStat(i), d, want)
			}
		}
		if got, ok := meta(t, out); tun != 0 && (!ok || got != tun) || tun == 0 && ok {
			t.Fatalf("frame %x: metadata tunnel %d (present %v), model says %d", frame, got, ok, tun)
		}
	})
}
