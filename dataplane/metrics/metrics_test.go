package metrics

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/dataplane/afxdp"
	"github.com/cgw-project/cgw/dataplane/neigh"
	"github.com/cgw-project/cgw/dataplane/tables"
	"github.com/cgw-project/cgw/dataplane/worker"
)

type noFrames struct{}

func (noFrames) Alloc() (uint64, bool) { return 0, false }
func (noFrames) Frame(uint64) []byte   { return nil }
func (noFrames) Free(uint64)           {}
func (noFrames) DataOffset() int       { return 384 }

type noNeigh struct{}

func (noNeigh) Table() *neigh.Table     { return nil }
func (noNeigh) Account(uint64, uint64)  {}
func (noNeigh) Resolve(int, netip.Addr) {}

type fakeWorker struct{ p *worker.Pipeline }

func (f fakeWorker) ID() int                         { return 3 }
func (f fakeWorker) Pipeline() *worker.Pipeline      { return f.p }
func (f fakeWorker) Modes() (afxdp.Mode, afxdp.Mode) { return afxdp.ModeCopy, afxdp.ModeZeroCopy }
func (f fakeWorker) SocketStats() (afxdp.Stats, afxdp.Stats, error) {
	return afxdp.Stats{RxRingFull: 4}, afxdp.Stats{}, nil
}
func (f fakeWorker) Placement() (int, int)          { return 1, 3 }
func (f fakeWorker) CPUTime() (time.Duration, bool) { return 1500 * time.Millisecond, true }
func (f fakeWorker) Panics() uint64                 { return 2 }

func TestCollector(t *testing.T) {
	tabs := new(tables.Tables)
	tb := &maps.Tables{Generation: 42, Tunnels: make([]maps.Tunnel, maps.MaxTunnels), Outbound: make([]uint32, maps.MaxTunnels)}
	tb.Tunnels[1] = maps.Tunnel{Flags: uint32(maps.TunnelUp), Mtu: 1399}
	tabs.Store(tables.NewBuilder(func(uint32) *maps.SACounters { return nil }).Build(tb))
	p, err := worker.New(worker.Config{Frames: noFrames{}, Tables: tabs, Neighbours: noNeigh{}})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Counters()
	c.Packets[worker.Out] = 10
	c.Bytes[worker.In] = 1500
	c.Drops[worker.StageDecap][2] = 7 // esp.BadOuter
	c.Drops[worker.StageTTL][worker.TTLExceeded] = 1
	c.TunnelPackets[worker.Out][1] = 10
	c.BatchSizes[5] = 2
	c.BatchSum = 60
	c.LateView = 3
	c.Drops[worker.StageSPI][worker.SPINotApplied] = 2
	col := New(Sources{Workers: []Worker{fakeWorker{p}}, Tables: tabs,
		XDPStats: func() ([maps.NumStats]uint64, error) {
			var s [maps.NumStats]uint64
			s[maps.StatOutRedirect] = 5
			return s, nil
		},
		NICs: []NIC{{Role: "outside", Name: "eth0", Driver: "ixgbe", XDPMode: "native"}}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("pedantic registry: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var l []string
			for _, lp := range m.GetLabel() {
				l = append(l, lp.GetName()+"="+lp.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			got[mf.GetName()+"{"+strings.Join(l, ",")+"}"] = v
		}
	}
	for k, v := range map[string]float64{
		"cgw_dataplane_packets_total{direction=out,worker=3}":                                10,
		"cgw_dataplane_bytes_total{direction=in,worker=3}":                                   1500,
		"cgw_dataplane_drops_total{reason=bad_outer_header,stage=esp_decap,worker=3}":        7,
		"cgw_dataplane_drops_total{reason=ttl_exceeded,stage=ttl,worker=3}":                  1,
		"cgw_dataplane_table_generation{}":                                                   42,
		"cgw_dataplane_tunnel_packets_total{direction=out,tunnel=1}":                         10,
		"cgw_dataplane_xdp_decisions_total{decision=out_redirect}":                           5,
		"cgw_dataplane_batch_size_packets{worker=3}":                                         2,
		"cgw_dataplane_afxdp_mode_info{device=outside,mode=zerocopy,worker=3}":               1,
		"cgw_dataplane_afxdp_kernel_drops_total{device=inside,kind=rx_ring_full,worker=3}":   4,
		"cgw_dataplane_tunnels{state=down}":                                                  1,
		"cgw_dataplane_late_view_total{worker=3}":                                            3,
		"cgw_dataplane_drops_total{reason=spi_not_applied,stage=spi_lookup,worker=3}":        2,
		"cgw_dataplane_worker_info{cpu=1,queue=3,worker=3}":                                  1,
		"cgw_dataplane_worker_cpu_seconds_total{worker=3}":                                   1.5,
		"cgw_dataplane_worker_panics_total{worker=3}":                                        2,
		"cgw_dataplane_nic_info{device=outside,driver=ixgbe,interface=eth0,xdp_mode=native}": 1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(&buf, mf)
	}
	probs, err := promlint.New(&buf).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
