package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cgw-project/cgw/bpf"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/dataplane/gateway"
	"github.com/cgw-project/cgw/internal/buildinfo"
	"github.com/cgw-project/cgw/internal/cli"
	"github.com/cgw-project/cgw/internal/harden"
	"github.com/cgw-project/cgw/internal/logging"
	"github.com/cgw-project/cgw/internal/sdnotify"
)

type options struct {
	config     string
	instance   string
	outside    string
	inside     string
	queues     int
	cpus       string
	batch      int
	metrics    string
	noCrypto   bool
	xdpMode    string
	copyMode   bool
	zeroCopy   bool
	noSlowPath bool
	txBudget   int
	ringSize   int
	detach     bool // detach the instance's XDP programs and exit
	detachExit bool // detach them when the dataplane stops
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("cgw-dataplane: ")
	// SA keys live in this process: no core files, no ptrace by non-root.
	if err := harden.Process(); err != nil {
		log.Fatal(err)
	}
	var o options
	fs := flag.NewFlagSet("cgw-dataplane", flag.ExitOnError)
	fs.StringVar(&o.config, "config", "", "YAML configuration file")
	fs.StringVar(&o.instance, "instance", "", "pinned-map instance name (default: gateway.name or cgw)")
	fs.StringVar(&o.outside, "outside-if", "", "outside (WAN) interface")
	fs.StringVar(&o.outside, "outside", "", "same as -outside-if")
	fs.StringVar(&o.inside, "inside-if", "", "inside (LAN) interface")
	fs.StringVar(&o.inside, "inside", "", "same as -inside-if")
	fs.IntVar(&o.queues, "queues", 0, "NIC queues to serve, one worker each (0: one per CPU, at most the RX queues in use)")
	fs.StringVar(&o.cpus, "cpus", "", "cores to pin workers to, comma-separated (default: config, else no pinning)")
	fs.IntVar(&o.batch, "batch", 0, "descriptors per ring operation (default: config, else 64)")
	fs.StringVar(&o.metrics, "metrics", "", "Prometheus listen address (default: config, else 127.0.0.1:9472; off disables)")
	fs.BoolVar(&o.noCrypto, "no-crypto", false, "benchmark baseline: the same stages with ESP switched off")
	fs.StringVar(&o.xdpMode, "xdp-mode", "native", "XDP attach mode: native or generic")
	fs.BoolVar(&o.copyMode, "copy", false, "force AF_XDP copy mode")
	fs.BoolVar(&o.zeroCopy, "zero-copy", false, "refuse to run unless every AF_XDP socket is in zero-copy mode (default: config, else fall back to copy mode)")
	fs.BoolVar(&o.noSlowPath, "no-slowpath", false, "do not create per-tunnel TUN devices")
	fs.IntVar(&o.txBudget, "tx-budget", 0, "copy-mode descriptors per sendto (0: kernel default)")
	fs.IntVar(&o.ringSize, "ring-size", 0, "every AF_XDP ring's size, a power of two 256–16384 (default: config, else 1024)")
	fs.BoolVar(&o.detach, "detach", false, "detach the instance's pinned XDP programs and exit (no dataplane is started)")
	fs.BoolVar(&o.detachExit, "detach-on-exit", false, "detach the XDP programs when stopping (default: they stay attached through pinned links for a restart)")
	var lf logging.Flags
	lf.Register(fs)
	version := buildinfo.Flag(fs, "cgw-dataplane", os.Stdout)
	cli.ManUsage(fs, synopsis, description, "cgw-dataplane(8)")
	fs.Parse(os.Args[1:])
	version()
	// The log package's lines go through slog from here (-log-format).
	if _, err := lf.Logger(os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "cgw-dataplane: %v\n", err)
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		log.Fatalf("unexpected arguments %q: every setting is a flag (see -h)", fs.Args())
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

// resolve applies the configuration file under the flags and returns the
// gateway's options and the metrics address.
func resolve(o options) (gateway.Options, string, error) {
	g := gateway.Options{
		Instance: o.instance, Outside: o.outside, Inside: o.inside, Queues: o.queues,
		Batch: o.batch, NoCrypto: o.noCrypto, Copy: o.copyMode, ZeroCopy: o.zeroCopy, NoSlowPath: o.noSlowPath, TxBudget: o.txBudget, RingSize: o.ringSize,
		Detach: o.detachExit,
	}
	metricsAddr := o.metrics
	if o.config != "" {
		cfg, err := config.Load(o.config)
		if err != nil {
			return g, "", err
		}
		c := cfg.Gateway
		if g.Instance == "" {
			g.Instance = c.Name
		}
		if g.Outside == "" {
			g.Outside = c.Outside.Name
		}
		if g.Inside == "" {
			g.Inside = c.Inside.Name
		}
		if g.Batch == 0 {
			g.Batch = c.Dataplane.BatchSize
		}
		if g.RingSize == 0 {
			g.RingSize = c.Dataplane.RingSize
		}
		g.ZeroCopy = g.ZeroCopy || c.Dataplane.ZeroCopy
		if metricsAddr == "" {
			metricsAddr = c.Observability.DataplaneMetrics
		}
		if o.cpus == "" {
			g.CPUs = c.Dataplane.CPUs
		}
		if a := c.Inside.Address.Addr(); a.Is4() {
			g.Gateway4 = a
		} else if a.Is6() {
			g.Gateway6 = a
		}
	}
	if g.Instance == "" {
		g.Instance = config.DefaultGatewayName
	}
	if g.Batch == 0 {
		g.Batch = config.DefaultBatchSize
	}
	if metricsAddr == "" {
		metricsAddr = config.DefaultDataplaneMetric
	}
	if o.cpus != "" {
		for _, f := range strings.Split(o.cpus, ",") {
			c, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || c < 0 {
				return g, "", fmt.Errorf("-cpus %q: want a comma-separated list of CPU numbers such as 0,1", o.cpus)
			}
			g.CPUs = append(g.CPUs, c)
		}
	}
	switch o.xdpMode {
	case "", "native":
		g.XDPMode = bpf.Native
	case "generic":
		g.XDPMode = bpf.Generic
	default:
		return g, "", fmt.Errorf("-xdp-mode %q: want native or generic", o.xdpMode)
	}
	return g, metricsAddr, nil
}

func run(o options) error {
	if o.detach {
		// Only the instance is needed: from -instance or the config.
		o.outside, o.inside = "-", "-"
	}
	opts, metricsAddr, err := resolve(o)
	if err != nil {
		return err
	}
	if o.detach {
		if err := gateway.Detach(opts.Instance); err != nil {
			return fmt.Errorf("detaching the XDP programs of instance %s: %w", opts.Instance, err)
		}
		log.Printf("instance %s: XDP programs detached (pinned links removed)", opts.Instance)
		return nil
	}
	opts.OnRunning = func(summary string) { sdnotify.Ready(summary) } // systemd Type=notify
	gw, err := gateway.New(opts)
	if err != nil {
		return err
	}
	if metricsAddr != "off" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(buildinfo.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), gw.Collector())
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			gw.Close()
			return fmt.Errorf("metrics: listening on %s: %w (set gateway.observability.dataplane_metrics or -metrics; off disables)", metricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() { <-ctx.Done(); sdnotify.Stopping("stopping") }()
	// SIGHUP (a reload, or an SSH hang-up) must not kill the dataplane:
	// tunnels, SAs and routes arrive through the maps and need no reload.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			log.Printf("SIGHUP: nothing to reload (tunnels, SAs and routes come from the pinned maps; interfaces, CPUs and gateway.dataplane take effect at restart)")
		}
	}()
	return gw.Run(ctx)
}
