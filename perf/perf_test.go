package perf

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Prometheus configuration and rules, as far as the checks need them.

type promConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		ScrapeTimeout      string `yaml:"scrape_timeout"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// checker knows what the code exports plus what Prometheus adds.
type checker struct {
	exp exported
	// targetLabels are attached by Prometheus to every scraped series:
	// job, instance and the static labels of prometheus.yml.
	targetLabels map[string]bool
	jobs         map[string]bool
	// recorded are the recording rules' names with their labels.
	recorded map[string]map[string]bool
}

// synthetic series Prometheus makes for each scrape (and for alerts).
var synthetic = set("up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added", "ALERTS", "ALERTS_FOR_STATE")

// enumerated labels take values from a fixed set in the code (stages,
// drop reasons, XDP decisions, directions, …); a value a query names
// must be one of them. Other labels (tunnel, worker, notify, …) depend
// on the configuration or the peer.
var enumerated = set("direction", "stage", "reason", "decision", "device", "kind", "mode", "state", "op", "result", "to", "source")

func newChecker(t *testing.T) *checker {
	c := &checker{exp: exportedMetrics(t), targetLabels: set("job", "instance"), jobs: map[string]bool{}, recorded: map[string]map[string]bool{}}
	var cfg promConfig
	readYAML(t, "prometheus/prometheus.yml", &cfg)
	for _, sc := range cfg.ScrapeConfigs {
		c.jobs[sc.JobName] = true
		for _, st := range sc.StaticConfigs {
			for l := range st.Labels {
				c.targetLabels[l] = true
			}
		}
	}
	return c
}

// labelsOf returns the labels a series of name may carry, false if no
// such series exists.
func (c *checker) labelsOf(name string) (map[string]bool, bool) {
	if s := c.exp[name]; s != nil {
		return s.labels, true
	}
	if l, ok := c.recorded[name]; ok {
		return l, true
	}
	if synthetic[name] {
		return set("alertname", "alertstate"), true
	}
	return nil, false
}

// check returns what is wrong with expr: metrics the code does not export,
// labels those metrics do not carry, label values that cannot occur.
// labels, if not nil, receives the union of the labels of expr's series.
func (c *checker) check(expr string, labels map[string]bool) []string {
	q, err := parsePromQL(expr)
	if err != nil {
		return []string{err.Error()}
	}
	var probs []string
	all := map[string]bool{}
	for l := range c.targetLabels {
		all[l] = true
	}
	for _, s := range q.selectors {
		ls, ok := c.labelsOf(s.name)
		if !ok {
			probs = append(probs, fmt.Sprintf("metric %s is not exported by cgw-control or cgw-dataplane (nor recorded in rules.yml)", s.name))
			continue
		}
		for l := range ls {
			all[l] = true
		}
		for _, m := range s.matchers {
			if !ls[m.label] && !c.targetLabels[m.label] {
				probs = append(probs, fmt.Sprintf("%s has no label %q (it has %s)", s.name, m.label, strings.Join(sortedKeys(ls), ", ")))
				continue
			}
			if m.label == "job" && (m.op == "=" || m.op == "!=") && !c.jobs[m.value] {
				probs = append(probs, fmt.Sprintf("%s: job %q is not in prometheus.yml", s.name, m.value))
			}
			sr := c.exp[s.name]
			if sr == nil || !enumerated[m.label] || strings.Contains(m.value, "$") {
				continue
			}
			for _, v := range literalAlternatives(m) {
				if !sr.values[m.label][v] {
					probs = append(probs, fmt.Sprintf("%s{%s%s%q}: %q is not a value the code exports (it has %s)", s.name, m.label, m.op, m.value, v, strings.Join(sortedKeys(sr.values[m.label]), ", ")))
				}
			}
		}
	}
	for _, g := range q.grouping {
		if !all[g] {
			probs = append(probs, fmt.Sprintf("grouping label %q is on none of the expression's series", g))
		}
	}
	for l := range all {
		if labels != nil {
			labels[l] = true
		}
	}
	return probs
}

// literalAlternatives lists the values an = or =~ matcher made only of
// names and | can match (for != and !~ the values it excludes).
func literalAlternatives(m matcher) []string {
	switch m.op {
	case "=", "!=":
		return []string{m.value}
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*$`).MatchString(m.value) {
		return nil
	}
	return strings.Split(m.value, "|")
}

func (c *checker) loadRules(t *testing.T) ruleFile {
	var rf ruleFile
	readYAML(t, "prometheus/rules.yml", &rf)
	// Recording rules first, in order: later rules may use earlier ones.
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record == "" {
				continue
			}
			ls := map[string]bool{}
			if probs := c.check(r.Expr, ls); len(probs) > 0 {
				t.Errorf("rules.yml: record %s: %s", r.Record, strings.Join(probs, "; "))
			}
			for l := range r.Labels {
				ls[l] = true
			}
			c.recorded[r.Record] = ls
		}
	}
	return rf
}

func TestExported(t *testing.T) {
	exp := exportedMetrics(t)
	for _, want := range []string{"cgw_dataplane_packets_total", "cgw_dataplane_batch_size_packets_bucket", "cgw_control_bgp_session_state", "cgw_control_tunnel_up"} {
		if exp[want] == nil {
			t.Errorf("%s missing from %v", want, sortedKeys(exp))
		}
	}
	if !exp["cgw_dataplane_drops_total"].values["reason"]["replayed"] {
		t.Errorf("drop reason replayed missing: %v", exp["cgw_dataplane_drops_total"].values["reason"])
	}
	c := &checker{exp: exp, targetLabels: set("job", "instance"), jobs: set(jobControl), recorded: map[string]map[string]bool{}}
	// The checker must refuse what does not exist.
	for expr, want := range map[string]string{
		`rate(cgw_dataplane_packet_total[1m])`:                          "not exported",
		`cgw_dataplane_drops_total{reason="replay"}`:                    "not a value",
		`cgw_dataplane_drops_total{reason=~"replayed|bad_mac"}`:         "not a value",
		`cgw_dataplane_drops_total{tunnel="1"}`:                         "no label",
		`sum by (tunnel) (cgw_dataplane_drops_total)`:                   "grouping label",
		`up{job="cgw-dp"}`:                                              "not in prometheus.yml",
		`sum by (worker, reason) (rate(cgw_dataplane_drops_total[1m]))`: "",
	} {
		probs := strings.Join(c.check(expr, nil), "; ")
		if want == "" && probs != "" || !strings.Contains(probs, want) {
			t.Errorf("%s: problems %q, want %q", expr, probs, want)
		}
	}
}

func TestRules(t *testing.T) {
	c := newChecker(t)
	rf := c.loadRules(t)
	alerts := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				if !regexp.MustCompile(`^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$`).MatchString(r.Record) {
					t.Errorf("record %s: name it level:metric:operations (Prometheus naming practice)", r.Record)
				}
				continue
			}
			alerts++
			ls := map[string]bool{}
			if probs := c.check(r.Expr, ls); len(probs) > 0 {
				t.Errorf("alert %s: %s", r.Alert, strings.Join(probs, "; "))
			}
			for _, a := range r.Annotations {
				for _, m := range annotationLabel.FindAllStringSubmatch(a, -1) {
					if !ls[m[1]] {
						t.Errorf("alert %s: annotation uses $labels.%s, which none of its series carries", r.Alert, m[1])
					}
				}
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
			}
			for _, a := range []string{"summary", "description"} {
				if len(r.Annotations[a]) < 20 {
					t.Errorf("alert %s: annotation %s missing or too short to help an operator", r.Alert, a)
				}
			}
		}
	}
	if alerts < 10 {
		t.Errorf("%d alerts", alerts)
	}
	// The unit tests' input series must look like real ones too.
	var tests struct {
		RuleFiles          []string `yaml:"rule_files"`
		EvaluationInterval string   `yaml:"evaluation_interval"`
		Tests              []struct {
			Interval    string `yaml:"interval"`
			InputSeries []struct {
				Series string `yaml:"series"`
				Values string `yaml:"values"`
			} `yaml:"input_series"`
			AlertRuleTest []yaml.Node `yaml:"alert_rule_test"`
			PromQLExpr    []yaml.Node `yaml:"promql_expr_test"`
		} `yaml:"tests"`
	}
	readYAML(t, "prometheus/rules_test.yml", &tests)
	for _, tc := range tests.Tests {
		for _, in := range tc.InputSeries {
			if probs := c.check(in.Series, nil); len(probs) > 0 {
				t.Errorf("rules_test.yml: %s: %s", in.Series, strings.Join(probs, "; "))
			}
		}
	}
}

var annotationLabel = regexp.MustCompile(`\$labels\.([A-Za-z_][A-Za-z0-9_]*)`)
var legendLabel = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

func TestPrometheusConfig(t *testing.T) {
	var cfg promConfig
	readYAML(t, "prometheus/prometheus.yml", &cfg)
	targets := map[string]string{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[sc.JobName] = tg
			}
		}
	}
	// The defaults of control/config (DefaultControlMetrics, DefaultDataplaneMetric).
	if targets[jobControl] != "127.0.0.1:9471" || targets[jobDataplane] != "127.0.0.1:9472" {
		t.Errorf("targets %v", targets)
	}
	if cfg.Global.ScrapeInterval != "5s" {
		t.Errorf("scrape interval %q", cfg.Global.ScrapeInterval)
	}
	if len(cfg.RuleFiles) != 1 || cfg.RuleFiles[0] != "rules.yml" {
		t.Errorf("rule files %v", cfg.RuleFiles)
	}
}

// Grafana dashboards, as far as the checks need them.

type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	GridPos    *gridPos        `json:"gridPos"`
	Datasource *datasource     `json:"datasource"`
	Targets    []target        `json:"targets"`
	Panels     []panel         `json:"panels"` // collapsed rows
	FieldCfg   json.RawMessage `json:"fieldConfig"`
}

type gridPos struct{ H, W, X, Y int }

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID        string      `json:"refId"`
	Expr         string      `json:"expr"`
	LegendFormat string      `json:"legendFormat"`
	Datasource   *datasource `json:"datasource"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *datasource     `json:"datasource"`
}

const dsVar = "${DS_PROMETHEUS}"

func dashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := filepath.Glob("grafana/*.json")
	if err != nil || len(files) < 3 {
		t.Fatalf("dashboards: %v %v", files, err)
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: not valid JSON: %v", f, err)
		}
		out[f] = d
	}
	return out
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// overlap reports two panels of the top level (rows expanded) that cover
// the same grid cell: Grafana would push one down, not where it was meant.
func overlap(ps []panel) error {
	owner := map[[2]int]int{}
	for _, p := range ps {
		if p.GridPos == nil {
			continue
		}
		g := p.GridPos
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if o, ok := owner[[2]int{x, y}]; ok {
					return fmt.Errorf("panels %d and %d overlap at x=%d y=%d", o, p.ID, x, y)
				}
				owner[[2]int{x, y}] = p.ID
			}
		}
	}
	return nil
}

// varQuery returns a query variable's PromQL (Grafana's label_values and
// query_result forms unwrapped) and the label label_values asks for.
var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)
var queryResult = regexp.MustCompile(`^\s*query_result\((.*)\)\s*$`)

func varQuery(v variable) (expr, label string, err error) {
	q := v.Definition
	var s string
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &s) == nil {
		q = s
	} else if json.Unmarshal(v.Query, &o) == nil && o.Query != "" {
		q = o.Query
	}
	if m := labelValues.FindStringSubmatch(q); m != nil {
		return m[1], m[2], nil
	}
	if m := queryResult.FindStringSubmatch(q); m != nil {
		return m[1], "", nil
	}
	return "", "", fmt.Errorf("query %q: use label_values(metric, label) or query_result(expr)", q)
}

// dashboardExprs lists every PromQL expression of d by where it is.
func dashboardExprs(d dashboard) (map[string]string, []string) {
	exprs := map[string]string{}
	var probs []string
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			exprs[fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID)] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		e, _, err := varQuery(v)
		if err != nil {
			probs = append(probs, fmt.Sprintf("variable %s: %v", v.Name, err))
			continue
		}
		exprs["variable "+v.Name] = e
	}
	return exprs, probs
}

func TestDashboards(t *testing.T) {
	c := newChecker(t)
	c.loadRules(t)
	uids := map[string]string{}
	for f, d := range dashboards(t) {
		if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
			t.Errorf("%s: uid %q, title %q, schemaVersion %d: set all three (schemaVersion ≥ 36)", f, d.UID, d.Title, d.SchemaVersion)
		}
		if o, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %s also used by %s", f, d.UID, o)
		}
		uids[d.UID] = f
		if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
			t.Errorf("%s: __inputs %+v: want one prometheus datasource input DS_PROMETHEUS", f, d.Inputs)
		}
		vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
			if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != dsVar) {
				t.Errorf("%s: variable %s: datasource %+v, want uid %s", f, v.Name, v.Datasource, dsVar)
			}
		}
		if !vars["DS_PROMETHEUS"] {
			t.Errorf("%s: no datasource variable DS_PROMETHEUS (file provisioning does not fill __inputs; the variable does)", f)
		}
		ids := map[int]bool{}
		for _, p := range allPanels(d.Panels) {
			where := fmt.Sprintf("%s: panel %d %q", f, p.ID, p.Title)
			if p.ID == 0 || ids[p.ID] {
				t.Errorf("%s: id missing or not unique", where)
			}
			ids[p.ID] = true
			if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: gridPos %+v: want w, h > 0 and x+w ≤ 24", where, p.GridPos)
			}
			if p.Type == "row" {
				continue
			}
			if p.Title == "" || p.Type == "" {
				t.Errorf("%s: type and title needed", where)
			}
			if p.Datasource == nil || p.Datasource.UID != dsVar || p.Datasource.Type != "prometheus" {
				t.Errorf("%s: datasource %+v, want {prometheus %s}", where, p.Datasource, dsVar)
			}
			if p.Type != "text" && len(p.Targets) == 0 {
				t.Errorf("%s: no targets", where)
			}
			for _, tg := range p.Targets {
				if tg.RefID == "" || strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: target without refId or expr", where)
				}
			}
		}
		for _, p := range allPanels(d.Panels) {
			for _, tg := range p.Targets {
				ls := map[string]bool{}
				if len(c.check(tg.Expr, ls)) > 0 {
					continue // reported below
				}
				for _, m := range legendLabel.FindAllStringSubmatch(tg.LegendFormat, -1) {
					if !ls[m[1]] {
						t.Errorf("%s: panel %d %q target %s: legend uses {{%s}}, which none of the series carries", f, p.ID, p.Title, tg.RefID, m[1])
					}
				}
			}
		}
		if err := overlap(d.Panels); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		exprs, probs := dashboardExprs(d)
		for _, p := range probs {
			t.Errorf("%s: %s", f, p)
		}
		for where, e := range exprs {
			for _, p := range c.check(e, nil) {
				t.Errorf("%s: %s: %s", f, where, p)
			}
			for _, m := range regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(e, -1) {
				if !vars[m[1]] {
					t.Errorf("%s: %s: variable $%s is not defined", f, where, m[1])
				}
			}
		}
		for _, v := range d.Templating.List {
			if e, l, err := varQuery(v); err == nil && v.Type == "query" && l != "" {
				q, _ := parsePromQL(e)
				for _, s := range q.selectors {
					if ls, ok := c.labelsOf(s.name); ok && !ls[l] && !c.targetLabels[l] {
						t.Errorf("%s: variable %s: %s has no label %s", f, v.Name, s.name, l)
					}
				}
			}
		}
	}
}

// TestEveryMetricShown: each cgw_* metric the code exports appears in a
// dashboard or a rule, so "observable down to each worker core" stays
// true as metrics are added.
func TestEveryMetricShown(t *testing.T) {
	c := newChecker(t)
	rf := c.loadRules(t)
	used := map[string]bool{}
	note := func(e string) {
		q, _ := parsePromQL(e)
		for _, s := range q.selectors {
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s.name, "_bucket"), "_sum"), "_count")] = true
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			note(r.Expr)
		}
	}
	for _, d := range dashboards(t) {
		exprs, _ := dashboardExprs(d)
		for _, e := range exprs {
			note(e)
		}
	}
	for _, n := range sortedKeys(c.exp) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(n, "cgw_") && !used[base] && !used[n] {
			t.Errorf("%s is exported but no dashboard or rule shows it: add a panel to perf/grafana (see perf/README.md)", n)
		}
	}
}
