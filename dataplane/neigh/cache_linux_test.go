package neigh

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/internal/netnstest"
)

// lab: namespace g (the gateway, where the cache runs) joined by one veth to
// namespace p (a peer): 198.18.210.1/24 on "ng", 198.18.210.2/24 on "np".
type lab struct {
	g, p    *netnstest.NS
	ifindex int // of ng, inside g
	peerMAC [6]byte
}

var (
	gwIP   = netip.MustParseAddr("198.18.210.1")
	peerIP = netip.MustParseAddr("198.18.210.2")
)

func newLab(tb testing.TB) *lab {
	tb.Helper()
	l := &lab{g: netnstest.New(tb, "cgwnb-g"), p: netnstest.New(tb, "cgwnb-p"), peerMAC: [6]byte{0x02, 0xcb, 0, 0, 0, 2}}
	ng, _ := netnstest.Veth{
		A: netnstest.End{NS: l.g, Name: "ng", MAC: net.HardwareAddr{0x02, 0xcb, 0, 0, 0, 1}, Addrs: []netip.Prefix{netip.PrefixFrom(gwIP, 24)}},
		B: netnstest.End{NS: l.p, Name: "np", MAC: l.peerMAC[:], Addrs: []netip.Prefix{netip.PrefixFrom(peerIP, 24)}},
	}.Create(tb)
	l.ifindex = ng.Index
	return l
}

func newCache(tb testing.TB, l *lab) *Cache {
	tb.Helper()
	c, err := New(Options{Netns: l.g.Name()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds or 5 s pass (a failure bound, not a
// measurement: netlink notifications normally arrive within milliseconds).
func waitFor(tb testing.TB, what string, c *Cache, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s (last netlink error: %v)", what, c.LastError())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasMAC(c *Cache, ifindex int, ip netip.Addr, want [6]byte) func() bool {
	return func() bool { mac, ok := c.Lookup(ifindex, ip); return ok && mac == want }
}

func absent(c *Cache, ifindex int, ip netip.Addr) func() bool {
	return func() bool { _, ok := c.Lookup(ifindex, ip); return !ok }
}

// TestPingFillsCache: a ping makes the kernel resolve the peer; the cache
// sees the entry through the subscription.
func TestPingFillsCache(t *testing.T) {
	netnstest.Require(t, "ping")
	l := newLab(t)
	c := newCache(t, l)
	if _, ok := c.Lookup(l.ifindex, peerIP); ok {
		t.Fatal("peer resolved before any traffic")
	}
	l.g.Run(t, "ping", "-c", "1", "-W", "2", peerIP.String())
	waitFor(t, "the peer's MAC after a ping", c, hasMAC(c, l.ifindex, peerIP, l.peerMAC))
	if s := c.Stats(); s.Hits == 0 || s.Misses == 0 || s.Publishes < 2 {
		t.Errorf("stats %+v: want hits, misses and at least two publishes", s)
	}
}

// TestInitialDump: entries that exist before the cache starts are there
// from the first table.
func TestInitialDump(t *testing.T) {
	netnstest.Require(t, "ping")
	l := newLab(t)
	ip := netip.MustParseAddr("198.18.210.9")
	mac := [6]byte{0x02, 0xcb, 0, 0, 0, 9}
	l.g.Run(t, "ip", "neigh", "replace", ip.String(), "lladdr", net.HardwareAddr(mac[:]).String(), "dev", "ng", "nud", "permanent")
	c := newCache(t, l)
	if got, ok := c.Lookup(l.ifindex, ip); !ok || got != mac {
		t.Fatalf("pre-existing permanent entry: got %x %v, want %x", got, ok, mac)
	}
}

// TestUpdatesFollowed: replaced MACs are followed, unusable states and
// deleted entries disappear.
func TestUpdatesFollowed(t *testing.T) {
	netnstest.Require(t, "ping")
	l := newLab(t)
	c := newCache(t, l)
	ip := netip.MustParseAddr("198.18.210.3")
	m1, m2 := [6]byte{0x02, 0xcb, 0, 0, 3, 1}, [6]byte{0x02, 0xcb, 0, 0, 3, 2}
	set := func(mac [6]byte, nud string) {
		l.g.Run(t, "ip", "neigh", "replace", ip.String(), "lladdr", net.HardwareAddr(mac[:]).String(), "dev", "ng", "nud", nud)
	}
	set(m1, "permanent")
	waitFor(t, "a permanent entry", c, hasMAC(c, l.ifindex, ip, m1))
	set(m2, "permanent")
	waitFor(t, "the replaced MAC", c, hasMAC(c, l.ifindex, ip, m2))
	set(m1, "stale")
	waitFor(t, "a STALE entry (usable)", c, hasMAC(c, l.ifindex, ip, m1))
	set(m1, "failed")
	waitFor(t, "a FAILED entry to be dropped", c, absent(c, l.ifindex, ip))
	set(m2, "reachable")
	waitFor(t, "a REACHABLE entry", c, hasMAC(c, l.ifindex, ip, m2))
	l.g.Run(t, "ip", "neigh", "del", ip.String(), "dev", "ng")
	waitFor(t, "a deleted entry to disappear", c, absent(c, l.ifindex, ip))

	ip6 := netip.MustParseAddr("2001:db8:210::3")
	l.g.Run(t, "ip", "neigh", "replace", ip6.String(), "lladdr", net.HardwareAddr(m1[:]).String(), "dev", "ng", "nud", "permanent")
	waitFor(t, "an IPv6 entry", c, hasMAC(c, l.ifindex, ip6, m1))

	// The link going down flushes its entries.
	set(m1, "permanent")
	waitFor(t, "a permanent entry", c, hasMAC(c, l.ifindex, ip, m1))
	l.g.Run(t, "ip", "link", "set", "ng", "down")
	waitFor(t, "entries of a downed link to disappear", c, absent(c, l.ifindex, ip))
}

// TestLinksFilter: a cache limited to some links ignores the others.
func TestLinksFilter(t *testing.T) {
	netnstest.Require(t, "ping")
	l := newLab(t)
	c, err := New(Options{Netns: "/run/netns/" + l.g.Name(), Links: []int{l.ifindex + 1000}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	all := newCache(t, l)
	ip := netip.MustParseAddr("198.18.210.4")
	mac := [6]byte{0x02, 0xcb, 0, 0, 4, 1}
	l.g.Run(t, "ip", "neigh", "replace", ip.String(), "lladdr", net.HardwareAddr(mac[:]).String(), "dev", "ng", "nud", "permanent")
	waitFor(t, "the entry in the unfiltered cache", all, hasMAC(all, l.ifindex, ip, mac))
	if _, ok := c.Lookup(l.ifindex, ip); ok {
		t.Error("filtered cache holds an entry of a link it was not given")
	}
}

// TestRoutes: next hops follow the kernel's main table; MACFor combines
// route and neighbour.
func TestRoutes(t *testing.T) {
	netnstest.Require(t, "ping")
	l := newLab(t)
	c := newCache(t, l)
	remote := netip.MustParseAddr("198.51.100.7")
	internet := netip.MustParseAddr("203.0.113.5")
	if h, ok := c.Table().NextHop(peerIP); !ok || h.Ifindex != l.ifindex || h.Addr != peerIP {
		t.Fatalf("on-link peer: NextHop = %+v %v; want ifindex %d, itself", h, ok, l.ifindex)
	}
	if _, ok := c.Table().NextHop(internet); ok {
		t.Fatal("a route to 203.0.113.5 before any default route")
	}
	l.g.Run(t, "ip", "route", "add", "198.51.100.0/24", "via", peerIP.String())
	l.g.Run(t, "ip", "route", "add", "default", "via", peerIP.String())
	viaPeer := func(dst netip.Addr) func() bool {
		return func() bool {
			h, ok := c.Table().NextHop(dst)
			return ok && h.Ifindex == l.ifindex && h.Addr == peerIP
		}
	}
	waitFor(t, "the route to 198.51.100.0/24 via the peer", c, viaPeer(remote))
	waitFor(t, "the default route via the peer", c, viaPeer(internet))
	if _, _, ok := c.MACFor(remote); ok {
		t.Fatal("MACFor hit before the peer was resolved")
	}
	l.g.Run(t, "ping", "-c", "1", "-W", "2", peerIP.String())
	waitFor(t, "MACFor via the resolved peer", c, func() bool {
		_, mac, ok := c.MACFor(remote)
		return ok && mac == l.peerMAC
	})
	l.g.Run(t, "ip", "route", "del", "default")
	waitFor(t, "the default route to go", c, func() bool { _, ok := c.Table().NextHop(internet); return !ok })
}

// TestResolve: Resolve makes the kernel resolve an address nobody sent to.
func TestResolve(t *testing.T) {
	netnstest.Require(t, "ping")
	l := newLab(t)
	c := newCache(t, l)
	if _, ok := c.Lookup(l.ifindex, peerIP); ok {
		t.Fatal("peer resolved before Resolve")
	}
	c.Resolve(l.ifindex, peerIP)
	c.Resolve(l.ifindex, peerIP) // rate-limited (or dropped if the first is still queued)
	waitFor(t, "the kernel to resolve the peer after Resolve", c, hasMAC(c, l.ifindex, peerIP, l.peerMAC))
	if s := c.Stats(); s.ResolveRequests != 1 || s.ResolveDropped != 1 {
		t.Errorf("stats %+v: want 1 resolve request and 1 dropped", s)
	}
}

// TestCloseStops: after Close the last table stays readable.
func TestCloseStops(t *testing.T) {
	netnstest.Require(t, "ping")
	l := newLab(t)
	c, err := New(Options{Netns: l.g.Name()})
	if err != nil {
		t.Fatal(err)
	}
	tb := c.Table()
	c.Close()
	c.Close()
	if _, ok := tb.NextHop(peerIP); !ok {
		t.Error("table lost its routes after Close")
	}
	if _, err := New(Options{Netns: "cgwnb-does-not-exist"}); err == nil || !strings.Contains(err.Error(), "cgwnb-does-not-exist") {
		t.Errorf("missing namespace: error %v should name it", err)
	}
}

func TestCacheNoAllocs(t *testing.T) {
	netnstest.Require(t, "ping")
	l := newLab(t)
	c := newCache(t, l)
	l.g.Run(t, "ip", "neigh", "replace", peerIP.String(), "lladdr", net.HardwareAddr(l.peerMAC[:]).String(), "dev", "ng", "nud", "permanent")
	waitFor(t, "a permanent entry", c, hasMAC(c, l.ifindex, peerIP, l.peerMAC))
	if n := testing.AllocsPerRun(1000, func() { c.Lookup(l.ifindex, peerIP) }); n != 0 {
		t.Errorf("Cache.Lookup: %v allocations; want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { c.MACFor(peerIP) }); n != 0 {
		t.Errorf("Cache.MACFor: %v allocations; want 0", n)
	}
}

// BenchmarkCacheLookup: the counted lookup through the atomic pointer, from
// every core at once (the hit counter is shared).
func BenchmarkCacheLookup(b *testing.B) {
	netnstest.Require(b, "ping")
	l := newLab(b)
	c := newCache(b, l)
	l.g.Run(b, "ip", "neigh", "replace", peerIP.String(), "lladdr", net.HardwareAddr(l.peerMAC[:]).String(), "dev", "ng", "nud", "permanent")
	waitFor(b, "a permanent entry", c, hasMAC(c, l.ifindex, peerIP, l.peerMAC))
	b.Run("counted", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Lookup(l.ifindex, peerIP)
			}
		})
	})
	b.Run("batch-of-64", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tb := c.Table() // once per batch
				var hits uint64
				for range 64 {
					if _, ok := tb.Lookup(l.ifindex, peerIP); ok {
						hits++
					}
				}
				c.Account(hits, 64-hits)
			}
		})
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/lookup")
	})
}

// TestResync: when the neighbour subscription dies (as on ENOBUFS after an
// overflow), the cache subscribes again, re-dumps, drops entries deleted
// meanwhile and keeps following.
func TestResync(t *testing.T) {
	netnstest.Require(t, "ping")
	l := newLab(t)
	c := newCache(t, l)
	a, b := netip.MustParseAddr("198.18.210.5"), netip.MustParseAddr("198.18.210.6")
	mac := [6]byte{0x02, 0xcb, 0, 0, 5, 1}
	l.g.Run(t, "ip", "neigh", "replace", a.String(), "lladdr", net.HardwareAddr(mac[:]).String(), "dev", "ng", "nud", "permanent")
	waitFor(t, "a permanent entry", c, hasMAC(c, l.ifindex, a, mac))

	c.neighSub.close() // kill the subscription under the cache (read-only access to neighSub: run only replaces it after this)
	l.g.Run(t, "ip", "neigh", "del", a.String(), "dev", "ng")
	waitFor(t, "a resubscription", c, func() bool { return c.Stats().Resyncs >= 1 })
	waitFor(t, "the entry deleted during the gap to disappear", c, absent(c, l.ifindex, a))
	l.g.Run(t, "ip", "neigh", "replace", b.String(), "lladdr", net.HardwareAddr(mac[:]).String(), "dev", "ng", "nud", "permanent")
	waitFor(t, "a new entry after the resubscription", c, hasMAC(c, l.ifindex, b, mac))
	if c.Stats().Errors == 0 || c.LastError() == nil {
		t.Errorf("the dead subscription was not counted as an error: %+v", c.Stats())
	}
}
