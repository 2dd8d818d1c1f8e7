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

// neighKey is the map key: fixed size, no pointers, so hashing and lookup
// neither allocate nor chase pointers. IPv4 addresses are kept as
// IPv4-mapped IPv6 (netip.Addr.As16).
type neighKey struct {
	ifindex int32
	addr    [16]byte
}

// routeKey is a destination masked to one prefix length.
type routeKey struct {
	v6   bool
	bits uint8
	addr [16]byte
}

type nextHop struct {
	ifindex int32
	gw      [16]byte
	hasGW   bool
	metric  int
}

// Table is one immutable snapshot of neighbours and routes. The zero Table
// (and a nil *Table) is empty: every lookup misses.
type Table struct {
	neigh  map[neighKey][6]byte
	routes map[routeKey]nextHop
	// Prefix lengths present, longest first, per family: the longest-prefix
	// match probes one map entry per length present (a handful on a gateway).
	lens4, lens6 []uint8
}

// NewTable builds a table from neighbours and routes. Of several routes to
// the same prefix the one with the lowest metric wins, as in the kernel.
func NewTable(neighs []Neighbour, routes []Route) *Table {
	t := &Table{
		neigh:  make(map[neighKey][6]byte, len(neighs)),
		routes: make(map[routeKey]nextHop, len(routes)),
	}
	for _, n := range neighs {
		t.neigh[neighKey{int32(n.Ifindex), n.Addr.As16()}] = n.MAC
	}
	for _, r := range routes {
		t.addRoute(r)
	}
	return t
}

func (t *Table) addRoute(r Route) {
	p := r.Prefix.Masked()
	if !p.IsValid() {
		return
	}
	k := routeKey{v6: p.Addr().Is6(), bits: uint8(p.Bits()), addr: p.Addr().As16()}
	nh := nextHop{ifindex: int32(r.Ifindex), metric: r.Metric}
	if r.Gateway.IsValid() {
		nh.gw, nh.hasGW = r.Gateway.As16(), true
	}
	if old, ok := t.routes[k]; ok && old.metric <= nh.metric {
		return
	}
	t.routes[k] = nh
	lens := &t.lens4
	if k.v6 {
		lens = &t.lens6
	}
	if !slices.Contains(*lens, k.bits) {
		*lens = append(*lens, k.bits)
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
	mac, ok = t.neigh[neighKey{int32(ifindex), ip.As16()}]
	return mac, ok
}

// NextHop returns the next hop towards dst by longest-prefix match on the
// main routing table: the route's gateway, or dst itself if on-link.
func (t *Table) NextHop(dst netip.Addr) (Hop, bool) {
	if t == nil || !dst.IsValid() {
		return Hop{}, false
	}
	a := dst.As16()
	v6 := !dst.Is4() && !dst.Is4In6()
	lens, base := t.lens4, 12 // IPv4 bits start at byte 12 of the mapped form
	if v6 {
		lens, base = t.lens6, 0
	}
	for _, bits := range lens {
		k := routeKey{v6: v6, bits: bits, addr: maskFrom(a, base, int(bits))}
		if nh, ok := t.routes[k]; ok {
			h := Hop{Ifindex: int(nh.ifindex), Addr: dst}
			if nh.hasGW {
				h.Addr = addrOf(nh.gw, v6)
			}
			return h, true
		}
	}
	return Hop{}, false
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
	return len(t.neigh), len(t.routes)
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

func addrOf(a [16]byte, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16(a)
	}
	return netip.AddrFrom4([4]byte(a[12:16]))
}
