package rib

import (
	"fmt"
	"net/netip"

	"github.com/cgw-project/cgw/config"
)

// ConfigTunnels lists a configuration's tunnels in tie-break order
// (connection order, then t1 before t2), for New. ids maps a tunnel name
// to its dataplane tunnel id.
func ConfigTunnels(cfg *config.Config, ids map[string]uint32) ([]Tunnel, error) {
	var out []Tunnel
	for _, c := range cfg.Connections {
		for _, t := range c.Tunnels {
			id, ok := ids[t.Name]
			if !ok {
				return nil, fmt.Errorf("rib: connection %s: tunnel %q has no tunnel id", c.Name, t.Name)
			}
			out = append(out, Tunnel{ID: id, Name: t.Name, Connection: c.Name})
		}
	}
	return out, nil
}

// ConfigStatic sets the static routes of every connection from the
// configuration (static_routes; a connection without them gets none).
func (r *RIB) ConfigStatic(cfg *config.Config) error {
	for _, c := range cfg.Connections {
		ps := make([]netip.Prefix, 0, len(c.Static))
		for _, s := range c.Static {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("rib: connection %s: static route %q: not a prefix (write e.g. 198.19.0.0/16)", c.Name, s)
			}
			ps = append(ps, p)
		}
		if err := r.SetStatic(c.Name, ps); err != nil {
			return err
		}
	}
	return nil
}
