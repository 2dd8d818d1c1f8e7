// Command cgw-pktgen generates and counts benchmark traffic in the kernel
// (bench/pktgen) and runs cgw's forwarding benchmark.
//
//	cgw-pktgen gen   -netns NS -dev X -dst-mac MAC -size 64 -count N [-dst 198.19.0.2:9] [-src 198.18.0.2:9]
//	cgw-pktgen sink  -netns NS -dev Y -duration 10s
//	cgw-pktgen bench [-sizes 64,1400] [-runs 5] [-count N] [-dataplane bin/cgw-dataplane]
//
// gen sends a bounded burst of one UDP frame with BPF_PROG_RUN live frames
// out of X (a veth's peer must run a native XDP program to accept it); sink
// counts and drops in XDP on Y and prints the rate; bench builds the
// back-to-back topology (bench/b2b) and measures cgw-dataplane with and
// without ESP through the same namespaces with the same generator.
// Addresses are from 198.18.0.0/15 only. Needs root. To keep a record in
// the benchmark history: perf/results/record.sh -- cgw-pktgen bench ...
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"time"

	"github.com/cgw-project/cgw/bench/pktgen"
	"github.com/cgw-project/cgw/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	withCtx := func(name string, f func(context.Context, []string) error) func(io.Writer, io.Writer, []string) int {
		return cli.RunE("cgw-pktgen "+name, func(args []string) error { return f(ctx, args) })
	}
	p := cli.Program{Name: "cgw-pktgen", Summary: "benchmark traffic generator and sink (XDP), and cgw's forwarding benchmark",
		Commands: []cli.Command{
			{Name: "gen", Summary: "send a bounded burst of one UDP frame (BPF_PROG_RUN live frames)", Run: withCtx("gen", gen)},
			{Name: "sink", Summary: "count and drop frames in XDP and print the rate", Run: withCtx("sink", sink)},
			{Name: "bench", Summary: "cgw-dataplane with and without ESP, generator to sink", Run: withCtx("bench", bench)},
		}}
	code := p.Main(os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func gen(ctx context.Context, args []string) error {
	fs := cli.Flags("cgw-pktgen gen", "[flags]", "Sends a bounded burst of one UDP frame out of -dev with BPF_PROG_RUN\nlive frames (the veth peer must run a native XDP program).", os.Stderr)
	ns := fs.String("netns", "", "network namespace of -dev (default: this one)")
	dev := fs.String("dev", "", "device to send from (required)")
	dstMAC := fs.String("dst-mac", "", "destination MAC address: the receiving device's (required)")
	size := fs.Int("size", 64, "Ethernet frame size with FCS, 64..1518")
	count := fs.Uint64("count", 1000000, "frames to send (bounded)")
	timeout := fs.Duration("timeout", 30*time.Second, "stop after this long")
	src := fs.String("src", "198.18.0.2:9", "source address:port (198.18.0.0/15)")
	dst := fs.String("dst", "198.19.0.2:9", "destination address:port (198.18.0.0/15)")
	cpu := fs.Int("cpu", -1, "pin the generator to this CPU (-1: don't)")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if *dev == "" || *dstMAC == "" {
		return fmt.Errorf("gen: -dev and -dst-mac are required")
	}
	f := pktgen.Frame{Size: *size}
	var err error
	if f.DstMAC, err = net.ParseMAC(*dstMAC); err != nil {
		return fmt.Errorf("gen: -dst-mac: %w", err)
	}
	if f.Src, err = netip.ParseAddrPort(*src); err != nil {
		return fmt.Errorf("gen: -src: %w", err)
	}
	if f.Dst, err = netip.ParseAddrPort(*dst); err != nil {
		return fmt.Errorf("gen: -dst: %w", err)
	}
	g, err := pktgen.NewGenerator()
	if err != nil {
		return err
	}
	defer g.Close()
	var res pktgen.GenResult
	err = pktgen.InNetns(*ns, func() error {
		ifi, err := net.InterfaceByName(*dev)
		if err != nil {
			return fmt.Errorf("gen: -dev %s: %w", *dev, err)
		}
		f.SrcMAC = ifi.HardwareAddr
		frame, err := f.Build()
		if err != nil {
			return err
		}
		res, err = g.Run(ctx, frame, pktgen.RunConfig{Dev: *dev, Count: *count, Timeout: *timeout, CPU: *cpu})
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("sent %d frames of %d B in %v: %.0f pps offered\n", res.Sent, *size, res.Elapsed.Round(time.Millisecond), res.PPS())
	return nil
}

func sink(ctx context.Context, args []string) error {
	fs := cli.Flags("cgw-pktgen sink", "[flags]", "Counts and drops frames in XDP on -dev and prints the rate.", os.Stderr)
	ns := fs.String("netns", "", "network namespace of -dev (default: this one)")
	dev := fs.String("dev", "", "device to count on (required; its XDP slot must be free)")
	dur := fs.Duration("duration", 10*time.Second, "count for at most this long")
	idle := fs.Duration("idle", time.Second, "stop once traffic has stopped for this long")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if *dev == "" {
		return fmt.Errorf("sink: -dev is required")
	}
	var s *pktgen.Sink
	if err := pktgen.InNetns(*ns, func() (err error) { s, err = pktgen.NewSink(*dev); return err }); err != nil {
		return err
	}
	defer s.Close()
	m, err := s.Measure(ctx, *dur, *idle)
	if err != nil {
		return err
	}
	fmt.Printf("received %d frames, %d bytes; %.0f pps over %v\n", m.Packets, m.Bytes, m.PPS(), m.Span.Round(time.Millisecond))
	return nil
}
