package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cgw-project/cgw/bench/b2b"
	"github.com/cgw-project/cgw/bench/floor"
	"github.com/cgw-project/cgw/bench/pktgen"
	"github.com/cgw-project/cgw/bench/plots"
	"github.com/cgw-project/cgw/bench/rfc2544"
	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/internal/cli"
)

// bench measures cgw-dataplane on site A of the back-to-back topology,
// generator → A → sink, side by side in one run:
//   - efficiency: packets per dataplane CPU-second of the gateway
//     (encrypt, decrypt) against the floor 1/(t_forward + t_cipher), with
//     t_forward from the same dataplane with ESP off (-no-crypto) and
//     t_cipher the raw seal/open of the same bytes, per mix; the series
//     alternate run by run under overload, so the worker runs full
//     batches and a change in the shared machine's load hits all alike;
//   - NDR and PDR (RFC 2544) of one worker per mix, encrypt and decrypt,
//     with latency at each.
func bench(ctx context.Context, args []string) error {
	fs := cli.Flags("cgw-pktgen bench", "[flags]", "Builds the back-to-back topology and measures cgw-dataplane: efficiency against\nthe floor 1/(t_forward + t_cipher) and RFC 2544 NDR/PDR per mix, one worker.", os.Stderr)
	dp := fs.String("dataplane", "bin/cgw-dataplane", "cgw-dataplane binary")
	mixesF := fs.String("mixes", "64 1400 imix", "space-separated mixes: a size, imix, or size:weight,…")
	runs := fs.Int("runs", 5, "efficiency runs per mix and series (medians reported)")
	effTrial := fs.Duration("eff-trial", time.Second, "length of each efficiency run (offered as fast as the generator goes)")
	effBurst := fs.Int("eff-burst", 8192, "frames per generator call in the efficiency runs: large, so the generator offers all it can")
	genCPU := fs.Int("gen-cpu", 0, "CPU of the generator (-1: any)")
	workerCPU := fs.String("worker-cpu", "1", "CPU of site A's worker (and of the raw cipher measurement)")
	suite := fs.String("suite", "aes128gcm16", "ESP suite")
	prefix := fs.String("prefix", "cgwpg", "namespace prefix")
	ndr := fs.Bool("ndr", true, "also search NDR/PDR per mix (encrypt and decrypt)")
	eff := fs.Bool("efficiency", true, "measure efficiency against the floor per mix")
	scale := fs.Bool("scaling", true, "also measure 1 vs 2 workers on a two-queue veth pair (mixes other than 64)")
	scaleFlows := fs.Int("scaling-flows", 1024, "flows in the scaling measurement (over the default -src and -dst ranges), one tunnel")
	scaleMax := fs.Float64("scaling-max-pps", 1e6, "highest rate the scaling searches try: the generators share the workers' cores, so it must be one they can pace (they sleep between bursts), not as fast as they go")
	scaleRing := fs.Int("scaling-ring-size", 4096, "the dataplane's -ring-size in the scaling measurement: a veth's queue and the shared cores make bursts a 1024-frame ring cannot ride out (0: its default)")
	scaleRuns := fs.Int("scaling-runs", 3, "RFC 2544 searches per mix, series and worker count in the scaling measurement (medians reported)")
	swan := fs.Bool("strongswan", true, "also compare cgw↔cgw with strongSwan-libipsec↔strongSwan-libipsec back to back")
	out := fs.String("out", "", "directory for bench.json, efficiency.csv, rfc2544.csv and the plots (SVG)")
	promDir := fs.String("prometheus", "", "run a real Prometheus (Debian's package) scraping site A's dataplane every second through the RFC 2544 searches, its data kept in this directory (must be new or empty), and check the bench dashboard's queries against the run")
	dashboard := fs.String("dashboard", "perf/grafana/cgw-bench.json", "the dashboard -prometheus checks")
	sf := addSearchFlags(fs)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	mixes, err := parseMixes(*mixesF)
	if err != nil {
		return err
	}
	st, err := transform.ParseSuite(*suite)
	if err != nil {
		return err
	}
	fl, err := sf.flowsOf()
	if err != nil {
		return err
	}
	cpu := -1
	fmt.Sscan(*workerCPU, &cpu)
	env, err := newEnv(ctx, *dp, *prefix, *workerCPU, st)
	if err != nil {
		return err
	}
	defer func() {
		if env != nil {
			env.close()
		}
	}()
	var progress io.Writer = os.Stdout // a line per trial; -quiet drops the line a second
	var prom *b2b.Prometheus
	startProm := func() error { // once, before the first measurement it is to see
		if *promDir == "" || prom != nil {
			return nil
		}
		if prom, err = env.startPrometheus(ctx, *promDir); err != nil {
			return err
		}
		return nil
	}
	defer func() {
		if prom != nil {
			prom.Stop()
		}
	}()

	rep := benchReport{Machine: machineLine(), Suite: *suite,
		Path: fmt.Sprintf("generator (CPU %d) → cgw-dataplane site A (one worker, CPU %s, AF_XDP copy mode on veth) → XDP sink; %d flow(s)", *genCPU, *workerCPU, fl.N)}
	order := []series{allSeries["forward"], allSeries["encrypt"], allSeries["decrypt"]}
	for _, m := range mixes {
		if !*eff {
			break
		}
		row := effRow{Mix: m.String()}
		per := map[string][]float64{}
		wall := map[string][]float64{}
		for i := 0; i <= *runs; i++ {
			for _, s := range order {
				if err := env.mode(ctx, s.noCrypto); err != nil {
					return err
				}
				d := *effTrial
				if i == 0 {
					d = 200 * time.Millisecond // warm-up, not counted
				}
				t, err := env.load.Trial(ctx, b2b.TrialConfig{Label: s.name, Dir: s.dir, Mix: m, Flows: fl, Duration: d, GenCPU: *genCPU, Burst: *effBurst})
				if err != nil {
					return err
				}
				if i == 0 {
					continue
				}
				per[s.name] = append(per[s.name], t.PerCPUSecond())
				wall[s.name] = append(wall[s.name], t.DeliveredPPS())
				rep.Trials = append(rep.Trials, t)
				if progress != nil {
					fmt.Fprintf(progress, "  %-8s %-6s run %d: offered %.0f pps, delivered %.0f pps (loss %.1f%%), %.0f per dataplane CPU-second (%.3f s CPU)\n",
						s.name, m, i, t.OfferedPPS(), t.DeliveredPPS(), 100*t.Loss(), t.PerCPUSecond(), t.CPUSeconds)
				}
			}
		}
		row.FwdPPS, row.EncPPS, row.DecPPS = median(wall["forward"]), median(wall["encrypt"]), median(wall["decrypt"])
		row.FwdPerCPU, row.EncPerCPU, row.DecPerCPU = median(per["forward"]), median(per["encrypt"]), median(per["decrypt"])
		seal, open, err := mixCipherCost(st, m, cpu)
		if err != nil {
			return err
		}
		row.SealNs, row.OpenNs = float64(seal.Nanoseconds()), float64(open.Nanoseconds())
		if row.FwdPerCPU > 0 {
			row.FwdNs = 1e9 / row.FwdPerCPU
		}
		row.EffEnc = floor.Efficiency(row.EncPerCPU, row.FwdPerCPU, seal)
		row.EffDec = floor.Efficiency(row.DecPerCPU, row.FwdPerCPU, open)
		rep.Efficiency = append(rep.Efficiency, row)
	}
	// Prometheus scrapes the RFC 2544 searches, not the efficiency runs:
	// its scrapes cost the dataplane CPU, which would be counted against
	// the efficiency.
	if err := startProm(); err != nil {
		return err
	}
	if *ndr {
		for _, s := range []series{allSeries["encrypt"], allSeries["decrypt"]} {
			if err := env.mode(ctx, s.noCrypto); err != nil {
				return err
			}
			for _, m := range mixes {
				r, err := searchOne(ctx, env.load, sf, s, m, fl, *genCPU, progress)
				if err != nil {
					return err
				}
				rep.RFC2544 = append(rep.RFC2544, r)
			}
		}
	}
	var dashErr error
	if prom != nil {
		// After the measurements: frames A drops for TTL, so the drops
		// panel shows a reason (a run has no pipeline drops otherwise).
		if err := env.mode(ctx, false); err != nil {
			return err
		}
		if err := env.load.TTLExpired(ctx, 100); err != nil {
			return err
		}
		rep.Dashboard, err = prom.CheckDashboard(ctx, *dashboard, 15*time.Second)
		if err != nil {
			return err
		}
		for _, c := range rep.Dashboard {
			if c.Series == 0 {
				dashErr = fmt.Errorf("bench: %s: panel %q has no data for this run (query %s %s); the figures above stand, the dashboard needs fixing", *dashboard, c.Panel, c.Query, c.Err)
			}
		}
		prom.Stop()
		prom = nil
	}
	env.close()
	env = nil
	if *scale {
		var sm []pktgen.Mix
		for _, m := range mixes {
			if m.String() != "64" {
				sm = append(sm, m)
			}
		}
		rep.ScalingRuns, rep.ScalingRing = *scaleRuns, *scaleRing
		sfl, err := manyFlows(*scaleFlows)
		if err != nil {
			return err
		}
		if rep.Scaling, err = scaling(ctx, *dp, *prefix+"s", st, sm, sfl, *scaleRuns, *effTrial, *scaleMax, *scaleRing, sf, progress); err != nil {
			return err
		}
	}
	if *swan {
		if rep.StrongSwan, err = compareStrongSwan(ctx, *dp, *prefix+"w", mixes, fl, *runs, *effTrial, *effBurst, sf, progress); err != nil {
			return err
		}
	}
	rep.write(os.Stdout, *runs, *sf.pdr/100)
	if *out != "" {
		if err := rep.save(*out); err != nil {
			return err
		}
	}
	return dashErr
}

// benchReport is what bench measured, as bench.json holds it.
type benchReport struct {
	Machine     string           `json:"machine"`
	Path        string           `json:"path"`
	Suite       string           `json:"suite"`
	Efficiency  []effRow         `json:"efficiency"`
	RFC2544     []rfc2544.Row    `json:"rfc2544"`
	Trials      []pktgen.Trial   `json:"efficiency_trials"`
	Scaling     []scaleRow       `json:"scaling"`
	ScalingRuns int              `json:"scaling_runs"`
	ScalingRing int              `json:"scaling_ring_size"`
	Dashboard   []b2b.PanelCheck `json:"dashboard,omitempty"`
	StrongSwan  []swanRow        `json:"strongswan"`
}

// effRow is one mix's efficiency figures (medians of the runs).
type effRow struct {
	Mix                             string  `json:"mix"`
	FwdPPS, EncPPS, DecPPS          float64 `json:"-"`
	FwdPerCPU, EncPerCPU, DecPerCPU float64 `json:"-"`
	FwdNs, SealNs, OpenNs           float64 `json:"-"`
	EffEnc, EffDec                  float64 `json:"-"`
}

func (r effRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"mix": r.Mix,
		"forward_pps": r.FwdPPS, "encrypt_pps": r.EncPPS, "decrypt_pps": r.DecPPS,
		"forward_pkt_per_cpu_s": r.FwdPerCPU, "encrypt_pkt_per_cpu_s": r.EncPerCPU, "decrypt_pkt_per_cpu_s": r.DecPerCPU,
		"t_forward_ns": r.FwdNs, "t_seal_ns": r.SealNs, "t_open_ns": r.OpenNs,
		"efficiency_encrypt": r.EffEnc, "efficiency_decrypt": r.EffDec})
}

func (rep benchReport) write(w io.Writer, runs int, pdr float64) {
	fmt.Fprintf(w, "cgw-pktgen bench\n%s\npath: %s\n", rep.Machine, rep.Path)
	fmt.Fprintf(w, "efficiency against the floor 1/(t_forward + t_cipher), %s; medians of %d runs per mix and series, alternating, offered as fast as the generator goes:\n", rep.Suite, runs)
	fmt.Fprintf(w, "%-8s %10s %10s %10s  %12s %12s %12s  %8s %8s %8s  %7s %7s\n", "mix", "fwd pps", "enc pps", "dec pps",
		"fwd pkt/CPUs", "enc pkt/CPUs", "dec pkt/CPUs", "t_fwd ns", "seal ns", "open ns", "enc eff", "dec eff")
	for _, r := range rep.Efficiency {
		fmt.Fprintf(w, "%-8s %10.0f %10.0f %10.0f  %12.0f %12.0f %12.0f  %8.0f %8.0f %8.0f  %6.1f%% %6.1f%%\n", r.Mix,
			r.FwdPPS, r.EncPPS, r.DecPPS, r.FwdPerCPU, r.EncPerCPU, r.DecPerCPU, r.FwdNs, r.SealNs, r.OpenNs, 100*r.EffEnc, 100*r.EffDec)
	}
	fmt.Fprintln(w, "fwd: lan → A → wire with -no-crypto; enc: the same with ESP; dec: ESP of the B→A SA (anti-replay off) wire → A → lan. pkt/CPUs: frames delivered per second of site A's CPU time (schedstat); t_cipher: the raw AEAD per delivered frame (IMIX: weighted, 1518-byte frames as two fragments), thread CPU time on the worker's core; eff = pkt/CPUs × (t_fwd + t_cipher).")
	if len(rep.RFC2544) > 0 {
		fmt.Fprintf(w, "RFC 2544 throughput, one worker:\n")
		rfc2544.WriteTable(w, rep.RFC2544, pdr)
	}
	if len(rep.Scaling) > 0 {
		writeScaling(w, rep.Scaling, rep.ScalingRuns, pdr, rep.ScalingRing)
	}
	if len(rep.StrongSwan) > 0 {
		fwd := map[string]float64{}
		for _, r := range rep.Efficiency {
			fwd[r.Mix] = r.FwdNs
		}
		writeSwan(w, rep.StrongSwan, runs, fwd)
	}
	if len(rep.Dashboard) > 0 {
		ok := 0
		for _, c := range rep.Dashboard {
			if c.Series > 0 {
				ok++
			}
		}
		fmt.Fprintf(w, "bench dashboard against this run's Prometheus: %d of %d queries return data\n", ok, len(rep.Dashboard))
		for _, c := range rep.Dashboard {
			fmt.Fprintf(w, "  %-40s %3d series  %s\n", c.Panel, c.Series, c.Err)
		}
	}
}

func (rep benchReport) save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "bench.json"))
	if err != nil {
		return err
	}
	e := json.NewEncoder(f)
	e.SetIndent("", "  ")
	err = e.Encode(rep)
	f.Close()
	if err != nil {
		return err
	}
	var eff strings.Builder
	eff.WriteString("mix,forward_pps,encrypt_pps,decrypt_pps,forward_pkt_per_cpu_s,encrypt_pkt_per_cpu_s,decrypt_pkt_per_cpu_s,t_forward_ns,t_seal_ns,t_open_ns,efficiency_encrypt,efficiency_decrypt\n")
	for _, r := range rep.Efficiency {
		fmt.Fprintf(&eff, "%s,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.1f,%.1f,%.1f,%.4f,%.4f\n", r.Mix, r.FwdPPS, r.EncPPS, r.DecPPS,
			r.FwdPerCPU, r.EncPerCPU, r.DecPerCPU, r.FwdNs, r.SealNs, r.OpenNs, r.EffEnc, r.EffDec)
	}
	if err := os.WriteFile(filepath.Join(dir, "efficiency.csv"), []byte(eff.String()), 0o644); err != nil {
		return err
	}
	if len(rep.RFC2544) > 0 {
		if err := writeFiles(filepath.Join(dir, "rfc2544.csv"), "", func(w io.Writer) error { return rfc2544.WriteCSV(w, rep.RFC2544) }, nil); err != nil {
			return err
		}
	}
	var effPts []plots.Efficiency
	for _, r := range rep.Efficiency {
		effPts = append(effPts, plots.Efficiency{Mix: r.Mix, Forward: r.FwdPerCPU, Encrypt: r.EncPerCPU, Decrypt: r.DecPerCPU,
			FloorEnc: perSecond(r.FwdNs + r.SealNs), FloorDec: perSecond(r.FwdNs + r.OpenNs)})
	}
	var sc []plots.Scaling
	for _, r := range rep.Scaling {
		sc = append(sc, plots.Scaling{Label: r.Series + " " + r.Mix, Wall: [2]float64{r.PPS1, r.PPS2}, PerCPU: [2]float64{r.PerCPU1, r.PerCPU2}})
	}
	var cmp []plots.Compare
	for _, r := range rep.StrongSwan {
		if r.Setup != "cgw" {
			continue
		}
		for _, q := range rep.StrongSwan {
			if q.Setup == "strongswan" && q.Mix == r.Mix {
				cmp = append(cmp, plots.Compare{Mix: r.Mix, CgwPerCPU: r.PerCPU, SwanPerCPU: q.PerCPU, CgwNDR: r.NDR, SwanNDR: q.NDR})
			}
		}
	}
	return plots.Write(dir, rep.Machine, effPts, rep.RFC2544, sc, cmp)
}

func perSecond(ns float64) float64 {
	if ns <= 0 {
		return 0
	}
	return 1e9 / ns
}

// mixCipherCost is the raw seal and open cost per delivered frame of a
// mix: each size's inner packet, or its fragments over the tunnel MTU,
// weighted as the mix is.
func mixCipherCost(st transform.Suite, m pktgen.Mix, cpu int) (seal, open time.Duration, err error) {
	cache := map[int]floor.Cost{}
	var sum floor.Cost
	frames := 0
	for i, size := range m.Sizes {
		ip := size - 18
		lens := []int{ip}
		if ip > b2b.TunnelMTU {
			step := (b2b.TunnelMTU - 20) &^ 7
			lens = nil
			for data := ip - 20; data > 0; data -= step {
				lens = append(lens, 20+min(step, data))
			}
		}
		for _, l := range lens {
			c, ok := cache[l]
			if !ok {
				if c, err = floor.Measure(st, l, 20000, 5, cpu); err != nil {
					return 0, 0, err
				}
				cache[l] = c
			}
			sum.Seal += c.Seal * time.Duration(m.Weights[i])
			sum.Open += c.Open * time.Duration(m.Weights[i])
			frames += m.Weights[i]
		}
	}
	return sum.Seal / time.Duration(frames), sum.Open / time.Duration(frames), nil
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
