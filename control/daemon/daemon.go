// Package daemon is cgw-control's core: it runs the IKE engine for every
// configured tunnel (control/ikev2, or control/ikev1 for tunnels with
// ike_version 1; both share UDP 500/4500) and turns its events into the pinned BPF maps the
// dataplane reads (DESIGN §2), drives BGP and the RIB with tunnel state,
// feeds the dataplane's per-SA counters back to IKE (DPD, rekey on sequence
// exhaustion and at the phase 2 byte lifetime) and produces the status
// snapshot served to cgwctl.
//
// Restart without loss (DESIGN §2: either process can restart without the
// other): on start the SAs, tunnel flags and routes a previous control
// process left in the maps are kept and keep forwarding; each tunnel's old
// SAs are retired once its new Child SA carries the outbound traffic, and
// old routes the RIB has not re-selected are removed once routing has
// converged. No stale SA remains.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/bgp"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev1"
	"github.com/cgw-project/cgw/control/ikev2"
	"github.com/cgw-project/cgw/control/kernelguard"
	"github.com/cgw-project/cgw/control/rib"
	"github.com/cgw-project/cgw/control/status"
)

// Options configure a Daemon.
type Options struct {
	Config *config.Config // loaded and checked
	// Instance names the pinned maps (/sys/fs/bpf/cgw/<instance>);
	// default gateway.name.
	Instance string
	Log      *slog.Logger
	// CounterInterval is how often the dataplane's per-SA counters are
	// read for DPD and rekeying (default 500 ms).
	CounterInterval time.Duration
	Timing          ike.Timing
	// GoBGPAPI overrides gateway.observability.gobgp_api ("-" disables).
	GoBGPAPI string
	// OnEvent, if set, sees every IKE event after the daemon applied it
	// (metrics).
	OnEvent func(ike.Event)
	// ListenIKE overrides the address the IKE sockets bind (tests).
	ListenIKE netip.Addr
	// ConvergeTimeout bounds how long routes left by a previous control
	// process are kept while routing converges (default 90 s).
	ConvergeTimeout time.Duration
	// OnRekeyRequest, if set, sees every Child SA rekey the daemon asks
	// for from the dataplane's counters; reason is "bytes" or "sequence"
	// (metrics).
	OnRekeyRequest func(tunnel, reason string)
	// RekeyRetry is how long a counter-triggered rekey may take before it
	// is asked for again (default 30 s); RekeyFailRetry how soon after a
	// failed exchange (default Timing.ReinitMin, else 2 s).
	RekeyRetry, RekeyFailRetry time.Duration
	// ConfigPath is the file Reload reads again (cgwctl reload, SIGHUP).
	ConfigPath string
	// OnReload, if set, sees the tunnels a reload added or changed
	// (metrics).
	OnReload func(started []string)
	// RemoveGuards takes the kernel guards (control/kernelguard) out at
	// Stop; by default they stay, so the host fails closed while
	// cgw-control is stopped.
	RemoveGuards bool
	// GuardState is the file that keeps the guarded prefixes across a reboot
	// (kernelguard.Options.State); empty: none.
	GuardState string
	// GuardResync is how often the kernel guards are checked against the
	// kernel and put back if missing (default 10 s).
	GuardResync time.Duration
}

// Daemon is a running control process.
type Daemon struct {
	opt     Options
	cfg     *config.Config
	log     *slog.Logger
	objs    *maps.Objects
	w       *maps.Writer
	ike     *ikev2.Manager
	ike1    *ikev1.Manager // nil when no tunnel uses ike_version 1
	rib     *rib.RIB
	bgp     *bgp.Speaker
	guards  *kernelguard.Routes // kernel guards (guards.go)
	started time.Time

	events   chan ike.Event
	ops      chan func() // run on the loop (reload)
	quit     chan struct{}
	loopDone chan struct{}
	mbb      mbbState   // inbound SAs installed before the peer may use them (ready.go)
	listen   netip.Addr // the IKE sockets' address
	hub      status.Hub // events for cgwctl monitor (events.go)
	names    atomic.Pointer[map[uint32]string]
	reloadMu sync.Mutex // one reload at a time

	// mu guards what Status and the API read; the loop, their only
	// writer, reads them without it.
	mu          sync.Mutex
	tunnels     []*tunnel // config order; id = index+1 until a reload
	byName      map[string]*tunnel
	used        []bool            // SA slots in use (ours or stale)
	adopted     []maps.RouteEntry // routes found in the map at start (rib.Adopt)
	adoptedUp   []uint32          // tunnels kept up on a previous process's SAs
	routesSwept bool
	guardsSwept bool
	guardsSeen  time.Time    // last Resync
	guardWarned atomic.Int64 // unix ns of the last guard failure logged
	converged   time.Time    // when all tunnels and sessions were first seen up
	closing     bool
}

type tunnel struct {
	id       uint32
	cfg      *config.Tunnel
	conn     *config.Connection
	up       bool
	upSince  time.Time
	nat      bool
	lastErr  string
	children map[uint32]*child // by inbound SPI
	out      uint32            // SA index of the current outbound SA (ours)
	stale    []uint32          // SA indexes a previous process installed
}

type child struct {
	sa            ike.ChildSA
	inIdx, outIdx uint32
	in, out       maps.SACounters
	lastSeen      uint64 // in.LastNs already reported to DPD
	installed     time.Time
	active        bool
	// Byte lifetime (config phase2.lifetime_bytes; 0: none): a rekey is
	// asked for at softBytes, the SA stops being used at hardBytes.
	softBytes, hardBytes uint64
	// rekeyAgain: when the counters may ask for a rekey again (zero: not
	// asked yet); pushed RekeyRetry ahead by each request, brought
	// forward to RekeyFailRetry when an exchange of the tunnel fails.
	rekeyAgain time.Time
	inExpired  bool // inbound SA removed at the hard byte limit
}

// seqSoftLimit is the outbound sequence number at which a rekey is asked
// for: well before 2^32 without ESN (RFC 4303 §3.3.3: never cycle).
const (
	seqSoftLimit    = 0xF000_0000
	seqSoftLimitESN = 1 << 62
)

// Start opens the maps, adopts what a previous control process left in
// them, starts BGP and the IKE engine and initiates the tunnels.
func Start(o Options) (*Daemon, error) {
	cfg := o.Config
	if cfg == nil {
		return nil, errors.New("daemon: no configuration")
	}
	if o.Instance == "" {
		o.Instance = cfg.Gateway.Name
	}
	if o.Instance == "" {
		o.Instance = config.DefaultGatewayName
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.CounterInterval <= 0 {
		o.CounterInterval = 500 * time.Millisecond
	}
	if o.ConvergeTimeout <= 0 {
		o.ConvergeTimeout = 90 * time.Second
	}
	if o.GuardResync <= 0 {
		o.GuardResync = 10 * time.Second
	}
	if o.RekeyRetry <= 0 {
		o.RekeyRetry = 30 * time.Second
	}
	if o.RekeyFailRetry <= 0 {
		o.RekeyFailRetry = o.Timing.ReinitMin
	}
	if o.RekeyFailRetry <= 0 {
		o.RekeyFailRetry = 2 * time.Second
	}
	d := &Daemon{opt: o, cfg: cfg, log: o.Log, started: time.Now(),
		events: make(chan ike.Event, 4096), ops: make(chan func()), quit: make(chan struct{}), loopDone: make(chan struct{}),
		byName: map[string]*tunnel{}, used: make([]bool, maps.MaxSAs)}
	d.used[0] = true
	ids := map[string]uint32{}
	for ci := range cfg.Connections {
		c := &cfg.Connections[ci]
		for ti := range c.Tunnels {
			t := &c.Tunnels[ti]
			id := uint32(len(d.tunnels) + 1)
			if id >= maps.MaxTunnels {
				return nil, fmt.Errorf("daemon: more than %d tunnels configured", maps.MaxTunnels-1)
			}
			tn := &tunnel{id: id, cfg: t, conn: c, children: map[uint32]*child{}}
			d.tunnels = append(d.tunnels, tn)
			d.byName[t.Name] = tn
			ids[t.Name] = id
		}
	}
	if len(d.tunnels) == 0 {
		return nil, errors.New("daemon: the configuration has no tunnels")
	}

	var err error
	ok := false
	defer func() {
		if ok {
			return
		}
		if d.ike != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			d.Stop(ctx)
			cancel()
			return
		}
		if d.bgp != nil {
			d.bgp.Stop()
		}
		if d.guards != nil {
			d.guards.Close()
		}
		d.closeAll()
	}()
	if d.objs, err = maps.Load(o.Instance); err != nil {
		return nil, fmt.Errorf("opening the pinned maps of instance %s: %w", o.Instance, err)
	}
	if d.w, err = maps.NewWriter(d.objs); err != nil {
		return nil, err
	}
	if err := d.adopt(); err != nil {
		return nil, err
	}

	// Kernel guards first, so every route is guarded before the dataplane
	// sees it.
	if err := d.openGuards(cfg); err != nil {
		return nil, err
	}

	// Route selection and BGP.
	rts, err := rib.ConfigTunnels(cfg, ids)
	if err != nil {
		return nil, err
	}
	d.setNames()
	if d.rib, err = rib.New(sink{d.w, d}, rts, rib.Options{}); err != nil {
		return nil, err
	}
	// The routes a previous process installed stay in place (replaced,
	// never deleted and re-added) until routing has converged.
	d.rib.Adopt(d.adopted)
	d.routesSwept = len(d.adopted) == 0
	// A tunnel still forwarding on the old SAs is up as far as routing is
	// concerned, so its routes (static ones too) stay selected meanwhile.
	for _, id := range d.adoptedUp {
		if err := d.rib.SetTunnelUp(id, true); err != nil {
			return nil, err
		}
	}
	if err := d.rib.ConfigStatic(cfg); err != nil {
		return nil, err
	}
	nbs, err := bgp.NeighborsFromConfig(cfg, ids)
	if err != nil {
		return nil, err
	}
	if len(nbs) > 0 {
		// Forwarding state survived the previous process (RFC 4724 §4.1):
		// ask AWS to keep our routes until our End-of-RIB.
		d.bgp, err = bgp.Start(d.rib, d.bgpOptions(cfg, len(d.adopted) > 0 || len(d.adoptedUp) > 0), nbs)
		if err != nil {
			return nil, err
		}
	}

	// IKE.
	c500, c4500, err := d.listenIKE()
	if err != nil {
		return nil, err
	}
	// One socket per port for both versions, split by the ISAKMP header's
	// version byte; a socket closes once both of its halves are closed.
	v1a, v2a := ike.SplitVersions(c500, false)
	v1b, v2b := ike.SplitVersions(c4500, true)
	emit := func(e ike.Event) { d.events <- e }
	d.ike, err = ikev2.New(ikev2.Options{Conn500: v2a, Conn4500: v2b, Log: d.log.With("part", "ike"), Timing: o.Timing,
		Events: emit, InstallInbound: d.installInbound, SyncDataplane: d.syncDataplane})
	if err != nil {
		for _, c := range []net.PacketConn{v1a, v1b, v2a, v2b} {
			c.Close()
		}
		return nil, err
	}
	if slices.ContainsFunc(d.tunnels, func(t *tunnel) bool { return t.cfg.IKEVersion == 1 }) {
		d.ike1, err = ikev1.New(ikev1.Options{Conn500: v1a, Conn4500: v1b, Log: d.log.With("part", "ikev1"), Timing: o.Timing,
			Events: emit, InstallInbound: d.installInbound})
		if err != nil {
			v1a.Close()
			v1b.Close()
			return nil, err
		}
	} else {
		v1a.Close()
		v1b.Close()
	}
	go d.loop()
	for _, t := range d.tunnels {
		if t.cfg.IKEVersion == 1 {
			err = d.ike1.AddTunnel(*t.cfg, ikev1.TunnelOptions{})
		} else {
			err = d.ike.AddTunnel(*t.cfg, ike.TunnelOptions{})
		}
		if err != nil {
			return nil, err
		}
	}
	ok = true
	return d, nil
}

// bgpOptions are the BGP speaker's options (at start, or when a reload
// adds the first BGP connection).
func (d *Daemon) bgpOptions(cfg *config.Config, restarting bool) bgp.Options {
	api := d.opt.GoBGPAPI
	if api == "" {
		api = cfg.Gateway.Observability.GoBGPAPI
	}
	return bgp.Options{RouterID: cfg.Gateway.Outside.Address.Addr(), GRPCAddress: api, GRPCTLS: cfg.Gateway.Observability.GoBGPAPITLS,
		Logger: d.log.With("part", "bgp"), OnState: d.publishBGP, Restarting: restarting}
}

// listenIKE opens UDP 500 and 4500 on the tunnels' outside address (on
// every address when tunnels use several).
func (d *Daemon) listenIKE() (net.PacketConn, net.PacketConn, error) {
	addr := d.opt.ListenIKE
	if !addr.IsValid() {
		for _, t := range d.tunnels {
			a := t.cfg.LocalOutside
			if !addr.IsValid() {
				addr = a
			} else if a != addr {
				addr = netip.IPv4Unspecified()
			}
		}
	}
	d.listen = addr
	c500, err := net.ListenPacket("udp4", netip.AddrPortFrom(addr, 500).String())
	if err != nil {
		return nil, nil, fmt.Errorf("IKE: listening on %v UDP 500: %w (is the outside address %v on an interface of this network namespace? is another IKE daemon running?)", addr, err, addr)
	}
	c4500, err := net.ListenPacket("udp4", netip.AddrPortFrom(addr, 4500).String())
	if err != nil {
		c500.Close()
		return nil, nil, fmt.Errorf("IKE: listening on %v UDP 4500: %w", addr, err)
	}
	return c500, c4500, nil
}

// adopt reads what a previous control process left in the maps: its SAs
// become stale (kept until replaced), its routes are kept until routing
// converges, tunnels it marked up stay up; then this configuration's
// tunnels and local addresses are written.
func (d *Daemon) adopt() error {
	// A tunnel id whose entry names other endpoints than this
	// configuration (tunnels reordered or replaced) is not adopted: its old
	// SAs lead to a different peer.
	changed := map[uint32]bool{}
	for _, t := range d.tunnels {
		var e maps.Tunnel
		if err := d.objs.Tunnels.Lookup(t.id, &e); err != nil {
			return fmt.Errorf("reading tunnel %d: %w", t.id, err)
		}
		if e != (maps.Tunnel{}) && (e.RemoteAddr != maps.Addr16(t.cfg.AWSOutside) || e.LocalAddr != maps.Addr16(t.cfg.LocalOutside)) {
			changed[t.id] = true
			d.log.Info("tunnel id now names another tunnel: not keeping its old SAs", "tunnel", t.cfg.Name, "id", t.id,
				"old_peer", maps.AddrFrom16(e.RemoteAddr).Unmap())
		}
	}
	var sa maps.SA
	for idx := uint32(1); idx < maps.MaxSAs; idx++ {
		if err := d.objs.SaTable.Lookup(idx, &sa); err != nil {
			return fmt.Errorf("reading SA slot %d: %w", idx, err)
		}
		if sa.State == uint8(maps.StateUnused) {
			continue
		}
		d.used[idx] = true
		if int(sa.TunnelId) >= 1 && int(sa.TunnelId) <= len(d.tunnels) && !changed[sa.TunnelId] {
			t := d.tunnels[sa.TunnelId-1]
			t.stale = append(t.stale, idx)
			continue
		}
		// A tunnel this configuration no longer has (or has changed).
		d.w.SetOutboundSA(sa.TunnelId, 0)
		if err := d.w.RetireSA(idx); err != nil {
			d.log.Warn("removing SA of an unconfigured tunnel", "index", idx, "tunnel", sa.TunnelId, "err", err)
		} else {
			d.used[idx] = false
		}
	}
	rd, err := maps.NewReader(d.objs)
	if err != nil {
		return err
	}
	tabs, err := rd.Snapshot()
	rd.Close()
	if err != nil {
		return fmt.Errorf("reading the tables left by a previous cgw-control: %w", err)
	}
	d.adopted = tabs.Routes
	for id := len(d.tunnels) + 1; id < len(tabs.Tunnels); id++ {
		if tabs.Tunnels[id].Flags != 0 {
			d.w.SetTunnel(uint32(id), maps.Tunnel{})
		}
	}
	for _, t := range d.tunnels {
		var flags uint32
		if int(t.id) < len(tabs.Tunnels) && int(t.id) < len(tabs.Outbound) && tabs.Outbound[t.id] != 0 && !changed[t.id] {
			// Keep forwarding on the previous process's SAs.
			flags = tabs.Tunnels[t.id].Flags & uint32(maps.TunnelUp)
			if flags != 0 {
				d.adoptedUp = append(d.adoptedUp, t.id)
			}
		}
		if t.cfg.ClearDF {
			flags |= uint32(maps.TunnelClearDF)
		}
		if err := d.w.SetTunnel(t.id, d.tunnelEntry(t, flags)); err != nil {
			return err
		}
	}
	if len(tabs.SAs) > 0 || len(tabs.Routes) > 0 {
		d.log.Info("adopted state of a previous cgw-control; replacing it as tunnels come up", "sas", len(tabs.SAs), "routes", len(tabs.Routes))
	}
	g := d.cfg.Gateway
	outs := map[netip.Addr]bool{}
	if a := g.Outside.Address.Addr(); a.IsValid() {
		outs[a] = true
	}
	for _, t := range d.tunnels {
		outs[t.cfg.LocalOutside] = true
	}
	for a := range outs {
		if err := d.w.AddLocalAddr(a, maps.LocalOutside); err != nil {
			return err
		}
	}
	if a := g.Inside.Address.Addr(); a.IsValid() {
		if err := d.w.AddLocalAddr(a, maps.LocalInside); err != nil {
			return err
		}
	}
	return nil
}

func (d *Daemon) tunnelEntry(t *tunnel, flags uint32) maps.Tunnel {
	e := maps.Tunnel{Flags: flags, Mtu: uint16(t.cfg.MTU), Mss: uint16(t.cfg.TCPMSS),
		LocalAddr: maps.Addr16(t.cfg.LocalOutside), RemoteAddr: maps.Addr16(t.cfg.AWSOutside)}
	if in := t.cfg.LocalInside(); in.IsValid() {
		e.InsideAddr = maps.Addr16(in)
		e.InsidePrefixlen = uint8(t.cfg.InsideCIDR.Bits())
	}
	return e
}

var _ rib.Batcher = sink{}

// alloc returns a free SA slot.
func (d *Daemon) alloc() (uint32, error) {
	for i := uint32(1); i < maps.MaxSAs; i++ {
		if !d.used[i] {
			d.used[i] = true
			return i, nil
		}
	}
	return 0, fmt.Errorf("the SA table is full (%d slots)", maps.MaxSAs-1)
}

// Stop shuts down cleanly: every IKE SA is deleted (the peer is told),
// BGP sessions close (routes withdrawn), tunnels are marked down and our
// SAs leave the maps. The maps stay pinned for the dataplane.
func (d *Daemon) Stop(ctx context.Context) {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	d.reloadMu.Lock() // a reload in progress finishes first
	defer d.reloadMu.Unlock()
	// BGP first, while the tunnels still carry its Cease (RFC 4486):
	// AWS withdraws our prefixes at once instead of after its hold time.
	if d.bgp != nil {
		for _, t := range d.tunnels {
			if err := d.bgp.TunnelDown(t.id); err != nil {
				d.log.Warn("closing the BGP session", "tunnel", t.cfg.Name, "err", err)
			}
		}
		time.Sleep(100 * time.Millisecond) // let the Notification leave through the TUN
	}
	// Their events (retired, down) go through the loop.
	if d.ike1 != nil {
		d.ike1.Close(ctx)
	}
	if d.ike != nil {
		d.ike.Close(ctx)
	}
	close(d.quit)
	<-d.loopDone
	if d.bgp != nil {
		d.bgp.Stop()
	}
	for _, t := range d.tunnels {
		d.w.SetTunnelUp(t.id, false)
		d.w.SetOutboundSA(t.id, 0)
		for _, c := range t.children {
			d.removeChild(t, c)
		}
		d.retireStale(t)
	}
	d.closeGuards()
	d.closeAll()
}

func (d *Daemon) closeAll() {
	if d.w != nil {
		d.w.Close()
	}
	if d.objs != nil {
		d.objs.Close()
	}
}

// Config returns the configuration the daemon runs.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// IKE returns the IKEv2 engine (cgwctl actions, tests).
func (d *Daemon) IKE() *ikev2.Manager { return d.ike }

// IKEv1 returns the IKEv1 engine, nil when no tunnel uses ike_version 1.
func (d *Daemon) IKEv1() *ikev1.Manager { return d.ike1 }

// engineOf is the engine running tunnel t.
func (d *Daemon) engineOf(t *tunnel) ike.Engine {
	d.mu.Lock()
	v1 := t.cfg.IKEVersion == 1
	d.mu.Unlock()
	if v1 && d.ike1 != nil {
		return d.ike1
	}
	return d.ike
}

// engineNamed is the engine running the tunnel called name; unknown names
// go to the IKEv2 engine, whose error names the tunnel.
func (d *Daemon) engineNamed(name string) ike.Engine {
	d.mu.Lock()
	t, ok := d.byName[name]
	d.mu.Unlock()
	if ok {
		return d.engineOf(t)
	}
	return d.ike
}

// BGP returns the BGP speaker, nil when no connection uses BGP (a reload
// may start one).
func (d *Daemon) BGP() *bgp.Speaker {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bgp
}
