package pktgen

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Endpoints is a block of UDP endpoints: every address of First..Last
// with every port of PortLo..PortHi.
type Endpoints struct {
	First, Last    netip.Addr
	PortLo, PortHi uint16
}

// Size is the number of endpoints in the block.
func (e Endpoints) Size() int {
	a, b := e.First.As4(), e.Last.As4()
	n := int(be32(b[:])-be32(a[:])) + 1
	return n * (int(e.PortHi-e.PortLo) + 1)
}

// At returns endpoint j (mod Size) of the block; the address varies
// fastest, so consecutive flows differ in address and port (RSS hashes
// both).
func (e Endpoints) At(j int) netip.AddrPort {
	a := e.First.As4()
	nAddr := int(be32(e.Last.AsSlice())-be32(a[:])) + 1
	nPort := int(e.PortHi-e.PortLo) + 1
	j %= nAddr * nPort
	v := be32(a[:]) + uint32(j%nAddr)
	addr := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	return netip.AddrPortFrom(addr, e.PortLo+uint16(j/nAddr))
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// ParseEndpoints reads a comma-separated list of blocks, each
// ADDR[-ADDR|/BITS][:PORT[-PORT]]: "198.18.0.2", "198.18.0.2-198.18.0.101:1024-1087",
// "198.19.0.0/24:9,198.19.1.0/24:9" (two VPC prefixes: flows alternate
// between them). A prefix yields its host addresses (network and
// broadcast left out for /30 and shorter). Port default: defPort.
// Addresses must be in the benchmarking block 198.18.0.0/15.
func ParseEndpoints(s string, defPort uint16) ([]Endpoints, error) {
	var out []Endpoints
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		addrs, ports, hasPort := strings.Cut(part, ":")
		e := Endpoints{PortLo: defPort, PortHi: defPort}
		if hasPort {
			lo, hi, isRange := strings.Cut(ports, "-")
			pl, err1 := strconv.ParseUint(lo, 10, 16)
			ph := pl
			var err2 error
			if isRange {
				ph, err2 = strconv.ParseUint(hi, 10, 16)
			}
			if err1 != nil || err2 != nil || ph < pl {
				return nil, fmt.Errorf("pktgen: endpoints %q: port range %q must be PORT or LOW-HIGH", part, ports)
			}
			e.PortLo, e.PortHi = uint16(pl), uint16(ph)
		}
		switch {
		case strings.Contains(addrs, "/"):
			p, err := netip.ParsePrefix(addrs)
			if err != nil || !p.Addr().Is4() {
				return nil, fmt.Errorf("pktgen: endpoints %q: %q is not an IPv4 prefix", part, addrs)
			}
			p = p.Masked()
			a := p.Addr().As4()
			first := be32(a[:])
			last := first + uint32(1)<<(32-p.Bits()) - 1
			if p.Bits() <= 30 {
				first, last = first+1, last-1
			}
			e.First, e.Last = u32Addr(first), u32Addr(last)
		case strings.Contains(addrs, "-"):
			lo, hi, _ := strings.Cut(addrs, "-")
			a, err1 := netip.ParseAddr(lo)
			b, err2 := netip.ParseAddr(hi)
			if err1 != nil || err2 != nil || !a.Is4() || !b.Is4() || b.Less(a) {
				return nil, fmt.Errorf("pktgen: endpoints %q: address range %q must be LOW-HIGH, IPv4, in order", part, addrs)
			}
			e.First, e.Last = a, b
		default:
			a, err := netip.ParseAddr(addrs)
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("pktgen: endpoints %q: %q is not an IPv4 address", part, addrs)
			}
			e.First, e.Last = a, a
		}
		if !Bench.Contains(e.First) || !Bench.Contains(e.Last) {
			return nil, fmt.Errorf("pktgen: endpoints %q are not in %v: the generator sends only benchmarking addresses", part, Bench)
		}
		out = append(out, e)
	}
	return out, nil
}

func u32Addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Flows spreads N flows over source and destination blocks. Flow i takes
// block i mod len(Src) (and of Dst), so several tunnels' or VPCs'
// prefixes get equal shares whatever their sizes, and within its block
// endpoint i / len(blocks): up to a block's Size, every flow of it is
// distinct.
type Flows struct {
	Src, Dst []Endpoints
	N        int
}

// Flow returns flow i's source and destination.
func (f Flows) Flow(i int) (src, dst netip.AddrPort) {
	s := f.Src[i%len(f.Src)]
	d := f.Dst[i%len(f.Dst)]
	return s.At(i / len(f.Src)), d.At(i / len(f.Dst))
}

// Valid says what is wrong with the flows.
func (f Flows) Valid() error {
	if len(f.Src) == 0 || len(f.Dst) == 0 {
		return fmt.Errorf("pktgen: flows need source and destination endpoints")
	}
	if f.N < 1 || f.N > MaxFlows {
		return fmt.Errorf("pktgen: %d flows: want 1..%d", f.N, MaxFlows)
	}
	return nil
}

// MaxFlows bounds the flows of one run: the generator holds a frame per
// flow and size (at most 64 MB with Simple IMIX).
const MaxFlows = 1 << 14
