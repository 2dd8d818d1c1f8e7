package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"

	"github.com/cgw-project/cgw/config"
)

// Helpers for test matrices that reconfigure one running lab per case
// (bench/interop): rebuilding the namespaces for every proposal would cost
// seconds each, reloading charon and restarting cgw-control costs less.

// SetOverrides replaces the AWS-side overrides; ReloadAWS applies them.
func (l *Lab) SetOverrides(o Overrides) {
	l.mu.Lock()
	l.opts.Overrides = o
	l.mu.Unlock()
}

// ReloadAWS renders AWS's swanctl.conf of every tunnel again (from l.Conn
// and the overrides), closes each endpoint's IKE SAs and loads the new
// connections into the running charons: the next IKE_SA_INIT meets the
// new proposals, lifetimes and DPD settings.
func (l *Lab) ReloadAWS(ctx context.Context) error {
	for i := range l.Conn.Tunnels {
		ep := AWSEndpoint(i)
		conf, err := l.AWSSwanctlConf(i)
		if err != nil {
			return err
		}
		dir, err := l.charonDir(ep)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, "swanctl.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			return err
		}
		// No SA to terminate is not an error here.
		l.Swanctl(ctx, ep, "--terminate", "--ike", BGPProtocol(i), "--force", "--timeout", "2")
		if _, err := l.Swanctl(ctx, ep, "--load-all", "--file", path); err != nil {
			return err
		}
	}
	return nil
}

// WriteGatewayConfig writes l.Cfg where the gateway reads it, after a test
// changed it; cgw-control reads it at its next start.
func (l *Lab) WriteGatewayConfig() error {
	if err := l.Cfg.Check(); err != nil {
		return fmt.Errorf("lab: the gateway's configuration does not validate: %w", err)
	}
	b, err := config.Marshal(l.Cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(l.GatewayConfigPath(), b, 0o600)
}

// RestartControl ends cgw-control with SIGTERM (its SAs are deleted),
// writes l.Cfg and starts it again.
func (g *CGWGateway) RestartControl(ctx context.Context, l *Lab) error {
	if _, ok := g.ControlProc(l); ok {
		if err := g.StopControl(l, syscall.SIGTERM); err != nil {
			return err
		}
	}
	if err := l.WriteGatewayConfig(); err != nil {
		return err
	}
	return g.StartControl(ctx, l)
}

// CharonProc returns the running charon of an endpoint ("aws-t1"), e.g.
// to SIGSTOP it and emulate a dead AWS endpoint.
func (l *Lab) CharonProc(endpoint string) (Proc, bool) {
	st := l.State()
	for i := len(st.Procs) - 1; i >= 0; i-- {
		if p := st.Procs[i]; p.Name == "charon-"+endpoint && p.Alive() {
			return p, true
		}
	}
	return Proc{}, false
}

var metricRe = regexp.MustCompile(`(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) ([-+0-9.eE]+|NaN)$`)

// ControlMetrics scrapes cgw-control's Prometheus endpoint (127.0.0.1:9471
// in the cgw namespace, with curl) and returns every sample by its
// name{labels} as printed.
func (g *CGWGateway) ControlMetrics(ctx context.Context, l *Lab) (map[string]float64, error) {
	out, err := l.Exec(ctx, CGW, "curl", "-sf", "http://127.0.0.1:9471/metrics")
	if err != nil {
		return nil, fmt.Errorf("lab: scraping cgw-control's metrics (needs curl): %w", err)
	}
	m := map[string]float64{}
	for _, s := range metricRe.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseFloat(s[2], 64)
		if err == nil {
			m[s[1]] = v
		}
	}
	return m, nil
}
