package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cgw-project/cgw/config"
)

// charonSpec is one charon (one tunnel end: libipsec keeps one TUN per
// daemon and picks the outbound SA by traffic selector only, so two
// 0.0.0.0/0 tunnels need two daemons in two namespaces, DESIGN.md §4).
type charonSpec struct {
	Endpoint  string       // role of the charon's namespace, e.g. "aws-t1"
	TunRole   string       // namespace the TUN is moved into
	TunName   string       // its name there
	Inside    netip.Prefix // tunnel inside address put on the TUN
	MTU       int
	Swanctl   string // rendered swanctl.conf
	LoadConns bool
	// Retransmit overrides strongSwan's IKE retransmission (Tries > 0).
	Retransmit Retransmit
	// Extra lines for strongswan.conf's charon section.
	Extra []string
}

func waitFor(ctx context.Context, what string, timeout time.Duration, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if ok() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startCharon runs charon in its namespace with a private /run (its pid
// file is fixed), moves libipsec's TUN into TunRole under TunName with the
// inside address and MTU, puts an ifb named ipsec0 in its place (charon
// still routes via "ipsec0") and loads the swanctl configuration.
func (l *Lab) startCharon(ctx context.Context, s charonSpec) error {
	dir := filepath.Join(l.Dir, s.Endpoint)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"strongswan.conf":      renderStrongSwanConfRetransmit(s.Retransmit, s.Extra...),
		"swanctl.conf":         s.Swanctl,
		"swanctl-client.conf":  "swanctl {\n    load = random openssl pem pkcs1 x509 pubkey\n}\n",
		"run-charon.sh.readme": "charon runs as: ip netns exec <ns> sh -c 'mount --bind <this dir> /run && exec /usr/lib/ipsec/charon' with STRONGSWAN_CONF=/run/strongswan.conf\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o600); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.st.Charons[s.Endpoint] = dir
	l.mu.Unlock()
	l.Progressf("%s: starting charon (kernel-libipsec) in %s", s.Endpoint, l.NS(s.Endpoint))
	p, err := l.StartProcess("charon-"+s.Endpoint, s.Endpoint, filepath.Join(dir, "stdout.log"),
		[]string{"STRONGSWAN_CONF=/run/strongswan.conf"},
		"sh", "-c", `mount --bind "$0" /run && exec /usr/lib/ipsec/charon`, dir)
	if err != nil {
		return err
	}
	vici := filepath.Join(dir, "charon.vici")
	if err := waitFor(ctx, s.Endpoint+" charon's vici socket "+vici, 10*time.Second, func() bool {
		if !p.Alive() {
			return true
		}
		_, err := os.Stat(vici)
		return err == nil
	}); err != nil {
		return err
	}
	if !p.Alive() {
		return fmt.Errorf("%s: charon exited at start; see %s and %s", s.Endpoint, filepath.Join(dir, "charon.log"), filepath.Join(dir, "stdout.log"))
	}
	if err := waitFor(ctx, s.Endpoint+" libipsec TUN ipsec0", 10*time.Second, func() bool {
		return l.ip(ctx, s.Endpoint, "link", "show", "ipsec0") == nil
	}); err != nil {
		return err
	}
	l.Progressf("%s: moving charon's TUN into %s as %s (%s, MTU %d)", s.Endpoint, l.NS(s.TunRole), s.TunName, s.Inside, s.MTU)
	if err := l.ip(ctx, s.Endpoint, "link", "set", "ipsec0", "netns", l.NS(s.TunRole), "name", s.TunName); err != nil {
		return err
	}
	steps := [][]string{
		{s.Endpoint, "link", "add", "ipsec0", "type", "ifb"},
		{s.Endpoint, "link", "set", "ipsec0", "up"},
		{s.TunRole, "link", "set", s.TunName, "mtu", fmt.Sprint(s.MTU)},
		{s.TunRole, "addr", "add", s.Inside.String(), "dev", s.TunName},
		{s.TunRole, "link", "set", s.TunName, "up"},
	}
	for _, st := range steps {
		if err := l.ip(ctx, st[0], st[1:]...); err != nil {
			return err
		}
	}
	_, err = l.Swanctl(ctx, s.Endpoint, "--load-all", "--file", filepath.Join(dir, "swanctl.conf"))
	return err
}

// charonDir returns an endpoint's directory, from this lab or its state.
func (l *Lab) charonDir(endpoint string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.st.Charons[endpoint]
	if !ok {
		return "", fmt.Errorf("lab %q has no charon %q", l.Prefix, endpoint)
	}
	return d, nil
}

// Swanctl runs swanctl against an endpoint's charon.
func (l *Lab) Swanctl(ctx context.Context, endpoint string, args ...string) (string, error) {
	dir, err := l.charonDir(endpoint)
	if err != nil {
		return "", err
	}
	args = append(args, "--uri", "unix://"+filepath.Join(dir, "charon.vici"))
	cmd := exec.CommandContext(ctx, "swanctl", args...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(dir, "swanctl-client.conf"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("swanctl %s (%s): %v: %s", strings.Join(args, " "), endpoint, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// startBird runs BIRD in role's namespace as speaker name.
func (l *Lab) startBird(ctx context.Context, name, role string, s birdSpeaker) error {
	dir := filepath.Join(l.Dir, "bird-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	s.LogPath = filepath.Join(dir, "bird.log")
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(renderBirdConf(s)), 0o644); err != nil {
		return err
	}
	sock := filepath.Join(dir, "bird.ctl")
	l.mu.Lock()
	l.st.Birds[name] = sock
	l.mu.Unlock()
	l.Progressf("%s: starting BIRD (ASN %d) in %s", name, s.ASN, l.NS(role))
	p, err := l.StartProcess("bird-"+name, role, filepath.Join(dir, "stdout.log"), nil,
		"bird", "-f", "-c", conf, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	if err != nil {
		return err
	}
	if err := waitFor(ctx, name+" BIRD control socket", 10*time.Second, func() bool {
		if !p.Alive() {
			return true
		}
		_, err := l.BirdShow(ctx, name, "status")
		return err == nil
	}); err != nil {
		return err
	}
	if !p.Alive() {
		b, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
		return fmt.Errorf("%s: BIRD exited at start: %s", name, strings.TrimSpace(string(b)))
	}
	return nil
}

// BirdShow runs "birdc show <args...>" against speaker name ("aws" or
// "cgw" for the stand-in).
func (l *Lab) BirdShow(ctx context.Context, name string, args ...string) (string, error) {
	return l.Birdc(ctx, name, append([]string{"show"}, args...)...)
}

// Birdc runs any birdc command against speaker name.
func (l *Lab) Birdc(ctx context.Context, name string, args ...string) (string, error) {
	l.mu.Lock()
	sock, ok := l.st.Birds[name]
	l.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("lab %q has no BIRD %q", l.Prefix, name)
	}
	return run(ctx, "birdc", append([]string{"-s", sock}, args...)...)
}

// awsTunnel returns AWS's copy of tunnel i with the overrides applied.
func (l *Lab) awsTunnel(i int) config.Tunnel {
	t := l.Conn.Tunnels[i]
	t.Phase1.Encryption = append([]string(nil), t.Phase1.Encryption...)
	t.Phase1.Integrity = append([]string(nil), t.Phase1.Integrity...)
	t.Phase1.DHGroups = append([]int(nil), t.Phase1.DHGroups...)
	t.Phase2.Encryption = append([]string(nil), t.Phase2.Encryption...)
	t.Phase2.Integrity = append([]string(nil), t.Phase2.Integrity...)
	t.Phase2.DHGroups = append([]int(nil), t.Phase2.DHGroups...)
	if l.opts.Overrides.Tunnel != nil {
		l.opts.Overrides.Tunnel(i, &t)
	}
	return t
}

// AWSSwanctlConf renders AWS's swanctl.conf for tunnel i.
func (l *Lab) AWSSwanctlConf(i int) (string, error) {
	t := l.awsTunnel(i)
	e := swanEnd{Conn: BGPProtocol(i), Local: t.AWSOutside.String(), Remote: "%any", Tunnel: t}
	if i < 2 && l.opts.Overrides.Initiate[i] {
		e.Initiate = true
		r := l.opts.Overrides.RemoteAddr[i]
		if !r.IsValid() {
			r = l.gatewayOutside(i)
		}
		e.Remote = r.String()
	}
	return renderSwanctlConf(e)
}

// AWSBird returns the virtual private gateway's BIRD speaker.
func (l *Lab) AWSBird() birdSpeaker { return l.AWSBirdOf(0) }

func (l *Lab) awsUp(ctx context.Context) error {
	for c := range l.Cfg.Connections {
		if err := l.awsConnUp(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// charonExtra is what the overrides add to AWS's strongswan.conf.
func (l *Lab) charonExtra() []string {
	if l.opts.Overrides.DropRekeyed {
		return []string{"delete_rekeyed_delay = 0"}
	}
	return nil
}

// awsConnUp starts connection c's AWS side: its two endpoints and its
// virtual private gateway.
func (l *Lab) awsConnUp(ctx context.Context, c int) error {
	cn := l.conn(c)
	for i := range cn.Tunnels {
		conf, err := l.AWSSwanctlConfOf(c, i)
		if err != nil {
			return err
		}
		t := l.awsTunnelOf(c, i)
		if err := l.startCharon(ctx, charonSpec{
			Endpoint: AWSEndpointOf(c, i), TunRole: AWSRole(c), TunName: AWSTunnelIf(i),
			Inside: netip.PrefixFrom(t.AWSInside(), t.InsideCIDR.Bits()), MTU: mtuOr(t.MTU), Swanctl: conf,
			Retransmit: l.opts.Overrides.Retransmit, Extra: l.charonExtra(),
		}); err != nil {
			return err
		}
	}
	if cn.Routing == config.RoutingStatic || cn.BGP == nil {
		// Static VPN: AWS routes the gateway's inside prefix over tunnel 1
		// (StaticFailover moves it as AWS's tunnel monitoring would).
		return l.ip(ctx, AWSRole(c), "route", "add", l.Cfg.Gateway.Inside.Address.Masked().String(), "dev", AWSTunnelIf(0))
	}
	return l.startBird(ctx, AWSRole(c), AWSRole(c), l.AWSBirdOf(c))
}

func mtuOr(m int) int {
	if m <= 0 {
		return 1399
	}
	return m
}

// gwEndpoint is the role of the stand-in's charon namespace for tunnel i.
func gwEndpoint(i int) string { return fmt.Sprintf("gw-t%d", i+1) }

// GatewayTunnelIf is the stand-in's tunnel interface in the cgw namespace.
func GatewayTunnelIf(i int) string { return fmt.Sprintf("gw-t%d", i+1) }

// StandIn is a strongSwan + BIRD customer gateway. One charon per tunnel
// runs in its own namespace (<prefix>-gw-t1, -gw-t2) attached to inet with
// its own outside address (the gateway's outside address + 1 + i, e.g.
// 192.0.2.11 and .12), because libipsec cannot keep two 0.0.0.0/0 tunnels
// apart in one daemon; each charon's TUN is moved into the cgw namespace
// as gw-t1/gw-t2 with the tunnel's inside address, where BIRD (the
// configured local ASN) runs the two eBGP sessions and routes the LAN.
type StandIn struct{}

// Name implements Gateway.
func (*StandIn) Name() string { return "strongswan-standin" }

// StandInOutside is the outside address of the stand-in's tunnel i.
func (l *Lab) StandInOutside(i int) netip.Addr {
	a := l.Cfg.Gateway.Outside.Address.Addr()
	for k := 0; k <= i; k++ {
		a = a.Next()
	}
	return a
}

// StandInSwanctlConf renders the stand-in's swanctl.conf for tunnel i.
func (l *Lab) StandInSwanctlConf(i int) (string, error) {
	t := l.Conn.Tunnels[i]
	return renderSwanctlConf(swanEnd{
		Conn: BGPProtocol(i), Local: l.StandInOutside(i).String(), Remote: t.AWSOutside.String(),
		Initiate: t.StartupAction != config.StartupAdd, Tunnel: t,
	})
}

// StandInBird returns the stand-in's BIRD speaker.
func (l *Lab) StandInBird() birdSpeaker {
	b := l.Conn.BGP
	s := birdSpeaker{RouterID: l.Conn.Tunnels[0].LocalInside(), ASN: b.LocalASN, HoldTime: b.HoldTime.Seconds()}
	for _, a := range b.Advertise {
		if p, err := netip.ParsePrefix(a); err == nil {
			s.Originate = append(s.Originate, p)
		}
	}
	for i := range l.Conn.Tunnels {
		t := &l.Conn.Tunnels[i]
		s.Peers = append(s.Peers, birdPeer{Name: BGPProtocol(i), Local: t.LocalInside(), Neighbor: t.AWSInside(), Interface: GatewayTunnelIf(i), PeerASN: b.PeerASN, Prepend: t.ASPathPrepend, Preference: 110 - i})
	}
	return s
}

// Up implements Gateway.
func (*StandIn) Up(ctx context.Context, l *Lab) error {
	nh := l.Cfg.Gateway.Outside.NextHop
	if !nh.IsValid() {
		nh = l.Cfg.Gateway.Outside.Address.Masked().Addr().Next()
	}
	for i := range l.Conn.Tunnels {
		ep := gwEndpoint(i)
		if err := l.AddNamespace(ctx, ep); err != nil {
			return err
		}
		l.Progressf("linking inet <-> %s %s (stand-in charon for tunnel %d)", ep, l.StandInOutside(i), i+1)
		if err := l.hostLink(ctx, fmt.Sprintf("g%d", i+1), nh, ep, "wan0", l.StandInOutside(i)); err != nil {
			return err
		}
		conf, err := l.StandInSwanctlConf(i)
		if err != nil {
			return err
		}
		t := &l.Conn.Tunnels[i]
		if err := l.startCharon(ctx, charonSpec{
			Endpoint: ep, TunRole: CGW, TunName: GatewayTunnelIf(i),
			Inside: netip.PrefixFrom(t.LocalInside(), t.InsideCIDR.Bits()), MTU: mtuOr(t.MTU), Swanctl: conf,
		}); err != nil {
			return err
		}
	}
	if l.Conn.Routing == config.RoutingStatic || l.Conn.BGP == nil {
		return l.ip(ctx, CGW, "route", "add", VPCPrefix.String(), "dev", GatewayTunnelIf(0))
	}
	return l.startBird(ctx, "cgw", CGW, l.StandInBird())
}
