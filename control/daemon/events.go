package daemon

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/status"
)

// Subscribe implements status.EventSource (GET /v1/events, cgwctl
// monitor): IKE events after the daemon applied them, BGP session states,
// and route changes as written to the dataplane's map. The hub never
// blocks the daemon: a client that falls behind is dropped.
func (d *Daemon) Subscribe() (<-chan status.Event, func()) { return d.hub.Subscribe() }

// ikeEventTypes are the monitor's names of IKE events.
var ikeEventTypes = map[ike.EventType]string{
	ike.TunnelUp: "tunnel-up", ike.TunnelDown: "tunnel-down", ike.ChildSAInstalled: "child-sa-installed",
	ike.OutboundSwitch: "child-sa-active", ike.ChildSARetired: "child-sa-deleted", ike.IKERekeyed: "ike-sa-rekeyed",
	ike.NegotiationFailed: "negotiation-failed", ike.Retransmit: "retransmit", ike.DPDTimeout: "dpd-timeout",
}

func (d *Daemon) publishIKE(e ike.Event) {
	var detail []string
	if c := e.Child; c != nil {
		detail = append(detail, fmt.Sprintf("in %08x out %08x %s", c.InSPI, c.OutSPI, c.Suite))
	}
	if i := e.IKE; i != nil && e.Type == ike.IKERekeyed {
		detail = append(detail, fmt.Sprintf("IKE SA %s_i %s_r", i.SPIi, i.SPIr))
	}
	if e.Count > 0 {
		detail = append(detail, fmt.Sprintf("try %d", e.Count))
	}
	if e.Reason != "" {
		detail = append(detail, e.Reason)
	}
	if e.Err != nil {
		detail = append(detail, e.Err.Error())
	}
	t := ikeEventTypes[e.Type]
	if t == "" {
		t = e.Type.String()
	}
	d.hub.Publish(status.Event{Time: e.Time, Kind: "ike", Type: t, Tunnel: e.Tunnel, Detail: strings.Join(detail, ", ")})
}

// publishBGP is bgp.Options.OnState.
func (d *Daemon) publishBGP(tunnel string, neighbor netip.Addr, from, to string) {
	d.hub.Publish(status.Event{Time: time.Now(), Kind: "bgp", Type: to, Tunnel: tunnel, Detail: fmt.Sprintf("neighbor %v, was %s", neighbor, from)})
}

// setNames records the tunnel names route events use (start, reload).
func (d *Daemon) setNames() {
	m := map[uint32]string{}
	for _, t := range d.tunnels {
		m[t.id] = t.cfg.Name
	}
	d.names.Store(&m)
}

func (d *Daemon) publishRoute(op string, p netip.Prefix, r maps.Route) {
	names := *d.names.Load()
	detail := p.String()
	if op != "delete" {
		detail += " via " + names[r.TunnelId]
		if r.BackupTunnelId != 0 {
			detail += ", backup " + names[r.BackupTunnelId]
		}
	}
	d.hub.Publish(status.Event{Time: time.Now(), Kind: "route", Type: op, Tunnel: names[r.TunnelId], Detail: detail})
}

// sink is the RIB's view of the route table: the writer, with Batch so a
// burst of changes is one generation, reporting each change it wrote.
type sink struct {
	*maps.Writer
	d *Daemon
}

func (s sink) AddRoute(p netip.Prefix, r maps.Route) error {
	s.d.learnGuard(p)
	err := s.Writer.AddRoute(p, r)
	if err == nil {
		s.d.publishRoute("add", p, r)
	}
	return err
}

func (s sink) ReplaceRoute(p netip.Prefix, r maps.Route) error {
	s.d.learnGuard(p)
	err := s.Writer.ReplaceRoute(p, r)
	if err == nil {
		s.d.publishRoute("replace", p, r)
	}
	return err
}

func (s sink) DeleteRoute(p netip.Prefix) error {
	err := s.Writer.DeleteRoute(p)
	if err == nil {
		s.d.publishRoute("delete", p, maps.Route{})
	}
	return err
}
