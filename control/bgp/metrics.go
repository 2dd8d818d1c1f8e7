package bgp

import (
	"context"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/anypb"
)

// Collector exposes the BGP sessions and the RIB as cgw_control_bgp_*
// metrics. The values are read from GoBGP and the RIB at scrape time.
type Collector struct{ s *Speaker }

// Collector returns the Speaker's metrics collector for cgw-control to
// register.
func (s *Speaker) Collector() *Collector { return &Collector{s: s} }

var (
	labels      = []string{"tunnel", "connection", "neighbor"}
	descState   = prometheus.NewDesc("cgw_control_bgp_session_state", "BGP FSM state of the tunnel's session (RFC 4271 §8.2.2): 1 idle, 2 connect, 3 active, 4 opensent, 5 openconfirm, 6 established.", labels, nil)
	descUp      = prometheus.NewDesc("cgw_control_bgp_session_established", "1 when the tunnel's BGP session is Established.", labels, nil)
	descFlaps   = prometheus.NewDesc("cgw_control_bgp_session_flaps_total", "Times the session left Established.", labels, nil)
	descLimited = prometheus.NewDesc("cgw_control_bgp_prefix_limit_exceeded_total", "Times the session was closed because the neighbour sent more prefixes than the limit.", labels, nil)
	descRecv    = prometheus.NewDesc("cgw_control_bgp_prefixes_received", "Prefixes in the neighbour's Adj-RIB-In.", labels, nil)
	descAdv     = prometheus.NewDesc("cgw_control_bgp_prefixes_advertised", "Prefixes advertised to the neighbour.", labels, nil)
	descInst    = prometheus.NewDesc("cgw_control_bgp_prefixes_installed", "Routes installed in the dataplane with this tunnel as primary (BGP or static).", []string{"tunnel"}, nil)
	descUpdates = prometheus.NewDesc("cgw_control_bgp_updates_received_total", "UPDATE messages received from the neighbour.", labels, nil)
	descPaths   = prometheus.NewDesc("cgw_control_bgp_paths_received_total", "Announced or withdrawn paths fed from BGP into the RIB.", nil, nil)
	descChanges = prometheus.NewDesc("cgw_control_bgp_route_changes_total", "Route changes written to the dataplane's route table.", []string{"op"}, nil)
	descFail    = prometheus.NewDesc("cgw_control_bgp_route_change_failures_total", "Route changes the map writer refused (retried later).", nil, nil)
	descPending = prometheus.NewDesc("cgw_control_bgp_route_changes_pending", "Route changes waiting to be retried.", nil, nil)
	descRoutes  = prometheus.NewDesc("cgw_control_bgp_routes_installed", "Routes in the dataplane's route table.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descUp, descFlaps, descLimited, descRecv, descAdv, descInst, descUpdates, descPaths, descChanges, descFail, descPending, descRoutes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	type counts struct{ recv, adv, updates uint64 }
	got := map[netip.Addr]counts{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			return
		}
		var k counts
		// With graceful restart negotiated GoBGP counts its End-of-RIB
		// marker (RFC 4724 §2) among the advertised paths, one per family.
		eor := uint64(0)
		if p.GetGracefulRestart().GetEnabled() && hasGRCap(p.GetState().GetRemoteCap()) {
			eor = 1
		}
		for _, af := range p.AfiSafis {
			if st := af.GetState(); st != nil {
				k.recv += st.Received
				k.adv += st.Advertised - min(eor, st.Advertised)
			}
		}
		k.updates = p.GetState().GetMessages().GetReceived().GetUpdate()
		got[a.Unmap()] = k
	})
	s.mu.Lock()
	for _, n := range s.byID {
		lv := []string{n.Name, n.Connection, n.Peer.String()}
		st := n.state
		if st == api.PeerState_UNKNOWN {
			st = api.PeerState_IDLE
		}
		est := 0.0
		if st == api.PeerState_ESTABLISHED {
			est = 1
		}
		k := got[n.Peer]
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, float64(st), lv...)
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, est, lv...)
		ch <- prometheus.MustNewConstMetric(descFlaps, prometheus.CounterValue, float64(n.flaps), lv...)
		ch <- prometheus.MustNewConstMetric(descLimited, prometheus.CounterValue, float64(n.limited), lv...)
		ch <- prometheus.MustNewConstMetric(descRecv, prometheus.GaugeValue, float64(k.recv), lv...)
		ch <- prometheus.MustNewConstMetric(descAdv, prometheus.GaugeValue, float64(k.adv), lv...)
		ch <- prometheus.MustNewConstMetric(descUpdates, prometheus.CounterValue, float64(k.updates), lv...)
	}
	paths := s.changes
	s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descPaths, prometheus.CounterValue, float64(paths))
	for _, tc := range s.rib.InstalledPerTunnel() {
		ch <- prometheus.MustNewConstMetric(descInst, prometheus.GaugeValue, float64(tc.Routes), tc.Tunnel.Name)
	}
	st := s.rib.Stats()
	ch <- prometheus.MustNewConstMetric(descChanges, prometheus.CounterValue, float64(st.Adds), "add")
	ch <- prometheus.MustNewConstMetric(descChanges, prometheus.CounterValue, float64(st.Replaces), "replace")
	ch <- prometheus.MustNewConstMetric(descChanges, prometheus.CounterValue, float64(st.Deletes), "delete")
	ch <- prometheus.MustNewConstMetric(descFail, prometheus.CounterValue, float64(st.Failures))
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(descRoutes, prometheus.GaugeValue, float64(st.Installed))
}

// hasGRCap reports whether the neighbour's OPEN carried the graceful
// restart capability.
func hasGRCap(caps []*anypb.Any) bool {
	for _, c := range caps {
		if c.MessageIs(&api.GracefulRestartCapability{}) {
			return true
		}
	}
	return false
}
