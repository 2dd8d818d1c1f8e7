// Package rib selects, per prefix, the route cgw-control installs in the
// dataplane's route table, from the static routes and the BGP routes learnt
// over every tunnel of every VPN connection (DESIGN §1, "route selection").
//
// Longest-prefix match is the dataplane's job (an LPM trie); the RIB picks,
// for each prefix, the best eligible path, in this order:
//
//  1. A path through a tunnel that is down is not eligible.
//  2. A static route beats a BGP route.
//  3. Shorter AS_PATH (RFC 4271 §9.1.2.2 a: an AS_SET counts as one).
//  4. Lower origin: IGP < EGP < incomplete (§9.1.2.2 b).
//  5. Lower MED, a missing MED being 0 (§9.1.2.2 c). MEDs are compared
//     across all paths ("always-compare-med"): in practice every path comes
//     from an AWS gateway, and a total order keeps selection stable.
//  6. Tunnel order: the order of the tunnels given to New, which is
//     connection order, then t1 before t2.
//
// The map's route value has a primary and a backup tunnel. The backup is
// the best eligible path through a different tunnel, so when the primary
// tunnel goes down XDP fails over at once (it reads the tunnel's up flag),
// before cgw-control has rewritten the route.
//
// ECMP (Options.ECMP, off by default): the dataplane sends a prefix through
// one tunnel, so there is no per-flow ECMP. With ECMP on, when the two best
// paths are through the two tunnels of one connection and differ only by
// tunnel order, the primary is chosen by a hash of the prefix, spreading
// prefixes (not flows) over both tunnels; the other stays the backup.
//
// A restarted cgw-control finds the route table as its predecessor left
// it, still forwarding: Adopt takes those routes as installed, so the RIB
// replaces or keeps them rather than adding them again, and SweepStale
// deletes the ones nothing has re-learnt once BGP has converged (the idea
// of RFC 4724's stale routes).
//
// The RIB's output is a stream of changes (add, replace or delete of one
// prefix) applied to a Sink, a maps.Writer in production: a change that
// does not alter the selected primary or backup produces nothing. A change
// the Sink refuses is kept pending and retried by Flush (or the next
// change), so the RIB never believes the map holds what it does not.
package rib

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cgw-project/cgw/bpf/maps"
)

// Sink receives the RIB's changes. *maps.Writer is one.
type Sink interface {
	AddRoute(p netip.Prefix, r maps.Route) error
	ReplaceRoute(p netip.Prefix, r maps.Route) error
	DeleteRoute(p netip.Prefix) error
}

// Batcher is implemented by sinks that can group changes so readers see
// them as one (maps.Writer.Batch): a burst of BGP updates or a tunnel
// going down is applied inside one Batch.
type Batcher interface {
	Batch(fn func() error) error
}

// Tunnel names a tunnel the RIB routes through.
type Tunnel struct {
	ID         uint32 // the dataplane's tunnel id (1..1023)
	Name       string // e.g. "vpn1-t1"
	Connection string // the VPN connection the tunnel belongs to
}

// Options tune selection.
type Options struct {
	// ECMP spreads prefixes with equal-cost paths over the two tunnels of
	// a connection (see the package comment). Off by default.
	ECMP bool
}

// Origin is the BGP ORIGIN attribute (RFC 4271 §4.3).
type Origin uint8

// Origin values, in order of preference.
const (
	OriginIGP        Origin = 0
	OriginEGP        Origin = 1
	OriginIncomplete Origin = 2
)

func (o Origin) String() string {
	switch o {
	case OriginIGP:
		return "IGP"
	case OriginEGP:
		return "EGP"
	case OriginIncomplete:
		return "incomplete"
	}
	return fmt.Sprintf("origin(%d)", uint8(o))
}

// BGPRoute is one route received from a BGP neighbour.
type BGPRoute struct {
	Prefix netip.Prefix
	// ASPath is the AS_PATH flattened, for display.
	ASPath []uint32
	// ASPathLen is the length used for selection; an AS_SET counts as one
	// (RFC 4271 §9.1.2.2 a).
	ASPathLen int
	Origin    Origin
	MED       uint32 // 0 when absent
	NextHop   netip.Addr
}

// Source says where a path came from.
type Source uint8

// Sources.
const (
	SourceStatic Source = iota
	SourceBGP
)

func (s Source) String() string {
	if s == SourceStatic {
		return "static"
	}
	return "bgp"
}

// path is one candidate for a prefix.
type path struct {
	tunnel int // index into RIB.tunnels; also the tie-break rank
	source Source
	bgp    BGPRoute // when source is SourceBGP (Prefix unused)
}

type entry struct {
	paths     []path
	installed maps.Route // what the sink holds; zero when nothing
	stale     bool       // adopted from a previous process, not reselected since
	want      maps.Route
	reason    string
}

// Stats counts the changes sent to the sink.
type Stats struct {
	Adds, Replaces, Deletes uint64
	Failures                uint64 // changes the sink refused (kept pending)
	Installed               int    // prefixes in the sink
	Pending                 int    // prefixes whose change is still to be applied
}

// RIB is the route selection state. Its methods are safe for concurrent
// use.
type RIB struct {
	mu      sync.Mutex
	sink    Sink
	opt     Options
	tunnels []Tunnel
	byID    map[uint32]int
	up      []bool
	// static prefixes per connection name
	static  map[string][]netip.Prefix
	entries map[netip.Prefix]*entry
	pending map[netip.Prefix]struct{}
	stats   Stats
}

// New returns a RIB over tunnels, given in tie-break order (connection
// order, then t1 before t2). Every tunnel starts down.
func New(sink Sink, tunnels []Tunnel, opt Options) (*RIB, error) {
	r := &RIB{
		sink:    sink,
		opt:     opt,
		tunnels: slices.Clone(tunnels),
		byID:    make(map[uint32]int, len(tunnels)),
		up:      make([]bool, len(tunnels)),
		static:  make(map[string][]netip.Prefix),
		entries: make(map[netip.Prefix]*entry),
		pending: make(map[netip.Prefix]struct{}),
	}
	for i, t := range tunnels {
		if t.ID == 0 || t.ID >= maps.MaxTunnels {
			return nil, fmt.Errorf("rib: tunnel %q: id %d out of range 1..%d", t.Name, t.ID, maps.MaxTunnels-1)
		}
		if j, dup := r.byID[t.ID]; dup {
			return nil, fmt.Errorf("rib: tunnels %q and %q share id %d", tunnels[j].Name, t.Name, t.ID)
		}
		r.byID[t.ID] = i
	}
	return r, nil
}

func (r *RIB) tunnel(id uint32) (int, error) {
	i, ok := r.byID[id]
	if !ok {
		return 0, fmt.Errorf("rib: unknown tunnel id %d", id)
	}
	return i, nil
}

// SetTunnelUp marks a tunnel up or down. Paths through a down tunnel stay
// known but are not eligible; they become eligible again when it is up.
func (r *RIB) SetTunnelUp(id uint32, up bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ti, err := r.tunnel(id)
	if err != nil {
		return err
	}
	if r.up[ti] == up {
		return nil
	}
	r.up[ti] = up
	var touched []netip.Prefix
	for p, e := range r.entries {
		for _, pa := range e.paths {
			if pa.tunnel == ti {
				touched = append(touched, p)
				break
			}
		}
	}
	return r.apply(touched)
}

// SetStatic replaces the static routes of a connection: each prefix is a
// path through every tunnel of that connection.
func (r *RIB) SetStatic(connection string, prefixes []netip.Prefix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var tis []int
	for i, t := range r.tunnels {
		if t.Connection == connection {
			tis = append(tis, i)
		}
	}
	if len(tis) == 0 {
		return fmt.Errorf("rib: static routes for connection %q, which has no tunnels", connection)
	}
	next := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			return fmt.Errorf("rib: connection %q: invalid static prefix", connection)
		}
		next = append(next, norm(p))
	}
	old := r.static[connection]
	touched := make([]netip.Prefix, 0, len(old)+len(next))
	for _, p := range old {
		if !slices.Contains(next, p) {
			r.removePath(p, func(pa path) bool { return pa.source == SourceStatic && slices.Contains(tis, pa.tunnel) })
			touched = append(touched, p)
		}
	}
	for _, p := range next {
		if slices.Contains(old, p) {
			continue
		}
		e := r.entry(p)
		for _, ti := range tis {
			e.paths = append(e.paths, path{tunnel: ti, source: SourceStatic})
		}
		touched = append(touched, p)
	}
	r.static[connection] = next
	return r.apply(touched)
}

// UpdateBGP applies one batch of BGP news from a tunnel's neighbour:
// announced routes replace that neighbour's earlier route for the prefix
// (implicit withdraw, RFC 4271 §3.1), withdrawn prefixes are removed.
func (r *RIB) UpdateBGP(id uint32, announce []BGPRoute, withdraw []netip.Prefix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ti, err := r.tunnel(id)
	if err != nil {
		return err
	}
	touched := make([]netip.Prefix, 0, len(announce)+len(withdraw))
	fromTunnel := func(pa path) bool { return pa.source == SourceBGP && pa.tunnel == ti }
	for _, p := range withdraw {
		p = norm(p)
		if r.removePath(p, fromTunnel) {
			touched = append(touched, p)
		}
	}
	for _, a := range announce {
		if !a.Prefix.IsValid() {
			continue
		}
		p := norm(a.Prefix)
		a.Prefix = netip.Prefix{}
		e := r.entry(p)
		np := path{tunnel: ti, source: SourceBGP, bgp: a}
		if k := slices.IndexFunc(e.paths, fromTunnel); k >= 0 {
			e.paths[k] = np
		} else {
			e.paths = append(e.paths, np)
		}
		touched = append(touched, p)
	}
	return r.apply(touched)
}

// WithdrawBGP removes every BGP route learnt through a tunnel, as when its
// session goes down (RFC 4271 §9.1: routes of a closed session are
// withdrawn).
func (r *RIB) WithdrawBGP(id uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ti, err := r.tunnel(id)
	if err != nil {
		return err
	}
	var touched []netip.Prefix
	for p := range r.entries {
		if r.removePath(p, func(pa path) bool { return pa.source == SourceBGP && pa.tunnel == ti }) {
			touched = append(touched, p)
		}
	}
	return r.apply(touched)
}

// Flush retries the changes the sink refused earlier.
func (r *RIB) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.apply(nil)
}

// Stats returns the change counters.
func (r *RIB) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Pending = len(r.pending)
	return s
}

func norm(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

func (r *RIB) entry(p netip.Prefix) *entry {
	e := r.entries[p]
	if e == nil {
		e = &entry{}
		r.entries[p] = e
	}
	return e
}

// removePath deletes the paths of p that match; it reports whether any did.
func (r *RIB) removePath(p netip.Prefix, match func(path) bool) bool {
	e := r.entries[p]
	if e == nil {
		return false
	}
	n := len(e.paths)
	e.paths = slices.DeleteFunc(e.paths, match)
	return len(e.paths) != n
}

// apply reselects the touched prefixes and sends the sink what changed,
// plus any change still pending. Caller holds r.mu.
func (r *RIB) apply(touched []netip.Prefix) error {
	for _, p := range touched {
		e := r.entries[p]
		if e == nil {
			continue
		}
		e.want, e.reason = r.selectRoute(p, e)
		e.stale = false
		if e.want != e.installed {
			r.pending[p] = struct{}{}
		} else {
			delete(r.pending, p)
			if len(e.paths) == 0 && e.installed == (maps.Route{}) {
				delete(r.entries, p)
			}
		}
	}
	if len(r.pending) == 0 {
		return nil
	}
	var errs []error
	push := func() error {
		for p := range r.pending {
			if err := r.push(p, r.entries[p]); err != nil {
				errs = append(errs, err)
			}
		}
		return nil
	}
	if b, ok := r.sink.(Batcher); ok && len(r.pending) > 1 {
		if err := b.Batch(push); err != nil {
			errs = append(errs, err)
		}
	} else {
		push()
	}
	if len(errs) > 3 {
		errs = append(errs[:3], fmt.Errorf("and %d more refused changes", len(errs)-3))
	}
	return errors.Join(errs...)
}

// push sends one prefix's change. Caller holds r.mu.
func (r *RIB) push(p netip.Prefix, e *entry) error {
	var err error
	var zero maps.Route
	switch {
	case e.installed == zero:
		if err = r.sink.AddRoute(p, e.want); err == nil {
			r.stats.Adds++
			r.stats.Installed++
		}
	case e.want == zero:
		if err = r.sink.DeleteRoute(p); err == nil {
			r.stats.Deletes++
			r.stats.Installed--
		}
	default:
		if err = r.sink.ReplaceRoute(p, e.want); err == nil {
			r.stats.Replaces++
		}
	}
	if err != nil {
		r.stats.Failures++
		return fmt.Errorf("rib: %v: %w (kept pending)", p, err)
	}
	e.installed = e.want
	delete(r.pending, p)
	if len(e.paths) == 0 && e.installed == zero {
		delete(r.entries, p)
	}
	return nil
}

// prefixHash is a hash of a prefix that is the same in every process, so
// a restart does not reshuffle ECMP choices.
func prefixHash(p netip.Prefix) uint32 {
	h := fnv.New32a()
	b, _ := p.MarshalBinary()
	h.Write(b)
	return h.Sum32()
}

// Adopt records routes found in the sink at start (a previous process's)
// as installed, without changing the sink. Call it before anything else.
func (r *RIB) Adopt(routes []maps.RouteEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rt := range routes {
		p := norm(rt.Prefix)
		e := r.entry(p)
		e.installed, e.want, e.stale = rt.Route, rt.Route, true
		e.reason = "adopted from the previous cgw-control, not re-learnt yet"
		r.stats.Installed++
	}
}

// SweepStale deletes the adopted routes that nothing has re-learnt (call
// it once the sessions are up and have sent their routes, or after a
// timeout) and returns how many it removed or re-selected.
func (r *RIB) SweepStale() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var touched []netip.Prefix
	for p, e := range r.entries {
		if e.stale {
			touched = append(touched, p)
		}
	}
	return len(touched), r.apply(touched)
}

// compare orders two paths: negative when a is better. rule names the step
// that decided (the last one when they are equal).
func (r *RIB) compare(a, b path) (int, string) {
	if a.source != b.source {
		if a.source == SourceStatic {
			return -1, "static route beats BGP"
		}
		return 1, "static route beats BGP"
	}
	if a.source == SourceBGP {
		if c := a.bgp.ASPathLen - b.bgp.ASPathLen; c != 0 {
			return c, fmt.Sprintf("shorter AS_PATH (%d < %d)", min(a.bgp.ASPathLen, b.bgp.ASPathLen), max(a.bgp.ASPathLen, b.bgp.ASPathLen))
		}
		if a.bgp.Origin != b.bgp.Origin {
			lo, hi := min(a.bgp.Origin, b.bgp.Origin), max(a.bgp.Origin, b.bgp.Origin)
			return int(a.bgp.Origin) - int(b.bgp.Origin), fmt.Sprintf("origin %v < %v", lo, hi)
		}
		if a.bgp.MED != b.bgp.MED {
			c := -1
			if a.bgp.MED > b.bgp.MED {
				c = 1
			}
			return c, fmt.Sprintf("lower MED (%d < %d)", min(a.bgp.MED, b.bgp.MED), max(a.bgp.MED, b.bgp.MED))
		}
	}
	return a.tunnel - b.tunnel, "tie-break: tunnel order"
}

// ranked returns p's eligible paths, best first. Caller holds r.mu.
func (r *RIB) ranked(e *entry) []path {
	el := make([]path, 0, len(e.paths))
	for _, pa := range e.paths {
		if r.up[pa.tunnel] {
			el = append(el, pa)
		}
	}
	sort.SliceStable(el, func(i, j int) bool { c, _ := r.compare(el[i], el[j]); return c < 0 })
	return el
}

// selectRoute returns the route to install and why. Caller holds r.mu.
func (r *RIB) selectRoute(p netip.Prefix, e *entry) (maps.Route, string) {
	el := r.ranked(e)
	if len(el) == 0 {
		if len(e.paths) == 0 {
			return maps.Route{}, "no path"
		}
		return maps.Route{}, "every path's tunnel is down"
	}
	best := el[0]
	reason := "only eligible path"
	backup := -1
	for i := 1; i < len(el); i++ {
		if i == 1 {
			_, reason = r.compare(best, el[1])
		}
		if el[i].tunnel != best.tunnel {
			backup = i
			break
		}
	}
	if best.source == SourceStatic && !strings.Contains(reason, "static") && slices.ContainsFunc(el, func(pa path) bool { return pa.source == SourceBGP }) {
		reason += "; static route beats BGP"
	}
	if backup > 0 && r.opt.ECMP {
		b := el[backup]
		_, rule := r.compare(best, b)
		if rule == "tie-break: tunnel order" && r.tunnels[b.tunnel].Connection == r.tunnels[best.tunnel].Connection {
			reason = "ECMP: equal cost over the connection's tunnels, primary by prefix hash"
			if prefixHash(p)&1 == 1 {
				best, el[backup] = b, best
			}
		}
	}
	rt := maps.Route{TunnelId: r.tunnels[best.tunnel].ID}
	if backup > 0 {
		rt.BackupTunnelId = r.tunnels[el[backup].tunnel].ID
	}
	return rt, reason
}

// Selected is one installed (or to-be-installed) route.
type Selected struct {
	Prefix netip.Prefix
	Source Source
	Tunnel Tunnel  // primary
	Backup *Tunnel // nil when there is none
	// Reason is the rule that made the primary beat the runner-up.
	Reason string
	// Attrs are the primary's BGP attributes (Source BGP).
	Attrs   BGPRoute
	Pending bool // the sink has not accepted the change yet
	Stale   bool // adopted at start and not re-learnt yet (see Adopt)
}

// tunnelByID names a tunnel id, also one only an adopted route knows.
func (r *RIB) tunnelByID(id uint32) Tunnel {
	if i, ok := r.byID[id]; ok {
		return r.tunnels[i]
	}
	return Tunnel{ID: id, Name: fmt.Sprintf("tunnel-%d (not configured)", id)}
}

// Candidate is one path of Explain.
type Candidate struct {
	Source   Source
	Tunnel   Tunnel
	Up       bool // the tunnel is up: the path is eligible
	Attrs    BGPRoute
	Selected bool
	Backup   bool
}

// Explanation tells why a prefix routes the way it does.
type Explanation struct {
	Route      *Selected   // nil when no path is eligible
	Reason     string      // why Route won, or why there is none
	Candidates []Candidate // best first; ineligible ones last
}

// Table returns the selected routes, sorted by prefix.
func (r *RIB) Table() []Selected {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Selected, 0, len(r.entries))
	for p, e := range r.entries {
		if s := r.selected(p, e); s != nil {
			out = append(out, *s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return prefixLess(out[i].Prefix, out[j].Prefix) })
	return out
}

func prefixLess(a, b netip.Prefix) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}

func (r *RIB) selected(p netip.Prefix, e *entry) *Selected {
	if e.want.TunnelId == 0 {
		return nil
	}
	s := &Selected{Prefix: p, Reason: e.reason}
	_, pending := r.pending[p]
	s.Pending = pending
	s.Stale = e.stale
	s.Tunnel = r.tunnelByID(e.want.TunnelId)
	if e.want.BackupTunnelId != 0 {
		b := r.tunnelByID(e.want.BackupTunnelId)
		s.Backup = &b
	}
	for _, pa := range r.ranked(e) {
		if r.tunnels[pa.tunnel].ID == e.want.TunnelId {
			s.Source, s.Attrs = pa.source, pa.bgp
			s.Attrs.Prefix = p
			break
		}
	}
	return s
}

// Explain returns the candidates for exactly prefix p (not a longest-match
// lookup) and why the selected one won.
func (r *RIB) Explain(p netip.Prefix) (Explanation, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p = norm(p)
	e := r.entries[p]
	if e == nil {
		return Explanation{Reason: "no path"}, false
	}
	ex := Explanation{Route: r.selected(p, e), Reason: e.reason}
	add := func(pa path, up bool) {
		c := Candidate{Source: pa.source, Tunnel: r.tunnels[pa.tunnel], Up: up, Attrs: pa.bgp}
		c.Attrs.Prefix = p
		if up && ex.Route != nil {
			if c.Tunnel.ID == e.want.TunnelId && pa.source == ex.Route.Source {
				c.Selected = true
			} else if c.Tunnel.ID == e.want.BackupTunnelId && !slices.ContainsFunc(ex.Candidates, func(o Candidate) bool { return o.Backup }) {
				c.Backup = true
			}
		}
		ex.Candidates = append(ex.Candidates, c)
	}
	for _, pa := range r.ranked(e) {
		add(pa, true)
	}
	var down []path
	for _, pa := range e.paths {
		if !r.up[pa.tunnel] {
			down = append(down, pa)
		}
	}
	sort.SliceStable(down, func(i, j int) bool { c, _ := r.compare(down[i], down[j]); return c < 0 })
	for _, pa := range down {
		add(pa, false)
	}
	return ex, true
}

// String formats a candidate for cgwctl.
func (c Candidate) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s via %s", c.Source, c.Tunnel.Name)
	if c.Source == SourceBGP {
		fmt.Fprintf(&b, " as_path [%s] origin %v med %d", formatPath(c.Attrs.ASPath), c.Attrs.Origin, c.Attrs.MED)
	}
	switch {
	case !c.Up:
		b.WriteString(" (tunnel down)")
	case c.Selected:
		b.WriteString(" (selected)")
	case c.Backup:
		b.WriteString(" (backup)")
	}
	return b.String()
}

func formatPath(as []uint32) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = fmt.Sprint(a)
	}
	return strings.Join(s, " ")
}

// InstalledPerTunnel counts the installed routes of each tunnel (as
// primary), in tunnel order.
func (r *RIB) InstalledPerTunnel() []TunnelCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]TunnelCount, len(r.tunnels))
	for i, t := range r.tunnels {
		out[i].Tunnel = t
	}
	for _, e := range r.entries {
		if i, ok := r.byID[e.installed.TunnelId]; ok {
			out[i].Routes++
		}
	}
	// Without the slots of removed tunnels (RemoveTunnel).
	return slices.DeleteFunc(out, func(c TunnelCount) bool { return c.Tunnel.ID == 0 })
}

// TunnelCount is a tunnel and a number of routes.
type TunnelCount struct {
	Tunnel Tunnel
	Routes int
}
