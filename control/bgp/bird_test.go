package bgp

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/control/rib"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// The end-to-end test runs BIRD (as AWS, ASN 64512) in one network
// namespace and the Speaker in another, joined by two veth pairs carrying
// the two tunnels' inside /30s. GoBGP opens sockets from many goroutines,
// so the Speaker cannot be put in a namespace by setns on one thread: the
// test binary re-executes itself under `ip netns exec` for that part
// (childEnv set), while the parent owns the namespaces and BIRD.

const childEnv = "CGW_BGP_TEST_CHILD"

// Addresses of the two tunnels (AWS takes the first usable address).
var (
	t1AWS, t1GW = netip.MustParseAddr("169.254.44.89"), netip.MustParseAddr("169.254.44.90")
	t2AWS, t2GW = netip.MustParseAddr("169.254.45.9"), netip.MustParseAddr("169.254.45.10")
)

const birdConf = `
router id 169.254.44.89;
log "%[1]s/bird.log" all;
protocol device { scan time 2; }
protocol static vpc1 { ipv4; route 198.19.0.0/24 blackhole; }
protocol static vpc2 { ipv4; route 198.19.1.0/24 blackhole; }
protocol static vpc3 { disabled; ipv4; route 198.19.2.0/24 blackhole; }
template bgp aws {
	local as 64512;
	hold time 30;
	connect retry time 2;
	connect delay time 1;
	error wait time 1, 2;
	ipv4 { import all; export where proto ~ "vpc*"; };
}
protocol bgp t1 from aws {
	local 169.254.44.89 as 64512;
	neighbor 169.254.44.90 as 65000;
}
# The second tunnel is made less attractive to the gateway, as AWS does
# with a longer path on its backup tunnel.
protocol bgp t2 from aws {
	local 169.254.45.9 as 64512;
	neighbor 169.254.45.10 as 65000;
	ipv4 {
		import all;
		export filter { if proto ~ "vpc*" then { bgp_path.prepend(64512); accept; } reject; };
	};
}
`

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestBIRD(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		child(t)
		return
	}
	netnstest.Require(t, "bird", "birdc", "go")
	dir := t.TempDir()
	gobgp := buildGoBGPCLI(t, dir)

	id := fmt.Sprintf("%d", os.Getpid()%100000)
	gw, aws := netnstest.New(t, "cgwbgp-gw"), netnstest.New(t, "cgwbgp-aws")
	for i, l := range []struct{ aws, gw netip.Addr }{{t1AWS, t1GW}, {t2AWS, t2GW}} {
		netnstest.Veth{
			A: netnstest.End{NS: aws, Name: fmt.Sprintf("cbt%da%s", i+1, id), Addrs: []netip.Prefix{netip.PrefixFrom(l.aws, 30)}},
			B: netnstest.End{NS: gw, Name: fmt.Sprintf("cbt%dg%s", i+1, id), Addrs: []netip.Prefix{netip.PrefixFrom(l.gw, 30)}},
		}.Create(t)
	}

	conf := filepath.Join(dir, "bird.conf")
	sock := filepath.Join(dir, "bird.ctl")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(birdConf, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	bird := aws.Command("bird", "-f", "-c", conf, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	var birdOut bytes.Buffer
	bird.Stdout, bird.Stderr = &birdOut, &birdOut
	if err := bird.Start(); err != nil {
		t.Fatalf("starting bird: %v", err)
	}
	// ip netns exec execs bird in place: this pid is bird's.
	t.Cleanup(func() {
		bird.Process.Kill()
		bird.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "bird.log"))
			t.Logf("bird output:\n%s\nbird.log:\n%s", birdOut.String(), log)
		}
	})
	waitFor(t, 10*time.Second, "BIRD's control socket", func() bool {
		return exec.Command("birdc", "-s", sock, "show", "status").Run() == nil
	})

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := gw.Command(self, "-test.run", "^TestBIRD$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1", "CGW_BGP_TEST_BIRDC="+sock, "CGW_BGP_TEST_GOBGP="+gobgp)
	out, err := cmd.CombinedOutput()
	t.Logf("gateway side (in %s):\n%s", gw.Name(), out)
	if err != nil {
		t.Fatalf("gateway side failed: %v", err)
	}
}

// buildGoBGPCLI builds the stock gobgp CLI from the module cache's GoBGP
// (the version in go.mod). It is built as its own module, with GoBGP's
// go.sum, because its CLI needs packages (cobra) this module does not.
func buildGoBGPCLI(t *testing.T, dir string) string {
	t.Helper()
	gomod := run(t, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/osrg/gobgp/v3")
	src := strings.TrimSpace(gomod)
	bin := filepath.Join(dir, "gobgp")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/gobgp")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod -buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the gobgp CLI in %s (needs its dependencies in the module cache or GOPROXY reachable): %v\n%s", src, err, out)
	}
	return bin
}

func waitFor(t testing.TB, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// syncSink is a concurrency-safe fake maps.Writer keeping the route table.
type syncSink struct {
	mu    sync.Mutex
	table map[netip.Prefix]maps.Route
}

func (s *syncSink) AddRoute(p netip.Prefix, r maps.Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.table[p]; ok {
		return fmt.Errorf("add %v: exists", p)
	}
	s.table[p] = r
	return nil
}

func (s *syncSink) ReplaceRoute(p netip.Prefix, r maps.Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.table[p]; !ok {
		return fmt.Errorf("replace %v: missing", p)
	}
	s.table[p] = r
	return nil
}

func (s *syncSink) DeleteRoute(p netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.table[p]; !ok {
		return fmt.Errorf("delete %v: missing", p)
	}
	delete(s.table, p)
	return nil
}

func (s *syncSink) get(p string) (maps.Route, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.table[netip.MustParsePrefix(p)]
	return r, ok
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// child is the gateway side, running inside the gateway namespace.
func child(t *testing.T) {
	sock, gobgp := os.Getenv("CGW_BGP_TEST_BIRDC"), os.Getenv("CGW_BGP_TEST_GOBGP")
	birdc := func(args ...string) string {
		return run(t, "birdc", append([]string{"-s", sock}, args...)...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("birdc", "-s", sock, "show", "protocols", "all").CombinedOutput()
			t.Logf("birdc show protocols all:\n%s", out)
		}
	})
	sink := &syncSink{table: map[netip.Prefix]maps.Route{}}
	r, err := rib.New(sink, []rib.Tunnel{{ID: 1, Name: "vpn-t1", Connection: "vpn"}, {ID: 2, Name: "vpn-t2", Connection: "vpn"}}, rib.Options{})
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	adv := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}
	nb := []Neighbor{
		{Tunnel: 1, Name: "vpn-t1", Connection: "vpn", Local: t1GW, Peer: t1AWS, LocalASN: 65000, PeerASN: 64512, Advertise: adv},
		{Tunnel: 2, Name: "vpn-t2", Connection: "vpn", Local: t2GW, Peer: t2AWS, LocalASN: 65000, PeerASN: 64512, Advertise: adv, Prepend: 2},
	}
	logger := slog.New(slog.NewTextHandler(io.Writer(os.Stderr), &slog.HandlerOptions{Level: slog.LevelInfo}))
	sp, err := Start(r, Options{RouterID: netip.MustParseAddr("192.0.2.10"), GRPCAddress: fmt.Sprintf("127.0.0.1:%d", port), Logger: logger,
		MaxPrefixes:        2, // small, so that the test can exceed it
		PrefixLimitRestart: 2 * time.Second,
	}, nb)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Stop()
	for _, id := range []uint32{1, 2} {
		if err := sp.TunnelUp(id); err != nil {
			t.Fatal(err)
		}
	}
	established := func(id uint32) bool { st, _ := sp.State(id); return st == "established" }
	waitFor(t, 60*time.Second, "both sessions Established (gateway side)", func() bool { return established(1) && established(2) })
	protos := birdc("show", "protocols")
	for _, p := range []string{"t1", "t2"} {
		if !regexpLine(protos, p, "Established") {
			t.Fatalf("BIRD: protocol %s not Established:\n%s", p, protos)
		}
	}

	// Graceful restart (RFC 4724) is negotiated: BIRD (helper by default)
	// receives our capability with the restart time and IPv4 unicast, so
	// it would keep our prefixes across a control restart.
	if all := birdc("show", "protocols", "all", "t1"); !strings.Contains(all, "Restart time: 120") || !strings.Contains(all, "AF supported: ipv4") {
		t.Fatalf("BIRD does not list our graceful restart capability (restart time 120, AF ipv4) among the neighbour's:\n%s", all)
	}

	// The RIB gets the VPC prefixes: t1 (shorter AS_PATH) primary, t2 backup.
	want := maps.Route{TunnelId: 1, BackupTunnelId: 2}
	for _, p := range []string{"198.19.0.0/24", "198.19.1.0/24"} {
		waitFor(t, 20*time.Second, p+" via t1 backed by t2", func() bool { rt, _ := sink.get(p); return rt == want })
	}
	ex, _ := r.Explain(netip.MustParsePrefix("198.19.0.0/24"))
	if !strings.Contains(ex.Reason, "AS_PATH") {
		t.Fatalf("198.19.0.0/24 selected for %q, want the AS_PATH rule", ex.Reason)
	}
	t.Logf("198.19.0.0/24: %s; candidates %v", ex.Reason, ex.Candidates)

	// BIRD receives our prefix, with the prepending on t2 only.
	var routes string
	waitFor(t, 20*time.Second, "BIRD to receive 198.18.0.0/24 from both tunnels", func() bool {
		routes = birdc("show", "route", "all", "198.18.0.0/24")
		return strings.Count(routes, "BGP.as_path:") == 2
	})
	if !strings.Contains(routes, "BGP.as_path: 65000 65000 65000\n") || !strings.Contains(routes, "BGP.as_path: 65000\n") {
		t.Fatalf("BIRD's routes for 198.18.0.0/24 lack the expected AS paths (65000 on t1, 65000 65000 65000 on t2):\n%s", routes)
	}
	// Nothing received from AWS is sent back (no transit).
	if out := birdc("show", "route", "protocol", "t1"); strings.Contains(out, "198.19.") {
		t.Fatalf("the gateway re-advertised AWS's routes:\n%s", out)
	}

	// The stock gobgp CLI talks to the embedded server.
	p := fmt.Sprint(port)
	nbOut := run(t, gobgp, "-p", p, "neighbor")
	for _, a := range []string{t1AWS.String(), t2AWS.String()} {
		if !regexpLine(nbOut, a, "Establ") {
			t.Fatalf("gobgp neighbor does not list %s as established:\n%s", a, nbOut)
		}
	}
	ribOut := run(t, gobgp, "-p", p, "global", "rib")
	for _, s := range []string{"198.18.0.0/24", "198.19.0.0/24", "198.19.1.0/24"} {
		if !strings.Contains(ribOut, s) {
			t.Fatalf("gobgp global rib lacks %s:\n%s", s, ribOut)
		}
	}
	t.Logf("gobgp neighbor:\n%s", nbOut)

	// Metrics.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(sp.Collector())
	if v := gauge(t, reg, "cgw_control_bgp_session_established", "vpn-t1"); v != 1 {
		t.Fatalf("cgw_control_bgp_session_established{tunnel=vpn-t1} = %v", v)
	}
	if v := gauge(t, reg, "cgw_control_bgp_prefixes_received", "vpn-t2"); v != 2 {
		t.Fatalf("cgw_control_bgp_prefixes_received{tunnel=vpn-t2} = %v, want 2", v)
	}
	if v := gauge(t, reg, "cgw_control_bgp_prefixes_advertised", "vpn-t2"); v != 1 {
		t.Fatalf("cgw_control_bgp_prefixes_advertised{tunnel=vpn-t2} = %v, want 1", v)
	}
	if v := gauge(t, reg, "cgw_control_bgp_prefixes_installed", "vpn-t1"); v != 2 {
		t.Fatalf("cgw_control_bgp_prefixes_installed{tunnel=vpn-t1} = %v, want 2", v)
	}

	// BIRD withdraws a prefix: it leaves the RIB and the table.
	birdc("disable", "vpc2")
	waitFor(t, 20*time.Second, "198.19.1.0/24 withdrawn", func() bool { _, ok := sink.get("198.19.1.0/24"); return !ok })
	if rt, _ := sink.get("198.19.0.0/24"); rt != want {
		t.Fatalf("198.19.0.0/24 changed with another prefix's withdraw: %+v", rt)
	}

	// Tunnel down: its routes go at once (no waiting for BGP).
	if err := sp.TunnelDown(1); err != nil {
		t.Fatal(err)
	}
	if rt, _ := sink.get("198.19.0.0/24"); rt != (maps.Route{TunnelId: 2}) {
		t.Fatalf("after t1 down, 198.19.0.0/24 is %+v, want via t2 alone", rt)
	}
	ex, _ = r.Explain(netip.MustParsePrefix("198.19.0.0/24"))
	if len(ex.Candidates) != 1 {
		t.Fatalf("t1's BGP routes not withdrawn: %v", ex.Candidates)
	}
	waitFor(t, 20*time.Second, "BIRD to see t1 down", func() bool {
		return !regexpLine(birdc("show", "protocols"), "t1", "Established")
	})

	// Session down from the peer's side: t2's routes go too.
	birdc("disable", "t2")
	waitFor(t, 20*time.Second, "198.19.0.0/24 withdrawn with t2's session", func() bool { _, ok := sink.get("198.19.0.0/24"); return !ok })

	// Recovery: t1 up again, the session comes back and so do its routes.
	birdc("enable", "vpc2")
	if err := sp.TunnelUp(1); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"198.19.0.0/24", "198.19.1.0/24"} {
		waitFor(t, 60*time.Second, p+" back via t1", func() bool { rt, _ := sink.get(p); return rt == maps.Route{TunnelId: 1} })
	}
	if v := gauge(t, reg, "cgw_control_bgp_session_flaps_total", "vpn-t2"); v != 1 {
		t.Fatalf("cgw_control_bgp_session_flaps_total{tunnel=vpn-t2} = %v, want 1", v)
	}

	// Max-prefix: a third prefix exceeds the limit of 2; the session is
	// closed (Cease, RFC 4486) and its routes leave the table.
	birdc("enable", "vpc3")
	waitFor(t, 20*time.Second, "t1's routes withdrawn when BIRD exceeds the prefix limit", func() bool {
		_, ok := sink.get("198.19.0.0/24")
		return !ok
	})
	if v := gauge(t, reg, "cgw_control_bgp_session_flaps_total", "vpn-t1"); v != 2 {
		t.Fatalf("cgw_control_bgp_session_flaps_total{tunnel=vpn-t1} = %v, want 2 (tunnel down, prefix limit)", v)
	}
	if v := gauge(t, reg, "cgw_control_bgp_prefix_limit_exceeded_total", "vpn-t1"); v != 1 {
		t.Fatalf("cgw_control_bgp_prefix_limit_exceeded_total{tunnel=vpn-t1} = %v, want 1", v)
	}
	birdc("disable", "vpc3")
	waitFor(t, 60*time.Second, "t1's routes back under the limit", func() bool { _, ok := sink.get("198.19.0.0/24"); return ok })
}

// regexpLine reports whether a line of out starts with (or contains, for
// gobgp's table) first and contains second.
func regexpLine(out, first, second string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && (f[0] == first || strings.Contains(l, first+" ")) && strings.Contains(l, second) {
			return true
		}
	}
	return false
}

// gauge returns the value of a metric with the given tunnel label.
func gauge(t *testing.T, reg *prometheus.Registry, name, tunnel string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "tunnel" && l.GetValue() == tunnel {
					if m.Gauge != nil {
						return m.Gauge.GetValue()
					}
					return m.Counter.GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{tunnel=%q} not exported", name, tunnel)
	return 0
}
