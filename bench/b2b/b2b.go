// Package b2b is a back-to-back topology of two cgw dataplanes joined by an
// emulated internet, with static SAs instead of IKE, for end-to-end tests of
// the fast path and for benchmarks (DESIGN §4):
//
//	lan 198.18.0.2 ─ siteA (in 198.18.0.1 | out 192.0.2.10) ─ wire (192.0.2.1 | 203.0.113.254) ─ siteB (out 203.0.113.1 | in 198.19.0.1) ─ vpc 198.19.0.2
//
// Every namespace is "<prefix>-<role>". cgw-dataplane runs in siteA and
// siteB, each on its own pinned-map instance, which this package fills with
// bpf/maps.Writer as cgw-control would: one tunnel (id 1, inside
// 169.254.44.88/30, MTU 1399, MSS 1379), one SA pair, a route to the far
// LAN. The wire namespace is the router and the capture point.
//
// Up builds it, Down removes everything it made: processes (by pid, checked
// against their start time), namespaces, pinned map directories. What Up
// creates is recorded under /run/cgw-b2b/<prefix>/ first, so Down cleans up
// after a crashed run too.
package b2b

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cgw-project/cgw/bench/procstat"
	"github.com/cgw-project/cgw/internal/prereq"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/dataplane/esp/esptest"
)

// Namespace roles.
const (
	LAN   = "lan"
	SiteA = "siteA"
	Wire  = "wire"
	SiteB = "siteB"
	VPC   = "vpc"
)

// Device names (each inside its own namespace).
const (
	LANDev     = "lan0" // lan's side of the link to siteA
	InsideDev  = "in0"  // a site's inside NIC
	OutsideDev = "out0" // a site's outside NIC
	WireA      = "wa"   // wire's side of the link to siteA
	WireB      = "wb"   // wire's side of the link to siteB
	VPCDev     = "vpc0"
)

// Addresses of the topology.
var (
	LANHost   = netip.MustParseAddr("198.18.0.2")
	LANNet    = netip.MustParsePrefix("198.18.0.0/24")
	AInside   = netip.MustParseAddr("198.18.0.1")
	AOutside  = netip.MustParseAddr("192.0.2.10")
	WireAAddr = netip.MustParseAddr("192.0.2.1")
	WireBAddr = netip.MustParseAddr("203.0.113.254")
	BOutside  = netip.MustParseAddr("203.0.113.1")
	BInside   = netip.MustParseAddr("198.19.0.1")
	VPCHost   = netip.MustParseAddr("198.19.0.2")
	VPCNet    = netip.MustParsePrefix("198.19.0.0/24")
	TunnelNet = netip.MustParsePrefix("169.254.44.88/30")
	ATunnel   = netip.MustParseAddr("169.254.44.89")
	BTunnel   = netip.MustParseAddr("169.254.44.90")
)

// Tunnel parameters (AWS's, DESIGN §1).
const (
	TunnelID  = 1
	TunnelMTU = 1399
	TunnelMSS = 1379
)

// DefaultPrefix names the namespaces when Options.Prefix is empty.
const DefaultPrefix = "cgwb2b"

// StateRoot holds one directory per prefix with what Up created.
const StateRoot = "/run/cgw-b2b"

// Options configure a topology.
type Options struct {
	Prefix string          // default DefaultPrefix; keep it short (namespace and instance names derive from it)
	Suite  transform.Suite // default AES-GCM-16 with a 128-bit key
	// Dataplane is the cgw-dataplane binary. Empty: StartDataplane fails
	// (topology-only use, e.g. generator → sink calibration).
	Dataplane string
	// DataplaneArgs, if set, replaces the default command line of a site's
	// dataplane (after the binary).
	DataplaneArgs func(s *Site) []string
	// NoCrypto starts the dataplanes as plain forwarders (-no-crypto).
	NoCrypto bool
	// CPU pins each dataplane's worker (default: none), as "-cpus" takes it.
	CPU map[string]string
	// LogDir receives the dataplanes' logs (default: the state directory).
	LogDir string
	// NoReplay installs the inbound SAs with anti-replay off (RFC 4303
	// §3.4.3 lets a receiver choose): the benchmark's generator repeats
	// one ESP frame.
	NoReplay bool
	// UDPEncap carries ESP in UDP, port 4500 both ways (RFC 3948), as
	// against AWS behind NAT (and always against strongSwan's libipsec).
	UDPEncap bool
	// Queues gives site A's two links this many queues each way (default
	// 1), for several workers. A veth puts a frame on the receive queue of
	// the sending CPU (mod the queues), not by flow hash: to spread load
	// over workers, generate from several CPUs (TrialConfig.GenCPUs).
	Queues int
	// RingSize is the dataplanes' -ring-size (0: their default).
	RingSize int
	// Workers is site A's -queues (default 1): the workers it runs.
	Workers int
}

// NATTPort is the UDP port of ESP in UDP (RFC 3948).
const NATTPort = 4500

// Site is one gateway of the pair.
type Site struct {
	Name     string // "A" or "B"
	Role     string // SiteA or SiteB
	NS       string
	Instance string // pinned-map instance
	Inside   netip.Addr
	Outside  netip.Addr
	Peer     netip.Addr // the other site's outside address
	Tunnel   netip.Addr // inside /30 address
	Remote   netip.Prefix
	Local    netip.Prefix
	NextHop  netip.Addr // outside next hop (wire)

	Objs   *maps.Objects
	Writer *maps.Writer
	Reader *maps.Reader

	proc   *exec.Cmd
	log    string
	starts int // start lines in log before the running process's
}

// SAPair is the two directions of one tunnel's ESP SA pair, with the SA
// indexes each site uses.
type SAPair struct {
	AB, BA  esptest.SA // A→B (A outbound, B inbound) and B→A
	IndexAB uint32     // SA index of A→B on both sites
	IndexBA uint32
}

// Topology is one back-to-back setup.
type Topology struct {
	Prefix string
	Opts   Options
	A, B   *Site
	Dir    string // state directory
	SAs    SAPair // the pair in use (after Up, or SwitchSAs)

	mu   sync.Mutex
	napi map[string][]int // ThreadNAPI's threads by role/device
}

// New prepares a topology; nothing is created until Up.
func New(o Options) *Topology {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Suite == (transform.Suite{}) {
		o.Suite = transform.Suite{Encr: transform.ENCR_AES_GCM_16, KeyBits: 128}
	}
	t := &Topology{Prefix: o.Prefix, Opts: o, Dir: filepath.Join(StateRoot, o.Prefix)}
	t.A = &Site{Name: "A", Role: SiteA, NS: t.NS(SiteA), Instance: o.Prefix + "-a",
		Inside: AInside, Outside: AOutside, Peer: BOutside, Tunnel: ATunnel,
		Remote: VPCNet, Local: LANNet, NextHop: WireAAddr}
	t.B = &Site{Name: "B", Role: SiteB, NS: t.NS(SiteB), Instance: o.Prefix + "-b",
		Inside: BInside, Outside: BOutside, Peer: AOutside, Tunnel: BTunnel,
		Remote: LANNet, Local: VPCNet, NextHop: WireBAddr}
	return t
}

// NS is the namespace name of a role.
func (t *Topology) NS(role string) string { return t.Prefix + "-" + role }

// Roles in creation order.
var Roles = []string{LAN, SiteA, Wire, SiteB, VPC}

// Exec runs a command in role's namespace and returns its combined output.
func (t *Topology) Exec(ctx context.Context, role string, args ...string) (string, error) {
	return run(ctx, append([]string{"ip", "netns", "exec", t.NS(role)}, args...)...)
}

func run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Prereqs lists what this machine lacks for the topology (empty: all set).
func Prereqs() []string {
	var miss []string
	if r := prereq.Root("network namespaces, XDP, BPF maps"); r != "" {
		miss = append(miss, r)
	}
	// curl: the dataplanes' metrics (table generation, diagnostics).
	return append(miss, prereq.Commands("ip", "sysctl", "nsenter", "ethtool", "ping", "tcpdump", "tshark", "iperf3", "curl")...)
}

// record appends a line to the state file before the thing it names is
// created, so Down finds it even if creation half-failed.
func (t *Topology) record(kind, value string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := os.MkdirAll(t.Dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(t.Dir, "state"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%s %s\n", kind, value)
	return err
}

// Up creates the namespaces and links, loads both sites' pinned maps and
// installs the tunnel, routes, local addresses and the first SA pair. It
// does not start the dataplanes (StartDataplane). On error call Down.
func (t *Topology) Up(ctx context.Context) error {
	if miss := Prereqs(); len(miss) > 0 {
		return fmt.Errorf("b2b: missing prerequisites: %s", strings.Join(miss, ", "))
	}
	if err := Down(t.Prefix); err != nil { // leftovers of a crashed run
		return err
	}
	for _, s := range []*Site{t.A, t.B} {
		if err := t.record("instance", s.Instance); err != nil {
			return err
		}
	}
	for _, r := range Roles {
		if err := t.record("netns", t.NS(r)); err != nil {
			return err
		}
		if _, err := run(ctx, "ip", "netns", "add", t.NS(r)); err != nil {
			return err
		}
		fwd := "0" // a site's kernel must never forward plaintext past a stopped dataplane
		if r == Wire {
			fwd = "1"
		}
		for _, c := range [][]string{
			{"ip", "link", "set", "lo", "up"},
			{"sysctl", "-qw", "net.ipv4.ip_forward=" + fwd, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
				"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"},
		} {
			if _, err := t.Exec(ctx, r, c...); err != nil {
				return err
			}
		}
	}
	links := []struct {
		ra, da string
		aa     netip.Addr
		rb, db string
		ab     netip.Addr
	}{
		{LAN, LANDev, LANHost, SiteA, InsideDev, AInside},
		{SiteA, OutsideDev, AOutside, Wire, WireA, WireAAddr},
		{Wire, WireB, WireBAddr, SiteB, OutsideDev, BOutside},
		{SiteB, InsideDev, BInside, VPC, VPCDev, VPCHost},
	}
	for _, l := range links {
		args := []string{"ip", "-n", t.NS(l.ra), "link", "add", l.da}
		peer := []string{"peer", "name", l.db, "netns", t.NS(l.rb)}
		if q := t.Opts.Queues; q > 1 && (l.ra == SiteA || l.rb == SiteA) {
			qs := []string{"numtxqueues", strconv.Itoa(q), "numrxqueues", strconv.Itoa(q)}
			args = append(args, qs...)
			peer = append(peer, qs...)
		}
		args = append(append(args, "type", "veth"), peer...)
		if _, err := run(ctx, args...); err != nil {
			return err
		}
		for _, e := range []struct {
			role, dev string
			a         netip.Addr
		}{{l.ra, l.da, l.aa}, {l.rb, l.db, l.ab}} {
			for _, c := range [][]string{
				{"ip", "addr", "add", e.a.String() + "/24", "dev", e.dev},
				{"ip", "link", "set", e.dev, "up"},
				// Frames from a veth's own stack carry partial TCP/UDP
				// checksums (tx offload); AF_XDP would forward them so.
				{"ethtool", "-K", e.dev, "tx", "off"},
			} {
				if _, err := t.Exec(ctx, e.role, c...); err != nil {
					return err
				}
			}
		}
	}
	for _, r := range [][]string{
		{LAN, "default", "via", AInside.String()},
		{VPC, "default", "via", BInside.String()},
		{SiteA, "default", "via", WireAAddr.String()},
		{SiteB, "default", "via", WireBAddr.String()},
	} {
		if _, err := t.Exec(ctx, r[0], append([]string{"ip", "route", "add"}, r[1:]...)...); err != nil {
			return err
		}
	}
	// Resolve every neighbour the dataplanes need before they bind.
	for _, p := range []struct {
		role string
		to   netip.Addr
	}{{SiteA, LANHost}, {SiteA, WireAAddr}, {SiteB, VPCHost}, {SiteB, WireBAddr}, {Wire, AOutside}, {Wire, BOutside}} {
		if _, err := t.Exec(ctx, p.role, "ping", "-n", "-q", "-c", "1", "-W", "2", p.to.String()); err != nil {
			return fmt.Errorf("b2b: topology check: %w", err)
		}
	}
	if err := t.loadMaps(); err != nil {
		return err
	}
	pair, err := NewSAPair(t.Opts.Suite, 0x0a000001, 0x0b000001, 1, 2)
	if err != nil {
		return err
	}
	return t.install(pair)
}

// NewSAPair makes an SA pair with random keys.
func NewSAPair(s transform.Suite, spiAB, spiBA, idxAB, idxBA uint32) (SAPair, error) {
	if err := s.Valid(); err != nil {
		return SAPair{}, err
	}
	p := SAPair{IndexAB: idxAB, IndexBA: idxBA,
		AB: esptest.SA{Src: AOutside, Dst: BOutside, SPI: spiAB, Suite: s, Keymat: make([]byte, s.KeymatLen())},
		BA: esptest.SA{Src: BOutside, Dst: AOutside, SPI: spiBA, Suite: s, Keymat: make([]byte, s.KeymatLen())},
	}
	if _, err := rand.Read(p.AB.Keymat); err != nil {
		return p, err
	}
	_, err := rand.Read(p.BA.Keymat)
	return p, err
}

func (t *Topology) loadMaps() error {
	for _, s := range []*Site{t.A, t.B} {
		o, err := maps.Load(s.Instance)
		if err != nil {
			return fmt.Errorf("b2b: site %s maps: %w", s.Name, err)
		}
		s.Objs = o
		if s.Writer, err = maps.NewWriter(o); err != nil {
			return err
		}
		if s.Reader, err = maps.NewReader(o); err != nil {
			return err
		}
		tun := maps.Tunnel{Mtu: TunnelMTU, Mss: TunnelMSS,
			LocalAddr: maps.Addr16(s.Outside), RemoteAddr: maps.Addr16(s.Peer),
			InsideAddr: maps.Addr16(s.Tunnel), InsidePrefixlen: uint8(TunnelNet.Bits())}
		if t.Opts.UDPEncap {
			tun.LocalPort, tun.RemotePort = NATTPort, NATTPort
		}
		steps := []func() error{
			func() error { return s.Writer.SetTunnel(TunnelID, tun) },
			func() error { return s.Writer.AddLocalAddr(s.Outside, maps.LocalOutside) },
			func() error { return s.Writer.AddLocalAddr(s.Inside, maps.LocalInside) },
			func() error { return s.Writer.AddRoute(s.Remote, maps.Route{TunnelId: TunnelID}) },
		}
		for _, f := range steps {
			if err := f(); err != nil {
				return fmt.Errorf("b2b: site %s: %w", s.Name, err)
			}
		}
	}
	return nil
}

// mapSA converts one direction for a site's table.
func (t *Topology) mapSA(e esptest.SA, dir maps.SADir, local, remote netip.Addr) (maps.SA, error) {
	sa := maps.SA{Spi: e.SPI, TunnelId: TunnelID, Direction: uint8(dir), State: uint8(maps.StateActive),
		ReplayWindow: 1024, LocalAddr: maps.Addr16(local), RemoteAddr: maps.Addr16(remote)}
	if t.Opts.NoReplay {
		sa.ReplayWindow = 0
	}
	if t.Opts.UDPEncap {
		sa.Flags |= uint32(maps.SAFlagUDPEncap)
		sa.EncapSport, sa.EncapDport = NATTPort, NATTPort
	}
	if err := maps.SetKeys(&sa, e.Suite, e.Keymat); err != nil {
		return sa, err
	}
	return sa, nil
}

// install puts a first SA pair in place and brings the tunnel up.
func (t *Topology) install(p SAPair) error {
	if err := t.installInbound(p); err != nil {
		return err
	}
	if err := t.switchOutbound(p); err != nil {
		return err
	}
	for _, s := range []*Site{t.A, t.B} {
		if err := s.Writer.SetTunnelUp(TunnelID, true); err != nil {
			return err
		}
	}
	return nil
}

// installInbound installs the inbound halves of p on both sites (step 1 of
// make-before-break, DESIGN §2).
func (t *Topology) installInbound(p SAPair) error {
	in := []struct {
		s   *Site
		e   esptest.SA
		idx uint32
	}{{t.B, p.AB, p.IndexAB}, {t.A, p.BA, p.IndexBA}}
	for _, x := range in {
		sa, err := t.mapSA(x.e, maps.DirInbound, x.s.Outside, x.s.Peer)
		if err != nil {
			return err
		}
		if err := x.s.Writer.InstallInboundSA(x.idx, sa); err != nil {
			return fmt.Errorf("b2b: site %s inbound SA %d: %w", x.s.Name, x.idx, err)
		}
	}
	return nil
}

// switchOutbound installs the outbound halves of p and points each site's
// tunnel at them, one map update each (step 2).
func (t *Topology) switchOutbound(p SAPair) error {
	out := []struct {
		s   *Site
		e   esptest.SA
		idx uint32
	}{{t.A, p.AB, p.IndexAB}, {t.B, p.BA, p.IndexBA}}
	for _, x := range out {
		sa, err := t.mapSA(x.e, maps.DirOutbound, x.s.Outside, x.s.Peer)
		if err != nil {
			return err
		}
		if err := x.s.Writer.InstallSA(x.idx, sa); err != nil {
			return fmt.Errorf("b2b: site %s outbound SA %d: %w", x.s.Name, x.idx, err)
		}
		if err := x.s.Writer.SetOutboundSA(TunnelID, x.idx); err != nil {
			return err
		}
	}
	t.mu.Lock()
	t.SAs = p
	t.mu.Unlock()
	return nil
}

// Rekey replaces the SA pair make-before-break (DESIGN §2): the new inbound
// SAs first, then each site's outbound switch in one update, then, after
// grace, the old SAs retired. Between the first two steps it waits until
// both dataplanes' workers use the tables with the new inbound SAs
// (maps.Writer.WaitApplied), as cgw-control does before it lets an IKE
// peer send on a new SA.
func (t *Topology) Rekey(ctx context.Context, next SAPair, grace time.Duration) error {
	old := t.SAs
	if err := t.installInbound(next); err != nil {
		return err
	}
	for _, s := range []*Site{t.A, t.B} {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.Writer.WaitApplied(wctx, s.Writer.Generation())
		cancel()
		if err != nil {
			return fmt.Errorf("b2b: site %s: %w", s.Name, err)
		}
	}
	if err := t.switchOutbound(next); err != nil {
		return err
	}
	for _, x := range []struct {
		s       *Site
		out, in uint32
	}{{t.A, old.IndexAB, old.IndexBA}, {t.B, old.IndexBA, old.IndexAB}} {
		if err := x.s.Writer.SetSAState(x.in, maps.StateRetiring); err != nil {
			return err
		}
		if err := x.s.Writer.SetSAState(x.out, maps.StateRetiring); err != nil {
			return err
		}
	}
	time.Sleep(grace)
	for _, x := range []struct {
		s       *Site
		out, in uint32
	}{{t.A, old.IndexAB, old.IndexBA}, {t.B, old.IndexBA, old.IndexAB}} {
		if err := x.s.Writer.RetireSA(x.out); err != nil {
			return err
		}
		if err := x.s.Writer.RetireSA(x.in); err != nil {
			return err
		}
	}
	return nil
}

// SetClearDF sets or clears the clear-DF flag of both sites' tunnel.
func (t *Topology) SetClearDF(on bool) error {
	for _, s := range []*Site{t.A, t.B} {
		tb, err := s.Reader.Snapshot()
		if err != nil {
			return err
		}
		tun := tb.Tunnels[TunnelID]
		tun.Flags &^= uint32(maps.TunnelClearDF)
		if on {
			tun.Flags |= uint32(maps.TunnelClearDF)
		}
		if err := s.Writer.SetTunnel(TunnelID, tun); err != nil {
			return err
		}
	}
	return nil
}

// DataplaneArgs is a site's default cgw-dataplane command line.
func (t *Topology) DataplaneArgs(s *Site) []string {
	if t.Opts.DataplaneArgs != nil {
		return t.Opts.DataplaneArgs(s)
	}
	// One worker per queue served (the veths have one RX queue unless
	// Options.Queues says more).
	workers := 1
	if s == t.A && t.Opts.Workers > 1 {
		workers = t.Opts.Workers
	}
	args := []string{"-instance", s.Instance, "-inside", InsideDev, "-outside", OutsideDev, "-queues", strconv.Itoa(workers)}
	if c := t.Opts.CPU[s.Name]; c != "" {
		args = append(args, "-cpus", c)
	}
	if t.Opts.NoCrypto {
		args = append(args, "-no-crypto")
	}
	if t.Opts.RingSize > 0 {
		args = append(args, "-ring-size", strconv.Itoa(t.Opts.RingSize))
	}
	return args
}

// StartDataplane starts cgw-dataplane in a site's namespace.
func (t *Topology) StartDataplane(s *Site) error {
	if t.Opts.Dataplane == "" {
		return errors.New("b2b: no cgw-dataplane binary given (Options.Dataplane)")
	}
	if s.proc != nil {
		return fmt.Errorf("b2b: site %s: dataplane already running (pid %d)", s.Name, s.proc.Process.Pid)
	}
	dir := t.Opts.LogDir
	if dir == "" {
		dir = t.Dir
	}
	s.log = filepath.Join(dir, "dataplane-"+s.Name+".log")
	s.starts = strings.Count(s.DataplaneLog(), startLine)
	lf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	// nsenter, not ip netns exec: ip netns exec remounts /sys, hiding the
	// bpffs at /sys/fs/bpf, and the dataplane would pin maps of its own.
	// nsenter execs, so the pid is the dataplane's.
	args := append([]string{"--net=/run/netns/" + s.NS, t.Opts.Dataplane}, t.DataplaneArgs(s)...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("b2b: starting cgw-dataplane in %s: %w", s.NS, err)
	}
	st, err := procstat.Read(cmd.Process.Pid)
	if err == nil {
		err = t.record("proc", fmt.Sprintf("%d %d", cmd.Process.Pid, st.Start))
	}
	s.proc = cmd
	return err
}

// DataplaneLog returns what a site's dataplane logged so far.
func (s *Site) DataplaneLog() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// DataplanePid is the running dataplane's pid, or 0.
func (s *Site) DataplanePid() int {
	if s.proc == nil {
		return 0
	}
	return s.proc.Process.Pid
}

// startLine is in the line cgw-dataplane logs once its workers run.
const startLine = " worker(s) "

// WaitDataplane waits until the site's dataplane is ready: both NICs carry
// a native XDP program and the process logged its start line (the programs
// stay attached through pinned links across a restart, so the first alone
// says nothing about the new process). It fails early if the process
// exits.
func (t *Topology) WaitDataplane(ctx context.Context, s *Site, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) && ctx.Err() == nil {
		if s.proc == nil || !procstat.Alive(s.proc.Process.Pid, 0) {
			return fmt.Errorf("b2b: site %s: cgw-dataplane is not running; its log:\n%s", s.Name, s.DataplaneLog())
		}
		if strings.Count(s.DataplaneLog(), startLine) > s.starts &&
			t.xdpAttached(ctx, s.Role, InsideDev) && t.xdpAttached(ctx, s.Role, OutsideDev) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("b2b: site %s: cgw-dataplane did not attach its XDP programs within %v; its log:\n%s", s.Name, timeout, s.DataplaneLog())
}

// xdpAttached reports whether dev in role's namespace has a native XDP
// program.
func (t *Topology) xdpAttached(ctx context.Context, role, dev string) bool {
	out, err := run(ctx, "ip", "-n", t.NS(role), "link", "show", "dev", dev)
	return err == nil && strings.Contains(out, "prog/xdp id")
}

// StopDataplane ends a site's dataplane by pid: SIGTERM, or SIGKILL when
// kill is set (a crash), and waits for it.
func (t *Topology) StopDataplane(s *Site, kill bool) error {
	if s.proc == nil {
		return nil
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	p := s.proc
	s.proc = nil
	if err := p.Process.Signal(sig); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.Process.Kill()
		<-done
	}
	return nil
}

// Down ends the dataplanes and removes everything Up created.
func (t *Topology) Down() error {
	for _, s := range []*Site{t.A, t.B} {
		t.StopDataplane(s, false)
		if s.Reader != nil {
			s.Reader.Close()
		}
		if s.Writer != nil {
			s.Writer.Close()
		}
		if s.Objs != nil {
			s.Objs.Close()
		}
		s.Objs, s.Writer, s.Reader = nil, nil, nil
	}
	return Down(t.Prefix)
}

// Down removes what a topology with prefix recorded (after a crash too):
// processes by pid and start time, namespaces, pinned map instances.
func Down(prefix string) error {
	dir := filepath.Join(StateRoot, prefix)
	f, err := os.Open(filepath.Join(dir, "state"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var lines [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, strings.Fields(sc.Text()))
	}
	f.Close()
	var errs []error
	for _, l := range lines {
		if len(l) == 3 && l[0] == "proc" {
			pid, _ := strconv.Atoi(l[1])
			st, _ := strconv.ParseUint(l[2], 10, 64)
			if now, err := procstat.Read(pid); err == nil && now.Start == st {
				syscall.Kill(pid, syscall.SIGKILL)
				for i := 0; i < 100 && procstat.Alive(pid, st); i++ {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}
	}
	for _, l := range lines {
		if len(l) != 2 {
			continue
		}
		switch l[0] {
		case "netns":
			if _, err := os.Stat(filepath.Join("/run/netns", l[1])); err == nil {
				if _, err := run(context.Background(), "ip", "netns", "del", l[1]); err != nil {
					errs = append(errs, err)
				}
			}
		case "instance":
			if err := maps.Remove(l[1]); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("b2b: removing pinned maps of %s: %w", l[1], err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// Metrics returns the non-zero samples of a site's dataplane metrics
// (Prometheus text on its default 127.0.0.1:9472, read inside the site's
// namespace), for diagnostics.
func (t *Topology) Metrics(ctx context.Context, s *Site) (string, error) {
	out, err := run(ctx, "nsenter", "--net=/run/netns/"+s.NS, "curl", "-s", "--max-time", "3", "http://127.0.0.1:9472/metrics")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if l == "" || strings.HasPrefix(l, "#") || strings.HasSuffix(l, " 0") {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String(), nil
}

// WaitGeneration waits until a site's dataplane reports (metric
// cgw_dataplane_table_generation) that its workers hold tables of at
// least generation gen.
func (t *Topology) WaitGeneration(ctx context.Context, s *Site, gen uint64, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	var last string
	for time.Now().Before(end) && ctx.Err() == nil {
		m, err := t.Metrics(ctx, s)
		if err != nil {
			last = err.Error()
		}
		for _, l := range strings.Split(m, "\n") {
			if v, ok := strings.CutPrefix(l, "cgw_dataplane_table_generation "); ok {
				last = "generation " + v
				if g, err := strconv.ParseFloat(v, 64); err == nil && uint64(g) >= gen {
					return nil
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("b2b: site %s: dataplane did not publish table generation %d within %v (last: %s)", s.Name, gen, timeout, last)
}

// RunDataplane starts a site's dataplane and waits until it is ready. The
// kernel releases a stopped process's AF_XDP sockets a moment after it
// exits; until then binding the queue fails with EBUSY, so a start that
// fails that way is retried (up to 20 times, 50 ms apart). It returns the
// number of attempts.
func (t *Topology) RunDataplane(ctx context.Context, s *Site, timeout time.Duration) (int, error) {
	var err error
	for try := 1; try <= 20; try++ {
		if err = t.StartDataplane(s); err != nil {
			return try, err
		}
		if err = t.WaitDataplane(ctx, s, timeout); err == nil {
			return try, nil
		}
		t.StopDataplane(s, true)
		if !strings.Contains(err.Error(), "resource busy") {
			return try, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 20, err
}
