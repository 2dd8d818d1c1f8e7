package failclosed

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/bpf"
	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/kernelguard"
	"github.com/cgw-project/cgw/control/status"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// binEnv names a directory of cgw-dataplane and cgw-control binaries to
// test instead of building this tree's: how the figures of a build
// without a fix are measured.
const binEnv = "CGW_FAILCLOSED_BIN"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// needLab fails (never skips, except with -short) when the lab cannot run.
func needLab(t *testing.T) {
	t.Helper()
	netnstest.Require(t, "ethtool", "nsenter", "tcpdump")
	if miss := lab.Prereqs(); len(miss) > 0 {
		t.Fatalf("lab prerequisites missing: %s", strings.Join(miss, "; "))
	}
}

// labConfig is the lab's default configuration with a short DPD (2 s × 2
// on both sides), so silenced endpoints take the tunnels down in seconds.
func labConfig() *config.Config {
	cfg := lab.DefaultConfig()
	for i := range cfg.Connections[0].Tunnels {
		cfg.Connections[0].Tunnels[i].DPD = config.DPD{Interval: config.Duration(2 * time.Second), Retries: 2, Action: config.DPDClear}
	}
	return cfg
}

// upLab builds the cgw commands once per package run and brings up a lab
// with cgw as the gateway, both tunnels and BGP up and the VPC route in
// the dataplane's map; everything is removed when the test ends.
func upLab(t *testing.T, ctx context.Context, tag string) (*lab.Lab, *lab.CGWGateway) {
	t.Helper()
	bin := os.Getenv(binEnv)
	if bin == "" {
		buildOnce.Do(func() {
			buildDir, buildErr = os.MkdirTemp("", "cgw-failclosed-bin-")
			if buildErr == nil {
				_, _, buildErr = lab.BuildCGW(ctx, buildDir, false)
			}
		})
		if buildErr != nil {
			t.Fatal(buildErr)
		}
		bin = buildDir
	} else {
		t.Logf("%s: cgw-dataplane and cgw-control from %s", binEnv, bin)
	}
	g := &lab.CGWGateway{Dataplane: filepath.Join(bin, "cgw-dataplane"), Control: filepath.Join(bin, "cgw-control")}
	o := lab.Options{Config: labConfig(), Prefix: fmt.Sprintf("fc%s%d", tag, os.Getpid()%100000), StateRoot: t.TempDir(), Gateway: g, Progress: testWriter{t}}
	l, err := lab.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"cgw-control.log", "cgw-dataplane.log"} {
				b, _ := os.ReadFile(filepath.Join(l.Dir, f))
				t.Logf("--- %s (tail) ---\n%s", f, tailLines(string(b), 40))
			}
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if err := g.Cleanup(l); err != nil {
			t.Errorf("removing pinned maps: %v", err)
		}
	})
	if err := l.Up(ctx); err != nil {
		t.Fatalf("lab up: %v", err)
	}
	forwarding(t, ctx, l, g)
	return l, g
}

// forwarding waits until both tunnels and BGP are up, the VPC route is in
// the map and a ping crosses the tunnel.
func forwarding(t *testing.T, ctx context.Context, l *lab.Lab, g *lab.CGWGateway) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := l.WaitTunnels(wctx); err != nil {
		t.Fatalf("AWS side: %v", err)
	}
	if s, err := g.WaitStatus(wctx, l, "both tunnels up", func(s *status.Status) bool { return upCount(s) == 2 }); err != nil {
		t.Fatalf("%v; last status %+v", err, s)
	}
	if err := l.WaitBGP(wctx); err != nil {
		t.Fatalf("BGP: %v", err)
	}
	if _, err := g.WaitRouteInstalled(wctx, l, lab.VPCPrefix); err != nil {
		t.Fatal(err)
	}
	for {
		pr, err := l.Ping(wctx, lab.LAN, lab.VPCHost, 3)
		if err == nil && pr.Received > 0 {
			return
		}
		if wctx.Err() != nil {
			t.Fatalf("no ping through the tunnel: %+v %v", pr, err)
		}
	}
}

func upCount(s *status.Status) int {
	n := 0
	for _, tu := range s.Tunnels {
		if tu.State == "up" {
			n++
		}
	}
	return n
}

// probe is a host no tunnel route covers: cgw leaves it to the kernel,
// which forwards it in clear. Its pings prove the capture sees the wire.
var probe = netip.MustParseAddr("198.51.100.99")

// wire is a capture on inet's link towards the gateway of every packet to
// the VPC, to a tunnel inside /30 or to the probe host.
type wire struct {
	c   *lab.Capture
	in  []netip.Prefix
	max int
}

func capture(t *testing.T, ctx context.Context, l *lab.Lab, name string) *wire {
	t.Helper()
	w := &wire{max: 100000}
	f := []string{"dst net " + lab.VPCPrefix.String(), "dst host " + probe.String()}
	for _, tu := range l.Conn.Tunnels {
		w.in = append(w.in, tu.InsideCIDR)
		f = append(f, "dst net "+tu.InsideCIDR.String())
	}
	c, err := l.StartCapture(ctx, lab.Inet, "cgw0", strings.Join(f, " or "), name, w.max)
	if err != nil {
		t.Fatal(err)
	}
	w.c = c
	return w
}

// stop ends the capture and returns the packets in clear to the VPC or an
// inside /30 (each line as tcpdump printed it) and how many probes it saw.
func (w *wire) stop(t *testing.T, ctx context.Context) (clear []string, probes int) {
	t.Helper()
	out, err := w.c.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		i := strings.Index(line, " > ")
		if i < 0 {
			continue
		}
		dst := line[i+3:]
		if j := strings.IndexAny(dst, ": "); j >= 0 {
			dst = dst[:j]
		}
		// tcpdump prints address.port for TCP/UDP.
		if k := strings.Count(dst, "."); k == 4 {
			dst = dst[:strings.LastIndex(dst, ".")]
		}
		a, err := netip.ParseAddr(dst)
		switch {
		case err != nil:
		case a == probe:
			probes++
		case lab.VPCPrefix.Contains(a) || w.inside(a):
			clear = append(clear, line)
		}
	}
	return clear, probes
}

func (w *wire) inside(a netip.Addr) bool {
	for _, p := range w.in {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// pinger is a LAN→VPC ping at 10/s in the background.
type pinger struct {
	done chan lab.PingResult
}

func ping(ctx context.Context, l *lab.Lab, count int) *pinger {
	p := &pinger{done: make(chan lab.PingResult, 1)}
	go func() {
		pr, _ := l.PingEvery(ctx, lab.LAN, lab.VPCHost, count, 100*time.Millisecond)
		p.done <- pr
	}()
	return p
}

func (p *pinger) wait() lab.PingResult { return <-p.done }

// check fails the test if anything left in clear, after proving with the
// probe pings that the capture saw the wire.
func check(t *testing.T, ctx context.Context, l *lab.Lab, w *wire, what string, sent int) {
	t.Helper()
	if pr, err := l.Ping(ctx, lab.LAN, probe, 3); err != nil && pr.Sent == 0 {
		t.Fatalf("probe ping: %v", err)
	}
	clear, probes := w.stop(t, ctx)
	t.Logf("%s: %d packets in clear to the VPC or an inside /30 on the outside link (%d LAN→VPC pings sent), %d of 3 probes seen", what, len(clear), sent, probes)
	if probes == 0 {
		t.Fatalf("the capture on inet's cgw0 saw none of the 3 probe pings to %v: it does not see the wire", probe)
	}
	if len(clear) > 0 {
		t.Errorf("%s: %d packets left the gateway in clear, e.g.:\n%s", what, len(clear), strings.Join(clear[:min(len(clear), 5)], "\n"))
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func tailLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// killDataplane ends cgw-dataplane with sig and waits until it is gone.
func killDataplane(t *testing.T, l *lab.Lab, g *lab.CGWGateway, sig syscall.Signal) {
	t.Helper()
	p, ok := g.DataplaneProc(l)
	if !ok {
		t.Fatal("cgw-dataplane is not running")
	}
	if err := syscall.Kill(p.Pid, sig); err != nil {
		t.Fatalf("signalling cgw-dataplane (pid %d): %v", p.Pid, err)
	}
	for i := 0; i < 200 && p.Alive(); i++ {
		time.Sleep(25 * time.Millisecond)
	}
	if p.Alive() {
		t.Fatalf("cgw-dataplane (pid %d) still running 5 s after %v", p.Pid, sig)
	}
}

// xdpStats reads the XDP decision counters from the pinned maps (they
// outlive the dataplane).
func xdpStats(t *testing.T, l *lab.Lab, g *lab.CGWGateway) [maps.NumStats]uint64 {
	t.Helper()
	objs, err := maps.Load(g.Instance(l))
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	s, err := objs.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// statDelta names the counters that moved between two readings.
func statDelta(a, b [maps.NumStats]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for i := range a {
		if d := b[i] - a[i]; d > 0 {
			out[bpf.CgwStat(i).String()] = d
		}
	}
	return out
}

// guards returns the kernel guards (control/kernelguard) in the gateway's
// namespace, as ip prints their prefixes.
func guards(t *testing.T, ctx context.Context, l *lab.Lab) []string {
	t.Helper()
	out, err := l.Exec(ctx, lab.CGW, "ip", "route", "show", "proto", fmt.Sprint(int(kernelguard.Protocol)), "type", "unreachable")
	if err != nil {
		t.Fatal(err)
	}
	var ps []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			ps = append(ps, f[1])
		}
	}
	return ps
}

// wantGuards fails unless the VPC prefix and every inside /30 are guarded.
func wantGuards(t *testing.T, ctx context.Context, l *lab.Lab) []string {
	t.Helper()
	got := guards(t, ctx, l)
	want := []string{lab.VPCPrefix.String()}
	for _, tu := range l.Conn.Tunnels {
		want = append(want, tu.InsideCIDR.String())
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("no kernel guard (unreachable route, proto %d) for %s in the gateway's namespace; guards: %v", kernelguard.Protocol, w, got)
		}
	}
	return got
}

// unreachables is the gateway namespace's count of ICMP destination
// unreachable messages sent: what a guard does with a LAN packet.
func unreachables(t *testing.T, ctx context.Context, l *lab.Lab) uint64 {
	t.Helper()
	out, err := l.Exec(ctx, lab.CGW, "cat", "/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "Icmp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		if i := slices.Index(names, "OutDestUnreachs"); i > 0 && i < len(f) {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				t.Fatalf("/proc/net/snmp: %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/net/snmp in the gateway's namespace has no Icmp OutDestUnreachs:\n%s", out)
	return 0
}

// xdpAttached reports whether an XDP program is attached to the gateway's
// inside interface.
func xdpAttached(t *testing.T, ctx context.Context, l *lab.Lab) bool {
	t.Helper()
	out, err := l.Exec(ctx, lab.CGW, "ip", "-d", "link", "show", "dev", l.Cfg.Gateway.Inside.Name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(out, "prog/xdp")
}

// detach runs cgw-dataplane -detach for the lab's instance in the
// gateway's network namespace (this process's mounts, with /sys/fs/bpf).
func detach(t *testing.T, ctx context.Context, l *lab.Lab, g *lab.CGWGateway) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/"+l.NS(lab.CGW), g.Dataplane, "-instance", g.Instance(l), "-detach")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cgw-dataplane -detach: %v\n%s", err, out)
	}
}
