package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cgw-project/cgw/bench/b2b"
	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/internal/cli"
)

// bench measures cgw-dataplane on site A of the back-to-back topology,
// generator (lan) → A → sink (wire), once as a plain AF_XDP forwarder
// (-no-crypto: same workers, ESP off) and once as the gateway (ESP on),
// and the gateway's decryption wire → A → lan, with the same generator
// through the same namespaces. Only site A's one worker core is on the
// path, so the ratios are the cost of the gateway's work on that core.
func bench(ctx context.Context, args []string) error {
	fs := cli.Flags("cgw-pktgen bench", "[flags]", "Builds the back-to-back topology and measures cgw-dataplane with and\nwithout ESP through the same namespaces with the same generator.", os.Stderr)
	dp := fs.String("dataplane", "bin/cgw-dataplane", "cgw-dataplane binary")
	sizesF := fs.String("sizes", "64,1400", "Ethernet frame sizes with FCS")
	runs := fs.Int("runs", 5, "bounded runs per size and mode (the median is reported)")
	count := fs.Uint64("count", 1000000, "frames per run")
	genCPU := fs.Int("gen-cpu", 0, "CPU of the generator (-1: any)")
	workerCPU := fs.String("worker-cpu", "1", "CPU of the dataplane worker (passed as -cpus; empty: the dataplane's default)")
	suite := fs.String("suite", "aes128gcm16", "ESP suite")
	prefix := fs.String("prefix", "cgwpg", "namespace prefix")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}

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
	o := b2b.Options{Prefix: *prefix, Suite: st, Dataplane: *dp, NoReplay: true}
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

	// Three series per size: the plain forwarder outbound (-no-crypto),
	// the gateway outbound (encrypt) and inbound (decrypt). They alternate
	// run by run, so a change in the machine's load (it is shared) hits all
	// alike; the dataplane restarts between modes.
	const (
		fwd = iota
		enc
		dec
		nSeries
	)
	names := [nSeries]string{"forwarder (-no-crypto)", "gateway encrypt", "gateway decrypt"}
	var pps, perCPU [nSeries]map[int][]float64
	for i := range pps {
		pps[i], perCPU[i] = map[int][]float64{}, map[int][]float64{}
	}
	var log strings.Builder
	measure := func(series int, d b2b.Direction, size int, n uint64, keep bool) error {
		r, err := load.Run(ctx, d, size, n, *genCPU)
		if err != nil || !keep {
			return err
		}
		pps[series][size] = append(pps[series][size], r.Sink.PPS())
		perCPU[series][size] = append(perCPU[series][size], r.PerCPUSecond())
		fmt.Fprintf(&log, "  %-24s %5d B: offered %.0f pps, delivered %.0f pps (%d of %d), %.0f per dataplane CPU-second (%v CPU)\n",
			names[series], size, r.Gen.PPS(), r.Sink.PPS(), r.Sink.Packets, r.Gen.Sent, r.PerCPUSecond(), r.CPU)
		return nil
	}
	for _, size := range sizes {
		for i := 0; i <= *runs; i++ {
			n, keep := *count, i > 0
			if !keep {
				n /= 10 // warm-up, not counted
			}
			for _, noCrypto := range []bool{true, false} {
				t.Opts.NoCrypto = noCrypto
				if _, err := t.RunDataplane(ctx, t.A, 20*time.Second); err != nil {
					return err
				}
				var err error
				if noCrypto {
					err = measure(fwd, b2b.Outbound, size, n, keep)
				} else if err = measure(enc, b2b.Outbound, size, n, keep); err == nil {
					err = measure(dec, b2b.Inbound, size, n, keep)
				}
				t.StopDataplane(t.A, false)
				if err != nil {
					return err
				}
			}
		}
	}
	var rep strings.Builder
	host, _ := os.Hostname()
	kern, _ := exec.Command("uname", "-r").Output()
	fmt.Fprintf(&rep, "cgw-pktgen bench %s host %s kernel %s", time.Now().UTC().Format(time.RFC3339), host, kern)
	fmt.Fprintf(&rep, "path: live-frames generator (CPU %d) → cgw-dataplane site A (worker CPU %s) → XDP sink; %d runs of %d frames per size and series, alternating, medians\n",
		*genCPU, *workerCPU, *runs, *count)
	fmt.Fprintf(&rep, "%6s %12s %12s %12s %7s %7s   %14s %14s %14s %7s %7s\n", "size",
		"fwd pps", "encrypt pps", "decrypt pps", "enc/fwd", "dec/fwd",
		"fwd pkt/CPU-s", "enc pkt/CPU-s", "dec pkt/CPU-s", "enc/fwd", "dec/fwd")
	for _, size := range sizes {
		var w, c [nSeries]float64
		for i := range w {
			w[i], c[i] = median(pps[i][size]), median(perCPU[i][size])
		}
		fmt.Fprintf(&rep, "%6d %12.0f %12.0f %12.0f %6.1f%% %6.1f%%   %14.0f %14.0f %14.0f %6.1f%% %6.1f%%\n", size,
			w[fwd], w[enc], w[dec], pct(w[enc], w[fwd]), pct(w[dec], w[fwd]),
			c[fwd], c[enc], c[dec], pct(c[enc], c[fwd]), pct(c[dec], c[fwd]))
	}
	rep.WriteString("fwd: lan → A → wire with -no-crypto; encrypt: the same path with ESP; decrypt: one ESP frame of the B→A SA (anti-replay off) wire → A → lan.\n")
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
