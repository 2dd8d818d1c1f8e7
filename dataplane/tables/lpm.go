package tables

import (
	"encoding/binary"
	"net/netip"
	"sort"

	"github.com/cgw-project/cgw/bpf/maps"
)

// LPM is a longest-prefix-match route table: one hash table per prefix
// length present, searched from the longest. Route tables here hold few
// distinct lengths (a /16, some /24s), so a lookup is a few map probes with
// no allocation. The worker uses it only when the inside XDP program's
// metadata is missing; XDP's LPM trie does the lookup otherwise.
type LPM struct {
	v4     []level4 // longest first
	v6     []level6
	routes int
}

type level4 struct {
	bits int
	mask uint32
	m    map[uint32]maps.Route
}

type level6 struct {
	bits int
	m    map[[16]byte]maps.Route
}

// NewLPM builds the table from a snapshot's routes (IPv4-mapped IPv6
// prefixes are taken as IPv4).
func NewLPM(routes []maps.RouteEntry) *LPM {
	l := &LPM{}
	by4 := map[int]map[uint32]maps.Route{}
	by6 := map[int]map[[16]byte]maps.Route{}
	for _, r := range routes {
		p := r.Prefix
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		if p.Addr().Is4() {
			m := by4[p.Bits()]
			if m == nil {
				m = map[uint32]maps.Route{}
				by4[p.Bits()] = m
			}
			m[v4key(p.Addr())] = r.Route
		} else {
			m := by6[p.Bits()]
			if m == nil {
				m = map[[16]byte]maps.Route{}
				by6[p.Bits()] = m
			}
			m[p.Addr().As16()] = r.Route
		}
		l.routes++
	}
	for bits, m := range by4 {
		var mask uint32
		if bits > 0 {
			mask = ^uint32(0) << (32 - bits)
		}
		l.v4 = append(l.v4, level4{bits, mask, m})
	}
	for bits, m := range by6 {
		l.v6 = append(l.v6, level6{bits, m})
	}
	sort.Slice(l.v4, func(i, j int) bool { return l.v4[i].bits > l.v4[j].bits })
	sort.Slice(l.v6, func(i, j int) bool { return l.v6[i].bits > l.v6[j].bits })
	return l
}

func v4key(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// Len returns the number of routes.
func (l *LPM) Len() int { return l.routes }

// Lookup returns the route of the longest prefix containing dst.
func (l *LPM) Lookup(dst netip.Addr) (maps.Route, bool) {
	if dst.Is4In6() {
		dst = dst.Unmap()
	}
	if dst.Is4() {
		return l.Lookup4(v4key(dst))
	}
	a := dst.As16()
	for _, lv := range l.v6 {
		k := mask16(a, lv.bits)
		if r, ok := lv.m[k]; ok {
			return r, true
		}
	}
	return maps.Route{}, false
}

// Lookup4 is Lookup for an IPv4 address as a big-endian number, straight
// from a header.
func (l *LPM) Lookup4(dst uint32) (maps.Route, bool) {
	for _, lv := range l.v4 {
		if r, ok := lv.m[dst&lv.mask]; ok {
			return r, true
		}
	}
	return maps.Route{}, false
}

func mask16(a [16]byte, bits int) [16]byte {
	for i := range a {
		switch {
		case bits >= 8:
			bits -= 8
		case bits > 0:
			a[i] &= ^byte(0) << (8 - bits)
			bits = 0
		default:
			a[i] = 0
		}
	}
	return a
}
