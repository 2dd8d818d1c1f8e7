package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cgw-project/cgw/bench/b2b"
	"github.com/cgw-project/cgw/bench/pktgen"
	"github.com/cgw-project/cgw/bench/rfc2544"
	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/internal/cli"
)

// series is one kind of path through site A.
type series struct {
	name     string
	noCrypto bool
	dir      b2b.Direction
}

var allSeries = map[string]series{
	"forward": {"forward", true, b2b.Outbound},
	"encrypt": {"encrypt", false, b2b.Outbound},
	"decrypt": {"decrypt", false, b2b.Inbound},
}

// searchFlags are the flags of an RFC 2544 search, shared by rfc2544 and
// bench.
type searchFlags struct {
	trial      *time.Duration
	maxRate    *string
	resolution *float64
	pdr        *float64
	latency    *time.Duration
	flows      *int
	src, dst   *string
	burst      *int
	quiet      *bool
}

func addSearchFlags(fs interface {
	Duration(string, time.Duration, string) *time.Duration
	String(string, string, string) *string
	Float64(string, float64, string) *float64
	Int(string, int, string) *int
	Bool(string, bool, string) *bool
}) searchFlags {
	return searchFlags{
		trial:      fs.Duration("trial", 2*time.Second, "length of each trial (bounded also by frames: rate × length)"),
		maxRate:    fs.String("max-rate", "2M", "highest rate tried (frames/s or bit/s); the generator's limit is reported as such"),
		resolution: fs.Float64("resolution", 0.02, "stop when the NDR/PDR bracket is this narrow (relative)"),
		pdr:        fs.Float64("pdr", 0.5, "loss tolerated at the PDR, in percent"),
		latency:    fs.Duration("latency", time.Millisecond, "probe interval of the latency sample at NDR and PDR (0: none)"),
		flows:      fs.Int("flows", 1, "flows, spread over -src and -dst"),
		src:        fs.String("src", defaultSrc, "LAN endpoints of the flows (198.18.0.0/24)"),
		dst:        fs.String("dst", defaultDst, "VPC endpoints of the flows (198.19.0.0/24)"),
		burst:      fs.Int("burst", pktgen.DefaultBurst, "frames per generator call"),
		quiet:      fs.Bool("quiet", false, "no progress line a second during the search trials (a line per trial stays)"),
	}
}

// The flows' default endpoint ranges.
const (
	defaultSrc = "198.18.0.2-198.18.0.201:1024-1279"
	defaultDst = "198.19.0.2-198.19.0.201:9"
)

// manyFlows is n flows over the default ranges.
func manyFlows(n int) (pktgen.Flows, error) {
	src, dst := defaultSrc, defaultDst
	return searchFlags{flows: &n, src: &src, dst: &dst}.flowsOf()
}

func (f searchFlags) flowsOf() (pktgen.Flows, error) {
	fl := pktgen.Flows{N: *f.flows}
	var err error
	if *f.flows == 1 {
		*f.src, *f.dst = b2b.LANHost.String()+":9", b2b.VPCHost.String()+":9"
	}
	if fl.Src, err = pktgen.ParseEndpoints(*f.src, 9); err != nil {
		return fl, err
	}
	if fl.Dst, err = pktgen.ParseEndpoints(*f.dst, 9); err != nil {
		return fl, err
	}
	return fl, fl.Valid()
}

// searchOne runs one RFC 2544 search of a series at a mix on the running
// site A dataplane.
func searchOne(ctx context.Context, load *b2b.Load, f searchFlags, s series, mix pktgen.Mix, fl pktgen.Flows, genCPU int, progress io.Writer) (rfc2544.Row, error) {
	maxRate, err := pktgen.ParseRate(*f.maxRate)
	if err != nil {
		return rfc2544.Row{}, err
	}
	latency := *f.latency
	if s.noCrypto {
		latency = 0 // the forwarder's output is plain: no B to take the probes
	}
	if latency > 0 {
		if err := b2b.CheckProbeMix(mix); err != nil {
			return rfc2544.Row{}, err
		}
	}
	// A short warm-up: cold caches and first neighbour lookups.
	if _, err := load.Trial(ctx, b2b.TrialConfig{Dir: s.dir, Mix: mix, Flows: fl, Rate: pktgen.Rate{PPS: 50000}, Duration: 200 * time.Millisecond, GenCPU: genCPU, Burst: *f.burst}); err != nil {
		return rfc2544.Row{}, err
	}
	measure := func(ctx context.Context, pps float64, withLat bool) (pktgen.Trial, error) {
		c := b2b.TrialConfig{Label: s.name, Dir: s.dir, Mix: mix, Flows: fl, Rate: pktgen.Rate{PPS: pps}, Duration: *f.trial, GenCPU: genCPU, Burst: *f.burst}
		if !*f.quiet {
			c.Progress = progress
		}
		if withLat {
			c.Latency = latency
		}
		if progress != nil {
			fmt.Fprintf(progress, "  %s %s: trial at %.0f pps%s\n", s.name, mix, pps, map[bool]string{true: " with latency probes"}[withLat && latency > 0])
		}
		t, err := load.Trial(ctx, c)
		if err == nil && progress != nil {
			fmt.Fprintf(progress, "  → offered %.0f pps, delivered %d of %d expected, loss %.3f%%\n", t.OfferedPPS(), t.Delivered, t.Expected, 100*t.Loss())
		}
		return t, err
	}
	r, err := rfc2544.Search(ctx, rfc2544.Config{MaxPPS: maxRate.FramesPerSecond(mix.MeanSize()), Resolution: *f.resolution,
		PDRLoss: *f.pdr / 100, Latency: true}, measure)
	return rfc2544.Row{Series: s.name, Mix: mix.String(), Flows: fl.N, Result: r}, err
}

// parseMixes reads a space-separated list of mixes.
func parseMixes(s string) ([]pktgen.Mix, error) {
	var ms []pktgen.Mix
	for _, f := range strings.Fields(s) {
		m, err := pktgen.ParseMix(f)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no mix given")
	}
	return ms, nil
}

func rfc2544Cmd(ctx context.Context, args []string) error {
	fs := cli.Flags("cgw-pktgen rfc2544", "[flags]", "RFC 2544 throughput: binary search for NDR (no loss) and PDR (loss ≤ -pdr %)\nthrough site A of the back-to-back topology, per series and mix, with a\nlatency sample at the rates found.", os.Stderr)
	dp := fs.String("dataplane", "bin/cgw-dataplane", "cgw-dataplane binary")
	mixesF := fs.String("mixes", "64 1400 imix", "space-separated mixes: a size, imix, or size:weight,…")
	seriesF := fs.String("series", "encrypt,decrypt", "paths: forward (-no-crypto), encrypt, decrypt")
	genCPU := fs.Int("gen-cpu", 0, "CPU of the generator (-1: any)")
	workerCPU := fs.String("worker-cpu", "1", "CPU of site A's worker")
	prefix := fs.String("prefix", "cgwrf", "namespace prefix")
	csvF := fs.String("csv", "", "write the searches as CSV here")
	jsonF := fs.String("json", "", "write the searches with every trial as JSON here")
	sf := addSearchFlags(fs)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	mixes, err := parseMixes(*mixesF)
	if err != nil {
		return err
	}
	var ss []series
	for _, n := range strings.Split(*seriesF, ",") {
		s, ok := allSeries[strings.TrimSpace(n)]
		if !ok {
			return fmt.Errorf("rfc2544: -series %q: want forward, encrypt or decrypt", n)
		}
		ss = append(ss, s)
	}
	fl, err := sf.flowsOf()
	if err != nil {
		return err
	}
	env, err := newEnv(ctx, *dp, *prefix, *workerCPU, transform.Suite{Encr: transform.ENCR_AES_GCM_16, KeyBits: 128})
	if err != nil {
		return err
	}
	defer env.close()
	var progress io.Writer = os.Stdout // a line per trial; -quiet drops the line a second
	var rows []rfc2544.Row
	for _, s := range ss {
		if err := env.mode(ctx, s.noCrypto); err != nil {
			return err
		}
		for _, m := range mixes {
			r, err := searchOne(ctx, env.load, sf, s, m, fl, *genCPU, progress)
			if err != nil {
				return err
			}
			rows = append(rows, r)
		}
	}
	fmt.Println(machineLine())
	fmt.Printf("path: generator (CPU %d) → cgw-dataplane site A (one worker, CPU %s) → XDP sink; trials of %v, resolution %.1f%%, PDR loss ≤ %.2f%%; latency: probes every %v at NDR and PDR (outbound through B to vpc, inbound to lan; kernel receive timestamps)\n",
		*genCPU, *workerCPU, *sf.trial, 100**sf.resolution, *sf.pdr, *sf.latency)
	rfc2544.WriteTable(os.Stdout, rows, *sf.pdr/100)
	return writeFiles(*csvF, *jsonF, func(w io.Writer) error { return rfc2544.WriteCSV(w, rows) }, func(w io.Writer) error { return rfc2544.WriteJSON(w, rows) })
}
