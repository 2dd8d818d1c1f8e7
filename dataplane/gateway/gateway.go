// Package gateway is cgw's fast path as a library (as GoBGP's server is
// one): New opens an instance's pinned maps, follows the kernel's
// neighbour table, creates one worker per NIC queue with its AF_XDP
// sockets; Run attaches the XDP programs, publishes table snapshots to
// the workers as control changes the maps, keeps the per-tunnel TUN
// devices (the slow path) in line with the tunnel table, and returns when
// its context ends or a worker fails. cmd/cgw-dataplane is flag parsing
// around it; tests drive it the same way (DESIGN §2–§3, §5).
//
// Start-up order: the maps are opened (created if absent), so a restarted
// dataplane finds the SAs control installed and continues each outbound
// SA's sequence numbers from the shared counter; the sockets are created,
// their fill rings filled and they are registered in the XSKMAPs (a queue
// still held by a dataplane that just exited — bind fails with EBUSY until
// the kernel has released its sockets — is retried within milliseconds
// for up to 2 s); Run publishes the first snapshot, starts the workers and
// only then attaches the XDP programs through their pinned links. After a
// restart the programs left attached steer to the new sockets from the
// moment they are registered: frames wait in the RX rings until the
// workers run, and the link updates (slow: RCU grace periods) are off the
// path that decides how much traffic a restart loses.
// Each time the table generation moves, a new snapshot is published to the
// workers, the TUN devices (cgw-t<id>) are reconciled, and the generation
// is stored as applied, which control waits for before it lets a peer
// send on a new inbound SA (make-before-break).
//
// The gateway runs in the calling process's network namespace: the
// devices, sockets, netlink and TUN devices are all that namespace's.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cgw-project/cgw/bpf"
	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/dataplane/afxdp"
	"github.com/cgw-project/cgw/dataplane/metrics"
	"github.com/cgw-project/cgw/dataplane/neigh"
	"github.com/cgw-project/cgw/dataplane/nic"
	"github.com/cgw-project/cgw/dataplane/slowpath"
	"github.com/cgw-project/cgw/dataplane/tables"
	"github.com/cgw-project/cgw/dataplane/worker"
)

// DefaultInstance is the pinned-map instance when Options.Instance is
// empty (config.DefaultGatewayName).
const DefaultInstance = "cgw"

// Options configure a Gateway. Only Outside and Inside are required.
type Options struct {
	Instance string // pinned-map instance (default DefaultInstance)
	Outside  string // outside (WAN) interface
	Inside   string // inside (LAN) interface

	// Queues is the number of NIC queues served, one worker each. 0: one
	// per CPU of CPUs (or that the process may run on), at most the RX
	// queues in use on each device (`ethtool -l`).
	Queues int
	// CPUs pins worker i to CPUs[i%len(CPUs)]. Empty: no pinning (the
	// scheduler places the workers).
	CPUs []int
	// Batch is the descriptors per ring operation (default 64, 1–256).
	Batch int
	// NoCrypto is the benchmark baseline: the same stages with ESP off
	// (worker.Config.NoCrypto). It implies NoSlowPath.
	NoCrypto bool
	// XDPMode is how the programs are attached (default native).
	XDPMode bpf.XDPMode
	// Copy forces AF_XDP copy mode (default: zero-copy when offered).
	Copy bool
	// ZeroCopy refuses to run unless every socket is bound in AF_XDP
	// zero-copy mode: on a NIC host a silent fall-back to copy mode costs
	// a copy per packet each way, far from line rate.
	ZeroCopy bool
	// NoSlowPath creates no per-tunnel TUN devices.
	NoSlowPath bool
	// TxBudget is the copy-mode descriptors per sendto (0: kernel default).
	TxBudget int
	// RingSize is every AF_XDP ring's size, a power of two 256–16384
	// (default 1024): larger rides out longer stalls of a worker (a burst,
	// a preempted core) without loss, at 4 × RingSize frames of 4 KiB per
	// worker.
	RingSize int
	// Detach detaches the XDP programs when Run returns. Default: they
	// stay attached through their pinned links, so steering survives an
	// exit and a restart takes them over (links.go).
	Detach bool
	// Gateway4/6 are the source of ICMP errors sent inside (default: the
	// inside interface's first address of that family).
	Gateway4, Gateway6 netip.Addr
	// OnRunning, if set, is called once the workers run and the programs
	// are attached, with a one-line summary (systemd's READY=1, STATUS=).
	OnRunning func(summary string)
}

// Gateway is one running dataplane instance.
type Gateway struct {
	o       Options
	outIf   *net.Interface
	inIf    *net.Interface
	objs    *maps.Objects
	reader  *maps.Reader
	nc      *neigh.Cache
	tabs    *tables.Tables
	builder *tables.Builder
	slow    *slowPath
	workers []*worker.Worker
	pinned  bool
	closed  bool
	// start is when New began; steered how long after it the last queue's
	// sockets were in the XSKMAPs (what a restart's loss depends on).
	start   time.Time
	steered time.Duration
}

// New checks the options, opens the instance's maps and creates the
// workers and their sockets; nothing is steered to them until Run. Call
// Close if Run is never called.
func New(o Options) (_ *Gateway, err error) {
	if o.Instance == "" {
		o.Instance = DefaultInstance
	}
	if o.Batch == 0 {
		o.Batch = 64
	}
	if o.Batch < 1 || o.Batch > 256 {
		return nil, fmt.Errorf("batch size %d: use 1–256 (32–64 is typical)", o.Batch)
	}
	if o.RingSize == 0 {
		o.RingSize = worker.DefaultRingSize
	}
	if r := o.RingSize; r < 256 || r > 16384 || r&(r-1) != 0 {
		return nil, fmt.Errorf("ring size %d: use a power of two from 256 to 16384 (default %d)", r, worker.DefaultRingSize)
	}
	if o.Outside == "" || o.Inside == "" {
		return nil, errors.New("no interfaces: give -outside-if and -inside-if, or -config with gateway.outside.interface and gateway.inside.interface")
	}
	if o.XDPMode != bpf.Native && o.XDPMode != bpf.Generic {
		return nil, fmt.Errorf("XDP mode %d: want bpf.Native or bpf.Generic", o.XDPMode)
	}
	if o.Copy && o.ZeroCopy {
		return nil, errors.New("copy and zero-copy modes both asked for: drop one of -copy and -zero-copy")
	}
	if o.NoCrypto {
		o.NoSlowPath = true
	}
	g := &Gateway{o: o, pinned: len(o.CPUs) > 0, start: time.Now()}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	if g.outIf, err = iface("outside", o.Outside); err != nil {
		return nil, err
	}
	if g.inIf, err = iface("inside", o.Inside); err != nil {
		return nil, err
	}
	if o.ZeroCopy {
		if err := zeroCopyCapable(o.Outside, o.Inside); err != nil {
			return nil, err
		}
	}
	cpus := o.CPUs
	if !g.pinned {
		cpus = allowedCPUs()
	}
	queues := o.Queues
	if queues == 0 {
		queues = min(len(cpus), rxQueues(o.Outside), rxQueues(o.Inside))
	}
	// The maps load (programs verified) in the background while this
	// thread, in the devices' network namespace, maps and pins the UMEMs:
	// milliseconds off a restart, during which no queue has a socket.
	loaded := loadMaps(o.Instance)
	umems := newUMEMs(queues, o.RingSize)
	defer umems.close()
	g.objs, g.reader, err = loaded()
	if err != nil {
		return nil, err
	}
	if g.nc, err = neigh.New(neigh.Options{Links: []int{g.outIf.Index, g.inIf.Index}}); err != nil {
		return nil, fmt.Errorf("following the kernel's neighbour table: %w", err)
	}
	g.tabs = new(tables.Tables)
	g.builder = tables.NewBuilder(g.reader.Counters)
	if !o.NoSlowPath {
		g.slow = newSlowPath()
	} else if err := slowpath.NewManager("").RemoveStale(tunPrefix, nil); err != nil {
		// A killed dataplane's TUN devices (persistent, no carrier) would
		// otherwise stay: without a slow path nothing takes them over.
		log.Printf("slow path off: %v", err)
	}
	mode := afxdp.ModeAuto
	switch {
	case o.Copy:
		mode = afxdp.ModeCopy
	case o.ZeroCopy:
		mode = afxdp.ModeZeroCopy
	}
	gw4, gw6 := o.Gateway4, o.Gateway6
	if !gw4.IsValid() {
		gw4 = firstAddr(g.inIf, true)
	}
	if !gw6.IsValid() {
		gw6 = firstAddr(g.inIf, false)
	}
	for q := 0; q < queues; q++ {
		pc := worker.Config{
			Tables: g.tabs, Neighbours: g.nc,
			InsideIfindex: g.inIf.Index, OutsideIfindex: g.outIf.Index,
			InsideMAC: [6]byte(g.inIf.HardwareAddr), OutsideMAC: [6]byte(g.outIf.HardwareAddr),
			Gateway4: gw4, Gateway6: gw6,
			NoCrypto: o.NoCrypto, Batch: o.Batch,
			Generation: g.reader.ReadGeneration, Refresh: g.reader.Kick,
		}
		if g.slow != nil {
			pc.SlowPath = g.slow
		}
		cpu := -1
		if g.pinned {
			cpu = cpus[q%len(cpus)]
		}
		what := fmt.Sprintf("worker %d (queue %d of %s/%s)", q, q, o.Inside, o.Outside)
		w, err := worker.NewWorker(worker.WorkerConfig{
			ID: q, CPU: cpu, Queue: q, Pipeline: pc,
			InsideXSKs: g.objs.XsksInside, OutsideXSKs: g.objs.XsksOutside,
			Mode: mode, TxBudget: o.TxBudget, RingSize: o.RingSize, UMEM: umems.take(q),
			BindRetry: func(bind func() error) error { _, err := retryBusy(what, bind); return err },
		})
		if err != nil {
			if o.ZeroCopy {
				return nil, fmt.Errorf("-zero-copy: binding queue %d of %s/%s in zero-copy mode: %w (run `cgwctl verify`; without -zero-copy the dataplane falls back to copy mode)", q, o.Inside, o.Outside, err)
			}
			return nil, fmt.Errorf("%w (devices %s/%s, queue %d: does each have that many RX queues? `ethtool -l`)", err, o.Inside, o.Outside, q)
		}
		g.workers = append(g.workers, w)
		g.steered = time.Since(g.start)
		if in, out := w.Modes(); o.ZeroCopy && (in != afxdp.ModeZeroCopy || out != afxdp.ModeZeroCopy) {
			return nil, fmt.Errorf("-zero-copy: worker %d got %s mode on %s and %s mode on %s, want zero-copy on both", q, in, o.Inside, out, o.Outside)
		}
	}
	return g, nil
}

// zeroCopyCapable fails, naming the device and the fix, when a driver
// says it has no AF_XDP zero-copy (kernels without the netdev netlink
// family say nothing: the bind in zero-copy mode decides then).
func zeroCopyCapable(devs ...string) error {
	for _, d := range devs {
		f, err := nic.DevXDPFeatures(d)
		if err != nil {
			return fmt.Errorf("-zero-copy: %w", err)
		}
		if f.Known && !f.ZeroCopy {
			return fmt.Errorf("-zero-copy: %s (driver %s) has no AF_XDP zero-copy, so the dataplane would run in copy mode: use a NIC whose driver does zero-copy (ice, i40e, ixgbe, igc, mlx5_core, …) or run without -zero-copy (`cgwctl verify` lists what each device can do)", d, nic.Driver(d))
		}
	}
	return nil
}

// Close releases what New created. Run calls it on return.
func (g *Gateway) Close() error {
	if g.closed {
		return nil
	}
	g.closed = true
	for _, w := range g.workers {
		w.Close()
	}
	if g.slow != nil {
		g.slow.Close()
		g.slow = nil
	}
	if g.nc != nil {
		g.nc.Close()
		g.nc = nil
	}
	if g.reader != nil {
		g.reader.Close()
		g.reader = nil
	}
	if g.objs != nil {
		g.objs.Close() // the maps stay pinned
		g.objs = nil
	}
	return nil
}

// publish hands a snapshot of the maps to the workers.
func (g *Gateway) publish(t *maps.Tables) {
	v := g.builder.Build(t)
	tables.WipeKeys(t) // the View's ciphers hold them now
	g.tabs.Store(v)
	for _, p := range v.Problems {
		log.Printf("tables generation %d: %v", v.Generation, p)
	}
	if g.slow != nil {
		g.slow.Reconcile(v, g.workers)
	}
}

// Run steers traffic to the workers and runs them until ctx ends or a
// worker fails (its error is returned); then it detaches the XDP programs,
// stops the workers and releases everything (Close). The pinned maps stay,
// so neither the SAs nor the sequence numbers are lost.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.Close()
	// The first snapshot before the workers run (a restart's frames wait
	// in the filled RX rings meanwhile).
	first, err := g.reader.Snapshot()
	if err != nil {
		return err
	}
	g.publish(first)
	// Poll marks each generation applied once publish returned; this one
	// is in the workers' hands already.
	g.reader.SetApplied(first.Generation)

	// The workers run before the links are updated: a restart's sockets
	// are in the XSKMAPs already (New) and the programs still attached
	// through the pinned links steer to them, so traffic flows again
	// without waiting for the link updates (each one an RCU grace period
	// or two in the kernel).
	stop := make(chan struct{})
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		g.reader.Poll(stop, 10*time.Millisecond, func(t *maps.Tables) {
			if t.Generation != g.tabs.Load().Generation {
				g.publish(t)
			}
		}, func(err error) { log.Printf("tables snapshot: %v", err) })
	}()
	errc := make(chan error, len(g.workers))
	for _, w := range g.workers {
		go func() { errc <- w.Run() }()
	}
	// Stop the workers (and the poller) on every way out of Run.
	defer func() {
		close(stop)
		<-pollDone
		for _, w := range g.workers {
			w.Stop()
		}
		for _, w := range g.workers {
			if !w.Wait(2 * time.Second) {
				log.Printf("worker %d did not stop within 2 s", w.ID())
			}
		}
	}()

	links, err := g.attach()
	// Closing a pinned link's fd leaves it attached; Detach unpins it.
	release := func() {
		for _, l := range links {
			if g.o.Detach {
				l.Unpin()
			}
			l.Close()
		}
		links = nil
	}
	defer release()
	if err != nil {
		return err
	}
	g.preflight()
	g.logStart()
	if g.o.OnRunning != nil {
		im, om := g.workers[0].Modes()
		g.o.OnRunning(fmt.Sprintf("%d worker(s), inside %s (%v), outside %s (%v)", len(g.workers), g.o.Inside, im, g.o.Outside, om))
	}

	var runErr error
	select {
	case <-ctx.Done():
		what := "XDP programs stay attached (pinned links)"
		if g.o.Detach {
			what = "detaching XDP programs"
		}
		log.Printf("stopping (%v): %s; the pinned maps stay", context.Cause(ctx), what)
	case runErr = <-errc:
		log.Printf("a worker stopped: %v", runErr)
	}
	// The links stay pinned (attached) unless Options.Detach: a restarted
	// dataplane takes them over; meanwhile XDP finds no socket (links.go).
	release()
	return runErr
}

// attach attaches the outside and inside XDP programs through the
// instance's pinned links (links.go). -no-crypto uses the same programs:
// the inside one steers what routes to an up tunnel (a route and a tunnel
// marked up suffice, no SA).
func (g *Gateway) attach() ([]link.Link, error) {
	var links []link.Link
	for _, a := range []struct {
		role, pin string
		ifc       *net.Interface
		prog      *ebpf.Program
		f         func(int, bpf.XDPMode) (link.Link, error)
	}{{"outside", pinOutside, g.outIf, g.objs.XdpOutside, g.objs.AttachOutside}, {"inside", pinInside, g.inIf, g.objs.XdpInside, g.objs.AttachInside}} {
		l, err := attachPinned(g.objs.Dir, a.pin, a.ifc, a.prog, g.o.XDPMode, a.f)
		if err != nil {
			hint := "try -xdp-mode generic if the driver has no native XDP"
			if g.o.XDPMode == bpf.Generic {
				hint = "is another XDP program attached? `ip link show " + a.ifc.Name + "`"
			}
			return links, fmt.Errorf("XDP attach on %s (%s) failed: %w; %s", a.ifc.Name, a.role, err, hint)
		}
		links = append(links, l)
	}
	return links, nil
}

// preflight logs what keeps this host from line rate (the checks of
// cgwctl verify).
func (g *Gateway) preflight() {
	var pinnedCPUs []int
	if g.pinned {
		pinnedCPUs = g.o.CPUs[:min(len(g.o.CPUs), len(g.workers))]
	}
	for _, f := range nic.Check(nic.Options{Inside: g.o.Inside, Outside: g.o.Outside, CPUs: pinnedCPUs, Workers: len(g.workers)}) {
		if f.Level != nic.OK {
			dev := f.Device
			if dev == "" {
				dev = "host"
			}
			log.Printf("preflight %s: %s %s: %s (fix: %s)", f.Level, dev, f.Check, f.Msg, f.Fix)
		}
	}
}

func (g *Gateway) logStart() {
	im, om := g.workers[0].Modes()
	where := "unpinned"
	if g.pinned {
		where = fmt.Sprintf("on CPUs %v", g.o.CPUs[:min(len(g.o.CPUs), len(g.workers))])
	}
	log.Printf("instance %s: %d worker(s) %s, inside %s (%v), outside %s (%v), batch %d, crypto %v, generation %d; sockets steered to %.1f ms and running %.1f ms after start",
		g.o.Instance, len(g.workers), where, g.o.Inside, im, g.o.Outside, om, g.o.Batch, !g.o.NoCrypto, g.tabs.Load().Generation,
		ms(g.steered), ms(time.Since(g.start)))
}

// Collector exports the gateway's counters to Prometheus (package
// dataplane/metrics); register it before Run.
func (g *Gateway) Collector() prometheus.Collector {
	ms := make([]metrics.Worker, len(g.workers))
	for i, w := range g.workers {
		ms[i] = w
	}
	objs, nc := g.objs, g.nc
	xm := "native"
	if g.o.XDPMode == bpf.Generic {
		xm = "generic"
	}
	return metrics.New(metrics.Sources{
		NICs: []metrics.NIC{{Role: "inside", Name: g.o.Inside, Driver: nic.Driver(g.o.Inside), XDPMode: xm},
			{Role: "outside", Name: g.o.Outside, Driver: nic.Driver(g.o.Outside), XDPMode: xm}},
		Workers: ms, Tables: g.tabs, XDPStats: objs.Stats,
		Neigh: func() (uint64, uint64, uint64) {
			st := nc.Stats()
			return st.Hits, st.Misses, st.ResolveRequests
		},
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

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
