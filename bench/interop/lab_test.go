package interop

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/control/status"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// needLab fails (never skips, except with -short) when the lab cannot run.
func needLab(t *testing.T) {
	t.Helper()
	netnstest.Require(t, "ethtool", "nsenter", "curl", "ping")
	if miss := lab.Prereqs(); len(miss) > 0 {
		t.Fatalf("lab prerequisites missing: %s", strings.Join(miss, "; "))
	}
}

// labN numbers the labs of this process so tests never share a prefix.
var labN int

// upLab builds the cgw commands (cgw-control with the race detector: the
// matrix drives its IKE, BGP and status goroutines hard) and brings up a
// lab with cgw as the gateway; Cleanup removes everything.
func upLab(t *testing.T, ctx context.Context, o lab.Options) (*lab.Lab, *lab.CGWGateway) {
	t.Helper()
	g, _, err := lab.BuildCGW(ctx, t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	labN++
	o.Prefix = fmt.Sprintf("ci%d%d", os.Getpid()%100000, labN)
	o.StateRoot, o.Gateway, o.Progress = t.TempDir(), g, testWriter{t}
	l, err := lab.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A stopped charon (DPD tests) must run again to be ended.
		for i := range 2 {
			if p, ok := l.CharonProc(lab.AWSEndpoint(i)); ok {
				syscallCont(p.Pid)
			}
		}
		if t.Failed() {
			for _, f := range []string{"cgw-control.log", "cgw-dataplane.log"} {
				b, _ := os.ReadFile(l.Dir + "/" + f)
				t.Logf("--- %s (tail) ---\n%s", f, tailLines(string(b), 40))
			}
		}
		for _, r := range g.RaceReports(l) {
			t.Errorf("cgw-control (race detector):\n%s", r)
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

// allUp: every tunnel up with exactly one installed, active Child SA.
func allUp(s *status.Status) bool {
	if len(s.Tunnels) != 2 {
		return false
	}
	for _, t := range s.Tunnels {
		if t.State != "up" || t.IKE == nil || len(t.Children) != 1 || !t.Children[0].Active || len(t.Stale) > 0 {
			return false
		}
	}
	return true
}

var floodRe = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// flood sends count echo requests every interval from the LAN host to the
// VPC host (bounded by count, and by ctx) and returns sent and received.
func flood(ctx context.Context, l *lab.Lab, count int, interval time.Duration) (sent, recv int, err error) {
	out, err := l.Exec(ctx, lab.LAN, "ping", "-n", "-q", "-c", strconv.Itoa(count),
		"-i", fmt.Sprintf("%.3f", interval.Seconds()), "-W", "1", lab.VPCHost.String())
	m := floodRe.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("ping flood printed no summary: %v: %s", err, out)
	}
	sent, _ = strconv.Atoi(m[1])
	recv, _ = strconv.Atoi(m[2])
	return sent, recv, nil
}

// metric returns one sample of cgw-control's metrics (0 if absent).
func metric(t *testing.T, ctx context.Context, l *lab.Lab, g *lab.CGWGateway, name string) float64 {
	t.Helper()
	m, err := g.ControlMetrics(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	return m[name]
}

// syscallCont resumes a process the test stopped (by pid).
func syscallCont(pid int) { syscall.Kill(pid, syscall.SIGCONT) }

var dropRe = regexp.MustCompile(`(?m)^cgw_dataplane_(drops_total|late_view_total|ring_full_total)\{([^}]*)\} ([0-9.eE+]+)$`)
var reasonRe = regexp.MustCompile(`(stage|reason)="([^"]*)"`)

// dataplaneDrops scrapes cgw-dataplane's metrics (127.0.0.1:9472 in the
// cgw namespace) and sums drops by stage/reason over workers, with the
// late-view and ring-full counters: where packets went if a flood lost any.
func dataplaneDrops(ctx context.Context, l *lab.Lab) (map[string]float64, error) {
	out, err := l.Exec(ctx, lab.CGW, "curl", "-sf", "http://127.0.0.1:9472/metrics")
	if err != nil {
		return nil, fmt.Errorf("scraping cgw-dataplane's metrics: %w", err)
	}
	return parseDrops(out), nil
}

func parseDrops(out string) map[string]float64 {
	m := map[string]float64{}
	for _, s := range dropRe.FindAllStringSubmatch(out, -1) {
		key := s[1]
		for _, kv := range reasonRe.FindAllStringSubmatch(s[2], -1) {
			key += "/" + kv[2]
		}
		v, _ := strconv.ParseFloat(s[3], 64)
		m[key] += v
	}
	return m
}

// dropDelta lists the counters that grew from a to b.
func dropDelta(a, b map[string]float64) string {
	var out []string
	for k, v := range b {
		if d := v - a[k]; d > 0 {
			out = append(out, fmt.Sprintf("%s +%.0f", k, d))
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
