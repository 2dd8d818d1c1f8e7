// Command cgw-pktgen generates and counts benchmark traffic in the kernel
// (bench/pktgen) and runs cgw's forwarding benchmark.
//
//	cgw-pktgen gen   -netns NS -dev X -dst-mac MAC [-mix imix|1400|64:7,570:4,1518:1] [-rate 500k|800Mbps]
//	                 [-src 198.18.0.2-198.18.0.200:1024-2047] [-dst 198.19.0.0/24:9,198.19.1.0/24:9] [-flows N]
//	                 -count N [-duration 10s] [-sink-netns NS -sink-dev Y] [-pid PID] [-csv F] [-json F]
//	cgw-pktgen sink  -netns NS -dev Y -duration 10s
//	cgw-pktgen rfc2544 [-mixes "64 1400 imix"] [-series encrypt,decrypt] [-trial 2s] [-pdr 0.5] [-flows N] [-csv F] [-json F]
//	cgw-pktgen bench [-sizes 64,1400] [-runs 5] [-count N] [-dataplane bin/cgw-dataplane]
//
// gen sends bounded, paced UDP traffic (fixed size, Simple IMIX or a custom
// mix; many flows over address/port ranges and several prefixes) with
// BPF_PROG_RUN live frames out of X (a veth's peer must run a native XDP
// program to accept it), printing one progress line a second (offered,
// and with a sink and a pid: delivered, loss, CPU) and a final table; sink
// counts and drops in XDP on Y and prints the rate; rfc2544 searches NDR
// and PDR (RFC 2544 §26.1) through site A of the back-to-back topology,
// with a latency sample at each rate found; bench builds the
// back-to-back topology (bench/b2b) and measures cgw-dataplane with and
// without ESP through the same namespaces with the same generator.
// Addresses are from 198.18.0.0/15 only. Needs root. To keep a record in
// the benchmark history: perf/results/record.sh -- cgw-pktgen bench ...
package main

import (
	"context"
	"fmt"
	"io"
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
			{Name: "rfc2544", Summary: "RFC 2544 NDR/PDR search per series and mix, with latency, through cgw-dataplane", Run: withCtx("rfc2544", rfc2544Cmd)},
			{Name: "bench", Summary: "cgw-dataplane with and without ESP, generator to sink", Run: withCtx("bench", bench)},
		}}
	code := p.Main(os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
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
