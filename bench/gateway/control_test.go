package gateway

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/status"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// needLab fails (never skips, except with -short) when the lab cannot run.
func needLab(t *testing.T) {
	t.Helper()
	netnstest.Require(t, "ethtool", "nsenter", "iperf3")
	if miss := lab.Prereqs(); len(miss) > 0 {
		t.Fatalf("lab prerequisites missing: %s", strings.Join(miss, "; "))
	}
}

// upLab builds the commands and brings up a lab with cgw as the gateway;
// everything is removed at the end of the test.
func upLab(t *testing.T, ctx context.Context, o lab.Options, edit ...func(*lab.CGWGateway)) (*lab.Lab, *lab.CGWGateway, string) {
	t.Helper()
	// cgw-control runs with the race detector: the lab drives every
	// goroutine of it (IKE, BGP, the maps loop, the status API).
	g, cgwctl, err := lab.BuildCGW(ctx, t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range edit {
		f(g)
	}
	o.Prefix = fmt.Sprintf("cgwc%d", os.Getpid()%100000)
	o.StateRoot, o.Gateway, o.Progress = t.TempDir(), g, testWriter{t}
	l, err := lab.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"cgw-control.log", "cgw-dataplane.log"} {
				b, _ := os.ReadFile(l.Dir + "/" + f)
				t.Logf("--- %s (tail) ---\n%s", f, tailLines(string(b), 40))
			}
		}
		for _, r := range g.RaceReports(l) { // before Down removes the logs
			t.Errorf("cgw-control (race detector):\n%s", r)
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if err := g.Cleanup(l); err != nil {
			t.Errorf("removing pinned maps: %v", err)
		}
	})
	if err := l.Up(ctx); err != nil {
		t.Fatalf("lab up: %v", err)
	}
	return l, g, cgwctl
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func tailLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// allUp: every tunnel up with exactly one installed, active Child SA and
// no SA left by an earlier control process.
func allUp(s *status.Status) bool {
	if len(s.Tunnels) != 2 {
		return false
	}
	for _, t := range s.Tunnels {
		if t.State != "up" || len(t.Children) != 1 || !t.Children[0].Active || len(t.Stale) > 0 {
			return false
		}
	}
	return true
}

// checkMapsMatch: the maps hold exactly the SAs the status reports, and
// each tunnel's outbound SA is its active child's.
func checkMapsMatch(t *testing.T, g *lab.CGWGateway, l *lab.Lab, s *status.Status) *maps.Tables {
	t.Helper()
	r, done, err := g.Maps(l)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	tabs, err := r.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var want, got []uint32
	for _, tu := range s.Tunnels {
		for _, c := range tu.Children {
			want = append(want, c.InSPI)
			if c.Active && tabs.Outbound[tu.ID] != c.OutIndex {
				t.Errorf("tunnel %s: outbound SA slot %d in the map, status says %d", tu.Name, tabs.Outbound[tu.ID], c.OutIndex)
			}
		}
		if tabs.Tunnels[tu.ID].Flags&1 == 0 {
			t.Errorf("tunnel %s (id %d) is not marked up in the tunnel map", tu.Name, tu.ID)
		}
	}
	for spi := range tabs.Inbound {
		got = append(got, spi)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Errorf("inbound SPIs in the map %08x, control's children %08x (stale or missing SA)", got, want)
	}
	if len(tabs.SAs) != 2*len(want) {
		t.Errorf("%d SAs referenced in the maps, want %d (one pair per child)", len(tabs.SAs), 2*len(want))
	}
	return tabs
}

func activeOf(t *testing.T, s *status.Status, name string) status.ChildSA {
	t.Helper()
	tu, ok := s.Tunnel(name)
	if !ok {
		t.Fatalf("no tunnel %s in status", name)
	}
	c, ok := tu.Active()
	if !ok {
		t.Fatalf("tunnel %s has no active child SA", name)
	}
	return *c
}

// TestLabCGW runs cgw (cgw-dataplane + cgw-control) as the gateway of the
// emulated AWS lab: tunnels with AWS's defaults against strongSwan, BGP
// with BIRD, traffic through the fast path, a crash-restart of control
// while traffic flows, and a clean shutdown.
func TestLabCGW(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	l, g, cgwctl := upLab(t, ctx, lab.Options{})
	names := []string{l.Conn.Tunnels[0].Name, l.Conn.Tunnels[1].Name}

	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := l.WaitTunnels(wctx); err != nil {
		t.Fatalf("AWS side: %v", err)
	}
	s, err := g.WaitStatus(wctx, l, "both tunnels up in cgw-control", allUp)
	if err != nil {
		t.Fatalf("%v; last status: %+v", err, s)
	}

	t.Run("SAs match strongSwan", func(t *testing.T) {
		for i, n := range names {
			c := activeOf(t, s, n)
			if !c.Encap {
				t.Errorf("%s: ESP is not UDP-encapsulated (strongSwan's libipsec always forces NAT-T)", n)
			}
			sas, err := l.SwanctlListSAs(ctx, lab.AWSEndpoint(i))
			if err != nil {
				t.Fatal(err)
			}
			if len(sas) != 1 {
				t.Fatalf("%s: charon lists %d IKE SAs, want 1", lab.AWSEndpoint(i), len(sas))
			}
			sc, ok := sas[0].InstalledChild()
			if !ok {
				t.Fatalf("%s: no installed child", lab.AWSEndpoint(i))
			}
			if sc.SPIIn != fmt.Sprintf("%08x", c.OutSPI) || sc.SPIOut != fmt.Sprintf("%08x", c.InSPI) {
				t.Errorf("%s: charon's SPIs in %s out %s, ours in %08x out %08x", n, sc.SPIIn, sc.SPIOut, c.InSPI, c.OutSPI)
			}
		}
		checkMapsMatch(t, g, l, s)
	})

	// BGP with BIRD; the VPC prefix reaches the LPM map.
	if err := l.WaitBGP(wctx); err != nil {
		t.Fatalf("BGP: %v", err)
	}
	s, err = g.WaitRouteInstalled(wctx, l, lab.VPCPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var primary string
	for _, r := range s.Routes {
		if r.Prefix == lab.VPCPrefix {
			primary = r.Tunnel
			if r.Source != "bgp" || r.Backup == "" {
				t.Errorf("route %+v: want a BGP route with a backup tunnel", r)
			}
		}
	}
	tabs := checkMapsMatch(t, g, l, s)
	if !slices.ContainsFunc(tabs.Routes, func(r maps.RouteEntry) bool { return r.Prefix == lab.VPCPrefix && r.TunnelId != 0 }) {
		t.Fatalf("%v not in the dataplane's route map: %+v", lab.VPCPrefix, tabs.Routes)
	}
	t.Run("cgwctl", func(t *testing.T) {
		for _, c := range []struct {
			cmd  string
			want []string
		}{
			{"status", append([]string{"established"}, names...)},
			{"routes", []string{lab.VPCPrefix.String(), "bgp", "64512"}},
			{"sas", []string{names[0] + ": #1, ESTABLISHED, IKEv2", names[1] + ": #2, ESTABLISHED, IKEv2", "TUNNEL-in-UDP", "ESP:aes128gcm16"}},
		} {
			out, err := exec.CommandContext(ctx, cgwctl, c.cmd, "-socket", g.SocketPath(l)).CombinedOutput()
			if err != nil {
				t.Fatalf("cgwctl %s: %v\n%s", c.cmd, err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("cgwctl %s lacks %q:\n%s", c.cmd, w, out)
				}
			}
		}
	})

	pi := slices.Index(names, primary)
	if pi < 0 {
		t.Fatalf("route through unknown tunnel %q", primary)
	}
	ep := lab.AWSEndpoint(pi)

	t.Run("traffic through the fast path", func(t *testing.T) {
		before := activeOf(t, s, primary)
		swBefore, err := l.ChildCounters(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 10)
		if err != nil {
			t.Fatal(err)
		}
		if pr.Received < pr.Sent-1 {
			t.Errorf("ping lan -> vpc: %d of %d answered", pr.Received, pr.Sent)
		}
		// Bounded TCP both ways: lan -> vpc exercises encryption, vpc -> lan
		// decryption, each for 2 s.
		var sent, recv int64
		for _, rev := range []bool{false, true} {
			tr, err := l.Transfer(ctx, lab.LAN, lab.VPC, lab.VPCHost, lab.TransferOptions{Duration: 2 * time.Second, Reverse: rev})
			if err != nil {
				t.Fatalf("TCP (reverse %v): %v", rev, err)
			}
			if tr.Bytes < 1<<20 {
				t.Errorf("TCP (reverse %v): only %d bytes received in 2 s", rev, tr.Bytes)
			}
			dir := "lan -> vpc"
			if rev {
				dir, recv = "vpc -> lan", tr.Bytes
			} else {
				sent = tr.Bytes
			}
			t.Logf("TCP %s through cgw and strongSwan: %d bytes in %.2fs (%.0f Mbit/s)", dir, tr.Bytes, tr.Seconds, tr.BitsPerSec/1e6)
		}
		time.Sleep(time.Second) // control reads the counters every 500 ms
		after, err := g.Client(l).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a := activeOf(t, after, primary)
		if a.Out.Bytes < before.Out.Bytes+uint64(sent) || a.In.Bytes < before.In.Bytes+uint64(recv) || a.In.Packets < before.In.Packets+uint64(pr.Received) {
			t.Errorf("dataplane counters of %s: out %d -> %d bytes, in %d -> %d bytes (%d -> %d packets); want ≥ %d out, ≥ %d in and every ping reply",
				primary, before.Out.Bytes, a.Out.Bytes, before.In.Bytes, a.In.Bytes, before.In.Packets, a.In.Packets, sent, recv)
		}
		swAfter, err := l.ChildCounters(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		if swAfter.BytesIn < swBefore.BytesIn+uint64(sent) || swAfter.BytesOut < swBefore.BytesOut+uint64(recv) {
			t.Errorf("strongSwan %s: bytes in %d -> %d, out %d -> %d; want ≥ %d in and ≥ %d out",
				ep, swBefore.BytesIn, swAfter.BytesIn, swBefore.BytesOut, swAfter.BytesOut, sent, recv)
		}
	})

	// rekeyUnderPing runs a child rekey and an IKE rekey while pinging:
	// make-before-break loses nothing, the old SAs leave the maps and
	// charon's SPIs match ours.
	rekeyUnderPing := func(t *testing.T, child, ike func() error) {
		old := activeOf(t, s, primary)
		oldT, _ := s.Tunnel(primary)
		oldIKE := oldT.IKE.SPIi + oldT.IKE.SPIr
		pingDone := make(chan lab.PingResult, 1)
		go func() {
			pr, _ := l.Ping(ctx, lab.LAN, lab.VPCHost, 30) // 6 s
			pingDone <- pr
		}()
		time.Sleep(time.Second)
		if err := child(); err != nil {
			t.Fatalf("child rekey: %v", err)
		}
		time.Sleep(time.Second)
		if err := ike(); err != nil {
			t.Fatalf("IKE rekey: %v", err)
		}
		pr := <-pingDone
		if pr.Received < pr.Sent-1 {
			t.Errorf("ping across a child and an IKE rekey: %d of %d answered (make-before-break should lose none)", pr.Received, pr.Sent)
		}
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		defer rcancel()
		s2, err := g.WaitStatus(rctx, l, "the old child SA retired after the rekey", func(st *status.Status) bool {
			if !allUp(st) {
				return false
			}
			c, _ := st.Tunnel(primary)
			return c.Children[0].InSPI != old.InSPI && c.IKE != nil && c.IKE.SPIi+c.IKE.SPIr != oldIKE
		})
		if err != nil {
			t.Fatalf("%v; last %+v", err, s2)
		}
		checkMapsMatch(t, g, l, s2)
		n := activeOf(t, s2, primary)
		sas, err := l.SwanctlListSAs(ctx, ep)
		if err != nil || len(sas) != 1 {
			t.Fatalf("%s after rekeys: %v %+v", ep, err, sas)
		}
		sc, ok := sas[0].InstalledChild()
		if !ok || sc.SPIIn != fmt.Sprintf("%08x", n.OutSPI) || sc.SPIOut != fmt.Sprintf("%08x", n.InSPI) {
			t.Errorf("after rekey charon's child %+v, ours in %08x out %08x", sc, n.InSPI, n.OutSPI)
		}
		s = s2
	}

	t.Run("rekeys by strongSwan under traffic", func(t *testing.T) {
		sas, err := l.SwanctlListSAs(ctx, ep)
		if err != nil || len(sas) != 1 || len(sas[0].Children) == 0 {
			t.Fatalf("%s: %v %+v", ep, err, sas)
		}
		ikeName, childName := sas[0].Name, sas[0].Children[0].Name
		swanctl := func(args ...string) func() error {
			return func() error {
				out, err := l.Swanctl(ctx, ep, args...)
				if err != nil {
					return fmt.Errorf("swanctl %v: %v\n%s", args, err, out)
				}
				return nil
			}
		}
		rekeyUnderPing(t, swanctl("--rekey", "--child", childName), swanctl("--rekey", "--ike", ikeName))
	})

	t.Run("rekeys by cgw under traffic", func(t *testing.T) {
		c := g.Client(l)
		rekeyUnderPing(t, func() error { return c.RekeyChild(ctx, primary) }, func() error { return c.RekeyIKE(ctx, primary) })
	})

	t.Run("BGP failover to the other tunnel", func(t *testing.T) {
		other := names[1-pi]
		if err := l.SetBGP(ctx, pi, false); err != nil {
			t.Fatal(err)
		}
		fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
		defer fcancel()
		viaOther := func(st *status.Status) bool {
			return slices.ContainsFunc(st.Routes, func(r status.Route) bool { return r.Prefix == lab.VPCPrefix && r.Tunnel == other && !r.Pending })
		}
		s2, err := g.WaitStatus(fctx, l, lab.VPCPrefix.String()+" through "+other, viaOther)
		if err != nil {
			t.Fatalf("%v; routes %+v", err, s2.Routes)
		}
		tabs := checkMapsMatch(t, g, l, s2)
		ot, _ := s2.Tunnel(other)
		if !slices.ContainsFunc(tabs.Routes, func(r maps.RouteEntry) bool { return r.Prefix == lab.VPCPrefix && r.TunnelId == ot.ID }) {
			t.Errorf("LPM map does not route %v through tunnel %d: %+v", lab.VPCPrefix, ot.ID, tabs.Routes)
		}
		before := activeOf(t, s2, other)
		pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 10)
		if err != nil || pr.Received < pr.Sent-1 {
			t.Errorf("ping over %s after failover: %+v %v", other, pr, err)
		}
		time.Sleep(time.Second)
		s3, err := g.Client(l).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if a := activeOf(t, s3, other); a.Out.Packets < before.Out.Packets+uint64(pr.Sent) || a.In.Packets < before.In.Packets+uint64(pr.Received) {
			t.Errorf("%s's SA counters did not carry the pings: out %d -> %d, in %d -> %d", other, before.Out.Packets, a.Out.Packets, before.In.Packets, a.In.Packets)
		}
		if err := l.SetBGP(ctx, pi, true); err != nil {
			t.Fatal(err)
		}
		if s2, err = g.WaitStatus(fctx, l, lab.VPCPrefix.String()+" back through "+primary, func(st *status.Status) bool {
			return slices.ContainsFunc(st.Routes, func(r status.Route) bool { return r.Prefix == lab.VPCPrefix && r.Tunnel == primary && !r.Pending })
		}); err != nil {
			t.Fatal(err)
		}
		if err := l.WaitBGP(fctx); err != nil {
			t.Fatal(err)
		}
		s = s2
	})

	t.Run("dataplane restart", func(t *testing.T) {
		if err := g.StopDataplane(l); err != nil {
			t.Fatal(err)
		}
		if err := g.StartDataplane(ctx, l); err != nil {
			t.Fatal(err)
		}
		// The same SAs carry on (the sequence numbers live in the maps);
		// BGP, whose TCP runs through the recreated TUNs, recovers.
		rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
		defer rcancel()
		if err := l.WaitBGP(rctx); err != nil {
			t.Fatal(err)
		}
		pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 10)
		if err != nil || pr.Received < pr.Sent-1 {
			t.Errorf("ping after a dataplane restart: %+v %v", pr, err)
		}
		s2, err := g.Client(l).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if a, b := activeOf(t, s, n), activeOf(t, s2, n); a.InSPI != b.InSPI || a.OutSPI != b.OutSPI {
				t.Errorf("%s: SAs changed across a dataplane restart (%08x/%08x -> %08x/%08x)", n, a.InSPI, a.OutSPI, b.InSPI, b.OutSPI)
			}
		}
		checkMapsMatch(t, g, l, s2)
		s = s2
	})

	t.Run("control crash and restart", func(t *testing.T) {
		old := activeOf(t, s, primary)
		pingDone := make(chan lab.PingResult, 1)
		go func() {
			pr, _ := l.Ping(ctx, lab.LAN, lab.VPCHost, 50) // 10 s
			pingDone <- pr
		}()
		time.Sleep(time.Second)
		if err := g.StopControl(l, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// With control gone, the dataplane still encrypts on the installed
		// SAs and strongSwan still decrypts them.
		r, done, err := g.Maps(l)
		if err != nil {
			t.Fatal(err)
		}
		c0, _ := r.ReadSACounters(old.OutIndex)
		sw0, _ := l.ChildCounters(ctx, ep)
		time.Sleep(2 * time.Second)
		c1, _ := r.ReadSACounters(old.OutIndex)
		sw1, _ := l.ChildCounters(ctx, ep)
		done()
		if c1.Packets < c0.Packets+5 {
			t.Errorf("without cgw-control the dataplane sent %d packets on SA %08x in 2 s of pinging, want ≥ 5", c1.Packets-c0.Packets, old.OutSPI)
		}
		if sw1.PacketsIn < sw0.PacketsIn+5 {
			t.Errorf("without cgw-control strongSwan received %d packets in 2 s of pinging, want ≥ 5", sw1.PacketsIn-sw0.PacketsIn)
		}
		if err := g.StartControl(ctx, l); err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
		defer rcancel()
		s2, err := g.WaitStatus(rctx, l, "tunnels re-established, no stale SA", allUp)
		if err != nil {
			t.Fatalf("%v; last %+v", err, s2)
		}
		if n := activeOf(t, s2, primary); n.InSPI == old.InSPI || n.OutSPI == old.OutSPI {
			t.Errorf("after restart the SPIs are the old ones (%08x/%08x)", n.InSPI, n.OutSPI)
		}
		if err := l.WaitBGP(rctx); err != nil {
			t.Fatal(err)
		}
		if _, err := g.WaitRouteInstalled(rctx, l, lab.VPCPrefix); err != nil {
			t.Fatal(err)
		}
		// The route the crashed process installed was adopted, then
		// re-learnt from BGP (no longer marked stale).
		if s2, err = g.WaitStatus(rctx, l, "every adopted route re-learnt", func(st *status.Status) bool {
			return len(st.Routes) > 0 && !slices.ContainsFunc(st.Routes, func(r status.Route) bool { return r.Stale })
		}); err != nil {
			t.Fatalf("%v; routes %+v", err, s2.Routes)
		}
		checkMapsMatch(t, g, l, s2)
		for i := range names {
			sas, err := l.SwanctlListSAs(ctx, lab.AWSEndpoint(i))
			if err != nil {
				t.Fatal(err)
			}
			if len(sas) != 1 {
				t.Errorf("%s: charon keeps %d IKE SAs after the restart, want 1 (INITIAL_CONTACT replaces the old)", lab.AWSEndpoint(i), len(sas))
			}
		}
		pr := <-pingDone
		t.Logf("ping during the restart: %d of %d answered", pr.Received, pr.Sent)
		pr, err = l.Ping(ctx, lab.LAN, lab.VPCHost, 5)
		if err != nil || pr.Received < 4 {
			t.Errorf("ping after restart: %+v %v", pr, err)
		}
		s = s2
	})

	t.Run("clean shutdown", func(t *testing.T) {
		if err := g.StopControl(l, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// The Cease went out before the IKE SAs were deleted.
		sess, err := l.BGPSessions(ctx, "aws")
		if err != nil {
			t.Fatal(err)
		}
		for p, st := range sess {
			if st == "Established" {
				t.Errorf("AWS's BGP session %s still Established after cgw-control's SIGTERM (no Cease received)", p)
			}
		}
		for i := range names {
			sas, err := l.SwanctlListSAs(ctx, lab.AWSEndpoint(i))
			if err != nil {
				t.Fatal(err)
			}
			for _, sa := range sas {
				if sa.State == "ESTABLISHED" {
					t.Errorf("%s: IKE SA still established after cgw-control's SIGTERM (no Delete sent?)", lab.AWSEndpoint(i))
				}
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
		for _, tu := range s.Tunnels {
			if tabs.Tunnels[tu.ID].Flags&1 != 0 {
				t.Errorf("tunnel %s still marked up after SIGTERM", tu.Name)
			}
		}
	})
}

// TestLabCGWStaticResponder: a static-routing VPN connection whose tunnels
// AWS initiates (startup action "add" on our side, as with AWS's DPD
// action restart): cgw-control answers as IKE responder, installs the
// static route and carries traffic.
func TestLabCGWStaticResponder(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := lab.DefaultConfig()
	c := &cfg.Connections[0]
	c.Routing, c.BGP, c.Static = config.RoutingStatic, nil, []string{lab.VPCPrefix.String()}
	for i := range c.Tunnels {
		c.Tunnels[i].StartupAction = config.StartupAdd
	}
	l, g, _ := upLab(t, ctx, lab.Options{Config: cfg, Overrides: lab.Overrides{Initiate: [2]bool{true, true}}})
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	s, err := g.WaitStatus(wctx, l, "both tunnels up, AWS initiating", allUp)
	if err != nil {
		t.Fatalf("%v; last %+v", err, s)
	}
	for _, tu := range s.Tunnels {
		if tu.IKE == nil || tu.IKE.Initiator {
			t.Errorf("tunnel %s: IKE SA %+v, want one AWS initiated", tu.Name, tu.IKE)
		}
	}
	s, err = g.WaitRouteInstalled(wctx, l, lab.VPCPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Routes {
		if r.Prefix == lab.VPCPrefix && (r.Source != "static" || r.Tunnel != c.Tunnels[0].Name) {
			t.Errorf("route %+v: want static through %s", r, c.Tunnels[0].Name)
		}
	}
	if len(s.Neighbors) != 0 {
		t.Errorf("static connection has BGP neighbours %+v", s.Neighbors)
	}
	checkMapsMatch(t, g, l, s)
	pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 10)
	if err != nil || pr.Received < pr.Sent-1 {
		t.Errorf("ping lan -> vpc over the static route: %+v %v", pr, err)
	}
}

// TestLabCGWNAT: inet source-NATs the gateway (RFC 3947 detection sees a
// NAT on our side); the tunnels still come up, BGP converges and traffic
// flows ESP-in-UDP through the NAT.
func TestLabCGWNAT(t *testing.T) {
	needLab(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("nft not found (Debian package nftables): the lab's NAT needs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, g, _ := upLab(t, ctx, lab.Options{NAT: true})
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	s, err := g.WaitStatus(wctx, l, "both tunnels up behind NAT", allUp)
	if err != nil {
		t.Fatalf("%v; last %+v", err, s)
	}
	for i := range l.Conn.Tunnels {
		sas, err := l.SwanctlListSAs(ctx, lab.AWSEndpoint(i))
		if err != nil || len(sas) != 1 {
			t.Fatalf("%s: %v %+v", lab.AWSEndpoint(i), err, sas)
		}
		if sas[0].RemoteHost != lab.NATAddress.String() {
			t.Errorf("%s sees the gateway at %s, want the NAT address %v", lab.AWSEndpoint(i), sas[0].RemoteHost, lab.NATAddress)
		}
	}
	if err := l.WaitBGP(wctx); err != nil {
		t.Fatal(err)
	}
	if s, err = g.WaitRouteInstalled(wctx, l, lab.VPCPrefix); err != nil {
		t.Fatal(err)
	}
	checkMapsMatch(t, g, l, s)
	pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 10)
	if err != nil || pr.Received < pr.Sent-1 {
		t.Errorf("ping lan -> vpc through the NAT: %+v %v", pr, err)
	}
}

// TestLabCGWWrongPSK: AWS's tunnel 1 has another pre-shared key. Tunnel 2
// comes up and carries the route alone; tunnel 1 stays down with the
// failure in the status API and in cgw_control_negotiation_failures_total.
func TestLabCGWWrongPSK(t *testing.T) {
	needLab(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl not found: the test scrapes cgw-control's metrics with it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, g, _ := upLab(t, ctx, lab.Options{Overrides: lab.Overrides{Tunnel: func(i int, tu *config.Tunnel) {
		if i == 0 {
			tu.PreSharedKey = "another.key_known_to_aws"
		}
	}}})
	t1, t2 := l.Conn.Tunnels[0].Name, l.Conn.Tunnels[1].Name
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	s, err := g.WaitStatus(wctx, l, "tunnel 2 up, tunnel 1 failed", func(st *status.Status) bool {
		a, _ := st.Tunnel(t1)
		b, _ := st.Tunnel(t2)
		return a != nil && b != nil && b.State == "up" && a.State != "up" && strings.Contains(a.LastError, "AUTHENTICATION_FAILED")
	})
	if err != nil {
		t.Fatalf("%v; last %+v", err, s)
	}
	if s, err = g.WaitRouteInstalled(wctx, l, lab.VPCPrefix); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Routes {
		if r.Prefix == lab.VPCPrefix && (r.Tunnel != t2 || r.Backup != "") {
			t.Errorf("route %+v: want %s only (tunnel 1 is down)", r, t2)
		}
	}
	pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 5)
	if err != nil || pr.Received < pr.Sent-1 {
		t.Errorf("ping over tunnel 2: %+v %v", pr, err)
	}
	out, err := l.Exec(ctx, lab.CGW, "curl", "-sf", "http://127.0.0.1:9471/metrics")
	if err != nil {
		t.Fatalf("scraping cgw-control's metrics: %v", err)
	}
	for _, w := range []string{
		`cgw_control_negotiation_failures_total{notify="AUTHENTICATION_FAILED",tunnel="` + t1 + `"}`,
		`cgw_control_tunnel_up{connection="lab",tunnel="` + t1 + `"} 0`,
		`cgw_control_tunnel_up{connection="lab",tunnel="` + t2 + `"} 1`,
		`cgw_control_bgp_session_established{`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("metrics lack %s", w)
		}
	}
}
