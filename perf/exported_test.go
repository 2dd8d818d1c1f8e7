package perf

import (
	"errors"
	"log/slog"
	"net/netip"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/control/bgp"
	"github.com/cgw-project/cgw/control/ike"
	ctlmetrics "github.com/cgw-project/cgw/control/metrics"
	"github.com/cgw-project/cgw/control/rib"
	"github.com/cgw-project/cgw/control/status"
	"github.com/cgw-project/cgw/dataplane/afxdp"
	dpmetrics "github.com/cgw-project/cgw/dataplane/metrics"
	"github.com/cgw-project/cgw/dataplane/neigh"
	"github.com/cgw-project/cgw/dataplane/tables"
	"github.com/cgw-project/cgw/dataplane/worker"
)

// series is what the code exports under one sample name: the labels its
// series carry and, per label, the values seen with every source filled.
type series struct {
	job    string // scrape job: cgw-control or cgw-dataplane
	labels map[string]bool
	values map[string]map[string]bool
}

// exported maps every sample name the two processes expose (histograms
// as _bucket/_sum/_count) to its series.
type exported map[string]*series

// Jobs of perf/prometheus/prometheus.yml.
const (
	jobControl   = "cgw-control"
	jobDataplane = "cgw-dataplane"
)

// exportedMetrics registers the real collectors the way cmd/cgw-control
// and cmd/cgw-dataplane do, with fake sources in which every counter is
// non-zero so each metric and label value appears, and lists what a
// scrape returns.
func exportedMetrics(t *testing.T) exported {
	t.Helper()
	out := exported{}
	add := func(job string, cs ...prometheus.Collector) {
		reg := prometheus.NewPedanticRegistry()
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				t.Fatalf("%s: registering %T: %v", job, c, err)
			}
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("%s: gather: %v", job, err)
		}
		for _, mf := range mfs {
			out.addFamily(job, mf)
		}
		// Every described metric must have been gathered, or the fakes
		// below miss a source and the name check would be blind to it.
		for _, c := range cs {
			ch := make(chan *prometheus.Desc, 64)
			go func() { c.Describe(ch); close(ch) }()
			for d := range ch {
				m := descName.FindStringSubmatch(d.String())
				if m == nil {
					t.Fatalf("%s: cannot read the name of %s", job, d)
				}
				if !out.hasFamily(m[1]) {
					t.Errorf("%s: %s is described but was not gathered: give the fake sources in perf/exported_test.go a value for it", job, m[1])
				}
			}
		}
	}
	for job, cs := range fakeCollectors(t) {
		add(job, cs...)
	}
	return out
}

// fakeCollectors are the collectors each process registers (as in
// cmd/cgw-control and cmd/cgw-dataplane), over the fake sources below.
func fakeCollectors(t *testing.T) map[string][]prometheus.Collector {
	return map[string][]prometheus.Collector{
		jobDataplane: {fakeDataplane(t), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})},
		jobControl: {fakeControl(), fakeSpeaker(t).Collector(),
			collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})},
	}
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (e exported) hasFamily(name string) bool {
	return e[name] != nil || e[name+"_count"] != nil
}

func (e exported) addFamily(job string, mf *dto.MetricFamily) {
	name := mf.GetName()
	names := []string{name}
	switch mf.GetType() {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		names = []string{name + "_bucket", name + "_sum", name + "_count"}
	case dto.MetricType_SUMMARY:
		names = []string{name, name + "_sum", name + "_count"}
	}
	for _, n := range names {
		s := e[n]
		if s == nil {
			s = &series{job: job, labels: map[string]bool{}, values: map[string]map[string]bool{}}
			e[n] = s
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				s.label(lp.GetName(), lp.GetValue())
			}
			if n == name+"_bucket" {
				s.labels["le"] = true // values are bucket bounds, not an enumeration
			}
			if mf.GetType() == dto.MetricType_SUMMARY && n == name {
				s.labels["quantile"] = true
			}
		}
	}
}

func (s *series) label(name, value string) {
	s.labels[name] = true
	if s.values[name] == nil {
		s.values[name] = map[string]bool{}
	}
	s.values[name][value] = true
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Fakes for cgw-dataplane: one worker whose every counter is non-zero.

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

func (f fakeWorker) ID() int                         { return 0 }
func (f fakeWorker) Pipeline() *worker.Pipeline      { return f.p }
func (f fakeWorker) Modes() (afxdp.Mode, afxdp.Mode) { return afxdp.ModeCopy, afxdp.ModeZeroCopy }
func (f fakeWorker) SocketStats() (afxdp.Stats, afxdp.Stats, error) {
	st := afxdp.Stats{RxDropped: 1, RxRingFull: 1, RxFillRingEmpty: 1, TxInvalid: 1}
	return st, st, nil
}
func (f fakeWorker) Placement() (int, int)          { return 0, 0 }
func (f fakeWorker) CPUTime() (time.Duration, bool) { return time.Second, true }
func (f fakeWorker) Panics() uint64                 { return 1 }

func fakeDataplane(t *testing.T) prometheus.Collector {
	tabs := new(tables.Tables)
	tb := &maps.Tables{Generation: 7, Tunnels: make([]maps.Tunnel, maps.MaxTunnels), Outbound: make([]uint32, maps.MaxTunnels)}
	tb.Tunnels[1] = maps.Tunnel{Flags: uint32(maps.TunnelUp), Mtu: 1399}
	tb.Tunnels[2] = maps.Tunnel{Mtu: 1399}
	tabs.Store(tables.NewBuilder(func(uint32) *maps.SACounters { return nil }).Build(tb))
	p, err := worker.New(worker.Config{Frames: noFrames{}, Tables: tabs, Neighbours: noNeigh{}})
	if err != nil {
		t.Fatalf("dataplane fake: %v", err)
	}
	c := p.Counters()
	for d := range c.Packets {
		c.Packets[d], c.Bytes[d] = 1, 1
		for tu := range c.TunnelPackets[d] {
			c.TunnelPackets[d][tu], c.TunnelBytes[d][tu] = 1, 1
		}
	}
	for s := range c.Drops {
		for r := range c.Drops[s] {
			c.Drops[s][r] = 1
		}
	}
	for i := range c.BatchSizes {
		c.BatchSizes[i] = 1
	}
	c.BatchSum, c.RingFull, c.Wakeups, c.SlowToKernel, c.SlowFromKernel, c.ICMPErrors, c.Fragments = 1, 1, 1, 1, 1, 1, 1
	return dpmetrics.New(dpmetrics.Sources{
		Workers: []dpmetrics.Worker{fakeWorker{p}},
		Tables:  tabs,
		XDPStats: func() ([maps.NumStats]uint64, error) {
			var s [maps.NumStats]uint64
			for i := range s {
				s[i] = 1
			}
			return s, nil
		},
		Neigh: func() (uint64, uint64, uint64) { return 1, 1, 1 },
		NICs: []dpmetrics.NIC{{Role: "inside", Name: "lan0", Driver: "veth", XDPMode: "native"},
			{Role: "outside", Name: "wan0", Driver: "ixgbe", XDPMode: "generic"}},
	})
}

// Fakes for cgw-control.

type nopSink struct{}

func (nopSink) AddRoute(netip.Prefix, maps.Route) error     { return nil }
func (nopSink) ReplaceRoute(netip.Prefix, maps.Route) error { return nil }
func (nopSink) DeleteRoute(netip.Prefix) error              { return nil }

// fakeSpeaker starts a real GoBGP speaker whose sessions stay down (no
// listening socket, no gRPC API, no namespace needed).
func fakeSpeaker(t *testing.T) *bgp.Speaker {
	r, err := rib.New(nopSink{}, []rib.Tunnel{{ID: 1, Name: "vpn-t1", Connection: "vpn"}, {ID: 2, Name: "vpn-t2", Connection: "vpn"}}, rib.Options{})
	if err != nil {
		t.Fatalf("rib: %v", err)
	}
	adv := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}
	s, err := bgp.Start(r, bgp.Options{RouterID: netip.MustParseAddr("192.0.2.10"), GRPCAddress: "-", Logger: slog.New(slog.DiscardHandler)}, []bgp.Neighbor{
		{Tunnel: 1, Name: "vpn-t1", Connection: "vpn", Local: netip.MustParseAddr("169.254.44.90"), Peer: netip.MustParseAddr("169.254.44.89"), LocalASN: 65000, PeerASN: 64512, Advertise: adv},
		{Tunnel: 2, Name: "vpn-t2", Connection: "vpn", Local: netip.MustParseAddr("169.254.45.10"), Peer: netip.MustParseAddr("169.254.45.9"), LocalASN: 65000, PeerASN: 64512, Advertise: adv},
	})
	if err != nil {
		t.Fatalf("bgp speaker: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func fakeControl() prometheus.Collector {
	st := &status.Status{
		Tunnels: []status.Tunnel{{
			Name: "vpn-t1", Connection: "vpn", ID: 1, State: "up",
			IKE:      &status.IKESA{},
			Children: []status.ChildSA{{Active: true, In: status.Counters{Packets: 1, Bytes: 1}, Out: status.Counters{Packets: 1, Bytes: 1}}},
			Stale:    []uint32{9},
		}},
		Routes:        []status.Route{{Source: "bgp"}, {Source: "static"}},
		Guards:        []netip.Prefix{netip.MustParsePrefix("169.254.10.0/30"), netip.MustParsePrefix("198.19.0.0/16")},
		GuardsAdopted: 1, GuardRepairs: 1, GuardErrors: 1,
	}
	c := ctlmetrics.New(func() *status.Status { return st })
	for _, ty := range []ike.EventType{ike.TunnelUp, ike.ChildSAInstalled, ike.IKERekeyed, ike.DPDTimeout, ike.Retransmit, ike.TunnelDown} {
		c.Event(ike.Event{Type: ty, Tunnel: "vpn-t1", Time: time.Unix(0, 0)})
	}
	c.Event(ike.Event{Type: ike.NegotiationFailed, Tunnel: "vpn-t1", Reason: "NO_PROPOSAL_CHOSEN", Err: errors.New("fake")})
	c.RekeyRequest("vpn-t1", "bytes")
	return c
}
