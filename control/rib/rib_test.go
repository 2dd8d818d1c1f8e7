package rib

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
)

// fakeSink records every change and keeps the table it implies, refusing
// what a maps.Writer would refuse (add of an existing prefix, replace or
// delete of a missing one).
type fakeSink struct {
	ops     []string
	table   map[netip.Prefix]maps.Route
	fail    error // returned by every call while set
	batches int
}

func newSink() *fakeSink { return &fakeSink{table: map[netip.Prefix]maps.Route{}} }

func (s *fakeSink) AddRoute(p netip.Prefix, r maps.Route) error {
	if s.fail != nil {
		return s.fail
	}
	if _, ok := s.table[p]; ok {
		return fmt.Errorf("add %v: exists", p)
	}
	s.table[p] = r
	s.ops = append(s.ops, fmt.Sprintf("add %v %d/%d", p, r.TunnelId, r.BackupTunnelId))
	return nil
}

func (s *fakeSink) ReplaceRoute(p netip.Prefix, r maps.Route) error {
	if s.fail != nil {
		return s.fail
	}
	if _, ok := s.table[p]; !ok {
		return fmt.Errorf("replace %v: missing", p)
	}
	s.table[p] = r
	s.ops = append(s.ops, fmt.Sprintf("replace %v %d/%d", p, r.TunnelId, r.BackupTunnelId))
	return nil
}

func (s *fakeSink) DeleteRoute(p netip.Prefix) error {
	if s.fail != nil {
		return s.fail
	}
	if _, ok := s.table[p]; !ok {
		return fmt.Errorf("delete %v: missing", p)
	}
	delete(s.table, p)
	s.ops = append(s.ops, fmt.Sprintf("delete %v", p))
	return nil
}

func (s *fakeSink) Batch(fn func() error) error { s.batches++; return fn() }

// take returns and clears the recorded changes, sorted.
func (s *fakeSink) take() []string {
	o := s.ops
	s.ops = nil
	slices.Sort(o)
	return o
}

var twoConns = []Tunnel{
	{ID: 1, Name: "a-t1", Connection: "a"},
	{ID: 2, Name: "a-t2", Connection: "a"},
	{ID: 3, Name: "b-t1", Connection: "b"},
	{ID: 4, Name: "b-t2", Connection: "b"},
}

func newRIB(t *testing.T, opt Options) (*RIB, *fakeSink) {
	t.Helper()
	s := newSink()
	r, err := New(s, twoConns, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, tu := range twoConns {
		if err := r.SetTunnelUp(tu.ID, true); err != nil {
			t.Fatal(err)
		}
	}
	return r, s
}

var pfx = netip.MustParsePrefix

func bgpRoute(p string, asLen int, o Origin, med uint32) BGPRoute {
	as := make([]uint32, asLen)
	for i := range as {
		as[i] = 64512
	}
	return BGPRoute{Prefix: pfx(p), ASPath: as, ASPathLen: asLen, Origin: o, MED: med}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantOps(t *testing.T, s *fakeSink, want ...string) {
	t.Helper()
	got := s.take()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("changes:\n got %q\nwant %q", got, want)
	}
}

func wantReason(t *testing.T, r *RIB, p, sub string) {
	t.Helper()
	ex, ok := r.Explain(pfx(p))
	if !ok || ex.Route == nil {
		t.Fatalf("Explain(%s): no route (%+v)", p, ex)
	}
	if !strings.Contains(ex.Reason, sub) {
		t.Fatalf("Explain(%s) reason %q, want it to mention %q", p, ex.Reason, sub)
	}
}

// Each BGP rule decides a case where every earlier rule ties and the
// tunnel order (t1 first) would pick the other path.
func TestSelectionRules(t *testing.T) {
	cases := []struct {
		name   string
		t1, t2 BGPRoute
		reason string
	}{
		{"as_path", bgpRoute("198.19.0.0/24", 3, OriginIGP, 0), bgpRoute("198.19.0.0/24", 1, OriginIncomplete, 500), "shorter AS_PATH (1 < 3)"},
		{"origin", bgpRoute("198.19.0.0/24", 1, OriginEGP, 0), bgpRoute("198.19.0.0/24", 1, OriginIGP, 500), "origin IGP < EGP"},
		{"origin incomplete", bgpRoute("198.19.0.0/24", 1, OriginIncomplete, 0), bgpRoute("198.19.0.0/24", 1, OriginEGP, 500), "origin EGP < incomplete"},
		{"med", bgpRoute("198.19.0.0/24", 1, OriginIGP, 200), bgpRoute("198.19.0.0/24", 1, OriginIGP, 100), "lower MED (100 < 200)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, s := newRIB(t, Options{})
			must(t, r.UpdateBGP(1, []BGPRoute{c.t1}, nil))
			wantOps(t, s, "add 198.19.0.0/24 1/0")
			must(t, r.UpdateBGP(2, []BGPRoute{c.t2}, nil))
			wantOps(t, s, "replace 198.19.0.0/24 2/1")
			wantReason(t, r, "198.19.0.0/24", c.reason)
		})
	}
	t.Run("tie-break", func(t *testing.T) {
		r, s := newRIB(t, Options{})
		// Announced t2 first: order of arrival must not matter.
		must(t, r.UpdateBGP(2, []BGPRoute{bgpRoute("198.19.0.0/24", 1, OriginIGP, 0)}, nil))
		must(t, r.UpdateBGP(1, []BGPRoute{bgpRoute("198.19.0.0/24", 1, OriginIGP, 0)}, nil))
		wantOps(t, s, "add 198.19.0.0/24 2/0", "replace 198.19.0.0/24 1/2")
		wantReason(t, r, "198.19.0.0/24", "tunnel order")
		// Connection order: a's t2 beats b's t1.
		must(t, r.UpdateBGP(3, []BGPRoute{bgpRoute("198.19.1.0/24", 1, OriginIGP, 0)}, nil))
		must(t, r.UpdateBGP(2, []BGPRoute{bgpRoute("198.19.1.0/24", 1, OriginIGP, 0)}, nil))
		wantOps(t, s, "add 198.19.1.0/24 3/0", "replace 198.19.1.0/24 2/3")
	})
	t.Run("as_set counts one", func(t *testing.T) {
		r, s := newRIB(t, Options{})
		set := bgpRoute("198.19.0.0/24", 2, OriginIGP, 0)
		set.ASPath = []uint32{64512, 1, 2, 3} // 64512 {1,2,3}
		must(t, r.UpdateBGP(2, []BGPRoute{set}, nil))
		must(t, r.UpdateBGP(1, []BGPRoute{bgpRoute("198.19.0.0/24", 3, OriginIGP, 0)}, nil))
		wantOps(t, s, "add 198.19.0.0/24 2/0", "replace 198.19.0.0/24 2/1")
	})
}

func TestStaticBeatsBGP(t *testing.T) {
	r, s := newRIB(t, Options{})
	// BGP through a's tunnels with the shortest possible path...
	must(t, r.UpdateBGP(1, []BGPRoute{bgpRoute("198.19.0.0/24", 0, OriginIGP, 0)}, nil))
	must(t, r.UpdateBGP(2, []BGPRoute{bgpRoute("198.19.0.0/24", 0, OriginIGP, 0)}, nil))
	wantOps(t, s, "add 198.19.0.0/24 1/0", "replace 198.19.0.0/24 1/2")
	// ...loses to a static route of connection b (later in tunnel order).
	must(t, r.SetStatic("b", []netip.Prefix{pfx("198.19.0.0/24"), pfx("198.19.2.0/24")}))
	wantOps(t, s, "replace 198.19.0.0/24 3/4", "add 198.19.2.0/24 3/4")
	wantReason(t, r, "198.19.0.0/24", "static route beats BGP")
	wantReason(t, r, "198.19.2.0/24", "tunnel order")
	// Both of b's tunnels down: BGP through a again.
	must(t, r.SetTunnelUp(3, false))
	wantOps(t, s, "replace 198.19.0.0/24 4/1", "replace 198.19.2.0/24 4/0")
	must(t, r.SetTunnelUp(4, false))
	wantOps(t, s, "replace 198.19.0.0/24 1/2", "delete 198.19.2.0/24")
	// Removing the static routes changes nothing installed.
	must(t, r.SetStatic("b", nil))
	wantOps(t, s)
	must(t, r.SetTunnelUp(3, true))
	wantOps(t, s)
	if err := r.SetStatic("nope", nil); err == nil {
		t.Fatal("static routes for an unknown connection accepted")
	}
}

func TestTunnelDownAndRecovery(t *testing.T) {
	r, s := newRIB(t, Options{})
	must(t, r.UpdateBGP(1, []BGPRoute{bgpRoute("198.19.0.0/24", 1, OriginIGP, 0), bgpRoute("198.19.1.0/24", 1, OriginIGP, 0)}, nil))
	must(t, r.UpdateBGP(2, []BGPRoute{bgpRoute("198.19.0.0/24", 3, OriginIGP, 0)}, nil))
	wantOps(t, s, "add 198.19.0.0/24 1/0", "add 198.19.1.0/24 1/0", "replace 198.19.0.0/24 1/2")
	before := s.batches
	must(t, r.SetTunnelUp(1, false))
	wantOps(t, s, "replace 198.19.0.0/24 2/0", "delete 198.19.1.0/24")
	if s.batches != before+1 {
		t.Fatalf("tunnel down applied in %d batches, want 1", s.batches-before)
	}
	ex, _ := r.Explain(pfx("198.19.0.0/24"))
	if len(ex.Candidates) != 2 || ex.Candidates[1].Up || !ex.Candidates[0].Selected {
		t.Fatalf("Explain after tunnel down: %+v", ex.Candidates)
	}
	ex, ok := r.Explain(pfx("198.19.1.0/24"))
	if !ok || ex.Route != nil || !strings.Contains(ex.Reason, "down") {
		t.Fatalf("Explain of a prefix whose only tunnel is down: %+v", ex)
	}
	// A routing update for the down tunnel is kept but not used.
	must(t, r.UpdateBGP(1, []BGPRoute{bgpRoute("198.19.3.0/24", 1, OriginIGP, 0)}, nil))
	wantOps(t, s)
	must(t, r.SetTunnelUp(1, true))
	wantOps(t, s, "replace 198.19.0.0/24 1/2", "add 198.19.1.0/24 1/0", "add 198.19.3.0/24 1/0")
	must(t, r.SetTunnelUp(1, true)) // no news
	wantOps(t, s)
	// Session down: everything from t1 goes at once.
	must(t, r.WithdrawBGP(1))
	wantOps(t, s, "replace 198.19.0.0/24 2/0", "delete 198.19.1.0/24", "delete 198.19.3.0/24")
	if n := len(r.Table()); n != 1 {
		t.Fatalf("table has %d routes, want 1", n)
	}
}

func TestMinimalChanges(t *testing.T) {
	r, s := newRIB(t, Options{})
	must(t, r.UpdateBGP(1, []BGPRoute{bgpRoute("198.19.0.0/24", 1, OriginIGP, 0)}, nil))
	must(t, r.UpdateBGP(2, []BGPRoute{bgpRoute("198.19.0.0/24", 2, OriginIGP, 0)}, nil))
	must(t, r.UpdateBGP(3, []BGPRoute{bgpRoute("198.19.0.0/24", 3, OriginIGP, 0)}, nil))
	wantOps(t, s, "add 198.19.0.0/24 1/0", "replace 198.19.0.0/24 1/2")
	// Withdrawing a path that is neither primary nor backup changes nothing.
	must(t, r.UpdateBGP(3, nil, []netip.Prefix{pfx("198.19.0.0/24")}))
	wantOps(t, s)
	// Nor does a re-announcement with the same outcome, nor a withdraw of
	// something never announced.
	must(t, r.UpdateBGP(2, []BGPRoute{bgpRoute("198.19.0.0/24", 2, OriginIGP, 50)}, nil))
	must(t, r.UpdateBGP(4, nil, []netip.Prefix{pfx("198.19.9.0/24")}))
	wantOps(t, s)
	// A change elsewhere touches only its own prefix.
	must(t, r.UpdateBGP(1, []BGPRoute{bgpRoute("198.19.1.0/24", 1, OriginIGP, 0)}, nil))
	wantOps(t, s, "add 198.19.1.0/24 1/0")
	// Withdrawing the backup's path rewrites only the backup.
	must(t, r.UpdateBGP(2, nil, []netip.Prefix{pfx("198.19.0.0/24")}))
	wantOps(t, s, "replace 198.19.0.0/24 1/0")
	must(t, r.UpdateBGP(1, nil, []netip.Prefix{pfx("198.19.0.0/24")}))
	wantOps(t, s, "delete 198.19.0.0/24")
	if _, ok := r.Explain(pfx("198.19.0.0/24")); ok {
		t.Fatal("a prefix with no paths left is still known")
	}
	st := r.Stats()
	if st.Adds != 2 || st.Replaces != 2 || st.Deletes != 1 || st.Installed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSinkFailureKeptPending(t *testing.T) {
	r, s := newRIB(t, Options{})
	s.fail = errors.New("map full")
	err := r.UpdateBGP(1, []BGPRoute{bgpRoute("198.19.0.0/24", 1, OriginIGP, 0)}, nil)
	if err == nil || !strings.Contains(err.Error(), "map full") {
		t.Fatalf("error %v, want the sink's", err)
	}
	if st := r.Stats(); st.Pending != 1 || st.Failures != 1 {
		t.Fatalf("stats %+v", st)
	}
	if tb := r.Table(); len(tb) != 1 || !tb[0].Pending {
		t.Fatalf("table %+v", tb)
	}
	s.fail = nil
	must(t, r.Flush())
	wantOps(t, s, "add 198.19.0.0/24 1/0")
	if st := r.Stats(); st.Pending != 0 || st.Installed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestECMP(t *testing.T) {
	r, s := newRIB(t, Options{ECMP: true})
	var ann []BGPRoute
	for i := range 64 {
		ann = append(ann, bgpRoute(fmt.Sprintf("198.19.%d.0/24", i), 1, OriginIGP, 0))
	}
	must(t, r.UpdateBGP(1, ann, nil))
	must(t, r.UpdateBGP(2, ann, nil))
	s.take()
	per := map[uint32]int{}
	for p, rt := range s.table {
		per[rt.TunnelId]++
		if rt.TunnelId+rt.BackupTunnelId != 3 {
			t.Fatalf("%v: %+v, want 1 and 2 as primary and backup", p, rt)
		}
	}
	if per[1] == 0 || per[2] == 0 {
		t.Fatalf("ECMP left a tunnel without prefixes: %v", per)
	}
	wantReason(t, r, "198.19.0.0/24", "ECMP")
	// An unequal path is not spread.
	must(t, r.UpdateBGP(2, []BGPRoute{bgpRoute("198.19.0.0/24", 2, OriginIGP, 0)}, nil))
	if rt := s.table[pfx("198.19.0.0/24")]; rt.TunnelId != 1 {
		t.Fatalf("unequal paths: %+v", rt)
	}
}

func TestTableAndNormalisation(t *testing.T) {
	r, _ := newRIB(t, Options{})
	must(t, r.UpdateBGP(1, []BGPRoute{
		{Prefix: pfx("198.19.0.77/24"), ASPath: []uint32{64512}, ASPathLen: 1},
		{Prefix: pfx("2001:db8:1::/48"), ASPath: []uint32{64512}, ASPathLen: 1},
		{Prefix: pfx("::ffff:198.18.5.0/120"), ASPath: []uint32{64512}, ASPathLen: 1},
	}, nil))
	tb := r.Table()
	var got []string
	for _, s := range tb {
		got = append(got, fmt.Sprintf("%v %s %s", s.Prefix, s.Tunnel.Name, s.Source))
	}
	want := []string{"198.18.5.0/24 a-t1 bgp", "198.19.0.0/24 a-t1 bgp", "2001:db8:1::/48 a-t1 bgp"}
	if !slices.Equal(got, want) {
		t.Fatalf("table %q, want %q", got, want)
	}
	ex, _ := r.Explain(pfx("198.19.0.0/24"))
	if s := ex.Candidates[0].String(); s != "bgp via a-t1 as_path [64512] origin IGP med 0 (selected)" {
		t.Fatalf("candidate %q", s)
	}
	if _, err := New(newSink(), []Tunnel{{ID: 1}, {ID: 1}}, Options{}); err == nil {
		t.Fatal("duplicate tunnel ids accepted")
	}
	if err := r.UpdateBGP(9, nil, nil); err == nil {
		t.Fatal("unknown tunnel accepted")
	}
}

func TestConfig(t *testing.T) {
	cfg := &config.Config{Connections: []config.Connection{
		{Name: "a", Routing: config.RoutingBGP, Tunnels: []config.Tunnel{{Name: "a-t1"}, {Name: "a-t2"}}},
		{Name: "b", Routing: config.RoutingStatic, Static: []string{"198.19.0.0/16", "198.18.4.0/24"}, Tunnels: []config.Tunnel{{Name: "b-t1"}, {Name: "b-t2"}}},
	}}
	ids := map[string]uint32{"a-t1": 1, "a-t2": 2, "b-t1": 3, "b-t2": 4}
	tu, err := ConfigTunnels(cfg, ids)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tu, twoConns) {
		t.Fatalf("tunnels %+v, want %+v", tu, twoConns)
	}
	s := newSink()
	r, err := New(s, tu, Options{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, r.ConfigStatic(cfg))
	must(t, r.SetTunnelUp(4, true))
	wantOps(t, s, "add 198.19.0.0/16 4/0", "add 198.18.4.0/24 4/0")
	counts := r.InstalledPerTunnel()
	if len(counts) != 4 || counts[3].Routes != 2 || counts[0].Routes != 0 {
		t.Fatalf("InstalledPerTunnel %+v", counts)
	}
	delete(ids, "b-t2")
	if _, err := ConfigTunnels(cfg, ids); err == nil {
		t.Fatal("a tunnel without id accepted")
	}
	cfg.Connections[1].Static = []string{"198.19.0.0"}
	if err := r.ConfigStatic(cfg); err == nil || !strings.Contains(err.Error(), "not a prefix") {
		t.Fatalf("bad static route: %v", err)
	}
}

// BenchmarkSelect is the RIB's own cost (no map writes): 10 000 prefixes
// announced by two tunnels, then one tunnel down.
func BenchmarkSelect(b *testing.B) {
	ps := prefixes(10000)
	a1, a2 := announcements(ps, 1), announcements(ps, 2)
	for b.Loop() {
		r, _ := New(nopSink{}, twoConns[:2], Options{})
		r.SetTunnelUp(1, true)
		r.SetTunnelUp(2, true)
		r.UpdateBGP(1, a1, nil)
		r.UpdateBGP(2, a2, nil)
		r.SetTunnelUp(1, false)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/prefix")
}

type nopSink struct{}

func (nopSink) AddRoute(netip.Prefix, maps.Route) error     { return nil }
func (nopSink) ReplaceRoute(netip.Prefix, maps.Route) error { return nil }
func (nopSink) DeleteRoute(netip.Prefix) error              { return nil }

// A restarted control process adopts the table it finds, keeps what is
// re-learnt without re-adding it, and sweeps the rest.
func TestAdoptAndSweep(t *testing.T) {
	s := newSink()
	old := []maps.RouteEntry{
		{Prefix: pfx("198.19.0.0/24"), Route: maps.Route{TunnelId: 1, BackupTunnelId: 2}},
		{Prefix: pfx("198.19.1.0/24"), Route: maps.Route{TunnelId: 1}},
		{Prefix: pfx("198.19.2.0/24"), Route: maps.Route{TunnelId: 9}},
	}
	for _, e := range old {
		s.table[e.Prefix] = e.Route
	}
	r, err := New(s, twoConns, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Adopt(old)
	if tb := r.Table(); len(tb) != 3 || !tb[0].Stale || tb[2].Tunnel.Name != "tunnel-9 (not configured)" {
		t.Fatalf("adopted table %+v", tb)
	}
	must(t, r.SetTunnelUp(1, true))
	must(t, r.SetTunnelUp(2, true))
	must(t, r.UpdateBGP(1, []BGPRoute{bgpRoute("198.19.0.0/24", 1, OriginIGP, 0), bgpRoute("198.19.1.0/24", 1, OriginIGP, 0)}, nil))
	must(t, r.UpdateBGP(2, []BGPRoute{bgpRoute("198.19.0.0/24", 2, OriginIGP, 0)}, nil))
	// Re-learnt routes are replaced in place, never re-added (which the
	// map would refuse); .1 comes out as it was, so it is not written.
	wantOps(t, s, "replace 198.19.0.0/24 1/0", "replace 198.19.0.0/24 1/2")
	n, err := r.SweepStale()
	must(t, err)
	if n != 1 {
		t.Fatalf("swept %d, want 1", n)
	}
	wantOps(t, s, "delete 198.19.2.0/24")
	if st := r.Stats(); st.Installed != 2 {
		t.Fatalf("stats %+v", st)
	}
}
