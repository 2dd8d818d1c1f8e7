package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cgw-project/cgw/bench/b2b"
	"github.com/cgw-project/cgw/crypto/transform"
)

// bench measures cgw-dataplane on site A of the back-to-back topology,
// generator (lan) → A → sink (wire), once as a plain AF_XDP forwarder
// (-no-crypto: same workers, ESP off) and once as the gateway (ESP on),
// with the same generator through the same namespaces. One worker core is
// on the path, so the ratio is the cost of ESP on that core.
func bench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	dp := fs.String("dataplane", "bin/cgw-dataplane", "cgw-dataplane binary")
	sizesF := fs.String("sizes", "64,1400", "Ethernet frame sizes with FCS")
	runs := fs.Int("runs", 5, "bounded runs per size and mode (the median is reported)")
	count := fs.Uint64("count", 1000000, "frames per run")
	genCPU := fs.Int("gen-cpu", 0, "CPU of the generator (-1: any)")
	workerCPU := fs.String("worker-cpu", "1", "CPU of the dataplane worker (passed as -cpus; empty: the dataplane's default)")
	suite := fs.String("suite", "aes128gcm16", "ESP suite")
	prefix := fs.String("prefix", "cgwpg", "namespace prefix")
	fs.Parse(args)

	var sizes []int
	for _, s := range strings.Split(*sizesF, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("bench: -sizes: %w", err)
		}
		sizes = append(sizes, n)
	}
	st, err := transform.ParseSuite(*suite)
	if err != nil {
		return err
	}
	if _, err := os.Stat(*dp); err != nil {
		return fmt.Errorf("bench: cgw-dataplane binary %s: %w (make build, or pass -dataplane)", *dp, err)
	}
	o := b2b.Options{Prefix: *prefix, Suite: st, Dataplane: *dp}
	if *workerCPU != "" {
		o.CPU = map[string]string{"A": *workerCPU}
	}
	t := b2b.New(o)
	defer t.Down()
	if err := t.Up(ctx); err != nil {
		return err
	}
	load, err := t.NewLoad()
	if err != nil {
		return err
	}
	defer load.Close()

	modes := []struct {
		name     string
		noCrypto bool
	}{{"forwarder (-no-crypto)", true}, {"gateway (ESP " + st.String() + ")", false}}
	// Modes alternate run by run, so a change in the machine's load (it
	// is shared) hits both alike; each run restarts the dataplane.
	pps := map[string]map[int][]float64{}
	perCPU := map[string]map[int][]float64{}
	for _, m := range modes {
		pps[m.name], perCPU[m.name] = map[int][]float64{}, map[int][]float64{}
	}
	var log strings.Builder
	for _, size := range sizes {
		for i := 0; i <= *runs; i++ {
			for _, m := range modes {
				t.Opts.NoCrypto = m.noCrypto
				if _, err := t.RunDataplane(ctx, t.A, 20*time.Second); err != nil {
					return err
				}
				n := *count
				if i == 0 {
					n /= 10 // warm-up, not counted
				}
				r, err := load.Run(ctx, size, n, *genCPU)
				t.StopDataplane(t.A, false)
				if err != nil {
					return err
				}
				if i == 0 {
					continue
				}
				pps[m.name][size] = append(pps[m.name][size], r.Sink.PPS())
				perCPU[m.name][size] = append(perCPU[m.name][size], r.PerCPUSecond())
				fmt.Fprintf(&log, "  %-28s %5d B run %d: offered %.0f pps, delivered %.0f pps (%d of %d), %.0f per dataplane CPU-second (%v CPU)\n",
					m.name, size, i, r.Gen.PPS(), r.Sink.PPS(), r.Sink.Packets, r.Gen.Sent, r.PerCPUSecond(), r.CPU)
			}
		}
	}
	var rep strings.Builder
	host, _ := os.Hostname()
	kern, _ := exec.Command("uname", "-r").Output()
	fmt.Fprintf(&rep, "cgw-pktgen bench %s host %s kernel %s", time.Now().UTC().Format(time.RFC3339), host, kern)
	fmt.Fprintf(&rep, "path: live-frames generator (lan, CPU %d) → cgw-dataplane site A (worker CPU %s) → XDP sink (wire); %d runs of %d frames per size and mode, alternating, medians\n",
		*genCPU, *workerCPU, *runs, *count)
	fmt.Fprintf(&rep, "%6s %14s %14s %7s   %16s %16s %7s\n", "size", "forwarder pps", "gateway pps", "ratio", "fwd pkts/CPU-s", "gw pkts/CPU-s", "ratio")
	for _, size := range sizes {
		f, g := median(pps[modes[0].name][size]), median(pps[modes[1].name][size])
		fc, gc := median(perCPU[modes[0].name][size]), median(perCPU[modes[1].name][size])
		fmt.Fprintf(&rep, "%6d %14.0f %14.0f %6.1f%%   %16.0f %16.0f %6.1f%%\n", size, f, g, pct(g, f), fc, gc, pct(gc, fc))
	}
	rep.WriteString("runs:\n" + log.String())
	fmt.Print(rep.String())
	return nil
}

func pct(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return 100 * a / b
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
