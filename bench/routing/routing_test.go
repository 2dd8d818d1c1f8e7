// Package routing tests route selection end to end with cgw as the
// gateway of the emulated AWS lab (bench/lab): BGP over both tunnels with
// AS_PATH prepending, failover when an AWS endpoint goes silent and back,
// static routing with DPD as the detector, CloudHub (several VPN
// connections) and longest-prefix match across tunnels. Figures (outage
// times, the timer that fired) are logged with t.Logf.
package routing

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/control/status"
)

// needLab fails (never skips, except with -short) when the lab cannot run.
func needLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: needs root and namespaces; run without -short")
	}
	if os.Geteuid() != 0 {
		t.Fatal("routing end-to-end tests need root (network namespaces, XDP, pinned BPF maps)")
	}
	if miss := lab.Prereqs(); len(miss) > 0 {
		t.Fatalf("lab prerequisites missing: %s", strings.Join(miss, "; "))
	}
	for _, c := range []string{"ethtool", "nsenter", "iperf3"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found (Debian packages ethtool, util-linux, iperf3)", c)
		}
	}
}

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

// upLab builds the cgw commands once per package run and brings up a lab
// with cgw as the gateway; everything is removed when the test ends.
func upLab(t *testing.T, ctx context.Context, tag string, o lab.Options) (*lab.Lab, *lab.CGWGateway) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "cgw-routing-bin-")
		if buildErr == nil {
			_, _, buildErr = lab.BuildCGW(ctx, buildDir, false)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	g := &lab.CGWGateway{Dataplane: filepath.Join(buildDir, "cgw-dataplane"), Control: filepath.Join(buildDir, "cgw-control")}
	o.Prefix = fmt.Sprintf("rt%s%d", tag, os.Getpid()%100000)
	o.StateRoot, o.Gateway, o.Progress = t.TempDir(), g, testWriter{t}
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
	return l, g
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

// routeVia reports whether cgw-control has prefix in the map through
// tunnel (not pending).
func routeVia(prefix, tunnel string) func(*status.Status) bool {
	return func(s *status.Status) bool {
		return slices.ContainsFunc(s.Routes, func(r status.Route) bool {
			return r.Prefix.String() == prefix && r.Tunnel == tunnel && !r.Pending
		})
	}
}

func tunnelID(t *testing.T, s *status.Status, name string) uint32 {
	t.Helper()
	tu, ok := s.Tunnel(name)
	if !ok {
		t.Fatalf("no tunnel %s in cgw-control's status", name)
	}
	return tu.ID
}

// lpm returns the dataplane's route map as cgw-control wrote it.
func lpm(t *testing.T, g *lab.CGWGateway, l *lab.Lab) []maps.RouteEntry {
	t.Helper()
	r, done, err := g.Maps(l)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	tabs, err := r.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return tabs.Routes
}

// swPackets is what AWS's endpoint received from the gateway on its
// installed CHILD_SA (0 when it has none): the per-SA counter of the
// tunnel as AWS sees it.
func swPackets(ctx context.Context, l *lab.Lab, ep string) uint64 {
	c, err := l.ChildCounters(ctx, ep)
	if err != nil {
		return 0
	}
	return c.PacketsIn
}

// counted pings count times (0.2 s apart) and returns how many packets
// each listed AWS endpoint received from the gateway meanwhile.
func counted(t *testing.T, ctx context.Context, l *lab.Lab, to string, count int, eps ...string) (lab.PingResult, []int64) {
	t.Helper()
	before := make([]uint64, len(eps))
	for i, ep := range eps {
		before[i] = swPackets(ctx, l, ep)
	}
	pr, err := l.Ping(ctx, lab.LAN, mustAddr(to), count)
	if err != nil {
		t.Fatal(err)
	}
	d := make([]int64, len(eps))
	for i, ep := range eps {
		d[i] = int64(swPackets(ctx, l, ep)) - int64(before[i])
	}
	return pr, d
}

// birdRoutes splits "birdc show route all" output into the attributes of
// each route by the BGP protocol (tunnel) it came from.
func birdRoutes(out string) map[string]string {
	m := map[string]string{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "["); i >= 0 && !strings.HasPrefix(strings.TrimSpace(line), "BGP.") {
			f := strings.Fields(line[i+1:])
			if len(f) > 0 {
				cur = f[0]
			}
		}
		if cur != "" {
			m[cur] += line + "\n"
		}
	}
	return m
}

// pingOutage pings at a fixed rate while do runs (after lead), and returns
// the trace and the outage: the longest wall-clock gap between two
// replies (ping -D), which is lost × interval when ping kept its rate.
func pingOutage(t *testing.T, ctx context.Context, l *lab.Lab, to string, count int, interval, lead time.Duration, do func()) (lab.PingTrace, time.Duration) {
	t.Helper()
	type res struct {
		tr  lab.PingTrace
		err error
	}
	ch := make(chan res, 1)
	go func() {
		tr, err := l.PingTraced(ctx, lab.LAN, mustAddr(to), count, interval)
		ch <- res{tr, err}
	}()
	time.Sleep(lead)
	do()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.tr, r.tr.ReplyGap
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
