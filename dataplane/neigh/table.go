// Package neigh holds the next-hop MAC addresses the workers put in the
// Ethernet headers they build, taken from the kernel's neighbour table, and
// the kernel's main routing table that says which next hop a destination
// uses (DESIGN §3).
//
// The workers read an immutable [Table] through one atomic pointer load
// (RCU style): no lock, no allocation, no syscall per packet. A [Cache]
// (Linux) keeps the table current from netlink and publishes a new one when
// something a worker can see changes. A miss means the kernel has not
// resolved the address: the caller hands that packet to the kernel (XDP_PASS
// or the slow path), which resolves it, and may call [Cache.Resolve].
package neigh

import (
	"net/netip"
	"slices"
)

// Hop is a next hop: the interface and the address whose MAC is needed
// (the gateway of a route, or the destination itself when it is on-link).
type Hop struct {
	Ifindex int
	Addr    netip.Addr
}

// Neighbour is one usable neighbour entry.
type Neighbour struct {
	Ifindex int
	Addr    netip.Addr
	MAC     [6]byte
}

// Route is one route of the main table as the table keeps it: the
// destination prefix, the outgoing interface and the gateway (invalid when
// the prefix is on-link).
type Route struct {
	Prefix  netip.Prefix
	Ifindex int
	Gateway netip.Addr
	Metric  int
}

// neighKey keys an IPv6 neighbour: fixed size, no pointers, so hashing and
// lookup neither allocate nor chase pointers. IPv4 neighbours, the common
// case, use a uint64 key (ifindex<<32 | address), which hashes faster.
type neighKey struct {
	ifindex int32
	addr    [16]byte
}

// routeKey is an IPv6 destination masked to one prefix length; IPv4 routes
// use bits<<32 | masked address.
type routeKey struct {
	bits uint8
	addr [16]byte
}

type nextHop struct {
	ifindex int32
	gw      netip.Addr // invalid when on-link
	metric  int
}

// Table is one immutable snapshot of neighbours and routes. A nil *Table
// is empty: every lookup misses.
type Table struct {
	neigh4  map[uint64][6]byte
	neigh6  map[neighKey][6]byte
	routes4 map[uint64]nextHop
	routes6 map[routeKey]nextHop
	// Prefix lengths present, longest first, per family: the longest-prefix
	// match probes one map entry per length present (a handful on a gateway).
	lens4, lens6 []uint8
}

func neigh4Key(ifindex int, a4 [4]byte) uint64 {
	return uint64(uint32(ifindex))<<32 | uint64(be32(a4))
}

func be32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

// NewTable builds a table from neighbours and routes. Of several routes to
// the same prefix the one with the lowest metric wins, as in the kernel.
func NewTable(neighs []Neighbour, routes []Route) *Table {
	t := newTable(len(neighs), len(routes))
	for _, n := range neighs {
		t.addNeigh(n.Ifindex, n.Addr, n.MAC)
	}
	for _, r := range routes {
		t.addRoute(r)
	}
	return t
}

func newTable(neighs, routes int) *Table {
	return &Table{
		neigh4: make(map[uint64][6]byte, neighs), neigh6: map[neighKey][6]byte{},
		routes4: make(map[uint64]nextHop, routes), routes6: map[routeKey]nextHop{},
	}
}

func (t *Table) addNeigh(ifindex int, a netip.Addr, mac [6]byte) {
	if a = a.Unmap(); a.Is4() {
		t.neigh4[neigh4Key(ifindex, a.As4())] = mac
	} else {
		t.neigh6[neighKey{int32(ifindex), a.As16()}] = mac
	}
}

func (t *Table) addRoute(r Route) {
	p := r.Prefix.Masked()
	if !p.IsValid() {
		return
	}
	nh := nextHop{ifindex: int32(r.Ifindex), gw: r.Gateway.Unmap(), metric: r.Metric}
	bits := uint8(p.Bits())
	lens := &t.lens4
	if a := p.Addr(); a.Is4() {
		k := uint64(bits)<<32 | uint64(be32(a.As4()))
		if old, ok := t.routes4[k]; ok && old.metric <= nh.metric {
			return
		}
		t.routes4[k] = nh
	} else {
		k := routeKey{bits: bits, addr: a.As16()}
		if old, ok := t.routes6[k]; ok && old.metric <= nh.metric {
			return
		}
		t.routes6[k] = nh
		lens = &t.lens6
	}
	if !slices.Contains(*lens, bits) {
		*lens = append(*lens, bits)
		slices.Sort(*lens)
		slices.Reverse(*lens)
	}
}

// Lookup returns the MAC of ip on interface ifindex if the kernel has it in
// a usable state (REACHABLE, STALE, DELAY, PROBE or PERMANENT).
func (t *Table) Lookup(ifindex int, ip netip.Addr) (mac [6]byte, ok bool) {
	if t == nil {
		return mac, false
	}
	if ip.Is4() || ip.Is4In6() {
		mac, ok = t.neigh4[neigh4Key(ifindex, ip.Unmap().As4())]
	} else {
		mac, ok = t.neigh6[neighKey{int32(ifindex), ip.As16()}]
	}
	return mac, ok
}

// NextHop returns the next hop towards dst by longest-prefix match on the
// main routing table: the route's gateway, or dst itself if on-link.
func (t *Table) NextHop(dst netip.Addr) (Hop, bool) {
	if t == nil || !dst.IsValid() {
		return Hop{}, false
	}
	var nh nextHop
	ok := false
	if dst = dst.Unmap(); dst.Is4() {
		a := be32(dst.As4())
		for _, bits := range t.lens4 {
			mask := uint32(0)
			if bits > 0 {
				mask = ^uint32(0) << (32 - bits)
			}
			if nh, ok = t.routes4[uint64(bits)<<32|uint64(a&mask)]; ok {
				break
			}
		}
	} else {
		a := dst.As16()
		for _, bits := range t.lens6 {
			if nh, ok = t.routes6[routeKey{bits: bits, addr: maskFrom(a, 0, int(bits))}]; ok {
				break
			}
		}
	}
	if !ok {
		return Hop{}, false
	}
	h := Hop{Ifindex: int(nh.ifindex), Addr: dst}
	if nh.gw.IsValid() {
		h.Addr = nh.gw
	}
	return h, true
}

// MACFor is what a worker forwarding to dst needs: the next hop and its MAC.
// On a miss with a valid hop, the kernel has not resolved hop.Addr yet; when
// no route matches, hop is zero.
func (t *Table) MACFor(dst netip.Addr) (hop Hop, mac [6]byte, ok bool) {
	hop, ok = t.NextHop(dst)
	if !ok {
		return hop, mac, false
	}
	mac, ok = t.Lookup(hop.Ifindex, hop.Addr)
	return hop, mac, ok
}

// Len returns the number of neighbours and routes held.
func (t *Table) Len() (neighbours, routes int) {
	if t == nil {
		return 0, 0
	}
	return len(t.neigh4) + len(t.neigh6), len(t.routes4) + len(t.routes6)
}

// maskFrom keeps the first bits bits of a counted from byte base and zeroes
// the rest of the address part; bytes before base (the ::ffff: prefix of a
// mapped IPv4 address) are kept, matching As16 of the masked prefix.
func maskFrom(a [16]byte, base, bits int) [16]byte {
	for i := base; i < 16; i++ {
		n := bits - (i-base)*8
		switch {
		case n <= 0:
			a[i] = 0
		case n < 8:
			a[i] &= byte(0xff << (8 - n))
		}
	}
	return a
}
