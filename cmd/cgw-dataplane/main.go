package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cgw-project/cgw/bpf"
	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/dataplane/afxdp"
	"github.com/cgw-project/cgw/dataplane/metrics"
	"github.com/cgw-project/cgw/dataplane/neigh"
	"github.com/cgw-project/cgw/dataplane/nic"
	"github.com/cgw-project/cgw/dataplane/tables"
	"github.com/cgw-project/cgw/dataplane/worker"
	"github.com/cgw-project/cgw/internal/buildinfo"
	"github.com/cgw-project/cgw/internal/harden"
	"github.com/cgw-project/cgw/internal/logging"
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
	noSlowPath bool
	txBudget   int
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
	fs.BoolVar(&o.noSlowPath, "no-slowpath", false, "do not create per-tunnel TUN devices")
	fs.IntVar(&o.txBudget, "tx-budget", 0, "copy-mode descriptors per sendto (0: kernel default)")
	var lf logging.Flags
	lf.Register(fs)
	version := buildinfo.Flag(fs, "cgw-dataplane", os.Stdout)
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

// settings are the options after the configuration file is applied.
type settings struct {
	options
	cpuList []int
	pinned  bool // cpuList came from -cpus or the configuration
	gw4     netip.Addr
	gw6     netip.Addr
}

func resolve(o options) (*settings, error) {
	s := &settings{options: o}
	var cfg *config.Config
	if o.config != "" {
		c, err := config.Load(o.config)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	if cfg != nil {
		g := cfg.Gateway
		if s.instance == "" {
			s.instance = g.Name
		}
		if s.outside == "" {
			s.outside = g.Outside.Name
		}
		if s.inside == "" {
			s.inside = g.Inside.Name
		}
		if s.batch == 0 {
			s.batch = g.Dataplane.BatchSize
		}
		if s.metrics == "" {
			s.metrics = g.Observability.DataplaneMetrics
		}
		if s.cpus == "" {
			s.cpuList = g.Dataplane.CPUs
		}
		if a := g.Inside.Address.Addr(); a.Is4() {
			s.gw4 = a
		} else if a.Is6() {
			s.gw6 = a
		}
	}
	if s.instance == "" {
		s.instance = config.DefaultGatewayName
	}
	if s.batch == 0 {
		s.batch = config.DefaultBatchSize
	}
	if s.batch < 1 || s.batch > 256 {
		return nil, fmt.Errorf("batch size %d: use 1–256 (32–64 is typical)", s.batch)
	}
	if s.metrics == "" {
		s.metrics = config.DefaultDataplaneMetric
	}
	if s.outside == "" || s.inside == "" {
		return nil, errors.New("no interfaces: give -outside-if and -inside-if, or -config with gateway.outside.interface and gateway.inside.interface")
	}
	if s.cpus != "" {
		for _, f := range strings.Split(s.cpus, ",") {
			c, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || c < 0 {
				return nil, fmt.Errorf("-cpus %q: want a comma-separated list of CPU numbers such as 0,1", s.cpus)
			}
			s.cpuList = append(s.cpuList, c)
		}
	}
	// No CPUs configured: the workers are not pinned (the scheduler
	// spreads them, and two dataplanes on one host do not both pile onto
	// CPU 0); their default number comes from the CPUs this process may
	// use.
	s.pinned = len(s.cpuList) > 0
	if !s.pinned {
		s.cpuList = allowedCPUs()
	}
	switch s.xdpMode {
	case "", "native", "generic":
	default:
		return nil, fmt.Errorf("-xdp-mode %q: want native or generic", s.xdpMode)
	}
	return s, nil
}

func iface(role, name string) (*net.Interface, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("%s interface %s not found in this network namespace (check gateway.%s.interface or -%s-if; `ip link` lists the devices)", role, name, role, role)
	}
	if len(ifc.HardwareAddr) != 6 {
		return nil, fmt.Errorf("%s interface %s is not an Ethernet device (no 6-byte MAC address): cgw-dataplane needs Ethernet NICs", role, name)
	}
	return ifc, nil
}

func run(o options) error {
	s, err := resolve(o)
	if err != nil {
		return err
	}
	outIf, err := iface("outside", s.outside)
	if err != nil {
		return err
	}
	inIf, err := iface("inside", s.inside)
	if err != nil {
		return err
	}
	queues := s.queues
	if queues == 0 {
		queues = min(len(s.cpuList), rxQueues(s.outside), rxQueues(s.inside))
	}

	objs, err := maps.Load(s.instance)
	if err != nil {
		return fmt.Errorf("loading the pinned maps of instance %s: %w", s.instance, err)
	}
	defer objs.Close() // the maps stay pinned
	reader, err := maps.NewReader(objs)
	if err != nil {
		return err
	}
	defer reader.Close()

	nc, err := neigh.New(neigh.Options{Links: []int{outIf.Index, inIf.Index}})
	if err != nil {
		return fmt.Errorf("following the kernel's neighbour table: %w", err)
	}
	defer nc.Close()

	tabs := new(tables.Tables)
	builder := tables.NewBuilder(reader.Counters)
	var slow *slowPath
	if !s.noSlowPath && !s.noCrypto {
		slow = newSlowPath()
		defer slow.Close()
	}

	mode := afxdp.ModeAuto
	if s.copyMode {
		mode = afxdp.ModeCopy
	}
	var workers []*worker.Worker
	defer func() {
		for _, w := range workers {
			w.Close()
		}
	}()
	for q := 0; q < queues; q++ {
		pc := worker.Config{
			Tables: tabs, Neighbours: nc,
			InsideIfindex: inIf.Index, OutsideIfindex: outIf.Index,
			InsideMAC: [6]byte(inIf.HardwareAddr), OutsideMAC: [6]byte(outIf.HardwareAddr),
			Gateway4: s.gw4, Gateway6: s.gw6,
			NoCrypto: s.noCrypto, Batch: s.batch,
			Generation: reader.ReadGeneration, Refresh: reader.Kick,
		}
		if slow != nil {
			pc.SlowPath = slow
		}
		if !pc.Gateway4.IsValid() {
			pc.Gateway4 = firstAddr(inIf, true)
		}
		if !pc.Gateway6.IsValid() {
			pc.Gateway6 = firstAddr(inIf, false)
		}
		cpu := -1
		if s.pinned {
			cpu = s.cpuList[q%len(s.cpuList)]
		}
		var w *worker.Worker
		_, err := retryBusy(fmt.Sprintf("worker %d (queue %d of %s/%s)", q, q, s.inside, s.outside), func() error {
			var err error
			w, err = worker.NewWorker(worker.WorkerConfig{
				ID: q, CPU: cpu, Queue: q, Pipeline: pc,
				InsideXSKs: objs.XsksInside, OutsideXSKs: objs.XsksOutside,
				Mode: mode, TxBudget: s.txBudget,
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("%w (devices %s/%s, queue %d: does each have that many RX queues? `ethtool -l`)", err, s.inside, s.outside, q)
		}
		workers = append(workers, w)
	}

	// The first snapshot before any packet is steered to the workers.
	first, err := reader.Snapshot()
	if err != nil {
		return err
	}
	publish := func(t *maps.Tables) {
		v := builder.Build(t)
		tables.WipeKeys(t) // the View's ciphers hold them now
		tabs.Store(v)
		for _, p := range v.Problems {
			log.Printf("tables generation %d: %v", v.Generation, p)
		}
		if slow != nil {
			slow.Reconcile(v, workers)
		}
	}
	publish(first)
	// Poll marks each generation applied once publish returned; this one
	// is in the workers' hands already.
	reader.SetApplied(first.Generation)

	xmode := bpf.Native
	if s.xdpMode == "generic" {
		xmode = bpf.Generic
	}
	var links []link.Link
	defer func() {
		for _, l := range links {
			l.Close()
		}
	}()
	attach := func(role string, ifc *net.Interface, f func(int, bpf.XDPMode) (link.Link, error)) error {
		l, err := f(ifc.Index, xmode)
		if err != nil {
			hint := "try -xdp-mode generic if the driver has no native XDP"
			if xmode == bpf.Generic {
				hint = "is another XDP program attached? `ip link show " + ifc.Name + "`"
			}
			return fmt.Errorf("XDP attach on %s (%s) failed: %w; %s", ifc.Name, role, err, hint)
		}
		links = append(links, l)
		return nil
	}
	// -no-crypto uses the same programs: the inside one steers what
	// routes to an up tunnel (a route and a tunnel marked up in the maps
	// suffice, no SA), so the forwarder carries inside → outside traffic.
	if err := attach("outside", outIf, objs.AttachOutside); err != nil {
		return err
	}
	if err := attach("inside", inIf, objs.AttachInside); err != nil {
		return err
	}

	stop := make(chan struct{})
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		reader.Poll(stop, 10*time.Millisecond, func(t *maps.Tables) {
			if t.Generation != tabs.Load().Generation {
				publish(t)
			}
		}, func(err error) { log.Printf("tables snapshot: %v", err) })
	}()

	errc := make(chan error, len(workers)+1)
	for _, w := range workers {
		go func() { errc <- w.Run() }()
	}

	if s.metrics != "off" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(buildinfo.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		ms := make([]metrics.Worker, len(workers))
		for i, w := range workers {
			ms[i] = w
		}
		reg.MustRegister(metrics.New(metrics.Sources{
			Workers: ms, Tables: tabs, XDPStats: objs.Stats,
			Neigh: func() (uint64, uint64, uint64) {
				st := nc.Stats()
				return st.Hits, st.Misses, st.ResolveRequests
			},
			NICs: []metrics.NIC{{Role: "inside", Name: s.inside, Driver: nic.Driver(s.inside), XDPMode: s.xdpMode},
				{Role: "outside", Name: s.outside, Driver: nic.Driver(s.outside), XDPMode: s.xdpMode}},
		}))
		ln, err := net.Listen("tcp", s.metrics)
		if err != nil {
			return fmt.Errorf("metrics: listening on %s: %w (set gateway.observability.dataplane_metrics or -metrics; off disables)", s.metrics, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
	}

	// The preflight of cgwctl verify: what keeps this host from line rate.
	var pinnedCPUs []int
	if s.pinned {
		pinnedCPUs = s.cpuList[:min(len(s.cpuList), len(workers))]
	}
	for _, f := range nic.Check(nic.Options{Inside: s.inside, Outside: s.outside, CPUs: pinnedCPUs, Workers: len(workers)}) {
		if f.Level != nic.OK {
			log.Printf("preflight %s: %s %s: %s (fix: %s)", f.Level, orHost(f.Device), f.Check, f.Msg, f.Fix)
		}
	}

	im, om := workers[0].Modes()
	where := "unpinned"
	if s.pinned {
		where = fmt.Sprintf("on CPUs %v", s.cpuList[:min(len(s.cpuList), len(workers))])
	}
	log.Printf("instance %s: %d worker(s) %s, inside %s (%v), outside %s (%v), batch %d, crypto %v, generation %d",
		s.instance, len(workers), where, s.inside, im, s.outside, om, s.batch, !s.noCrypto, tabs.Load().Generation)

	sig := make(chan os.Signal, 1)
	// SIGHUP (a reload, or an SSH hang-up) must not kill the dataplane:
	// tunnels, SAs and routes arrive through the maps and need no reload.
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	var runErr error
	for ended := false; !ended; {
		select {
		case got := <-sig:
			if got == syscall.SIGHUP {
				log.Printf("SIGHUP: nothing to reload (tunnels, SAs and routes come from the pinned maps; interfaces, CPUs and gateway.dataplane take effect at restart)")
				continue
			}
			log.Printf("%v: detaching XDP programs and stopping; the pinned maps stay", got)
		case runErr = <-errc:
			log.Printf("a worker stopped: %v", runErr)
		}
		ended = true
	}
	// Detach first: nothing more is steered to the sockets.
	for _, l := range links {
		l.Close()
	}
	links = nil
	close(stop)
	<-pollDone
	for _, w := range workers {
		w.Stop()
	}
	for _, w := range workers {
		if !w.Wait(2 * time.Second) {
			log.Printf("worker %d did not stop within 2 s", w.ID())
		}
	}
	return runErr
}

func firstAddr(ifc *net.Interface, v4 bool) netip.Addr {
	as, _ := ifc.Addrs()
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ad, ok := netip.AddrFromSlice(n.IP); ok {
				ad = ad.Unmap()
				if ad.Is4() == v4 && !ad.IsLinkLocalUnicast() {
					return ad
				}
			}
		}
	}
	return netip.Addr{}
}

func orHost(device string) string {
	if device == "" {
		return "host"
	}
	return device
}
