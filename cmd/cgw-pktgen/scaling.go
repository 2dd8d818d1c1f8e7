package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cgw-project/cgw/bench/b2b"
	"github.com/cgw-project/cgw/bench/pktgen"
)

// scaleRow is one mix and series at 1 and at 2 workers (medians).
type scaleRow struct {
	Series, Mix         string
	PPS1, PPS2          float64 // delivered per wall-second
	PerCPU1, PerCPU2    float64 // delivered per dataplane CPU-second
	WallRatio, CPURatio float64
}

// scaling measures site A with one worker and with two on a two-queue
// veth pair, alternating run by run, offered as fast as the generators go.
// A veth queues a frame by the sending CPU, not by flow hash, so two
// generators (CPUs 0 and 1) feed the two queues; one worker is fed by one
// generator on CPU 0 and runs on CPU 1. On a two-core machine the two
// workers share their cores with the two generators: the per-CPU-second
// ratio is the figure that holds, the wall-clock one is bounded by cores.
func scaling(ctx context.Context, dp, prefix string, mixes []pktgen.Mix, fl pktgen.Flows, runs int, trial time.Duration, burst int, progress io.Writer) ([]scaleRow, error) {
	t := b2b.New(b2b.Options{Prefix: prefix, Dataplane: dp, NoReplay: true, Queues: 2})
	defer t.Down()
	if err := t.Up(ctx); err != nil {
		return nil, err
	}
	load, err := t.NewLoad()
	if err != nil {
		return nil, err
	}
	defer load.Close()
	type cfg struct {
		workers int
		cpus    string
		gens    []int
	}
	cfgs := []cfg{{1, "1", []int{0}}, {2, "0,1", []int{0, 1}}}
	var rows []scaleRow
	for _, s := range []series{allSeries["encrypt"], allSeries["decrypt"]} {
		for _, m := range mixes {
			var pps, per [2][]float64
			for i := 0; i <= runs; i++ {
				for k, c := range cfgs {
					t.StopDataplane(t.A, false)
					t.Opts.Workers = c.workers
					t.Opts.CPU = map[string]string{"A": c.cpus}
					if _, err := t.RunDataplane(ctx, t.A, 20*time.Second); err != nil {
						return nil, err
					}
					d := trial
					if i == 0 {
						d = 200 * time.Millisecond
					}
					tr, err := load.Trial(ctx, b2b.TrialConfig{Label: s.name, Dir: s.dir, Mix: m, Flows: fl, Duration: d, GenCPUs: c.gens, Burst: burst})
					if err != nil {
						return nil, err
					}
					if i == 0 {
						continue
					}
					pps[k] = append(pps[k], tr.DeliveredPPS())
					per[k] = append(per[k], tr.PerCPUSecond())
					if progress != nil {
						fmt.Fprintf(progress, "  scaling %-8s %-6s %d worker(s) run %d: offered %.0f pps, delivered %.0f pps, %.0f per dataplane CPU-second (%.3f s CPU)\n",
							s.name, m, c.workers, i, tr.OfferedPPS(), tr.DeliveredPPS(), tr.PerCPUSecond(), tr.CPUSeconds)
					}
				}
			}
			r := scaleRow{Series: s.name, Mix: m.String(), PPS1: median(pps[0]), PPS2: median(pps[1]), PerCPU1: median(per[0]), PerCPU2: median(per[1])}
			if r.PPS1 > 0 {
				r.WallRatio = r.PPS2 / r.PPS1
			}
			if r.PerCPU1 > 0 {
				r.CPURatio = r.PerCPU2 / r.PerCPU1
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func writeScaling(w io.Writer, rows []scaleRow, runs int) {
	fmt.Fprintf(w, "scaling, 1 vs 2 workers on a two-queue veth pair (1 worker: generator CPU 0, worker CPU 1; 2 workers: generators and workers on CPUs 0 and 1, shared); medians of %d runs, alternating:\n", runs)
	fmt.Fprintf(w, "%-8s %-6s %10s %10s %7s  %12s %12s %7s\n", "series", "mix", "1w pps", "2w pps", "ratio", "1w pkt/CPUs", "2w pkt/CPUs", "ratio")
	for _, r := range rows {
		fmt.Fprintf(w, "%-8s %-6s %10.0f %10.0f %6.2fx  %12.0f %12.0f %6.2fx\n", r.Series, r.Mix, r.PPS1, r.PPS2, r.WallRatio, r.PerCPU1, r.PerCPU2, r.CPURatio)
	}
}
