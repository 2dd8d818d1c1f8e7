package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cgw-project/cgw/config"
)

// cmdDataplane: cgwctl dataplane, per worker what cgw-dataplane's
// Prometheus endpoint says, read twice -interval apart for rates: core,
// queue, AF_XDP and XDP modes, CPU, packets/s in and out, drops/s; then
// the drops by stage and reason (like vppctl show runtime / show errors).
// It needs no IPC of its own: the endpoint is the dataplane's API.
func cmdDataplane(e *env, args []string) int {
	fs := flag.NewFlagSet("cgwctl dataplane", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	cfgPath := fs.String("config", "", "read the endpoint from this configuration `file` (gateway.observability.dataplane_metrics)")
	addr := fs.String("metrics", "", "cgw-dataplane's metrics `address` (default: from -config, else "+config.DefaultDataplaneMetric+")")
	interval := fs.Duration("interval", time.Second, "time between the two reads the rates come from")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "cgwctl dataplane: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	a := *addr
	if a == "" && *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(e.stderr, err)
			return exitProblem
		}
		a = c.Gateway.Observability.DataplaneMetrics
	}
	if a == "" {
		a = config.DefaultDataplaneMetric
	}
	ctx, cancel := context.WithTimeout(context.Background(), *interval+10*time.Second)
	defer cancel()
	first, err := scrape(ctx, a)
	if err != nil {
		fmt.Fprintf(e.stderr, "cgwctl dataplane: %v\n", err)
		return exitProblem
	}
	t0 := time.Now()
	time.Sleep(*interval)
	second, err := scrape(ctx, a)
	if err != nil {
		fmt.Fprintf(e.stderr, "cgwctl dataplane: %v\n", err)
		return exitProblem
	}
	printDataplane(e.stdout, first, second, time.Since(t0))
	return exitOK
}

// families is one scrape, by metric name.
type families map[string]*dto.MetricFamily

func scrape(ctx context.Context, addr string) (families, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading cgw-dataplane's metrics at %s: %w (is cgw-dataplane running, in this network namespace? -metrics or -config names the address)", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return nil, fmt.Errorf("%s/metrics: %s: %s", addr, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	return m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
}

// sum adds the samples of a metric whose labels match want, grouped by the
// label key.
func (f families) sum(name, key string, want map[string]string) map[string]float64 {
	out := map[string]float64{}
	mf := f[name]
	if mf == nil {
		return out
	}
next:
	for _, m := range mf.GetMetric() {
		for k, v := range want {
			if label(m, k) != v {
				continue next
			}
		}
		k := ""
		if key != "" {
			k = label(m, key)
		}
		out[k] += value(m)
	}
	return out
}

type workerRow struct {
	id, cpu, queue, modeIn, modeOut string
}

func printDataplane(w io.Writer, a, b families, dt time.Duration) {
	sec := dt.Seconds()
	rate := func(name, key string, want map[string]string) map[string]float64 {
		x, y := a.sum(name, key, want), b.sum(name, key, want)
		out := map[string]float64{}
		for k, v := range y {
			if d := v - x[k]; d > 0 {
				out[k] = d / sec
			} else {
				out[k] = 0
			}
		}
		return out
	}
	rows := map[string]*workerRow{}
	row := func(id string) *workerRow {
		if rows[id] == nil {
			rows[id] = &workerRow{id: id, cpu: "-", queue: "-", modeIn: "-", modeOut: "-"}
		}
		return rows[id]
	}
	if mf := b["cgw_dataplane_worker_info"]; mf != nil {
		for _, m := range mf.GetMetric() {
			r := row(label(m, "worker"))
			r.cpu, r.queue = label(m, "cpu"), label(m, "queue")
			if r.cpu == "-1" {
				r.cpu = "any"
			}
		}
	}
	if mf := b["cgw_dataplane_afxdp_mode_info"]; mf != nil {
		for _, m := range mf.GetMetric() {
			r := row(label(m, "worker"))
			if label(m, "device") == "inside" {
				r.modeIn = label(m, "mode")
			} else {
				r.modeOut = label(m, "mode")
			}
		}
	}
	cpu := rate("cgw_dataplane_worker_cpu_seconds_total", "worker", nil)
	out := rate("cgw_dataplane_packets_total", "worker", map[string]string{"direction": "out"})
	in := rate("cgw_dataplane_packets_total", "worker", map[string]string{"direction": "in"})
	drops := rate("cgw_dataplane_drops_total", "worker", nil)
	ring := rate("cgw_dataplane_ring_full_total", "worker", nil)
	ids := make([]string, 0, len(rows))
	for id := range rows {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return atoiOr(ids[i]) < atoiOr(ids[j]) })

	if mf := b["cgw_dataplane_nic_info"]; mf != nil {
		for _, m := range mf.GetMetric() {
			fmt.Fprintf(w, "%-7s %s: driver %s, XDP %s\n", label(m, "device"), label(m, "interface"), orDefault(label(m, "driver"), "unknown"), label(m, "xdp_mode"))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "rates over %v (out: encrypted towards AWS, in: decrypted towards the LAN)\n", dt.Round(10*time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WORKER\tCPU\tQUEUE\tINSIDE\tOUTSIDE\tCPU%\tOUT PPS\tIN PPS\tDROPS/S\tRING FULL/S\t")
	for _, id := range ids {
		r := rows[id]
		busy := "-"
		if v, ok := cpu[id]; ok {
			busy = fmt.Sprintf("%.1f", 100*v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t\n", id, r.cpu, r.queue, r.modeIn, r.modeOut, busy, out[id], in[id], drops[id], ring[id])
	}
	tw.Flush()

	// show errors: every stage/reason with a count, its total and rate.
	type drop struct {
		stage, reason string
		total, rate   float64
	}
	var ds []drop
	if mf := b["cgw_dataplane_drops_total"]; mf != nil {
		byKey := map[string]*drop{}
		for _, m := range mf.GetMetric() {
			k := label(m, "stage") + "\x00" + label(m, "reason")
			if byKey[k] == nil {
				byKey[k] = &drop{stage: label(m, "stage"), reason: label(m, "reason")}
			}
			byKey[k].total += value(m)
		}
		for k, d := range byKey {
			st, rs, _ := strings.Cut(k, "\x00")
			d.rate = rate("cgw_dataplane_drops_total", "", map[string]string{"stage": st, "reason": rs})[""]
			ds = append(ds, *d)
		}
	}
	fmt.Fprintln(w)
	if len(ds) == 0 {
		fmt.Fprintln(w, "no drops")
		return
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].total > ds[j].total })
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tREASON\tTOTAL\tPER SECOND")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\n", d.stage, d.reason, d.total, d.rate)
	}
	tw.Flush()
}

func atoiOr(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 1 << 30
	}
	return n
}
