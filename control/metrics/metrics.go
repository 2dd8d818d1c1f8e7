// Package metrics exposes cgw-control as cgw_control_* Prometheus metrics:
// counters fed by IKE events (rekeys, DPD timeouts, retransmissions,
// negotiation failures by notify type) and gauges read from the status
// snapshot at scrape time (tunnel state, IKE and Child SA counts, routes,
// kernel guards).
// The BGP collector of control/bgp is registered next to it.
package metrics

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/status"
)

// Control is cgw-control's collector.
type Control struct {
	src func() *status.Status

	mu       sync.Mutex
	tunnelUp map[string]bool

	rekeys   *prometheus.CounterVec
	asked    *prometheus.CounterVec
	dpd      *prometheus.CounterVec
	retrans  *prometheus.CounterVec
	failures *prometheus.CounterVec
	changes  *prometheus.CounterVec

	up, ikeSAs, childSAs, routes, staleSAs, info *prometheus.Desc
	bytes, packets                               *prometheus.Desc
	panics                                       *prometheus.Desc
	guards, guardRepairs, guardErrors            *prometheus.Desc
}

// New returns the collector; src gives the snapshot for the gauges.
func New(src func() *status.Status) *Control {
	ns := "cgw_control"
	return &Control{
		src: src, tunnelUp: map[string]bool{},
		rekeys: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "rekeys_total",
			Help: "Rekeys completed, by tunnel and kind (ike, child)."}, []string{"tunnel", "kind"}),
		asked: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "rekey_requests_total",
			Help: "Child SA rekeys asked for from the dataplane's counters, by reason (bytes: phase2 lifetime_bytes soft limit; sequence: sequence numbers near exhaustion)."}, []string{"tunnel", "reason"}),
		dpd: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "dpd_timeouts_total",
			Help: "Peers that did not answer liveness checks (RFC 7296 §1.4)."}, []string{"tunnel"}),
		retrans: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "ike_retransmissions_total",
			Help: "IKE requests sent again."}, []string{"tunnel"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "negotiation_failures_total",
			Help: "Failed IKE exchanges, by notify type (\"timeout or local error\" without one)."}, []string{"tunnel", "notify"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "tunnel_transitions_total",
			Help: "Tunnels going up or down."}, []string{"tunnel", "to"}),
		up:       prometheus.NewDesc(ns+"_tunnel_up", "1 when the tunnel has an IKE SA and an installed Child SA.", []string{"tunnel", "connection"}, nil),
		ikeSAs:   prometheus.NewDesc(ns+"_ike_sas", "IKE SAs of the tunnel.", []string{"tunnel"}, nil),
		childSAs: prometheus.NewDesc(ns+"_child_sas", "Child SA pairs of the tunnel installed in the dataplane.", []string{"tunnel"}, nil),
		staleSAs: prometheus.NewDesc(ns+"_stale_sas", "SAs a previous cgw-control left that are not yet replaced.", []string{"tunnel"}, nil),
		routes:   prometheus.NewDesc(ns+"_routes", "Selected routes, by source.", []string{"source"}, nil),
		bytes: prometheus.NewDesc(ns+"_sa_bytes_total", "ESP payload bytes of the tunnel's active Child SA, from the dataplane; starts again from 0 at each rekey (rate() takes that as a counter reset).",
			[]string{"tunnel", "direction"}, nil),
		packets: prometheus.NewDesc(ns+"_sa_packets_total", "Packets of the tunnel's active Child SA, from the dataplane; starts again from 0 at each rekey (the outbound count is the SA's sequence number).",
			[]string{"tunnel", "direction"}, nil),
		panics: prometheus.NewDesc(ns+"_panics_total", "Panics an IKE engine recovered from while handling a tunnel's message or timer; the tunnel was restarted (the log has the stack).",
			nil, nil),
		guards: prometheus.NewDesc(ns+"_kernel_guards", "Kernel guards (unreachable routes, proto 203, that drop tunnel-bound traffic XDP does not take), by state: installed (configured or routed by this process) or adopted (a previous process's or the state file's, kept until routing has converged).",
			[]string{"state"}, nil),
		guardRepairs: prometheus.NewDesc(ns+"_kernel_guard_repairs_total", "Kernel guards found missing (a route flush, a network manager removing routes it does not know) and put back by the periodic resync.",
			nil, nil),
		guardErrors: prometheus.NewDesc(ns+"_kernel_guard_errors_total", "Kernel guard installs and removals the kernel refused (typically no CAP_NET_ADMIN): those prefixes are not guarded.",
			nil, nil),
		info: prometheus.NewDesc(ns+"_tunnel_info", "Each configured tunnel's dataplane id and VPN connection, for joins with cgw_dataplane_tunnel_* (always 1).",
			[]string{"tunnel_id", "tunnel", "connection"}, nil),
	}
}

// Init sets the per-tunnel counters to zero, so every series exists
// from the start (rate() and alerts need a first sample).
func (c *Control) Init(tunnels []string) {
	for _, t := range tunnels {
		c.rekeys.WithLabelValues(t, "ike")
		c.rekeys.WithLabelValues(t, "child")
		c.asked.WithLabelValues(t, "bytes")
		c.asked.WithLabelValues(t, "sequence")
		c.dpd.WithLabelValues(t)
		c.retrans.WithLabelValues(t)
		c.changes.WithLabelValues(t, "up")
		c.changes.WithLabelValues(t, "down")
	}
}

// Event counts one IKE event.
func (c *Control) Event(e ike.Event) {
	switch e.Type {
	case ike.IKERekeyed:
		c.rekeys.WithLabelValues(e.Tunnel, "ike").Inc()
	case ike.ChildSAInstalled:
		// A Child SA negotiated while the tunnel is up replaces one.
		c.mu.Lock()
		up := c.tunnelUp[e.Tunnel]
		c.mu.Unlock()
		if up {
			c.rekeys.WithLabelValues(e.Tunnel, "child").Inc()
		}
	case ike.DPDTimeout:
		c.dpd.WithLabelValues(e.Tunnel).Inc()
	case ike.Retransmit:
		c.retrans.WithLabelValues(e.Tunnel).Inc()
	case ike.NegotiationFailed:
		c.failures.WithLabelValues(e.Tunnel, e.Reason).Inc()
	case ike.TunnelUp:
		c.mu.Lock()
		c.tunnelUp[e.Tunnel] = true
		c.mu.Unlock()
		c.changes.WithLabelValues(e.Tunnel, "up").Inc()
	case ike.TunnelDown:
		c.mu.Lock()
		c.tunnelUp[e.Tunnel] = false
		c.mu.Unlock()
		c.changes.WithLabelValues(e.Tunnel, "down").Inc()
	}
}

// RekeyRequest counts a Child SA rekey the daemon asked for from the
// dataplane's counters (daemon.Options.OnRekeyRequest).
func (c *Control) RekeyRequest(tunnel, reason string) {
	c.asked.WithLabelValues(tunnel, reason).Inc()
}

// Describe implements prometheus.Collector.
func (c *Control) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range []*prometheus.CounterVec{c.rekeys, c.asked, c.dpd, c.retrans, c.failures, c.changes} {
		v.Describe(ch)
	}
	for _, d := range []*prometheus.Desc{c.up, c.ikeSAs, c.childSAs, c.staleSAs, c.routes, c.bytes, c.packets, c.info, c.panics,
		c.guards, c.guardRepairs, c.guardErrors} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Control) Collect(ch chan<- prometheus.Metric) {
	for _, v := range []*prometheus.CounterVec{c.rekeys, c.asked, c.dpd, c.retrans, c.failures, c.changes} {
		v.Collect(ch)
	}
	ch <- prometheus.MustNewConstMetric(c.panics, prometheus.CounterValue, float64(ike.Panics.Load()))
	s := c.src()
	if s == nil {
		return
	}
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for _, t := range s.Tunnels {
		up := 0.0
		if t.State == "up" {
			up = 1
		}
		g(c.up, up, t.Name, t.Connection)
		ike := 0.0
		if t.IKE != nil {
			ike = 1
		}
		g(c.ikeSAs, ike, t.Name)
		g(c.childSAs, float64(len(t.Children)), t.Name)
		g(c.staleSAs, float64(len(t.Stale)), t.Name)
		g(c.info, 1, strconv.FormatUint(uint64(t.ID), 10), t.Name, t.Connection)
		if a, ok := t.Active(); ok {
			counter := func(d *prometheus.Desc, v uint64, l ...string) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
			}
			counter(c.bytes, a.In.Bytes, t.Name, "in")
			counter(c.bytes, a.Out.Bytes, t.Name, "out")
			counter(c.packets, a.In.Packets, t.Name, "in")
			counter(c.packets, a.Out.Packets, t.Name, "out")
		}
	}
	by := map[string]int{"static": 0, "bgp": 0}
	for _, r := range s.Routes {
		if _, ok := by[r.Source]; ok { // not the adopted ones of a restart
			by[r.Source]++
		}
	}
	for src, n := range by {
		g(c.routes, float64(n), src)
	}
	g(c.guards, float64(len(s.Guards)-s.GuardsAdopted), "installed")
	g(c.guards, float64(s.GuardsAdopted), "adopted")
	ch <- prometheus.MustNewConstMetric(c.guardRepairs, prometheus.CounterValue, float64(s.GuardRepairs))
	ch <- prometheus.MustNewConstMetric(c.guardErrors, prometheus.CounterValue, float64(s.GuardErrors))
}
