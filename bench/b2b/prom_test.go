package b2b

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/pktgen"
)

// TestBenchDashboard runs a short benchmark through site A with a real
// Prometheus scraping its dataplane, and asks every query of the bench
// dashboard (perf/grafana/cgw-bench.json): each must return data for
// that run.
func TestBenchDashboard(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp := New(Options{Prefix: "b2bg", Dataplane: dataplaneBinary(t), LogDir: t.TempDir(), NoReplay: true})
	t.Cleanup(func() {
		if err := tp.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	if err := tp.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.RunDataplane(ctx, tp.A, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	prom, err := tp.StartPrometheus(tp.A, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer prom.Stop()
	if err := prom.WaitScraping(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	load, err := tp.NewLoad()
	if err != nil {
		t.Fatal(err)
	}
	defer load.Close()
	for _, d := range []Direction{Outbound, Inbound, Outbound} {
		if _, err := load.Trial(ctx, TrialConfig{Dir: d, Mix: pktgen.SimpleIMIX(), Rate: pktgen.Rate{PPS: 20000}, Duration: 2 * time.Second, GenCPU: -1}); err != nil {
			t.Fatal(err)
		}
	}
	// A few frames whose TTL runs out at A: the drops-by-reason panel
	// has something to show (ttl: ttl_exceeded).
	f, err := load.Frame(Outbound, 100)
	if err != nil {
		t.Fatal(err)
	}
	ip := f[14:]
	ip[8], ip[10], ip[11] = 1, 0, 0
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip[:20]))
	if err := pktgen.InNetns(tp.NS(LAN), func() error {
		_, err := load.gen.Run(ctx, f, pktgen.RunConfig{Dev: LANDev, Count: 100, CPU: -1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../perf/grafana/cgw-bench.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	// Grafana's variables as "all" and a rate window that spans the run.
	vars := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)
	asked := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			q := vars.ReplaceAllStringFunc(tg.Expr, func(v string) string {
				if regexp.MustCompile(`interval`).MatchString(v) {
					return "10s"
				}
				return ".*"
			})
			// The samples of the run are a few seconds old by now.
			var n int
			var err error
			for try := 0; try < 20; try++ {
				if n, err = prom.Query(ctx, q); err == nil && n > 0 {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			asked++
			if err != nil || n == 0 {
				t.Errorf("panel %q: %s returns no data for the run (%d series, %v)", p.Title, q, n, err)
			}
		}
	}
	if asked < 8 {
		t.Errorf("only %d queries in the dashboard", asked)
	}
	if t.Failed() {
		t.Logf("prometheus log:\n%s", prom.Log())
	}
}
