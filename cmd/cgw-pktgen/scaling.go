package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cgw-project/cgw/bench/b2b"
	"github.com/cgw-project/cgw/bench/pktgen"
	"github.com/cgw-project/cgw/bench/procstat"
	"github.com/cgw-project/cgw/bench/rfc2544"
	"github.com/cgw-project/cgw/crypto/transform"
)

// scaleRow is one mix and series at 1 and at 2 workers (medians).
type scaleRow struct {
	Series, Mix         string
	Flows               int
	PPS1, PPS2          float64 // PDR: delivered per wall-second at ≤ the PDR loss
	NDR1, NDR2          float64
	PerCPU1, PerCPU2    float64 // delivered per CPU-second (dataplane + its NAPI threads) in the PDR trial
	WallRatio, CPURatio float64 // PDR and per-CPU ratios, 2 workers ÷ 1
	Busy1, Busy2        float64 // the cores' busy fraction (all tasks) in the PDR trial: below 1, the loss came from stalls, not capacity
	NDRRatio            float64
}

// scaleCfg places one configuration on the two cores.
type scaleCfg struct {
	workers int
	cpus    string // the dataplane's -cpus: worker i on the i-th
	gens    []int  // one paced generator per CPU; a veth queues by sending CPU, so generator i feeds queue i
	napi    []int  // CPU of queue i's NAPI thread on A's two NICs
}

// The placement emulates a NIC whose queue i interrupts core i: queue
// i's NAPI thread (b2b.ThreadNAPI: the XDP program and the copy into the
// socket) runs on worker i's core at SCHED_FIFO 50, as a threaded
// interrupt would. The generators are paced at SCHED_FIFO 40: they sleep
// between bursts of 64 and wake on time, instead of taking half a core
// from the worker by CFS fairness (unpaced) or waking late and catching up
// in bursts the gateway never asked for (paced at normal priority). A
// generator on the same core as the worker it feeds: one worker is the
// whole job on CPU 0 (CPU 1 idle), two workers are that job on each core,
// so the generators' own cost weighs alike on both and the ratio is the
// gateway's. The veth queues a generated frame by the sending CPU, so
// generator i feeds queue i.
var scaleCfgs = []scaleCfg{
	{workers: 1, cpus: "0", gens: []int{0}, napi: []int{0, 1}},
	{workers: 2, cpus: "0,1", gens: []int{0, 1}, napi: []int{0, 1}},
}

// scaling measures site A at one worker and at two on a two-queue veth
// pair, one tunnel (one SA pair, shared by both workers: the outbound
// sequence number and the inbound replay window are per SA), many flows:
// the RFC 2544 PDR and NDR of each, the configurations alternating run by
// run so a change in the shared machine's load hits both alike. Anti-
// replay stays on for encrypt; the decrypt generator repeats one ESP
// frame, so the topology's inbound SA has it off.
func scaling(ctx context.Context, dp, prefix string, suite transform.Suite, mixes []pktgen.Mix, fl pktgen.Flows, runs int, trial time.Duration, maxPPS float64, ringSize int, sf searchFlags, progress io.Writer) ([]scaleRow, error) {
	t := b2b.New(b2b.Options{Prefix: prefix, Dataplane: dp, NoReplay: true, Queues: 2, Suite: suite, RingSize: ringSize})
	defer t.Down()
	if err := t.Up(ctx); err != nil {
		return nil, err
	}
	load, err := t.NewLoad()
	if err != nil {
		return nil, err
	}
	defer load.Close()
	var threads [][]int
	start := func(c scaleCfg) error {
		t.StopDataplane(t.A, false)
		t.Opts.Workers = c.workers
		t.Opts.CPU = map[string]string{"A": c.cpus}
		if _, err := t.RunDataplane(ctx, t.A, 20*time.Second); err != nil {
			return err
		}
		if threads == nil { // the XDP links outlive the dataplane, and with them the NAPI instances
			for _, dev := range []string{b2b.InsideDev, b2b.OutsideDev} {
				q, err := t.ThreadNAPI(ctx, t.A, dev)
				if err != nil {
					return err
				}
				threads = append(threads, q)
			}
		}
		return b2b.PinNAPI(threads, c.napi)
	}
	var rows []scaleRow
	for _, s := range []series{allSeries["encrypt"], allSeries["decrypt"]} {
		for _, m := range mixes {
			var pdr, ndr, per, busy [2][]float64
			for i := 1; i <= runs; i++ {
				for k, c := range scaleCfgs {
					if err := start(c); err != nil {
						return nil, err
					}
					pids := []int{t.A.DataplanePid()}
					for _, q := range threads {
						pids = append(pids, q...)
					}
					busyAt := map[float64]float64{} // cores' busy fraction by trial rate
					measure := func(ctx context.Context, pps float64, _ bool) (pktgen.Trial, error) {
						c0, cerr := procstat.CPUs()
						tr, err := load.Trial(ctx, b2b.TrialConfig{Label: s.name, Dir: s.dir, Mix: m, Flows: fl, Rate: pktgen.Rate{PPS: pps},
							Duration: trial, GenCPUs: c.gens, GenPriority: 40, Burst: *sf.burst, PIDs: pids})
						if c1, err := procstat.CPUs(); err == nil && cerr == nil {
							busyAt[pps] = procstat.Busy(c0, c1, c.gens)
						}
						if err == nil && progress != nil {
							fmt.Fprintf(progress, "    %d worker(s) at %.0f pps: offered %.0f, delivered %d of %d, loss %.3f%%, %.3f s CPU, cores %.0f%% busy\n",
								c.workers, pps, tr.OfferedPPS(), tr.Delivered, tr.Expected, 100*tr.Loss(), tr.CPUSeconds, 100*busyAt[pps])
						}
						return tr, err
					}
					// Warm-up: cold caches, first neighbour lookups.
					if _, err := measure(ctx, 50000, false); err != nil {
						return nil, err
					}
					r, err := rfc2544.Search(ctx, rfc2544.Config{MaxPPS: maxPPS, Resolution: *sf.resolution, PDRLoss: *sf.pdr / 100}, measure)
					if err != nil {
						return nil, err
					}
					pdr[k] = append(pdr[k], r.PDR)
					ndr[k] = append(ndr[k], r.NDR)
					per[k] = append(per[k], r.PDRTrial.PerCPUSecond())
					busy[k] = append(busy[k], busyAt[r.PDRTrial.TargetPPS])
					if progress != nil {
						fmt.Fprintf(progress, "  scaling %-8s %-6s %d worker(s) run %d: PDR %.0f pps (%.0f per CPU-second), NDR %.0f pps, %d trials\n",
							s.name, m, c.workers, i, r.PDR, r.PDRTrial.PerCPUSecond(), r.NDR, len(r.Steps))
					}
				}
			}
			r := scaleRow{Series: s.name, Mix: m.String(), Flows: fl.N, PPS1: median(pdr[0]), PPS2: median(pdr[1]),
				NDR1: median(ndr[0]), NDR2: median(ndr[1]), PerCPU1: median(per[0]), PerCPU2: median(per[1]),
				Busy1: median(busy[0]), Busy2: median(busy[1])}
			r.WallRatio, r.NDRRatio, r.CPURatio = ratio(r.PPS2, r.PPS1), ratio(r.NDR2, r.NDR1), ratio(r.PerCPU2, r.PerCPU1)
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func writeScaling(w io.Writer, rows []scaleRow, runs int, pdr float64, ring int) {
	fmt.Fprintf(w, "scaling, 1 vs 2 workers on a two-queue veth pair, one tunnel (one SA pair shared by the workers); RFC 2544 PDR%.1f%% and NDR searches, medians of %d runs, alternating:\n", 100*pdr, runs)
	fmt.Fprintf(w, "placement: queue i's NAPI thread (XDP + copy into the socket) on worker i's core at SCHED_FIFO 50, as a NIC queue's interrupt; paced generators at SCHED_FIFO 40 beside the worker they feed. 1 worker: generator, NAPI thread and worker on CPU 0; 2 workers: the same on each CPU. Rings %d. pkt/CPUs counts the dataplane and its NAPI threads, not the generators.\n", ring)
	fmt.Fprintf(w, "%-8s %-6s %5s %10s %10s %7s  %10s %10s %7s  %12s %12s %7s  %8s %8s\n", "series", "mix", "flows", "1w PDR", "2w PDR", "ratio", "1w NDR", "2w NDR", "ratio", "1w pkt/CPUs", "2w pkt/CPUs", "ratio", "1w busy", "2w busy")
	for _, r := range rows {
		fmt.Fprintf(w, "%-8s %-6s %5d %10.0f %10.0f %6.2fx  %10.0f %10.0f %6.2fx  %12.0f %12.0f %6.2fx  %7.0f%% %7.0f%%\n", r.Series, r.Mix, r.Flows,
			r.PPS1, r.PPS2, r.WallRatio, r.NDR1, r.NDR2, r.NDRRatio, r.PerCPU1, r.PerCPU2, r.CPURatio, 100*r.Busy1, 100*r.Busy2)
	}
	fmt.Fprintln(w, "busy: the workers' cores (everything on them: generator, NAPI, worker) in the PDR trial, from /proc/stat; under 100 %, what was lost above the PDR was lost to stalls (a worker or its NAPI thread not scheduled in time), not to a core's capacity.")
}
