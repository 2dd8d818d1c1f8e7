package b2b

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/cgw-project/cgw/bench/pktgen"
)

// PanelCheck is one query of a dashboard asked of a run's Prometheus.
type PanelCheck struct {
	Panel, Query string
	Series       int // series the query returned; 0: no data for the run
	Err          string
}

// Dashboard variables: the rate window spans the run, every other
// variable (worker, device, …) is "all".
var (
	dashVar      = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)
	dashInterval = regexp.MustCompile(`interval`)
)

// CheckDashboard asks every query of the Grafana dashboard at path, as
// Grafana would with its variables at "all", and reports how many series
// each returned. A query is retried for up to wait, as a run's last
// samples take a scrape or two to land.
func (p *Prometheus) CheckDashboard(ctx context.Context, path string, wait time.Duration) ([]PanelCheck, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		return nil, fmt.Errorf("b2b: dashboard %s: %w", path, err)
	}
	var out []PanelCheck
	for _, panel := range dash.Panels {
		for _, tg := range panel.Targets {
			q := dashVar.ReplaceAllStringFunc(tg.Expr, func(v string) string {
				if dashInterval.MatchString(v) {
					return "10s"
				}
				return ".*"
			})
			c := PanelCheck{Panel: panel.Title, Query: q}
			deadline := time.Now().Add(wait)
			for {
				n, err := p.Query(ctx, q)
				c.Series, c.Err = n, ""
				if err != nil {
					c.Err = err.Error()
				}
				if (err == nil && n > 0) || time.Now().After(deadline) || ctx.Err() != nil {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// TTLExpired sends n frames from lan whose TTL runs out at site A, which
// drops them (stage ttl, reason ttl_exceeded): a run without drops leaves
// the dashboard's drops panel empty, and this shows it is wired.
func (l *Load) TTLExpired(ctx context.Context, n int) error {
	f, err := l.Frame(Outbound, 100)
	if err != nil {
		return err
	}
	ip := f[14:]
	ip[8], ip[10], ip[11] = 1, 0, 0
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip[:20]))
	return pktgen.InNetns(l.t.NS(LAN), func() error {
		_, err := l.gen.Run(ctx, f, pktgen.RunConfig{Dev: LANDev, Count: uint64(n), CPU: -1})
		return err
	})
}
