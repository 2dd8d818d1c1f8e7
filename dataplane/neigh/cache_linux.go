package neigh

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// usable are the NUD states whose link-layer address may be used to send
// (RFC 4861 §7.3.2 and the kernel's NUD_VALID minus NOARP): INCOMPLETE and
// FAILED are not.
const usable = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT

// Options configure a Cache.
type Options struct {
	// Netns is the network namespace to follow: a path such as
	// /run/netns/cgw, or a name under /run/netns. Empty: the caller's.
	Netns string
	// Links restricts the cache to these interfaces (the gateway's outside
	// and inside NICs). Empty: every interface.
	Links []int
	// ResolveInterval is the least time between two kernel resolution
	// requests for one address (default 1 s).
	ResolveInterval time.Duration
}

// Stats are the cache's counters, for the metrics exporter.
type Stats struct {
	Hits, Misses    uint64 // Cache.Lookup, Cache.MACFor and Account
	Publishes       uint64 // new tables published
	Resyncs         uint64 // netlink subscriptions restarted after an error
	Errors          uint64 // netlink errors (subscription, dump, resolve)
	ResolveRequests uint64 // resolutions asked of the kernel
	ResolveDropped  uint64 // Resolve calls dropped: queue full or rate-limited
}

// padded keeps each hot counter on its own cache line so workers on
// different cores counting hits and misses do not share a line.
type padded struct {
	atomic.Uint64
	_ [56]byte
}

// Cache follows the kernel's neighbour table and main routing table through
// netlink and publishes them as immutable Tables.
type Cache struct {
	table atomic.Pointer[Table]

	hits, misses padded
	publishes    atomic.Uint64
	resyncs      atomic.Uint64
	errs         atomic.Uint64
	resolveReqs  atomic.Uint64
	resolveDrops atomic.Uint64
	lastErr      atomic.Pointer[error]

	opts   Options
	ns     netns.NsHandle
	h      *netlink.Handle
	links  map[int]bool
	resolv chan Hop
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	// Owned by the run goroutine.
	neigh    map[neighKey][6]byte
	routes   []Route
	neighSub *subscription[netlink.NeighUpdate]
	routeSub *subscription[netlink.RouteUpdate]
}

type subscription[T any] struct {
	ch   chan T
	done chan struct{}
	once sync.Once
}

// close ends the subscription. netlink's receiving goroutine may be blocked
// handing over an update, so the channel is drained until netlink closes it.
func (s *subscription[T]) close() {
	if s != nil {
		s.once.Do(func() {
			close(s.done)
			go func() {
				for range s.ch {
				}
			}()
		})
	}
}

// New dumps the neighbour and routing tables of the namespace, subscribes to
// their changes and publishes the first Table before returning.
func New(opts Options) (*Cache, error) {
	if opts.ResolveInterval <= 0 {
		opts.ResolveInterval = time.Second
	}
	c := &Cache{opts: opts, ns: netns.None(), resolv: make(chan Hop, 256), done: make(chan struct{})}
	if len(opts.Links) > 0 {
		c.links = make(map[int]bool)
		for _, l := range opts.Links {
			c.links[l] = true
		}
	}
	var err error
	if opts.Netns != "" {
		path := opts.Netns
		if path[0] != '/' {
			path = "/run/netns/" + path
		}
		if c.ns, err = netns.GetFromPath(path); err != nil {
			return nil, fmt.Errorf("neigh: opening network namespace %s: %w (does it exist? ip netns list)", path, err)
		}
		c.h, err = netlink.NewHandleAt(c.ns)
	} else {
		c.h, err = netlink.NewHandle()
	}
	if err != nil {
		c.closeNS()
		return nil, fmt.Errorf("neigh: netlink socket: %w", err)
	}
	if err := c.subscribeNeigh(); err != nil {
		c.release()
		return nil, err
	}
	if err := c.subscribeRoutes(); err != nil {
		c.release()
		return nil, err
	}
	c.publish()
	c.wg.Add(2)
	go c.run()
	go c.resolver()
	return c, nil
}

// Close stops following the kernel. Tables already handed out stay valid.
func (c *Cache) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.wg.Wait()
		c.release()
	})
	return nil
}

func (c *Cache) release() {
	c.neighSub.close()
	c.routeSub.close()
	c.h.Close()
	c.closeNS()
}

func (c *Cache) closeNS() {
	if c.ns.IsOpen() {
		c.ns.Close()
	}
}

// Table returns the current snapshot. A worker loads it once per batch and
// looks up every packet of the batch in it.
func (c *Cache) Table() *Table { return c.table.Load() }

// Lookup is Table().Lookup, counted.
func (c *Cache) Lookup(ifindex int, ip netip.Addr) ([6]byte, bool) {
	mac, ok := c.table.Load().Lookup(ifindex, ip)
	c.count(ok)
	return mac, ok
}

// MACFor is Table().MACFor, counted.
func (c *Cache) MACFor(dst netip.Addr) (Hop, [6]byte, bool) {
	hop, mac, ok := c.table.Load().MACFor(dst)
	c.count(ok)
	return hop, mac, ok
}

func (c *Cache) count(ok bool) {
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
}

// Account adds a batch's hits and misses (counted by a worker that looked
// up in a Table itself) with two atomic adds per batch.
func (c *Cache) Account(hits, misses uint64) {
	if hits != 0 {
		c.hits.Add(hits)
	}
	if misses != 0 {
		c.misses.Add(misses)
	}
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Publishes: c.publishes.Load(),
		Resyncs: c.resyncs.Load(), Errors: c.errs.Load(),
		ResolveRequests: c.resolveReqs.Load(), ResolveDropped: c.resolveDrops.Load(),
	}
}

// LastError returns the last netlink error seen, or nil.
func (c *Cache) LastError() error {
	if p := c.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *Cache) fail(err error) {
	select {
	case <-c.done:
		return // the sockets closing under netlink's receivers after Close
	default:
	}
	c.errs.Add(1)
	c.lastErr.Store(&err)
}

// Resolve asks the kernel to resolve ip on interface ifindex. It never
// blocks: the request is queued for a background goroutine, which sends the
// kernel an RTM_NEWNEIGH with NTF_USE (what `ip neigh ... use` does). The
// kernel then creates the entry if needed and runs its own ARP/ND state
// machine (neigh_event_send): it probes an INCOMPLETE, STALE or FAILED entry
// with its usual retransmit timers and leaves a REACHABLE one alone. This
// was chosen over sending a datagram to the address because it needs no
// socket in the namespace, no route, and sends nothing to the host itself.
// Requests for one address are limited to one per ResolveInterval.
func (c *Cache) Resolve(ifindex int, ip netip.Addr) {
	select {
	case c.resolv <- Hop{ifindex, ip}:
	default:
		c.resolveDrops.Add(1)
	}
}

func (c *Cache) resolver() {
	defer c.wg.Done()
	last := map[neighKey]time.Time{}
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-prune.C:
			maps.DeleteFunc(last, func(_ neighKey, t time.Time) bool { return now.Sub(t) > c.opts.ResolveInterval })
		case h := <-c.resolv:
			k := neighKey{int32(h.Ifindex), h.Addr.As16()}
			now := time.Now()
			if t, ok := last[k]; ok && now.Sub(t) < c.opts.ResolveInterval {
				c.resolveDrops.Add(1)
				continue
			}
			last[k] = now
			c.resolveReqs.Add(1)
			n := &netlink.Neigh{LinkIndex: h.Ifindex, IP: net.IP(h.Addr.AsSlice()), Flags: netlink.NTF_USE}
			if err := c.h.NeighSet(n); err != nil {
				c.fail(fmt.Errorf("neigh: asking the kernel to resolve %s on ifindex %d: %w", h.Addr, h.Ifindex, err))
			}
		}
	}
}

func (c *Cache) nsOpt() *netns.NsHandle {
	if c.ns.IsOpen() {
		return &c.ns
	}
	return nil
}

// subscribeNeigh subscribes first and dumps second, so no change is lost
// between the two: every change after the dump is also queued on the
// subscription, and replaying queued changes older than the dump converges
// to the same state.
func (c *Cache) subscribeNeigh() error {
	s := &subscription[netlink.NeighUpdate]{ch: make(chan netlink.NeighUpdate, 1024), done: make(chan struct{})}
	err := netlink.NeighSubscribeWithOptions(s.ch, s.done, netlink.NeighSubscribeOptions{
		Namespace: c.nsOpt(), ErrorCallback: c.fail, ReceiveBufferSize: 1 << 20,
	})
	if err != nil {
		close(s.done)
		return fmt.Errorf("neigh: subscribing to neighbour changes: %w", err)
	}
	list, err := dump(func() ([]netlink.Neigh, error) { return c.h.NeighList(0, netlink.FAMILY_ALL) })
	if err != nil {
		s.close()
		return fmt.Errorf("neigh: listing neighbours: %w", err)
	}
	c.neighSub.close()
	c.neighSub = s
	c.neigh = make(map[neighKey][6]byte, len(list))
	for i := range list {
		c.applyNeigh(unix.RTM_NEWNEIGH, &list[i])
	}
	return nil
}

func (c *Cache) subscribeRoutes() error {
	s := &subscription[netlink.RouteUpdate]{ch: make(chan netlink.RouteUpdate, 1024), done: make(chan struct{})}
	err := netlink.RouteSubscribeWithOptions(s.ch, s.done, netlink.RouteSubscribeOptions{
		Namespace: c.nsOpt(), ErrorCallback: c.fail, ReceiveBufferSize: 1 << 20,
	})
	if err != nil {
		close(s.done)
		return fmt.Errorf("neigh: subscribing to route changes: %w", err)
	}
	if err := c.loadRoutes(); err != nil {
		s.close()
		return err
	}
	c.routeSub.close()
	c.routeSub = s
	return nil
}

// dump retries a netlink dump the kernel interrupted because the table
// changed under it.
func dump[T any](f func() ([]T, error)) ([]T, error) {
	var err error
	for range 5 {
		var l []T
		if l, err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return l, err
		}
	}
	return nil, err
}

// loadRoutes re-reads the main table. Route changes are rare, so a full
// reload on each burst of changes is simpler than tracking them one by one.
func (c *Cache) loadRoutes() error {
	list, err := dump(func() ([]netlink.Route, error) { return c.h.RouteList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("neigh: listing routes: %w", err)
	}
	c.routes = c.routes[:0]
	for _, r := range list {
		if r.Type != unix.RTN_UNICAST {
			continue
		}
		ifindex, gw := r.LinkIndex, r.Gw
		if len(r.MultiPath) > 0 { // ECMP: the first path (the workers do not spread flows yet)
			ifindex, gw = r.MultiPath[0].LinkIndex, r.MultiPath[0].Gw
		}
		if c.links != nil && !c.links[ifindex] {
			continue
		}
		var p netip.Prefix
		if r.Dst == nil { // default route
			p = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if r.Family == unix.AF_INET6 {
				p = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
		} else {
			a, ok := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			if !ok {
				continue
			}
			if a.Is4In6() {
				a = a.Unmap()
			}
			p = netip.PrefixFrom(a, ones)
		}
		rt := Route{Prefix: p, Ifindex: ifindex, Metric: r.Priority}
		if g, ok := netip.AddrFromSlice(gw); ok && !g.IsUnspecified() {
			rt.Gateway = g.Unmap()
		}
		c.routes = append(c.routes, rt)
	}
	return nil
}

// applyNeigh folds one neighbour message into c.neigh and reports whether a
// lookup's answer changed (REACHABLE→STALE with the same MAC does not).
func (c *Cache) applyNeigh(typ uint16, n *netlink.Neigh) bool {
	if n.Family != unix.AF_INET && n.Family != unix.AF_INET6 || n.Flags&netlink.NTF_PROXY != 0 {
		return false // bridge FDB, proxy ARP/ND entries: not next hops
	}
	if c.links != nil && !c.links[n.LinkIndex] {
		return false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return false
	}
	k := neighKey{int32(n.LinkIndex), a.As16()}
	old, had := c.neigh[k]
	if typ == unix.RTM_DELNEIGH || n.State&usable == 0 || len(n.HardwareAddr) != 6 {
		delete(c.neigh, k)
		return had
	}
	mac := [6]byte(n.HardwareAddr)
	c.neigh[k] = mac
	return !had || old != mac
}

func (c *Cache) publish() {
	t := newTable(len(c.neigh), len(c.routes))
	for k, mac := range c.neigh {
		t.addNeigh(int(k.ifindex), netip.AddrFrom16(k.addr), mac)
	}
	for _, r := range c.routes {
		t.addRoute(r)
	}
	c.table.Store(t)
	c.publishes.Add(1)
}

func (c *Cache) run() {
	defer c.wg.Done()
	var retryNeigh, retryRoutes <-chan time.Time
	for {
		var nch chan netlink.NeighUpdate
		var rch chan netlink.RouteUpdate
		if retryNeigh == nil {
			nch = c.neighSub.ch
		}
		if retryRoutes == nil {
			rch = c.routeSub.ch
		}
		changed := false
		select {
		case <-c.done:
			return
		case u, ok := <-nch:
			var alive bool
			if changed, alive = c.drainNeigh(u, ok); !alive {
				// The subscription died (its error went to fail): start again.
				retryNeigh = time.After(0)
			}
		case _, ok := <-rch:
			if !drain(rch, ok) {
				retryRoutes = time.After(0)
				continue
			}
			if err := c.loadRoutes(); err != nil {
				c.fail(err)
				retryRoutes = time.After(time.Second)
				continue
			}
			changed = true
		case <-retryNeigh:
			if err := c.subscribeNeigh(); err != nil {
				c.fail(err)
				retryNeigh = time.After(time.Second)
				continue
			}
			c.resyncs.Add(1)
			retryNeigh, changed = nil, true
		case <-retryRoutes:
			if err := c.subscribeRoutes(); err != nil {
				c.fail(err)
				retryRoutes = time.After(time.Second)
				continue
			}
			c.resyncs.Add(1)
			retryRoutes, changed = nil, true
		}
		if changed {
			c.publish()
		}
	}
}

// drainNeigh applies u and everything else already queued, so a burst of
// changes publishes one table. alive is false once the channel is closed.
func (c *Cache) drainNeigh(u netlink.NeighUpdate, ok bool) (changed, alive bool) {
	for ok {
		changed = c.applyNeigh(u.Type, &u.Neigh) || changed
		select {
		case u, ok = <-c.neighSub.ch:
		default:
			return changed, true
		}
	}
	return changed, false
}

// drain empties ch; it reports false once ch is closed.
func drain[T any](ch chan T, ok bool) bool {
	for ok {
		select {
		case _, ok = <-ch:
		default:
			return true
		}
	}
	return false
}
