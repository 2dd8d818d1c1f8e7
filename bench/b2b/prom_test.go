package b2b

import (
	"context"
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
	tp := upForTest(ctx, t, Options{Prefix: "b2bg", NoReplay: true}, "A")
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
	if err := load.TTLExpired(ctx, 100); err != nil {
		t.Fatal(err)
	}
	checks, err := prom.CheckDashboard(ctx, "../../perf/grafana/cgw-bench.json", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	asked := len(checks)
	for _, c := range checks {
		if c.Err != "" || c.Series == 0 {
			t.Errorf("panel %q: %s returns no data for the run (%d series, %s)", c.Panel, c.Query, c.Series, c.Err)
		}
	}
	if asked < 8 {
		t.Errorf("only %d queries in the dashboard", asked)
	}
	if t.Failed() {
		t.Logf("prometheus log:\n%s", prom.Log())
	}
}
