// Package metrics exports cgw-dataplane's counters to Prometheus. Nothing
// is counted on the packet path for it: the collector reads the workers'
// own counters (plain integers each worker increments) with atomic loads
// at scrape time, plus the XDP programs' decision counters, the sockets'
// kernel statistics and the table generation.
package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/dataplane/afxdp"
	"github.com/cgw-project/cgw/dataplane/tables"
	"github.com/cgw-project/cgw/dataplane/worker"
)

// Worker is what the collector reads of one worker (worker.Worker has
// this method set).
type Worker interface {
	ID() int
	Pipeline() *worker.Pipeline
	Modes() (inside, outside afxdp.Mode)
	SocketStats() (inside, outside afxdp.Stats, err error)
	Placement() (cpu, queue int)    // cpu -1: not pinned
	CPUTime() (time.Duration, bool) // the worker thread's CPU time
	Panics() uint64                 // panics recovered (the worker restarted)
}

// NIC is one device the dataplane attached to.
type NIC struct {
	Role    string // inside or outside
	Name    string // interface name
	Driver  string // ethtool's driver name ("" if unknown)
	XDPMode string // native or generic
}

// Sources are what a Collector reads; nil fields are left out.
type Sources struct {
	Workers  []Worker
	Tables   *tables.Tables
	XDPStats func() ([maps.NumStats]uint64, error) // maps.Objects.Stats
	Neigh    func() (hits, misses, resolves uint64)
	NICs     []NIC
}

// Collector is a prometheus.Collector over Sources.
type Collector struct {
	s Sources
}

// New returns a Collector.
func New(s Sources) *Collector { return &Collector{s: s} }

const ns = "cgw_dataplane_"

var (
	dPackets     = prometheus.NewDesc(ns+"packets_total", "Packets that left the gateway, by worker and direction (out: encrypted, in: decrypted).", []string{"worker", "direction"}, nil)
	dBytes       = prometheus.NewDesc(ns+"bytes_total", "Inner IP bytes that left the gateway, by worker and direction.", []string{"worker", "direction"}, nil)
	dTunPackets  = prometheus.NewDesc(ns+"tunnel_packets_total", "Packets per tunnel and direction, summed over workers.", []string{"tunnel", "direction"}, nil)
	dTunBytes    = prometheus.NewDesc(ns+"tunnel_bytes_total", "Inner IP bytes per tunnel and direction, summed over workers.", []string{"tunnel", "direction"}, nil)
	dDrops       = prometheus.NewDesc(ns+"drops_total", "Packets dropped, by worker, the pipeline stage that dropped them and why.", []string{"worker", "stage", "reason"}, nil)
	dBatch       = prometheus.NewDesc(ns+"batch_size_packets", "Packets per received batch.", []string{"worker"}, nil)
	dRingFull    = prometheus.NewDesc(ns+"ring_full_total", "Descriptors dropped because a TX ring was full.", []string{"worker"}, nil)
	dWakeups     = prometheus.NewDesc(ns+"wakeups_total", "Times a worker slept in poll(2) after busy-polling found nothing.", []string{"worker"}, nil)
	dMode        = prometheus.NewDesc(ns+"afxdp_mode_info", "AF_XDP mode of each worker's socket (copy or zerocopy).", []string{"worker", "device", "mode"}, nil)
	dSockDrops   = prometheus.NewDesc(ns+"afxdp_kernel_drops_total", "Kernel-side AF_XDP socket drops by kind (XDP_STATISTICS).", []string{"worker", "device", "kind"}, nil)
	dGeneration  = prometheus.NewDesc(ns+"table_generation", "Generation of the tables snapshot the workers use.", nil, nil)
	dTunnels     = prometheus.NewDesc(ns+"tunnels", "Tunnels in the tables, by state.", []string{"state"}, nil)
	dXDP         = prometheus.NewDesc(ns+"xdp_decisions_total", "Decisions of the XDP programs, summed over CPUs.", []string{"decision"}, nil)
	dSlow        = prometheus.NewDesc(ns+"slow_path_packets_total", "Packets through the tunnels' kernel interfaces (to_kernel: decrypted for the host; from_kernel: the host's own, encrypted).", []string{"worker", "direction"}, nil)
	dICMP        = prometheus.NewDesc(ns+"icmp_errors_sent_total", "ICMP fragmentation-needed / packet-too-big errors sent back inside.", []string{"worker"}, nil)
	dNoMeta      = prometheus.NewDesc(ns+"inside_no_metadata_total", "Inside frames that arrived without the XDP program's tunnel metadata (the worker looked the route up again).", []string{"worker"}, nil)
	dLateView    = prometheus.NewDesc(ns+"late_view_total", "Inbound SPIs missing from a batch's tables but found in tables published during the batch (a just-installed SA).", []string{"worker"}, nil)
	dFragments   = prometheus.NewDesc(ns+"fragments_made_total", "Extra fragments made before encryption (RFC 4459).", []string{"worker"}, nil)
	dNeigh       = prometheus.NewDesc(ns+"neighbour_lookups_total", "Next-hop MAC lookups by result.", []string{"result"}, nil)
	dNeighResolv = prometheus.NewDesc(ns+"neighbour_resolve_requests_total", "Resolutions asked of the kernel for unknown next hops.", nil, nil)
	dWorkerInfo  = prometheus.NewDesc(ns+"worker_info", "Each worker's core (-1: not pinned) and NIC queue, for joins (always 1).", []string{"worker", "cpu", "queue"}, nil)
	dWorkerCPU   = prometheus.NewDesc(ns+"worker_cpu_seconds_total", "CPU time of each worker's thread (schedstat, nanosecond resolution).", []string{"worker"}, nil)
	dPanics      = prometheus.NewDesc(ns+"worker_panics_total", "Panics a worker recovered from: its batch was dropped and it restarted on its queue (the stack of the first is in the log).", []string{"worker"}, nil)
	dNIC         = prometheus.NewDesc(ns+"nic_info", "The devices the dataplane attached to: role (inside, outside), interface, driver and XDP attach mode (native, generic) (always 1).", []string{"device", "interface", "driver", "xdp_mode"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dPackets, dBytes, dTunPackets, dTunBytes, dDrops, dBatch, dRingFull, dWakeups,
		dMode, dSockDrops, dGeneration, dTunnels, dXDP, dSlow, dICMP, dFragments, dNoMeta, dLateView, dNeigh, dNeighResolv,
		dWorkerInfo, dWorkerCPU, dPanics, dNIC} {
		ch <- d
	}
}

func load(p *uint64) uint64 { return atomic.LoadUint64(p) }

var dirs = [2]string{worker.Out: "out", worker.In: "in"}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	var tunP, tunB [2][maps.MaxTunnels]uint64
	for _, w := range c.s.Workers {
		id := strconv.Itoa(w.ID())
		k := w.Pipeline().Counters()
		for d := range dirs {
			counter(dPackets, load(&k.Packets[d]), id, dirs[d])
			counter(dBytes, load(&k.Bytes[d]), id, dirs[d])
			for t := range tunP[d] {
				tunP[d][t] += load(&k.TunnelPackets[d][t])
				tunB[d][t] += load(&k.TunnelBytes[d][t])
			}
		}
		for s := worker.Stage(0); s < worker.NumStages; s++ {
			for r := range k.Drops[s] {
				if name := worker.ReasonName(s, r); name != "" {
					if v := load(&k.Drops[s][r]); v != 0 {
						counter(dDrops, v, id, s.String(), name)
					}
				}
			}
		}
		buckets := map[float64]uint64{}
		var cum uint64
		for i, b := range worker.BatchBuckets {
			cum += load(&k.BatchSizes[i])
			buckets[float64(b)] = cum
		}
		ch <- prometheus.MustNewConstHistogram(dBatch, cum, float64(load(&k.BatchSum)), buckets, id)
		counter(dRingFull, load(&k.RingFull), id)
		counter(dWakeups, load(&k.Wakeups), id)
		counter(dSlow, load(&k.SlowToKernel), id, "to_kernel")
		counter(dSlow, load(&k.SlowFromKernel), id, "from_kernel")
		counter(dICMP, load(&k.ICMPErrors), id)
		counter(dFragments, load(&k.Fragments), id)
		counter(dNoMeta, load(&k.NoMetadata), id)
		counter(dLateView, load(&k.LateView), id)
		counter(dPanics, w.Panics(), id)

		cpu, queue := w.Placement()
		ch <- prometheus.MustNewConstMetric(dWorkerInfo, prometheus.GaugeValue, 1, id, strconv.Itoa(cpu), strconv.Itoa(queue))
		if d, ok := w.CPUTime(); ok {
			ch <- prometheus.MustNewConstMetric(dWorkerCPU, prometheus.CounterValue, d.Seconds(), id)
		}

		mi, mo := w.Modes()
		ch <- prometheus.MustNewConstMetric(dMode, prometheus.GaugeValue, 1, id, "inside", modeName(mi))
		ch <- prometheus.MustNewConstMetric(dMode, prometheus.GaugeValue, 1, id, "outside", modeName(mo))
		if si, so, err := w.SocketStats(); err == nil {
			for dev, st := range map[string]afxdp.Stats{"inside": si, "outside": so} {
				counter(dSockDrops, st.RxDropped, id, dev, "rx_dropped")
				counter(dSockDrops, st.RxRingFull, id, dev, "rx_ring_full")
				counter(dSockDrops, st.RxFillRingEmpty, id, dev, "fill_ring_empty")
				counter(dSockDrops, st.TxInvalidDescs+st.TxInvalid, id, dev, "tx_invalid")
			}
		}
	}
	if c.s.Tables != nil {
		if v := c.s.Tables.Load(); v != nil {
			ch <- prometheus.MustNewConstMetric(dGeneration, prometheus.GaugeValue, float64(v.Generation))
			var up, down float64
			for _, t := range v.Tunnels {
				if t == nil {
					continue
				}
				if t.Up && t.Out != nil {
					up++
				} else {
					down++
				}
				for d := range dirs {
					counter(dTunPackets, tunP[d][t.ID], strconv.Itoa(int(t.ID)), dirs[d])
					counter(dTunBytes, tunB[d][t.ID], strconv.Itoa(int(t.ID)), dirs[d])
				}
			}
			ch <- prometheus.MustNewConstMetric(dTunnels, prometheus.GaugeValue, up, "up")
			ch <- prometheus.MustNewConstMetric(dTunnels, prometheus.GaugeValue, down, "down")
		}
	}
	if c.s.XDPStats != nil {
		if st, err := c.s.XDPStats(); err == nil {
			for i, v := range st {
				counter(dXDP, v, maps.Stat(i).String())
			}
		}
	}
	for _, n := range c.s.NICs {
		ch <- prometheus.MustNewConstMetric(dNIC, prometheus.GaugeValue, 1, n.Role, n.Name, n.Driver, n.XDPMode)
	}
	if c.s.Neigh != nil {
		h, m, r := c.s.Neigh()
		counter(dNeigh, h, "hit")
		counter(dNeigh, m, "miss")
		counter(dNeighResolv, r)
	}
}

func modeName(m afxdp.Mode) string {
	if m == afxdp.ModeZeroCopy {
		return "zerocopy"
	}
	return "copy"
}
