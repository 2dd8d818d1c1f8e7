package daemon

import (
	"fmt"
	"net/netip"
	"reflect"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
)

// plan is what a configuration reload changes, by tunnel name, in the
// new configuration's order. A tunnel is changed when any of its settings
// differ (it is renegotiated: RemoveTunnel, then AddTunnel); one that
// moved to another connection is removed and added (it gets a new
// tunnel id and tie-break rank). Connection-level settings (static
// routes, BGP) are applied to the running RIB and BGP speaker without
// touching the tunnels' SAs.
type plan struct {
	added, removed, changed, kept []string
	// refused lists why the new configuration cannot be applied without
	// a restart; the reload is refused whole when it is not empty.
	refused []string
	notes   []string
}

// engines says what the running daemon can take without a restart.
type engines struct {
	ikev1  bool       // an IKEv1 engine runs
	listen netip.Addr // the IKE sockets' address (unspecified: every address)
}

// diffConfigs compares the running configuration with a new, checked one.
func diffConfigs(old, new *config.Config, e engines) plan {
	var p plan
	og, ng := old.Gateway, new.Gateway
	for _, f := range []struct {
		name     string
		old, new any
	}{
		{"gateway.name", og.Name, ng.Name},
		{"gateway.outside", og.Outside, ng.Outside},
		{"gateway.inside", og.Inside, ng.Inside},
		{"gateway.observability", og.Observability, ng.Observability},
	} {
		if !reflect.DeepEqual(f.old, f.new) {
			p.refused = append(p.refused, fmt.Sprintf("%s changed: cgw-control and cgw-dataplane read it at start only (restart both to apply it)", f.name))
		}
	}
	if !reflect.DeepEqual(og.Dataplane, ng.Dataplane) {
		p.notes = append(p.notes, "gateway.dataplane changed: cgw-dataplane reads it at start only (restart cgw-dataplane to apply it)")
	}

	type where struct {
		conn string
		t    *config.Tunnel
	}
	was := map[string]where{}
	for ci := range old.Connections {
		c := &old.Connections[ci]
		for ti := range c.Tunnels {
			was[c.Tunnels[ti].Name] = where{c.Name, &c.Tunnels[ti]}
		}
	}
	seen := map[string]bool{}
	n := 0
	for ci := range new.Connections {
		c := &new.Connections[ci]
		for ti := range c.Tunnels {
			t := &c.Tunnels[ti]
			n++
			seen[t.Name] = true
			w, ok := was[t.Name]
			switch {
			case !ok:
				p.added = append(p.added, t.Name)
			case w.conn != c.Name:
				// Another connection: a new tunnel as far as routing goes.
				p.removed = append(p.removed, t.Name)
				p.added = append(p.added, t.Name)
			case !reflect.DeepEqual(*w.t, *t):
				p.changed = append(p.changed, t.Name)
			default:
				p.kept = append(p.kept, t.Name)
				continue
			}
			if t.IKEVersion == 1 && !e.ikev1 {
				p.refused = append(p.refused, fmt.Sprintf("tunnel %s: the first tunnel with ike_version 1 needs a restart of cgw-control (no IKEv1 engine runs)", t.Name))
			}
			if l := e.listen; l.IsValid() && !l.IsUnspecified() && t.LocalOutside != l {
				p.refused = append(p.refused, fmt.Sprintf("tunnel %s: local_outside_address %v: cgw-control's IKE sockets listen on %v only (restart it to listen on every address)", t.Name, t.LocalOutside, l))
			}
		}
	}
	for ci := range old.Connections {
		for _, t := range old.Connections[ci].Tunnels {
			if !seen[t.Name] {
				p.removed = append(p.removed, t.Name)
			}
		}
	}
	if n >= int(maps.MaxTunnels) {
		p.refused = append(p.refused, fmt.Sprintf("%d tunnels configured: the dataplane takes at most %d", n, maps.MaxTunnels-1))
	}
	return p
}
