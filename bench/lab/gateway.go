package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/cgw-project/cgw/config"
)

// outsider is implemented by gateways whose tunnels leave from addresses
// other than the configured local outside address (the stand-in), so an
// AWS endpoint told to initiate knows where to send IKE.
type outsider interface {
	OutsideAddr(l *Lab, i int) netip.Addr
}

// OutsideAddr implements outsider: the stand-in's charon of tunnel i.
func (*StandIn) OutsideAddr(l *Lab, i int) netip.Addr { return l.StandInOutside(i) }

// gatewayOutside is where AWS reaches the gateway's end of tunnel i.
func (l *Lab) gatewayOutside(i int) netip.Addr {
	if o, ok := l.opts.Gateway.(outsider); ok {
		return o.OutsideAddr(l, i)
	}
	if a := l.Conn.Tunnels[i].LocalOutside; a.IsValid() {
		return a
	}
	return l.Cfg.Gateway.Outside.Address.Addr()
}

// GatewayConfigPath is where the lab writes the gateway's configuration
// (YAML, config.Marshal) for a ProcessGateway to read.
func (l *Lab) GatewayConfigPath() string { return filepath.Join(l.Dir, "gateway.yaml") }

// ProcessGateway runs commands in the cgw namespace as the gateway (e.g.
// cgw-dataplane and cgw-control). In every argument, {config} becomes
// GatewayConfigPath(), {dir} the lab's state directory and {ns} the cgw
// namespace name. Each process is recorded, so Down ends it by pid. With
// no commands the cgw namespace is left empty for a test to fill.
type ProcessGateway struct {
	Label    string
	Commands [][]string
	Env      []string
}

// Name implements Gateway.
func (g *ProcessGateway) Name() string {
	if g.Label == "" {
		return "process"
	}
	return g.Label
}

// Up implements Gateway.
func (g *ProcessGateway) Up(ctx context.Context, l *Lab) error {
	b, err := config.Marshal(l.Cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.GatewayConfigPath(), b, 0o600); err != nil {
		return err
	}
	r := strings.NewReplacer("{config}", l.GatewayConfigPath(), "{dir}", l.Dir, "{ns}", l.NS(CGW))
	for k, c := range g.Commands {
		if len(c) == 0 {
			continue
		}
		args := make([]string, len(c))
		for i, a := range c {
			args[i] = r.Replace(a)
		}
		name := fmt.Sprintf("gw%d-%s", k, filepath.Base(args[0]))
		l.Progressf("cgw: starting %s", strings.Join(args, " "))
		p, err := l.StartProcess(name, CGW, filepath.Join(l.Dir, name+".log"), g.Env, args...)
		if err != nil {
			return err
		}
		if !p.Alive() {
			return fmt.Errorf("gateway command %q exited at once; see %s", strings.Join(args, " "), p.Log)
		}
	}
	return nil
}
