// Package lab emulates AWS Site-to-Site VPN on one machine with network
// namespaces (DESIGN.md §4): a LAN host, the customer gateway, an
// "internet" router, one strongSwan responder per AWS tunnel endpoint, the
// virtual private gateway (BIRD, ASN 64512) and a VPC host. The AWS side
// is generated from the same *config.Config as the gateway, so both ends
// agree unless a test overrides the AWS side on purpose.
//
// Topology (every namespace is named "<prefix>-<role>"):
//
//	lan 198.18.0.2 ─ cgw (198.18.0.1 | 192.0.2.10) ─ inet ─┬─ aws-t1 203.0.113.1 ┐ TUNs vgw-t1/vgw-t2
//	                                                        └─ aws-t2 203.0.113.2 ┴─ aws ─ vpc 198.19.0.2
//
// The gateway in the cgw namespace is pluggable (Gateway); StandIn is a
// strongSwan + BIRD gateway that proves the lab and is the benchmark
// baseline. Everything the lab creates is recorded under
// /run/cgw-lab/<prefix>/ so Down can clean up after a crash.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/internal/prereq"
)

// Namespace roles; the namespace is named "<prefix>-<role>".
const (
	LAN  = "lan"
	CGW  = "cgw"
	Inet = "inet"
	AWS  = "aws"
	VPC  = "vpc"
)

// AWSEndpoint is the role of AWS tunnel endpoint i (0-based): "aws-t1".
func AWSEndpoint(i int) string { return fmt.Sprintf("aws-t%d", i+1) }

// AWSTunnelIf is the name, in the aws namespace, of tunnel i's interface.
func AWSTunnelIf(i int) string { return fmt.Sprintf("vgw-t%d", i+1) }

// BGPProtocol is the BIRD protocol name of tunnel i's session (both sides).
func BGPProtocol(i int) string { return fmt.Sprintf("t%d", i+1) }

// Lab addresses that are not part of the gateway's configuration.
var (
	VPCPrefix   = netip.MustParsePrefix("198.19.0.0/24")
	VPCGateway  = netip.MustParseAddr("198.19.0.1")
	VPCHost     = netip.MustParseAddr("198.19.0.2")
	InetAWSSide = netip.MustParseAddr("203.0.113.254") // inet's address towards the AWS endpoints
	NATAddress  = netip.MustParseAddr("198.51.100.10") // what AWS sees when NAT is on
)

// DefaultPrefix names the lab's namespaces when none is given.
const DefaultPrefix = "cgwlab"

// DefaultStateRoot holds one directory per lab prefix.
const DefaultStateRoot = "/run/cgw-lab"

// Overrides changes the generated AWS side, to exercise mismatches,
// rekeys and AWS-initiated exchanges. The zero value changes nothing.
type Overrides struct {
	// Tunnel, if set, edits AWS's copy of tunnel i (proposals, lifetimes,
	// rekey margin/fuzz, DPD, IKE version, PSK, ...) before rendering.
	Tunnel func(i int, t *config.Tunnel)
	// Initiate makes AWS's endpoint of tunnel i initiate (start_action =
	// start) towards RemoteAddr (default: the gateway's outside address
	// for that tunnel), as AWS does with DPD action restart or startup "start".
	Initiate   [2]bool
	RemoteAddr [2]netip.Addr
	// Export lists prefixes AWS's BIRD announces on tunnel i's session
	// only, besides the VPC prefix (e.g. a more specific one on tunnel 2
	// to exercise longest-prefix match).
	Export [2][]netip.Prefix
	// Retransmit, if Tries > 0, sets AWS's charons' IKE retransmission
	// (strongswan.conf retransmit_tries/_timeout/_base): with a short DPD
	// it bounds how long AWS takes to declare the gateway dead.
	Retransmit Retransmit
	// DropRekeyed makes AWS's charons drop a rekeyed Child SA's inbound
	// SA as soon as it is deleted (delete_rekeyed_delay = 0) instead of
	// 5 s later (strongSwan's default, which hides a Delete sent while
	// the gateway still encrypts with the old SA): a strict peer, as RFC
	// 7296 §1.4.1 allows.
	DropRekeyed bool
}

// Retransmit is strongSwan's IKE retransmission schedule: the n-th try
// waits Timeout × Base^n seconds; after Tries the peer is dead.
type Retransmit struct {
	Tries         int
	Timeout, Base float64
}

// Options configure a lab.
type Options struct {
	Prefix    string         // default DefaultPrefix
	StateRoot string         // default DefaultStateRoot
	Config    *config.Config // default DefaultConfig()
	Gateway   Gateway        // default &StandIn{}
	Overrides Overrides
	// Connections, when Config is nil, makes the lab emulate that many
	// VPN connections (CloudHubConfig); a Config with several connections
	// is emulated whole. Each has its own AWS side (AWSRole, VPCRole).
	Connections int
	// NAT makes inet source-NAT the gateway side (192.0.2.0/24) to
	// NATAddress on its way to AWS (needs nft, Debian package nftables).
	NAT bool
	// Progress receives one line per step (the demo prints them).
	Progress io.Writer
}

// Gateway is whatever occupies the cgw namespace: the strongSwan stand-in
// now, cgw-control + cgw-dataplane later. Up runs after the topology and
// the AWS side are up; processes it starts go through Lab.StartProcess so
// Down ends them.
type Gateway interface {
	Name() string
	Up(ctx context.Context, l *Lab) error
}

// Lab is one emulated AWS lab.
type Lab struct {
	Prefix string
	Dir    string // state directory
	Cfg    *config.Config
	Conn   *config.Connection // the connection the lab emulates (Cfg.Connections[0])

	opts Options
	mu   sync.Mutex
	st   State
}

// State is what the lab persists in <dir>/state.json.
type State struct {
	Prefix     string            `json:"prefix"`
	Namespaces []string          `json:"namespaces"`
	Procs      []Proc            `json:"procs"`
	Charons    map[string]string `json:"charons"` // endpoint name → its directory
	Birds      map[string]string `json:"birds"`   // speaker name → control socket
	Gateway    string            `json:"gateway"`
}

// DefaultConfig is the gateway configuration the lab uses when none is
// given: one BGP connection with two tunnels, every field filled.
func DefaultConfig() *config.Config {
	tun := func(i int) config.Tunnel {
		return config.Tunnel{
			Name:         fmt.Sprintf("lab-t%d", i+1),
			AWSOutside:   netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}),
			LocalOutside: netip.MustParseAddr("192.0.2.10"),
			InsideCIDR:   netip.PrefixFrom(netip.AddrFrom4([4]byte{169, 254, byte(10 + i), 0}), 30),
			PreSharedKey: fmt.Sprintf("lab.psk_tunnel%d_x7Qe", i+1),
			IKEVersion:   2,
			Phase1: config.Phase{
				Encryption: []string{"AES128"},
				Integrity:  []string{"SHA2-256"},
				DHGroups:   []int{14},
				Lifetime:   config.Duration(28800 * time.Second),
			},
			Phase2: config.Phase{
				Encryption: []string{"AES128-GCM-16"},
				DHGroups:   []int{14},
				Lifetime:   config.Duration(3600 * time.Second),
			},
			RekeyMargin:   config.Duration(270 * time.Second),
			RekeyFuzz:     100,
			ReplayWindow:  1024,
			DPD:           config.DPD{Interval: config.Duration(10 * time.Second), Retries: 3, Action: config.DPDClear},
			NATTraversal:  config.NATAuto,
			MTU:           1399,
			TCPMSS:        1379,
			StartupAction: config.StartupStart,
		}
	}
	return &config.Config{
		Gateway: config.Gateway{
			Name:    "lab",
			Outside: config.Interface{Name: "wan0", Address: netip.MustParsePrefix("192.0.2.10/24"), NextHop: netip.MustParseAddr("192.0.2.1")},
			Inside:  config.Interface{Name: "lan0", Address: netip.MustParsePrefix("198.18.0.1/24")},
		},
		Connections: []config.Connection{{
			Name:    "lab",
			Routing: config.RoutingBGP,
			BGP: &config.BGP{
				LocalASN: 65000, PeerASN: 64512,
				HoldTime:  config.Duration(30 * time.Second),
				Advertise: []string{"198.18.0.0/24"},
			},
			Tunnels: []config.Tunnel{tun(0), tun(1)},
		}},
	}
}

// New prepares a lab; nothing is created until Up.
func New(o Options) (*Lab, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if len(o.Prefix) > 20 || strings.ContainsAny(o.Prefix, "/ \t") {
		return nil, fmt.Errorf("lab prefix %q: use at most 20 characters, no '/' or spaces", o.Prefix)
	}
	if o.StateRoot == "" {
		o.StateRoot = DefaultStateRoot
	}
	if o.Config == nil {
		o.Config = DefaultConfig()
		if o.Connections > 1 {
			o.Config = CloudHubConfig(o.Connections)
		}
	}
	if o.Gateway == nil {
		o.Gateway = &StandIn{}
	}
	c := o.Config
	c.ApplyDefaults()
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("lab: gateway configuration: %w", err)
	}
	if len(c.Connections) == 0 || len(c.Connections) > MaxConnections {
		return nil, fmt.Errorf("lab: the configuration needs 1 to %d connections, it has %d", MaxConnections, len(c.Connections))
	}
	for k := range c.Connections {
		if len(c.Connections[k].Tunnels) != 2 {
			return nil, fmt.Errorf("lab: connection %s needs exactly two tunnels (AWS gives two per VPN connection)", c.Connections[k].Name)
		}
		if c.Connections[k].Routing == config.RoutingBGP && c.Connections[k].BGP == nil {
			return nil, fmt.Errorf("lab: connection %s: routing is bgp but it has no bgp section", c.Connections[k].Name)
		}
	}
	if _, ok := o.Gateway.(*StandIn); ok && len(c.Connections) > 1 {
		return nil, errors.New("lab: the strongSwan stand-in emulates one connection; use the cgw gateway for several")
	}
	if !c.Gateway.Outside.Address.IsValid() || !c.Gateway.Inside.Address.IsValid() {
		return nil, errors.New("lab: gateway.outside.address and gateway.inside.address are required")
	}
	l := &Lab{
		Prefix: o.Prefix,
		Dir:    filepath.Join(o.StateRoot, o.Prefix),
		Cfg:    c,
		Conn:   &c.Connections[0],
		opts:   o,
	}
	l.st = State{Prefix: o.Prefix, Charons: map[string]string{}, Birds: map[string]string{}, Gateway: o.Gateway.Name()}
	return l, nil
}

// Attach returns the running lab with prefix under root (as recorded by
// Up), for status, measurements and tests of a lab someone else started.
func Attach(root, prefix string) (*Lab, error) {
	if root == "" {
		root = DefaultStateRoot
	}
	st, err := LoadState(root, prefix)
	if err != nil {
		return nil, fmt.Errorf("lab %q is not up (no state under %s): %w", prefix, root, err)
	}
	var cfg config.Config
	b, err := os.ReadFile(filepath.Join(root, prefix, "config.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("lab %q: config.json: %w", prefix, err)
	}
	l, err := New(Options{Prefix: prefix, StateRoot: root, Config: &cfg})
	if err != nil {
		return nil, err
	}
	if st.Charons == nil {
		st.Charons = map[string]string{}
	}
	if st.Birds == nil {
		st.Birds = map[string]string{}
	}
	l.st = st
	return l, nil
}

// NS returns the namespace name of a role.
func (l *Lab) NS(role string) string { return l.Prefix + "-" + role }

// LANHost is the on-premises host's address (the inside prefix's first
// address that is not the gateway's).
func (l *Lab) LANHost() netip.Addr {
	gw := l.Cfg.Gateway.Inside.Address
	a := gw.Masked().Addr().Next()
	if a == gw.Addr() {
		a = a.Next()
	}
	return a
}

// Progressf reports a step.
func (l *Lab) Progressf(format string, a ...any) {
	if l.opts.Progress != nil {
		fmt.Fprintf(l.opts.Progress, "==> "+format+"\n", a...)
	}
}

func (l *Lab) save() error {
	l.mu.Lock()
	b, err := json.MarshalIndent(l.st, "", "  ")
	l.mu.Unlock()
	if err != nil {
		return err
	}
	tmp := filepath.Join(l.Dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(l.Dir, "state.json"))
}

// LoadState reads the state of the lab with prefix under root.
func LoadState(root, prefix string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(root, prefix, "state.json"))
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(b, &st)
	return st, err
}

// State returns a copy of the lab's recorded state.
func (l *Lab) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.st
	st.Namespaces = append([]string(nil), l.st.Namespaces...)
	st.Procs = append([]Proc(nil), l.st.Procs...)
	return st
}

// Prereqs lists what this machine lacks to run the lab (empty: all set),
// each with the Debian package that brings it. It checks what the tools
// can do (internal/prereq): charon is started once to see that it loads
// every plugin the lab's strongswan.conf asks for, and bird must be BIRD 2.
func Prereqs() []string {
	var miss []string
	if r := prereq.Root("network namespaces need CAP_SYS_ADMIN/CAP_NET_ADMIN"); r != "" {
		miss = append(miss, r)
	}
	miss = append(miss, prereq.Commands("ip", "sysctl", "swanctl", "birdc", "iperf3", "ping", "mount", "unshare", "nsenter", "tcpdump",
		prereq.Charon, "/dev/net/tun")...)
	if err := prereq.BIRD(); err != nil {
		miss = append(miss, err.Error())
	}
	if len(miss) == 0 {
		if err := prereq.CharonPlugins(strings.Fields(charonPlugins)...); err != nil {
			miss = append(miss, err.Error())
		}
	}
	return miss
}

// AddNamespace creates namespace role (recorded first, so Down deletes it
// even if creation half-failed) with lo up and IPv4 forwarding on.
func (l *Lab) AddNamespace(ctx context.Context, role string) error {
	ns := l.NS(role)
	l.mu.Lock()
	l.st.Namespaces = append(l.st.Namespaces, ns)
	l.mu.Unlock()
	if err := l.save(); err != nil {
		return err
	}
	if _, err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	if _, err := run(ctx, "ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	for _, kv := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.disable_ipv6=1"} {
		if _, err := l.Exec(ctx, role, "sysctl", "-qw", kv); err != nil {
			return err
		}
	}
	return nil
}

// Exec runs a command inside the namespace of role and returns its stdout.
func (l *Lab) Exec(ctx context.Context, role string, args ...string) (string, error) {
	return run(ctx, "ip", append([]string{"netns", "exec", l.NS(role)}, args...)...)
}

// ip runs "ip -n <ns-of-role> args...".
func (l *Lab) ip(ctx context.Context, role string, args ...string) error {
	_, err := run(ctx, "ip", append([]string{"-n", l.NS(role)}, args...)...)
	return err
}

// veth creates a pair directly inside the two namespaces (the names never
// exist in the host namespace, so labs with other prefixes never clash).
func (l *Lab) veth(ctx context.Context, roleA, nameA, roleB, nameB string) error {
	return l.ip(ctx, roleA, "link", "add", nameA, "type", "veth", "peer", "name", nameB, "netns", l.NS(roleB))
}

// lanLink joins two namespaces by a veth pair on one subnet.
func (l *Lab) lanLink(ctx context.Context, roleA, nameA string, addrA netip.Prefix, roleB, nameB string, addrB netip.Prefix) error {
	if err := l.veth(ctx, roleA, nameA, roleB, nameB); err != nil {
		return err
	}
	for _, s := range []struct {
		role, name string
		a          netip.Prefix
	}{{roleA, nameA, addrA}, {roleB, nameB, addrB}} {
		if err := l.ip(ctx, s.role, "addr", "add", s.a.String(), "dev", s.name); err != nil {
			return err
		}
		if err := l.ip(ctx, s.role, "link", "set", s.name, "up"); err != nil {
			return err
		}
	}
	return nil
}

// hostLink joins a leaf namespace to inet with /32 host routes: inet's
// side carries addrInet/32, the leaf's side addrLeaf/32 and a default
// route through inet. Used for every outside leaf so no bridge is needed.
func (l *Lab) hostLink(ctx context.Context, inetName string, addrInet netip.Addr, leafRole, leafName string, addrLeaf netip.Addr) error {
	if err := l.veth(ctx, Inet, inetName, leafRole, leafName); err != nil {
		return err
	}
	steps := [][]string{
		{Inet, "addr", "add", addrInet.String() + "/32", "dev", inetName},
		{Inet, "link", "set", inetName, "up"},
		{Inet, "route", "add", addrLeaf.String() + "/32", "dev", inetName, "src", addrInet.String()},
		{leafRole, "addr", "add", addrLeaf.String() + "/32", "dev", leafName},
		{leafRole, "link", "set", leafName, "up"},
		{leafRole, "route", "add", addrInet.String() + "/32", "dev", leafName, "src", addrLeaf.String()},
		{leafRole, "route", "add", "default", "via", addrInet.String(), "dev", leafName, "src", addrLeaf.String()},
	}
	for _, s := range steps {
		if err := l.ip(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// StartProcess starts a process in role's namespace and records its pid.
func (l *Lab) StartProcess(name, role, logPath string, env []string, args ...string) (Proc, error) {
	p, err := startProc(name, l.NS(role), logPath, env, args...)
	if err != nil {
		return p, err
	}
	l.mu.Lock()
	l.st.Procs = append(l.st.Procs, p)
	l.mu.Unlock()
	return p, l.save()
}

// Up builds the topology, starts the AWS side and then the gateway. On
// error the caller should still call Down.
func (l *Lab) Up(ctx context.Context) error {
	if miss := Prereqs(); len(miss) > 0 {
		return fmt.Errorf("lab: missing prerequisites: %s", strings.Join(miss, "; "))
	}
	if st, err := LoadState(l.opts.StateRoot, l.Prefix); err == nil && len(st.Namespaces) > 0 {
		return fmt.Errorf("lab %q: state %s exists (a lab with this prefix is up or crashed); run: cgw-lab down --prefix %s", l.Prefix, l.Dir, l.Prefix)
	}
	for _, role := range l.roles() {
		if _, err := os.Stat(filepath.Join("/run/netns", l.NS(role))); err == nil {
			return fmt.Errorf("lab %q: namespace %s already exists; run: cgw-lab down --prefix %s", l.Prefix, l.NS(role), l.Prefix)
		}
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return err
	}
	if err := l.save(); err != nil {
		return err
	}
	if b, err := json.MarshalIndent(l.Cfg, "", "  "); err == nil {
		if err := os.WriteFile(filepath.Join(l.Dir, "config.json"), b, 0o644); err != nil {
			return err
		}
	}
	l.Progressf("creating namespaces %s-{%s}", l.Prefix, strings.Join(l.roles(), ","))
	for _, role := range l.roles() {
		if err := l.AddNamespace(ctx, role); err != nil {
			return err
		}
	}
	if err := l.topology(ctx); err != nil {
		return err
	}
	if l.opts.NAT {
		if err := l.enableNAT(ctx); err != nil {
			return err
		}
	}
	if err := l.awsUp(ctx); err != nil {
		return err
	}
	l.Progressf("starting the gateway (%s) in %s", l.opts.Gateway.Name(), l.NS(CGW))
	return l.opts.Gateway.Up(ctx, l)
}

func (l *Lab) topology(ctx context.Context) error {
	g := l.Cfg.Gateway
	inside := g.Inside.Address
	lanHost := netip.PrefixFrom(l.LANHost(), inside.Bits())
	l.Progressf("linking lan %s <-> cgw %s", lanHost, inside)
	if err := l.lanLink(ctx, LAN, "eth0", lanHost, CGW, g.Inside.Name, inside); err != nil {
		return err
	}
	if err := l.ip(ctx, LAN, "route", "add", "default", "via", inside.Addr().String()); err != nil {
		return err
	}
	out := g.Outside.Address
	nh := g.Outside.NextHop
	if !nh.IsValid() {
		nh = out.Masked().Addr().Next()
	}
	l.Progressf("linking cgw %s <-> inet %s", out, nh)
	if err := l.lanLink(ctx, CGW, g.Outside.Name, out, Inet, "cgw0", netip.PrefixFrom(nh, out.Bits())); err != nil {
		return err
	}
	if err := l.ip(ctx, CGW, "route", "add", "default", "via", nh.String()); err != nil {
		return err
	}
	for c := range l.Cfg.Connections {
		for i := range l.conn(c).Tunnels {
			a := l.conn(c).Tunnels[i].AWSOutside
			l.Progressf("linking inet <-> %s %s (host routes)", AWSEndpointOf(c, i), a)
			if err := l.hostLink(ctx, inetLink(c, i), InetAWSSide, AWSEndpointOf(c, i), "wan0", a); err != nil {
				return err
			}
		}
		aws, vpc, gw, host := AWSRole(c), VPCRole(c), VPCGatewayOf(c), VPCHostOf(c)
		l.Progressf("linking %s %s <-> %s %s", aws, gw, vpc, host)
		if err := l.lanLink(ctx, aws, "vpc0", netip.PrefixFrom(gw, 24), vpc, "eth0", netip.PrefixFrom(host, 24)); err != nil {
			return err
		}
		if err := l.ip(ctx, vpc, "route", "add", "default", "via", gw.String()); err != nil {
			return err
		}
	}
	return nil
}

// roles lists the namespaces of the topology (the gateway adds its own).
func (l *Lab) roles() []string {
	r := []string{LAN, CGW, Inet}
	for c := range l.Cfg.Connections {
		r = append(r, AWSEndpointOf(c, 0), AWSEndpointOf(c, 1), AWSRole(c), VPCRole(c))
	}
	return r
}

// enableNAT source-NATs everything from the gateway's outside subnet
// leaving inet towards AWS, so AWS sees the gateway behind NAT (RFC 3947).
func (l *Lab) enableNAT(ctx context.Context) error {
	if err := prereq.Command("nft"); err != nil {
		return fmt.Errorf("lab: NAT needs %w", err)
	}
	out := l.Cfg.Gateway.Outside.Address.Masked()
	l.Progressf("inet: source NAT %s -> %s", out, NATAddress)
	if err := l.ip(ctx, Inet, "addr", "add", NATAddress.String()+"/32", "dev", "lo"); err != nil {
		return err
	}
	rules := fmt.Sprintf(`table ip cgwlab {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %s oifname != "cgw0" snat to %s
	}
}
`, out, NATAddress)
	path := filepath.Join(l.Dir, "nat.nft")
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		return err
	}
	_, err := l.Exec(ctx, Inet, "nft", "-f", path)
	return err
}

// Down ends every recorded process (by pid) and deletes every recorded
// namespace, then the state directory. It is idempotent.
func (l *Lab) Down() error { return Down(l.opts.StateRoot, l.Prefix) }

// Down cleans the lab with prefix under root (after a crash too): the
// processes recorded in its state by pid, its namespaces (recorded ones
// and the fixed role names of the prefix), then the state directory.
func Down(root, prefix string) error {
	if root == "" {
		root = DefaultStateRoot
	}
	var errs []error
	st, err := LoadState(root, prefix)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("state of lab %q unreadable (%v); deleting its namespaces by name", prefix, err))
	}
	for i := len(st.Procs) - 1; i >= 0; i-- {
		if err := st.Procs[i].stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	nss := append([]string(nil), st.Namespaces...)
	for _, role := range []string{LAN, CGW, Inet, AWS, VPC, AWSEndpoint(0), AWSEndpoint(1), gwEndpoint(0), gwEndpoint(1)} {
		nss = append(nss, prefix+"-"+role)
	}
	seen := map[string]bool{}
	for _, ns := range nss {
		if seen[ns] {
			continue
		}
		seen[ns] = true
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			continue
		}
		if _, err := run(context.Background(), "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(filepath.Join(root, prefix)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
