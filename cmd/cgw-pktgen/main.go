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
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"time"

	"github.com/cgw-project/cgw/bench/pktgen"
)

func usage() {
	fmt.Fprintf(os.Stderr, "usage: cgw-pktgen gen|sink|bench [flags]  (cgw-pktgen <cmd> -h for flags)\n")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(ctx, os.Args[2:])
	case "sink":
		err = sink(ctx, os.Args[2:])
	case "bench":
		err = bench(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cgw-pktgen:", err)
		os.Exit(1)
	}
}

func gen(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	ns := fs.String("netns", "", "network namespace of -dev (default: this one)")
	dev := fs.String("dev", "", "device to send from (required)")
	dstMAC := fs.String("dst-mac", "", "destination MAC address: the receiving device's (required)")
	size := fs.Int("size", 64, "Ethernet frame size with FCS, 64..1518")
	count := fs.Uint64("count", 1000000, "frames to send (bounded)")
	timeout := fs.Duration("timeout", 30*time.Second, "stop after this long")
	src := fs.String("src", "198.18.0.2:9", "source address:port (198.18.0.0/15)")
	dst := fs.String("dst", "198.19.0.2:9", "destination address:port (198.18.0.0/15)")
	cpu := fs.Int("cpu", -1, "pin the generator to this CPU (-1: don't)")
	fs.Parse(args)
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
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	ns := fs.String("netns", "", "network namespace of -dev (default: this one)")
	dev := fs.String("dev", "", "device to count on (required; its XDP slot must be free)")
	dur := fs.Duration("duration", 10*time.Second, "count for at most this long")
	idle := fs.Duration("idle", time.Second, "stop once traffic has stopped for this long")
	fs.Parse(args)
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
