package perf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gopkg.in/yaml.v3"
)

// TestLivePrometheus runs a real Prometheus (Debian's prometheus package)
// on perf/prometheus/prometheus.yml and rules.yml, with the two targets
// pointed at HTTP servers exposing the real collectors over fake sources,
// and asks it every dashboard query and every recorded series: each must
// return data. This catches what name checks cannot: matchers that
// exclude each other, aggregations that drop the label a legend needs,
// rules that never produce a series.
func TestLivePrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the prometheus server; run without -short")
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found: install Debian's prometheus package (apt-get install prometheus)")
	}

	// One exporter per process, at an address of our own.
	targets := map[string]string{}
	for job, cs := range fakeCollectors(t) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(cs...)
		srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		t.Cleanup(srv.Close)
		targets[job] = strings.TrimPrefix(srv.URL, "http://")
	}

	// The committed configuration, with our targets and a 1 s cadence.
	dir := t.TempDir()
	var cfg map[string]any
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["global"] = map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
	rules, err := filepath.Abs("prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg["rule_files"] = []string{rules}
	for _, sc := range cfg["scrape_configs"].([]any) {
		sc := sc.(map[string]any)
		job := sc["job_name"].(string)
		if targets[job] == "" {
			t.Fatalf("prometheus.yml: job %s is not one of the cgw processes", job)
		}
		for _, st := range sc["static_configs"].([]any) {
			st.(map[string]any)["targets"] = []string{targets[job]}
		}
	}
	b, err = yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web := l.Addr().String()
	l.Close()
	var log bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})

	query := func(q string) (int, error) {
		resp, err := http.Get("http://" + web + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				ResultType string          `json:"resultType"`
				Result     json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, err
		}
		if r.Status != "success" {
			return 0, fmt.Errorf("%s", r.Error)
		}
		if r.Data.ResultType != "vector" && r.Data.ResultType != "matrix" {
			return 1, nil // scalar or string
		}
		var v []json.RawMessage
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return 0, err
		}
		return len(v), nil
	}
	// Readiness: three scrapes of each target (rate needs two samples)
	// and one evaluation of the slowest rule group. A bound, not a
	// measurement: on a loaded machine this takes longer, not fails.
	ready := `count_over_time(up{job="cgw-dataplane"}[1m]) >= 3 and on () count_over_time(up{job="cgw-control"}[1m]) >= 3 and on () count(reason:cgw_dataplane_drops:rate1m) > 0`
	deadline := time.Now().Add(90 * time.Second)
	for {
		n, err := query(ready)
		if err == nil && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape both exporters and evaluate the rules within 90 s (last: %d results, %v); its log:\n%s", n, err, log.String())
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Every recording rule must answer. A group is evaluated every 5 s
	// against what was scraped by then: one evaluation may have seen two
	// samples of one exporter and one of the other, so each record gets
	// until the deadline (a few evaluations), not one look.
	var rf ruleFile
	readYAML(t, "prometheus/rules.yml", &rf)
	asked := 0
	var records []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records = append(records, r.Record)
			}
		}
	}
	asked += len(records)
	deadline = time.Now().Add(30 * time.Second)
	for len(records) > 0 {
		var missing []string
		var errs []error
		for _, r := range records {
			if n, err := query(r); err != nil || n == 0 {
				missing, errs = append(missing, r), append(errs, err)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for i, r := range missing {
				t.Errorf("rules.yml: record %s: no series after 30 s of evaluations (%v)", r, errs[i])
			}
			break
		}
		records = missing
		time.Sleep(time.Second)
	}
	for f, d := range dashboards(t) {
		exprs, _ := dashboardExprs(d)
		keys := make([]string, 0, len(exprs))
		for k := range exprs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, where := range keys {
			asked++
			q := grafanaExpand(exprs[where])
			if n, err := query(q); err != nil || n == 0 {
				t.Errorf("%s: %s: %s returns no data from the real collectors (%d results, %v)", f, where, q, n, err)
			}
		}
	}
	t.Logf("%d queries answered by prometheus", asked)
}
