package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/cgw-project/cgw/bench/pktgen"
	"github.com/cgw-project/cgw/bench/procstat"
	"github.com/cgw-project/cgw/internal/cli"
)

func gen(ctx context.Context, args []string) error {
	fs := cli.Flags("cgw-pktgen gen", "[flags]", "Sends bounded UDP traffic out of -dev with BPF_PROG_RUN live frames (the veth\npeer must run a native XDP program), paced, over many flows, one progress\nline a second, a final table, and CSV/JSON if asked.", os.Stderr)
	ns := fs.String("netns", "", "network namespace of -dev (default: this one)")
	dev := fs.String("dev", "", "device to send from (required)")
	dstMAC := fs.String("dst-mac", "", "destination MAC address: the receiving device's (required)")
	size := fs.Int("size", 64, "Ethernet frame size with FCS, 64..1518 (when -mix is not given)")
	mixF := fs.String("mix", "", "frame sizes: imix (64/570/1518 at 7:4:1), a size, or size:weight,… (default: -size)")
	rateF := fs.String("rate", "0", "offered rate: frames/s (500k, 1.2M) or bit/s of frames with FCS (800Mbps); 0: as fast as possible")
	count := fs.Uint64("count", 1000000, "frames to send (bounded)")
	dur := fs.Duration("duration", 30*time.Second, "stop after this long")
	src := fs.String("src", "198.18.0.2:9", "source blocks ADDR[-ADDR|/BITS][:PORT[-PORT]],… (198.18.0.0/15)")
	dst := fs.String("dst", "198.19.0.2:9", "destination blocks, as -src; flows alternate between blocks (several tunnels' prefixes)")
	flows := fs.Int("flows", 1, fmt.Sprintf("flows, spread over the blocks (1..%d)", pktgen.MaxFlows))
	burst := fs.Int("burst", pktgen.DefaultBurst, "frames per BPF_PROG_RUN call (one flow and size)")
	noDF := fs.Bool("no-df", false, "leave DF clear (a gateway then fragments frames over its tunnel MTU)")
	cpu := fs.Int("cpu", -1, "pin the generator to this CPU (-1: don't)")
	sinkNS := fs.String("sink-netns", "", "count delivered frames with an XDP sink on -sink-dev in this namespace")
	sinkDev := fs.String("sink-dev", "", "the sink's device (its XDP slot must be free)")
	pid := fs.Int("pid", 0, "report this process's CPU (the device under test, e.g. cgw-dataplane)")
	label := fs.String("label", "gen", "series name in the table, CSV and JSON")
	csvF := fs.String("csv", "", "also write the result as CSV to this file")
	jsonF := fs.String("json", "", "also write the result as JSON to this file")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if *dev == "" || *dstMAC == "" {
		return fmt.Errorf("gen: -dev and -dst-mac are required")
	}
	mix := pktgen.Fixed(*size)
	if *mixF != "" {
		var err error
		if mix, err = pktgen.ParseMix(*mixF); err != nil {
			return err
		}
	}
	rate, err := pktgen.ParseRate(*rateF)
	if err != nil {
		return err
	}
	mac, err := net.ParseMAC(*dstMAC)
	if err != nil {
		return fmt.Errorf("gen: -dst-mac: %w", err)
	}
	fl := pktgen.Flows{N: *flows}
	if fl.Src, err = pktgen.ParseEndpoints(*src, 9); err != nil {
		return err
	}
	if fl.Dst, err = pktgen.ParseEndpoints(*dst, 9); err != nil {
		return err
	}
	if err := fl.Valid(); err != nil {
		return err
	}
	g, err := pktgen.NewGenerator()
	if err != nil {
		return err
	}
	defer g.Close()
	var sink *pktgen.Sink
	if *sinkDev != "" {
		if err := pktgen.InNetns(*sinkNS, func() (err error) { sink, err = pktgen.NewSink(*sinkDev); return err }); err != nil {
			return err
		}
		defer sink.Close()
	}
	live := &pktgen.Live{}
	mon := &pktgen.Monitor{W: os.Stdout, Live: live}
	var d0 uint64
	if sink != nil {
		d0, _, _ = sink.Count()
		mon.Delivered = func() (uint64, error) { p, _, err := sink.Count(); return p - d0, err }
	}
	var c0 time.Duration
	if *pid > 0 {
		if c0, err = procstat.CPUTime(*pid); err != nil {
			return fmt.Errorf("gen: -pid %d: %w", *pid, err)
		}
		mon.CPU = func() (time.Duration, error) { c, err := procstat.CPUTime(*pid); return c - c0, err }
	}
	var res pktgen.GenResult
	err = pktgen.InNetns(*ns, func() error {
		ifi, err := net.InterfaceByName(*dev)
		if err != nil {
			return fmt.Errorf("gen: -dev %s: %w", *dev, err)
		}
		plan, err := pktgen.BuildPlan(mix, fl.N, *burst, func(f, size int) ([]pktgen.Template, error) {
			s, d := fl.Flow(f)
			b, err := pktgen.Frame{SrcMAC: ifi.HardwareAddr, DstMAC: mac, Src: s, Dst: d, Size: size, NoDF: *noDF}.Build()
			return []pktgen.Template{{Frame: b, Out: 1}}, err
		})
		if err != nil {
			return err
		}
		mon.Start()
		res, err = g.RunPlan(ctx, plan, pktgen.RunConfig{Dev: *dev, Count: *count, Timeout: *dur, CPU: *cpu, Rate: rate, Live: live})
		return err
	})
	if err != nil {
		return err
	}
	tr := pktgen.Trial{Label: *label, Mix: mix.String(), Flows: fl.N, TargetPPS: rate.FramesPerSecond(mix.MeanSize()),
		Sent: res.Sent, Bytes: res.Bytes, Expected: res.Expected, Seconds: res.Elapsed.Seconds()}
	if sink != nil {
		time.Sleep(200 * time.Millisecond) // in flight
		p, _, err := sink.Count()
		if err != nil {
			return err
		}
		tr.Delivered = p - d0
	}
	mon.Stop()
	if mon.CPU != nil {
		c, _ := mon.CPU()
		tr.CPUSeconds = c.Seconds()
	}
	return writeTrials(os.Stdout, *csvF, *jsonF, []pktgen.Trial{tr})
}

// writeTrials prints the table and writes CSV and JSON files if asked.
func writeTrials(w io.Writer, csvPath, jsonPath string, ts []pktgen.Trial) error {
	pktgen.WriteTable(w, ts)
	return writeFiles(csvPath, jsonPath, func(w io.Writer) error { return pktgen.WriteCSV(w, ts) }, func(w io.Writer) error { return pktgen.WriteJSON(w, ts) })
}
