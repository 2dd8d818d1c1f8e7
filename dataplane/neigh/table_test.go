package neigh

import (
	"fmt"
	"net/netip"
	"testing"
)

var (
	macA = [6]byte{0x02, 0, 0x5e, 0, 0, 1}
	macB = [6]byte{0x02, 0, 0x5e, 0, 0, 2}
	macC = [6]byte{0x02, 0, 0x5e, 0, 0, 3}
)

func testTable() *Table {
	return NewTable([]Neighbour{
		{Ifindex: 2, Addr: netip.MustParseAddr("192.0.2.1"), MAC: macA},       // outside default gateway
		{Ifindex: 3, Addr: netip.MustParseAddr("198.18.0.20"), MAC: macB},     // inside host
		{Ifindex: 3, Addr: netip.MustParseAddr("198.18.0.254"), MAC: macC},    // inside router
		{Ifindex: 3, Addr: netip.MustParseAddr("2001:db8:1::254"), MAC: macC}, // inside router, v6
	}, []Route{
		{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Ifindex: 2, Gateway: netip.MustParseAddr("192.0.2.1"), Metric: 100},
		{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Ifindex: 3, Gateway: netip.MustParseAddr("198.18.0.254"), Metric: 200}, // worse metric: ignored
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Ifindex: 2},
		{Prefix: netip.MustParsePrefix("198.18.0.0/24"), Ifindex: 3},
		{Prefix: netip.MustParsePrefix("198.19.0.0/16"), Ifindex: 3, Gateway: netip.MustParseAddr("198.18.0.254")},
		{Prefix: netip.MustParsePrefix("198.19.7.0/24"), Ifindex: 2, Gateway: netip.MustParseAddr("192.0.2.1")},
		{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), Ifindex: 3},
		{Prefix: netip.MustParsePrefix("2001:db8::/32"), Ifindex: 3, Gateway: netip.MustParseAddr("2001:db8:1::254")},
	})
}

func TestLookup(t *testing.T) {
	tb := testTable()
	for _, c := range []struct {
		ifindex int
		ip      string
		mac     [6]byte
		ok      bool
	}{
		{2, "192.0.2.1", macA, true},
		{3, "192.0.2.1", [6]byte{}, false}, // right address, wrong interface
		{3, "198.18.0.20", macB, true},
		{3, "::ffff:198.18.0.20", macB, true}, // mapped form is the same address
		{3, "198.18.0.21", [6]byte{}, false},
		{3, "2001:db8:1::254", macC, true},
	} {
		mac, ok := tb.Lookup(c.ifindex, netip.MustParseAddr(c.ip))
		if ok != c.ok || mac != c.mac {
			t.Errorf("Lookup(%d, %s) = %x, %v; want %x, %v", c.ifindex, c.ip, mac, ok, c.mac, c.ok)
		}
	}
	var nilTable *Table
	if _, ok := nilTable.Lookup(2, netip.MustParseAddr("192.0.2.1")); ok {
		t.Error("nil table: lookup hit")
	}
}

func TestNextHop(t *testing.T) {
	tb := testTable()
	for _, c := range []struct {
		dst     string
		ifindex int
		hop     string // "" = no route
	}{
		{"203.0.113.1", 2, "192.0.2.1"},       // default route, lowest metric
		{"192.0.2.77", 2, "192.0.2.77"},       // on-link outside
		{"198.18.0.20", 3, "198.18.0.20"},     // on-link inside
		{"198.19.1.1", 3, "198.18.0.254"},     // via the inside router
		{"198.19.7.9", 2, "192.0.2.1"},        // longer prefix wins
		{"2001:db8:1::5", 3, "2001:db8:1::5"}, // on-link v6
		{"2001:db8:2::5", 3, "2001:db8:1::254"},
		{"2001:db9::1", 0, ""}, // no v6 default route
	} {
		h, ok := tb.NextHop(netip.MustParseAddr(c.dst))
		if c.hop == "" {
			if ok {
				t.Errorf("NextHop(%s) = %+v; want no route", c.dst, h)
			}
			continue
		}
		if !ok || h.Ifindex != c.ifindex || h.Addr != netip.MustParseAddr(c.hop) {
			t.Errorf("NextHop(%s) = %+v, %v; want ifindex %d via %s", c.dst, h, ok, c.ifindex, c.hop)
		}
	}
	if n, r := tb.Len(); n != 4 || r != 7 {
		t.Errorf("Len = %d neighbours, %d routes; want 4, 7", n, r)
	}
}

func TestMACFor(t *testing.T) {
	tb := testTable()
	if h, mac, ok := tb.MACFor(netip.MustParseAddr("203.0.113.1")); !ok || mac != macA || h.Ifindex != 2 {
		t.Errorf("MACFor(outside) = %+v %x %v", h, mac, ok)
	}
	if h, mac, ok := tb.MACFor(netip.MustParseAddr("198.19.3.3")); !ok || mac != macC || h.Ifindex != 3 {
		t.Errorf("MACFor(via inside router) = %+v %x %v", h, mac, ok)
	}
	// Unresolved on-link host: the hop is returned so the caller can Resolve it.
	h, _, ok := tb.MACFor(netip.MustParseAddr("198.18.0.99"))
	if ok || h.Ifindex != 3 || h.Addr != netip.MustParseAddr("198.18.0.99") {
		t.Errorf("MACFor(unresolved) = %+v %v; want a miss with hop 3/198.18.0.99", h, ok)
	}
}

func TestMaskFrom(t *testing.T) {
	for _, p := range []string{"198.18.77.5/0", "198.18.77.5/13", "198.18.77.5/24", "198.18.77.5/32", "2001:db8:ab:cd::1/47", "2001:db8::1/128"} {
		pp := netip.MustParsePrefix(p)
		base := 12
		if pp.Addr().Is6() {
			base = 0
		}
		if got, want := maskFrom(pp.Addr().As16(), base, pp.Bits()), pp.Masked().Addr().As16(); got != want {
			t.Errorf("maskFrom(%s) = %x; want %x", p, got, want)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	tb := testTable()
	ip, dst, dst6 := netip.MustParseAddr("198.18.0.20"), netip.MustParseAddr("198.19.3.3"), netip.MustParseAddr("2001:db8:2::5")
	for name, f := range map[string]func(){
		"Lookup":     func() { tb.Lookup(3, ip) },
		"MACFor":     func() { tb.MACFor(dst) },
		"MACFor(v6)": func() { tb.MACFor(dst6) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per call; want 0", name, n)
		}
	}
}

// bigTable: a busy LAN, n neighbours on the inside link and a few routes.
func bigTable(n int) *Table {
	var ns []Neighbour
	for i := range n {
		ns = append(ns, Neighbour{Ifindex: 3, Addr: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), MAC: macB})
	}
	return NewTable(ns, []Route{
		{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Ifindex: 2, Gateway: netip.MustParseAddr("192.0.2.1")},
		{Prefix: netip.MustParsePrefix("198.18.0.0/16"), Ifindex: 3},
		{Prefix: netip.MustParsePrefix("198.19.0.0/24"), Ifindex: 3, Gateway: netip.MustParseAddr("198.18.0.254")},
	})
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{4, 4096} {
		tb := bigTable(n)
		b.Run(fmt.Sprintf("neighbours=%d", n), func(b *testing.B) {
			ip := netip.AddrFrom4([4]byte{198, 18, 0, 3})
			for b.Loop() {
				tb.Lookup(3, ip)
			}
		})
	}
}

func BenchmarkMACFor(b *testing.B) {
	tb := bigTable(4096)
	dst := netip.AddrFrom4([4]byte{198, 18, 1, 3})
	for b.Loop() {
		tb.MACFor(dst)
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	tb := bigTable(4096)
	b.RunParallel(func(pb *testing.PB) {
		ip := netip.AddrFrom4([4]byte{198, 18, 0, 3})
		for pb.Next() {
			tb.Lookup(3, ip)
		}
	})
}
