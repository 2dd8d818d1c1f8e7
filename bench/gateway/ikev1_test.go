package gateway

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/status"
)

// ikeVersionsConfig is the lab's default configuration with tunnel i on
// IKE version vs[i]; the lab renders AWS's side from the same tunnels
// (swanctl version = 1, aggressive = no for IKEv1).
func ikeVersionsConfig(vs [2]int) *lab.Options {
	cfg := lab.DefaultConfig()
	for i := range cfg.Connections[0].Tunnels {
		cfg.Connections[0].Tunnels[i].IKEVersion = vs[i]
	}
	return &lab.Options{Config: cfg}
}

// charonMatches waits until endpoint ep's charon has exactly one IKE SA of
// version v, ESTABLISHED, whose only installed child has c's SPIs (the
// Quick Mode Delete of a replaced pair is asynchronous).
func charonMatches(t *testing.T, ctx context.Context, l *lab.Lab, ep string, v int, c status.ChildSA) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		sas, err := l.SwanctlListSAs(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		last = fmt.Sprintf("%+v", sas)
		if len(sas) != 1 || sas[0].Version != v || sas[0].State != "ESTABLISHED" {
			continue
		}
		n := 0
		for _, ch := range sas[0].Children {
			if ch.State == "INSTALLED" {
				n++
			}
		}
		sc, ok := sas[0].InstalledChild()
		if n == 1 && ok && sc.SPIIn == fmt.Sprintf("%08x", c.OutSPI) && sc.SPIOut == fmt.Sprintf("%08x", c.InSPI) {
			if !sc.Encap {
				t.Errorf("%s: ESP not UDP-encapsulated (libipsec forces NAT-T)", ep)
			}
			return
		}
	}
	t.Fatalf("%s: want one IKEv%d SA ESTABLISHED with one child INSTALLED, SPIs in %08x out %08x; charon lists %s", ep, v, c.OutSPI, c.InSPI, last)
}

// pingCountersMove pings lan -> vpc and checks the primary tunnel's
// per-SA dataplane counters carried every request and reply.
func pingCountersMove(t *testing.T, ctx context.Context, l *lab.Lab, g *lab.CGWGateway, name string) {
	t.Helper()
	s, err := g.Client(l).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := activeOf(t, s, name)
	pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 10)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Received < pr.Sent-1 {
		t.Errorf("ping lan -> vpc: %d of %d answered", pr.Received, pr.Sent)
	}
	time.Sleep(time.Second) // control reads the counters every 500 ms
	s, err = g.Client(l).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := activeOf(t, s, name)
	if a.Out.Packets < before.Out.Packets+uint64(pr.Sent) || a.In.Packets < before.In.Packets+uint64(pr.Received) {
		t.Errorf("%s's SA counters did not carry the pings: out %d -> %d, in %d -> %d packets (%d sent, %d answered)",
			name, before.Out.Packets, a.Out.Packets, before.In.Packets, a.In.Packets, pr.Sent, pr.Received)
	}
	t.Logf("ping through %s: %d of %d answered; SA %08x out +%d, in +%d packets", name, pr.Received, pr.Sent, a.OutSPI,
		a.Out.Packets-before.Out.Packets, a.In.Packets-before.In.Packets)
}

// primaryTunnel waits for the VPC prefix in the route map, learnt over
// both tunnels, and returns the tunnel it goes through and that tunnel's
// index. With one path learnt the primary can still move: BGP sessions
// established on both sides (WaitBGP) do not mean both UPDATEs arrived.
func primaryTunnel(t *testing.T, ctx context.Context, l *lab.Lab, g *lab.CGWGateway, names []string) (string, int) {
	t.Helper()
	s, err := g.WaitStatus(ctx, l, "route "+lab.VPCPrefix.String()+" in cgw's route map with a backup tunnel", func(s *status.Status) bool {
		for _, r := range s.Routes {
			if r.Prefix == lab.VPCPrefix && !r.Pending && r.Backup != "" {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Routes {
		if r.Prefix == lab.VPCPrefix {
			for i, n := range names {
				if n == r.Tunnel {
					return n, i
				}
			}
		}
	}
	t.Fatalf("no route for %v through a lab tunnel: %+v", lab.VPCPrefix, s.Routes)
	return "", 0
}

// TestLabCGWIKEv1: both tunnels ike_version 1 on both sides. cgw-control's
// IKEv1 engine (Main Mode + Quick Mode) brings them up against
// strongSwan, BGP runs over them, traffic takes the fast path, a Quick
// Mode rekey asked through the status API loses no ping, and SIGTERM
// deletes the SAs at strongSwan.
func TestLabCGWIKEv1(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, g, cgwctl := upLab(t, ctx, *ikeVersionsConfig([2]int{1, 1}))
	names := []string{l.Conn.Tunnels[0].Name, l.Conn.Tunnels[1].Name}

	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := l.WaitTunnels(wctx); err != nil {
		t.Fatalf("AWS side: %v", err)
	}
	s, err := g.WaitStatus(wctx, l, "both IKEv1 tunnels up in cgw-control", allUp)
	if err != nil {
		t.Fatalf("%v; last status: %+v", err, s)
	}
	t.Run("SAs match strongSwan", func(t *testing.T) {
		for i, n := range names {
			tu, _ := s.Tunnel(n)
			if tu.IKE == nil || !tu.IKE.Initiator {
				t.Errorf("%s: ISAKMP SA %+v, want one cgw initiated (startup action start)", n, tu.IKE)
			}
			charonMatches(t, ctx, l, lab.AWSEndpoint(i), 1, activeOf(t, s, n))
		}
		checkMapsMatch(t, g, l, s)
	})

	if err := l.WaitBGP(wctx); err != nil {
		t.Fatalf("BGP over IKEv1 tunnels: %v", err)
	}
	primary, pi := primaryTunnel(t, wctx, l, g, names)
	ep := lab.AWSEndpoint(pi)

	t.Run("cgwctl status", func(t *testing.T) {
		out, err := exec.CommandContext(ctx, cgwctl, "status", "-socket", g.SocketPath(l)).CombinedOutput()
		if err != nil {
			t.Fatalf("cgwctl status: %v\n%s", err, out)
		}
		for _, w := range append([]string{"established"}, names...) {
			if !strings.Contains(string(out), w) {
				t.Errorf("cgwctl status lacks %q:\n%s", w, out)
			}
		}
	})

	t.Run("traffic through the fast path", func(t *testing.T) {
		swBefore, err := l.ChildCounters(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		pingCountersMove(t, ctx, l, g, primary)
		swAfter, err := l.ChildCounters(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		if swAfter.PacketsIn < swBefore.PacketsIn+9 || swAfter.PacketsOut < swBefore.PacketsOut+9 {
			t.Errorf("strongSwan %s: packets in %d -> %d, out %d -> %d; want the pings both ways", ep,
				swBefore.PacketsIn, swAfter.PacketsIn, swBefore.PacketsOut, swAfter.PacketsOut)
		}
	})

	t.Run("quick mode rekey by cgwctl under ping", func(t *testing.T) {
		s, err := g.Client(l).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		old := activeOf(t, s, primary)
		pingDone := make(chan lab.PingResult, 1)
		go func() {
			pr, _ := l.Ping(ctx, lab.LAN, lab.VPCHost, 25) // 5 s
			pingDone <- pr
		}()
		time.Sleep(time.Second)
		if out, err := exec.CommandContext(ctx, cgwctl, "rekey", "-socket", g.SocketPath(l), primary).CombinedOutput(); err != nil {
			t.Fatalf("cgwctl rekey %s: %v\n%s", primary, err, out)
		}
		pr := <-pingDone
		if pr.Received != pr.Sent {
			t.Errorf("ping across a Quick Mode rekey: %d of %d answered (make-before-break should lose none)", pr.Received, pr.Sent)
		}
		t.Logf("ping across the Quick Mode rekey: %d of %d answered", pr.Received, pr.Sent)
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		defer rcancel()
		s2, err := g.WaitStatus(rctx, l, "the old SA pair retired after the Quick Mode rekey", func(st *status.Status) bool {
			return allUp(st) && activeOf(t, st, primary).InSPI != old.InSPI
		})
		if err != nil {
			t.Fatalf("%v; last %+v", err, s2)
		}
		checkMapsMatch(t, g, l, s2)
		charonMatches(t, ctx, l, ep, 1, activeOf(t, s2, primary))
		pingCountersMove(t, ctx, l, g, primary)
	})

	t.Run("main mode rekey by cgwctl under ping", func(t *testing.T) {
		s, err := g.Client(l).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		oldT, _ := s.Tunnel(primary)
		if oldT.IKE == nil {
			t.Fatalf("%s: no ISAKMP SA in status", primary)
		}
		oldIKE, oldChild := oldT.IKE.SPIi+oldT.IKE.SPIr, activeOf(t, s, primary)
		pingDone := make(chan lab.PingResult, 1)
		go func() {
			pr, _ := l.Ping(ctx, lab.LAN, lab.VPCHost, 25) // 5 s
			pingDone <- pr
		}()
		time.Sleep(time.Second)
		if out, err := exec.CommandContext(ctx, cgwctl, "rekey", "-ike", "-socket", g.SocketPath(l), primary).CombinedOutput(); err != nil {
			t.Fatalf("cgwctl rekey -ike %s: %v\n%s", primary, err, out)
		}
		pr := <-pingDone
		if pr.Received != pr.Sent {
			t.Errorf("ping across a Main Mode rekey: %d of %d answered", pr.Received, pr.Sent)
		}
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		defer rcancel()
		s2, err := g.WaitStatus(rctx, l, "a new ISAKMP SA", func(st *status.Status) bool {
			tu, _ := st.Tunnel(primary)
			return allUp(st) && tu.IKE != nil && tu.IKE.SPIi+tu.IKE.SPIr != oldIKE
		})
		if err != nil {
			t.Fatalf("%v; last %+v", err, s2)
		}
		// The SA pair is independent of the ISAKMP SA (RFC 2409 §5.5).
		if n := activeOf(t, s2, primary); n.InSPI != oldChild.InSPI {
			t.Errorf("the SA pair changed with the ISAKMP SA: %08x -> %08x", oldChild.InSPI, n.InSPI)
		}
		// The old ISAKMP SA is deleted after the grace period (5 s).
		charonMatches(t, ctx, l, ep, 1, activeOf(t, s2, primary))
	})

	t.Run("control crash and restart", func(t *testing.T) {
		s, err := g.Client(l).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		old := activeOf(t, s, primary)
		if err := g.StopControl(l, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := g.StartControl(ctx, l); err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
		defer rcancel()
		s2, err := g.WaitStatus(rctx, l, "IKEv1 tunnels re-established, no stale SA", allUp)
		if err != nil {
			t.Fatalf("%v; last %+v", err, s2)
		}
		if n := activeOf(t, s2, primary); n.InSPI == old.InSPI {
			t.Errorf("after restart the SPIs are the old ones (%08x)", n.InSPI)
		}
		checkMapsMatch(t, g, l, s2)
		// INITIAL-CONTACT makes charon drop what the killed process had.
		for i, n := range names {
			charonMatches(t, ctx, l, lab.AWSEndpoint(i), 1, activeOf(t, s2, n))
		}
		if err := l.WaitBGP(rctx); err != nil {
			t.Fatal(err)
		}
		if _, err := g.WaitRouteInstalled(rctx, l, lab.VPCPrefix); err != nil {
			t.Fatal(err)
		}
		pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 5)
		if err != nil || pr.Received < 4 {
			t.Errorf("ping after restart: %+v %v", pr, err)
		}
	})

	t.Run("SIGTERM deletes the SAs at strongSwan", func(t *testing.T) {
		if err := g.StopControl(l, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		for i := range names {
			ep := lab.AWSEndpoint(i)
			var last string
			gone := false
			for deadline := time.Now().Add(10 * time.Second); !gone && time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
				sas, err := l.SwanctlListSAs(ctx, ep)
				if err != nil {
					t.Fatal(err)
				}
				last, gone = fmt.Sprintf("%+v", sas), true
				for _, sa := range sas {
					if _, ok := sa.InstalledChild(); ok || sa.State == "ESTABLISHED" {
						gone = false
					}
				}
			}
			if !gone {
				t.Errorf("%s: SAs left after cgw-control's SIGTERM (no Delete?): %s", ep, last)
			}
		}
		r, done, err := g.Maps(l)
		if err != nil {
			t.Fatal(err)
		}
		defer done()
		tabs, err := r.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if len(tabs.Inbound) != 0 || len(tabs.SAs) != 0 {
			t.Errorf("after SIGTERM the maps still hold %d inbound SPIs, %d SAs", len(tabs.Inbound), len(tabs.SAs))
		}
	})
}

// TestLabCGWMixedIKEVersions: tunnel 1 on IKEv1, tunnel 2 on IKEv2, both
// engines on the same UDP 500/4500 sockets; both come up with charon
// agreeing on version and SPIs, and BGP runs over both.
func TestLabCGWMixedIKEVersions(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vs := [2]int{1, 2}
	l, g, _ := upLab(t, ctx, *ikeVersionsConfig(vs))
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := l.WaitTunnels(wctx); err != nil {
		t.Fatalf("AWS side: %v", err)
	}
	s, err := g.WaitStatus(wctx, l, "IKEv1 and IKEv2 tunnels up in cgw-control", allUp)
	if err != nil {
		t.Fatalf("%v; last status: %+v", err, s)
	}
	names := []string{l.Conn.Tunnels[0].Name, l.Conn.Tunnels[1].Name}
	for i, n := range names {
		charonMatches(t, ctx, l, lab.AWSEndpoint(i), vs[i], activeOf(t, s, n))
	}
	checkMapsMatch(t, g, l, s)
	if err := l.WaitBGP(wctx); err != nil {
		t.Fatalf("BGP over an IKEv1 and an IKEv2 tunnel: %v", err)
	}
	primary, _ := primaryTunnel(t, wctx, l, g, names)
	pingCountersMove(t, ctx, l, g, primary)
}

// awsDefaultPhases returns what an AWS endpoint accepts when its tunnel
// options are left alone, from config's tables of AWS's algorithms: every
// cipher (IKEv1 phase 1: CBC only), integrity algorithm and DH group
// (phase 1: those AWS allows there). cgw's own defaults are a strong
// subset since RFC 8247/8221; AWS's file and operators may still write all.
func awsDefaultPhases() (p1, p2 config.Phase) {
	for _, e := range config.Encryptions {
		if !e.AEAD {
			p1.Encryption = append(p1.Encryption, e.Name)
		}
		p2.Encryption = append(p2.Encryption, e.Name)
	}
	for _, i := range config.Integrities {
		p1.Integrity = append(p1.Integrity, i.Name)
		p2.Integrity = append(p2.Integrity, i.Name)
	}
	for _, g := range config.DHGroups {
		if g.Phase1 {
			p1.DHGroups = append(p1.DHGroups, g.ID)
		}
		p2.DHGroups = append(p2.DHGroups, g.ID)
	}
	return p1, p2
}

// TestLabCGWIKEv1AWSDefaults: IKEv1 tunnels with AWS's default algorithm
// lists on both sides (96 Phase 1 transforms, about 3.5 KB in Main Mode
// message 1 by control/ikev1's account, so more than the lab links'
// 1500-byte MTU and IP-fragmented; a Quick Mode offering every phase 2
// algorithm and PFS group) come up against strongSwan and carry traffic.
func TestLabCGWIKEv1AWSDefaults(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := ikeVersionsConfig([2]int{1, 1})
	for i := range o.Config.Connections[0].Tunnels {
		tu := &o.Config.Connections[0].Tunnels[i]
		tu.Phase1, tu.Phase2 = awsDefaultPhases() // lifetimes: ApplyDefaults
	}
	l, g, _ := upLab(t, ctx, *o)
	if n := len(l.Conn.Tunnels[0].Phase1.DHGroups); n < 12 {
		t.Fatalf("phase 1 has %d DH groups after defaults, want AWS's full list", n)
	}
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := l.WaitTunnels(wctx); err != nil {
		t.Fatalf("AWS side: %v", err)
	}
	s, err := g.WaitStatus(wctx, l, "both IKEv1 tunnels up with AWS's default proposals", allUp)
	if err != nil {
		t.Fatalf("%v; last status: %+v", err, s)
	}
	names := []string{l.Conn.Tunnels[0].Name, l.Conn.Tunnels[1].Name}
	for i, n := range names {
		charonMatches(t, ctx, l, lab.AWSEndpoint(i), 1, activeOf(t, s, n))
		sas, _ := l.SwanctlListSAs(ctx, lab.AWSEndpoint(i))
		if len(sas) == 1 {
			sc, _ := sas[0].InstalledChild()
			t.Logf("%s: charon chose IKE %s/%s/%s, ESP %s", n, sas[0].Fields["encr-alg"], sas[0].Fields["integ-alg"], sas[0].Fields["dh-group"], sc.EncrAlg)
		}
	}
	if err := l.WaitBGP(wctx); err != nil {
		t.Fatalf("BGP: %v", err)
	}
	primary, _ := primaryTunnel(t, wctx, l, g, names)
	pingCountersMove(t, ctx, l, g, primary)
}
