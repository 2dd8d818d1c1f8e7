package perf

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// perSecond are Grafana's units of a rate: a panel whose every query is a
// rate() (not a ratio of two) shows one of them, so the axis says "/s".
var perSecond = map[string]bool{"pps": true, "bps": true, "Bps": true, "binbps": true, "ops": true, "reqps": true,
	"rps": true, "wps": true, "percentunit": true /* CPU seconds per second */}

// TestRateUnits: rate panels are labelled in per-second units.
func TestRateUnits(t *testing.T) {
	rate := regexp.MustCompile(`\b(i?rate)\(`)
	for f, d := range dashboards(t) {
		for _, p := range allPanels(d.Panels) {
			if len(p.Targets) == 0 {
				continue
			}
			all := true
			for _, tg := range p.Targets {
				n := len(rate.FindAllString(tg.Expr, -1))
				if n == 0 || (n > 1 && strings.Contains(tg.Expr, ") / ")) {
					all = false // not a rate, or a ratio of rates
				}
			}
			if !all {
				continue
			}
			var fc struct {
				Defaults struct {
					Unit string `json:"unit"`
				} `json:"defaults"`
			}
			json.Unmarshal(p.FieldCfg, &fc)
			if !perSecond[fc.Defaults.Unit] {
				t.Errorf("%s: panel %d %q shows rates in unit %q: use a per-second unit (pps, bps, ops, …)", f, p.ID, p.Title, fc.Defaults.Unit)
			}
		}
	}
}

// TestRunbooks: every alert's runbook_url names a section of
// perf/runbooks.md that exists and mentions the alert.
func TestRunbooks(t *testing.T) {
	c := newChecker(t)
	rf := c.loadRules(t)
	b, err := os.ReadFile("runbooks.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]string{}
	var cur string
	for _, l := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(l, "## "); ok {
			cur = githubAnchor(h)
			anchors[cur] = ""
			continue
		}
		if cur != "" {
			anchors[cur] += l + "\n"
		}
	}
	const base = "https://github.com/cgw-project/cgw/blob/main/perf/runbooks.md#"
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			u := r.Annotations["runbook_url"]
			a, ok := strings.CutPrefix(u, base)
			if !ok {
				t.Errorf("alert %s: runbook_url %q: want %s<section>", r.Alert, u, base)
				continue
			}
			body, ok := anchors[a]
			if !ok {
				t.Errorf("alert %s: runbook_url anchor #%s: no such section in perf/runbooks.md", r.Alert, a)
				continue
			}
			if len(strings.TrimSpace(body)) < 80 {
				t.Errorf("alert %s: its runbook section #%s is too short to help an operator", r.Alert, a)
			}
		}
	}
}

// githubAnchor is GitHub's anchor of a Markdown heading.
func githubAnchor(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	var b strings.Builder
	for _, r := range h {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}
