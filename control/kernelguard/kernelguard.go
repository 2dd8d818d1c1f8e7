// Package kernelguard keeps the kernel from forwarding in clear what cgw
// routes into a tunnel (DESIGN §6, fail closed). cgw-control installs, in
// the kernel's main routing table, an unreachable route at a very low
// priority (metric Metric, protocol Protocol) for every prefix it routes
// into a tunnel and for every tunnel's inside /30:
//
//	ip route show proto 203   # unreachable 198.19.0.0/16 metric 4000000000
//
// While cgw-dataplane runs these routes see no traffic: XDP steers
// tunnel-bound frames to the workers (or drops them, counted, when their
// tunnels are down or no worker listens) before the kernel routes them,
// and the kernel's own routes to the inside /30s (the slow-path TUN
// devices, metric 0) win over the guard. They matter when XDP is gone or
// lets a frame through: XDP detached (cgw-dataplane -detach, or never
// started), or a prefix whose route left the dataplane's table because
// its BGP sessions went down with the tunnels. The kernel would then
// forward the frame by its default route, in clear, to the Internet; the
// guard, more specific than the default, drops it and answers the LAN
// host ICMP host unreachable (counted: IcmpOutDestUnreachs), so
// applications fail fast instead of hanging. The gateway's own traffic to
// those prefixes gets EHOSTUNREACH.
//
// Which prefixes are guarded:
//   - configured: each connection's static routes and each tunnel's inside
//     /30, replaced as a whole at start and on every reload;
//   - learnt: every other prefix the RIB installs into the dataplane (BGP
//     routes), and at a reload every prefix with a BGP path. A learnt
//     prefix stays guarded for the life of the process, also after its
//     route is withdrawn: a withdrawal is what happens when the tunnels go
//     down, exactly when the guard is needed;
//   - adopted: guards found in the kernel at start (a previous process's)
//     and the routes a previous process left in the dataplane's table.
//     They stay until routing has converged (every tunnel and BGP session
//     up) and are then removed unless configured or routed again, so a
//     VPC prefix that AWS no longer announces does not stay unreachable
//     for ever.
//
// A guard loses to any route of the host as or more specific than it (a
// lower metric wins among equal prefixes): it covers a VPC prefix only
// where the host itself has nothing better than the default route, and a
// 0.0.0.0/0 learnt from AWS not at all. That is the price of a low
// priority, which keeps an operator's own routes working. Nor is a prefix
// guarded that holds an AWS endpoint or our outside address (Exempt): the
// guard would cut the host's IKE traffic.
//
// The guards are kernel state, not the process's: they stay after
// cgw-control exits, also on a clean stop, since a stopped control is one
// of the states they cover. Remove (cgw-control -remove-guards) takes them
// out when cgw is decommissioned. The routing table does not survive a
// reboot; the state file (Options.State) does: the prefixes it lists are
// guarded again at early boot, before the network is up (Restore:
// cgw-guards.service runs cgw-control -restore-guards), and adopted when
// cgw-control starts, not once BGP has learnt them again.
package kernelguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/config"
)

const (
	// Protocol marks cgw's guards in the routing table ("proto 203"), so a
	// restarted cgw-control finds them and nothing else is touched. No
	// routing daemon in /etc/iproute2/rt_protos uses it.
	Protocol netlink.RouteProtocol = 203
	// Metric puts the guards below every route an operator or a routing
	// daemon is likely to install for the same prefix.
	Metric = 4_000_000_000
)

// Options configure Open.
type Options struct {
	// Table is the routing table (default main).
	Table int
	// State, if set, is a file that keeps the guarded prefixes across a
	// reboot (state.go); they are adopted at Open.
	State string
}

// Routes is the set of guards cgw-control keeps in the kernel of its
// network namespace. Its methods are safe for concurrent use.
type Routes struct {
	mu         sync.Mutex
	h          *netlink.Handle
	table      int
	configured map[netip.Prefix]bool
	learnt     map[netip.Prefix]bool
	adopted    map[netip.Prefix]bool
	installed  map[netip.Prefix]bool
	exempt     []netip.Addr // see Exempt
	state      string       // Options.State
	saved      string       // what the state file holds
	repairs    uint64       // Stats.Repairs
	errors     uint64       // Stats.Errors
}

// Stats says what the guards are and what keeping them took.
type Stats struct {
	Installed int // guards in the kernel
	// Adopted are those of them kept only as adopted (a previous
	// process's, or the state file's after a reboot): nothing configured
	// or learnt them yet, and SweepAdopted removes them.
	Adopted int
	// Repairs counts guards found missing from the kernel (a route flush,
	// a network manager removing routes it does not know) and put back.
	Repairs uint64
	// Errors counts route installs and removals the kernel refused.
	Errors uint64
}

// Stats returns the guards' counts.
func (r *Routes) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Installed: len(r.installed), Repairs: r.repairs, Errors: r.errors}
	for p := range r.installed {
		if r.adopted[p] && !r.configured[p] && !r.learnt[p] {
			s.Adopted++
		}
	}
	return s
}

// Open reads the guards already in the kernel (a previous process's) and
// the state file, and adopts them; it installs nothing yet. An unreadable
// state file is an error returned with a usable Routes.
func Open(o Options) (*Routes, error) {
	if o.Table == 0 {
		o.Table = unix.RT_TABLE_MAIN
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("kernel guards: opening rtnetlink: %w", err)
	}
	r := &Routes{h: h, table: o.Table, configured: map[netip.Prefix]bool{}, learnt: map[netip.Prefix]bool{},
		adopted: map[netip.Prefix]bool{}, installed: map[netip.Prefix]bool{}, state: o.State}
	found, err := r.list()
	if err != nil {
		h.Close()
		return nil, err
	}
	for _, p := range found {
		r.adopted[p] = true
		r.installed[p] = true
	}
	// Installed by the first sync (Adopt, Configure). An unreadable file
	// only loses what a reboot took: it is rewritten at the next change.
	saved, err := readState(r.state)
	for _, p := range saved {
		r.adopted[p] = true
	}
	return r, err
}

// Close releases the netlink handle; the guards stay in the kernel.
func (r *Routes) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h != nil {
		r.h.Close()
		r.h = nil
	}
}

// Configured returns what a configuration asks to guard: every
// connection's static routes and every tunnel's inside /30.
func Configured(cfg *config.Config) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range cfg.Connections {
		for _, s := range c.Static {
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
			}
		}
		for _, t := range c.Tunnels {
			if t.InsideCIDR.IsValid() {
				out = append(out, t.InsideCIDR.Masked())
			}
		}
	}
	return out
}

// Adopt adds prefixes to the adopted guards (routes a previous process
// left in the dataplane's table): kept until SweepAdopted.
func (r *Routes) Adopt(prefixes []netip.Prefix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range prefixes {
		r.adopted[norm(p)] = true
	}
	return r.sync()
}

// Configure replaces the configured prefixes, learns learnt (the prefixes
// BGP routes into a tunnel now) and makes the kernel hold exactly the
// guards wanted: missing ones are installed (also ones removed behind
// cgw's back), ones no longer wanted removed.
func (r *Routes) Configure(configured, learnt []netip.Prefix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.configured = map[netip.Prefix]bool{}
	for _, p := range configured {
		r.configured[norm(p)] = true
	}
	for _, p := range learnt {
		r.learnt[norm(p)] = true
	}
	return r.resync()
}

// Resync reads the guards in the kernel again and puts back any that went
// missing (a route flush, a network manager removing routes it does not
// know) or removes stray ones; it also retries what failed earlier.
func (r *Routes) Resync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resync()
}

// resync: see Resync. Caller holds r.mu.
func (r *Routes) resync() error {
	if r.h == nil {
		return errors.New("kernel guards: closed")
	}
	found, err := r.list()
	if err != nil {
		return err
	}
	gone := r.installed
	r.installed = map[netip.Prefix]bool{}
	for _, p := range found {
		r.installed[p] = true
		delete(gone, p)
	}
	err = r.sync()
	for p := range gone {
		if r.installed[p] {
			r.repairs++
		}
	}
	return err
}

// Learn guards p, a prefix the RIB routes into a tunnel, from now on (a
// configured prefix stays guarded only while configured). It costs a map
// lookup when p is guarded already.
func (r *Routes) Learn(p netip.Prefix) error {
	p = norm(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	if (r.learnt[p] || r.configured[p]) && (r.installed[p] || r.exempted(p)) {
		return nil
	}
	if !r.configured[p] {
		r.learnt[p] = true
	}
	return r.sync()
}

// SweepAdopted learns routed (the prefixes the RIB routes into a tunnel
// now, some of them adopted and never rewritten) and removes the adopted
// guards that are neither configured nor learnt; call it once routing has
// converged. It returns how many it removed.
func (r *Routes) SweepAdopted(routed []netip.Prefix) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range routed {
		if p = norm(p); !r.configured[p] {
			r.learnt[p] = true
		}
	}
	n := 0
	for p := range r.adopted {
		if !r.configured[p] && !r.learnt[p] && r.installed[p] {
			n++
		}
	}
	clear(r.adopted)
	return n, r.sync()
}

// Remove takes every guard out of the kernel (decommissioning) and forgets
// them.
func (r *Routes) Remove() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.configured)
	clear(r.learnt)
	clear(r.adopted)
	return r.resync()
}

// Prefixes returns the guarded prefixes (those in the kernel), sorted.
func (r *Routes) Prefixes() []netip.Prefix {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]netip.Prefix, 0, len(r.installed))
	for p := range r.installed {
		out = append(out, p)
	}
	sortPrefixes(out)
	return out
}

func (r *Routes) wanted(p netip.Prefix) bool {
	return (r.configured[p] || r.learnt[p] || r.adopted[p]) && !r.exempted(p)
}

// Exempt names addresses no guard may cover: the AWS endpoints and our
// outside addresses. A prefix routed into a tunnel that holds one of them
// (a route over the tunnel's own endpoint) gets no guard, which would cut
// the host's IKE traffic to the endpoint; XDP still handles it. Call it
// before Configure, which applies it.
func (r *Routes) Exempt(addrs []netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exempt = slices.Clone(addrs)
}

func (r *Routes) exempted(p netip.Prefix) bool {
	return slices.ContainsFunc(r.exempt, func(a netip.Addr) bool { return p.Contains(a.Unmap()) })
}

// sync installs the wanted guards that are missing and removes the
// installed ones no longer wanted. Caller holds r.mu.
func (r *Routes) sync() error {
	if r.h == nil {
		return errors.New("kernel guards: closed")
	}
	var errs []error
	for _, set := range []map[netip.Prefix]bool{r.configured, r.learnt, r.adopted} {
		for p := range set {
			if r.installed[p] || r.exempted(p) {
				continue
			}
			if err := r.h.RouteReplace(r.route(p)); err != nil {
				errs = append(errs, fmt.Errorf("installing unreachable route %v metric %d: %w", p, Metric, err))
				continue
			}
			r.installed[p] = true
		}
	}
	for p := range r.installed {
		if r.wanted(p) {
			continue
		}
		if err := r.h.RouteDel(r.route(p)); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("removing unreachable route %v metric %d: %w", p, Metric, err))
			continue
		}
		delete(r.installed, p)
	}
	r.errors += uint64(len(errs))
	if len(errs) > 3 {
		errs = append(errs[:3], fmt.Errorf("and %d more", len(errs)-3))
	}
	if len(errs) > 0 {
		// Typically no CAP_NET_ADMIN in this network namespace.
		errs = append(errs, errors.New("traffic for these prefixes is not guarded when XDP is detached (cgw-control needs CAP_NET_ADMIN)"))
	}
	return errors.Join(append(errs, r.save())...)
}

func (r *Routes) route(p netip.Prefix) *netlink.Route {
	fam := unix.AF_INET
	if p.Addr().Is6() {
		fam = unix.AF_INET6
	}
	return &netlink.Route{Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Type: unix.RTN_UNREACHABLE, Protocol: Protocol, Priority: Metric, Table: r.table, Family: fam}
}

// list returns the guards in the kernel: unreachable routes of Protocol and
// Metric in the table. Caller holds r.mu (or owns r).
func (r *Routes) list() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := r.h.RouteListFiltered(fam, &netlink.Route{Table: r.table, Protocol: Protocol},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil && fam == netlink.FAMILY_V6 && errors.Is(err, unix.EAFNOSUPPORT) {
			continue // a kernel without IPv6
		}
		if err != nil {
			return nil, fmt.Errorf("kernel guards: listing table %d: %w", r.table, err)
		}
		for _, rt := range rs {
			if rt.Type != unix.RTN_UNREACHABLE || rt.Priority != Metric || rt.Dst == nil {
				continue
			}
			a, ok := netip.AddrFromSlice(rt.Dst.IP)
			if !ok {
				continue
			}
			ones, _ := rt.Dst.Mask.Size()
			out = append(out, netip.PrefixFrom(a.Unmap(), ones))
		}
	}
	return out, nil
}

func norm(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked()
}
