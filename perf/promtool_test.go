package perf

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestPromtool has Prometheus's own tool check the configuration, the
// rules, the rules' unit tests and — through a generated rule file — the
// syntax of every dashboard query. promtool comes with Debian's
// prometheus package.
func TestPromtool(t *testing.T) {
	if testing.Short() {
		t.Skip("needs promtool; run without -short")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found: install Debian's prometheus package (apt-get install prometheus; it ships /usr/bin/promtool)")
	}
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("check", "config", "prometheus/prometheus.yml")
	run("check", "rules", "prometheus/rules.yml")
	run("test", "rules", "prometheus/rules_test.yml")

	// Dashboard queries as recording rules, Grafana's variables replaced
	// by what Grafana would put there, one group per query so an error
	// names the panel.
	type rec struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	type group struct {
		Name  string `yaml:"name"`
		Rules []rec  `yaml:"rules"`
	}
	var groups []group
	for f, d := range dashboards(t) {
		exprs, _ := dashboardExprs(d)
		keys := make([]string, 0, len(exprs))
		for k := range exprs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, where := range keys {
			groups = append(groups, group{Name: f + ": " + where, Rules: []rec{{Record: "dashboard:query:check", Expr: grafanaExpand(exprs[where])}}})
		}
	}
	b, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	run("check", "rules", tmp)
	if len(groups) < 30 {
		t.Errorf("only %d dashboard queries", len(groups))
	}
}

var grafanaVar = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\]`)

// grafanaExpand replaces Grafana's variables as Grafana would: intervals
// by a duration, the rest (label values in matchers) by a regex.
func grafanaExpand(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		switch strings.Trim(v, "${}[]") {
		case "__rate_interval", "__interval":
			return "1m"
		case "__range":
			return "1h"
		}
		return ".*"
	})
}

func TestGrafanaExpand(t *testing.T) {
	got := grafanaExpand(`rate(x{a=~"$a",b=~"${b}"}[$__rate_interval]) offset ${__interval}`)
	if want := `rate(x{a=~".*",b=~".*"}[1m]) offset 1m`; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}
