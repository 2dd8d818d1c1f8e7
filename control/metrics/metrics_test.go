package metrics

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
	"github.com/cgw-project/cgw/control/status"
)

// Events become counters and the status snapshot becomes gauges; the
// output passes a pedantic registry and promlint.
func TestCollector(t *testing.T) {
	st := &status.Status{
		Tunnels: []status.Tunnel{
			{Name: "v-t1", Connection: "v", ID: 1, State: "up", IKE: &status.IKESA{},
				Children: []status.ChildSA{{Active: true, In: status.Counters{Bytes: 100, Packets: 2}, Out: status.Counters{Bytes: 300, Packets: 3}}}},
			{Name: "v-t2", Connection: "v", State: "connecting", Stale: []uint32{7, 8}},
		},
		Routes:        []status.Route{{Source: "bgp"}, {Source: "bgp"}, {Source: "static"}},
		Guards:        []netip.Prefix{netip.MustParsePrefix("169.254.10.0/30"), netip.MustParsePrefix("198.19.0.0/16"), netip.MustParsePrefix("198.18.128.0/24")},
		GuardsAdopted: 1, GuardRepairs: 2, GuardErrors: 1,
	}
	c := New(func() *status.Status { return st })
	for _, e := range []ike.Event{
		{Type: ike.ChildSAInstalled, Tunnel: "v-t1"}, // initial: not a rekey
		{Type: ike.TunnelUp, Tunnel: "v-t1"},
		{Type: ike.ChildSAInstalled, Tunnel: "v-t1"}, // while up: a rekey
		{Type: ike.IKERekeyed, Tunnel: "v-t1"},
		{Type: ike.Retransmit, Tunnel: "v-t2", Count: 1},
		{Type: ike.Retransmit, Tunnel: "v-t2", Count: 2},
		{Type: ike.NegotiationFailed, Tunnel: "v-t2", Notify: uint16(message.NO_PROPOSAL_CHOSEN), Reason: "NO_PROPOSAL_CHOSEN", Err: errors.New("x")},
		{Type: ike.DPDTimeout, Tunnel: "v-t2"},
	} {
		c.Event(e)
	}
	c.RekeyRequest("v-t1", "bytes")
	c.RekeyRequest("v-t1", "bytes")
	c.RekeyRequest("v-t2", "sequence")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	for k, v := range map[string]float64{
		"cgw_control_rekeys_total{kind=child,tunnel=v-t1}":                              1,
		"cgw_control_rekeys_total{kind=ike,tunnel=v-t1}":                                1,
		"cgw_control_rekey_requests_total{reason=bytes,tunnel=v-t1}":                    2,
		"cgw_control_rekey_requests_total{reason=sequence,tunnel=v-t2}":                 1,
		"cgw_control_ike_retransmissions_total{tunnel=v-t2}":                            2,
		"cgw_control_negotiation_failures_total{notify=NO_PROPOSAL_CHOSEN,tunnel=v-t2}": 1,
		"cgw_control_dpd_timeouts_total{tunnel=v-t2}":                                   1,
		"cgw_control_tunnel_transitions_total{to=up,tunnel=v-t1}":                       1,
		"cgw_control_tunnel_up{connection=v,tunnel=v-t1}":                               1,
		"cgw_control_tunnel_up{connection=v,tunnel=v-t2}":                               0,
		"cgw_control_ike_sas{tunnel=v-t1}":                                              1,
		"cgw_control_child_sas{tunnel=v-t1}":                                            1,
		"cgw_control_stale_sas{tunnel=v-t2}":                                            2,
		"cgw_control_routes{source=bgp}":                                                2,
		"cgw_control_routes{source=static}":                                             1,
		"cgw_control_sa_bytes_total{direction=in,tunnel=v-t1}":                          100,
		"cgw_control_sa_packets_total{direction=out,tunnel=v-t1}":                       3,
		"cgw_control_tunnel_info{connection=v,tunnel=v-t1,tunnel_id=1}":                 1,
		"cgw_control_panics_total{}":                                                    float64(ike.Panics.Load()),
		"cgw_control_kernel_guards{state=installed}":                                    2,
		"cgw_control_kernel_guards{state=adopted}":                                      1,
		"cgw_control_kernel_guard_repairs_total{}":                                      2,
		"cgw_control_kernel_guard_errors_total{}":                                       1,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	probs, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
