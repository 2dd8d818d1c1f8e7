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

// TestLabReload: cgw starts with one of the lab's two VPN connections.
// While a ping runs over the first connection's tunnel 1, cgwctl reload
// applies a configuration that adds the second connection and changes
// the DPD settings of the first connection's tunnel 2: the ping loses
// nothing, tunnel 1 keeps its SAs, tunnel 2 is renegotiated, the second
// connection's tunnels, BGP sessions and VPC route come up. A
// configuration that fails the check is refused with its problems and
// changes nothing; SIGHUP reloads too and does not kill either daemon.
func TestLabReload(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, g, cgwctl := upLab(t, ctx, lab.Options{Connections: 2}, func(g *lab.CGWGateway) { g.Connections = 1 })
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	defer wcancel()
	for i := 0; i < 2; i++ {
		if err := l.WaitTunnelOf(wctx, 0, i); err != nil {
			t.Fatalf("AWS side: %v", err)
		}
	}
	t1, t2 := l.Cfg.Connections[0].Tunnels[0].Name, l.Cfg.Connections[0].Tunnels[1].Name
	// Both sessions up: the VPC route through tunnel 1 (the ping must not
	// use the tunnel the reload changes).
	s, err := g.WaitStatus(wctx, l, "the VPC routed through "+t1, func(s *status.Status) bool {
		r, ok := routeOf(s, lab.VPCPrefixOf(0).String())
		return ok && !r.Pending && r.Tunnel == t1 && r.Backup == t2
	})
	if err != nil {
		t.Fatalf("%v; last status: %+v", err, s)
	}
	if len(s.Tunnels) != 2 {
		t.Fatalf("cgw runs %d tunnels before the reload, want 2 (one connection)", len(s.Tunnels))
	}
	before := activeOf(t, s, t1)
	beforeT2 := activeOf(t, s, t2)

	// The full lab configuration with tunnel 2's DPD changed (a deep copy).
	next := clone(t, l.Cfg)
	next.Connections[0].Tunnels[1].DPD.Interval = config.Duration(15 * time.Second)
	next.Connections[0].Tunnels[1].DPD.Retries = 4

	// 0.05 s apart, each waiting 1 s: lost × 50 ms is the outage.
	const pings, every = 300, 50 * time.Millisecond
	pingDone := make(chan lab.PingResult, 1)
	go func() {
		pr, err := l.PingEvery(ctx, lab.LAN, lab.VPCHostOf(0), pings, every)
		if err != nil {
			t.Errorf("ping: %v", err)
		}
		pingDone <- pr
	}()
	// cgwctl monitor sees the reload's events.
	monDone := make(chan string, 1)
	go func() {
		out, _ := exec.CommandContext(ctx, cgwctl, "monitor", "-socket", g.SocketPath(l), "-for", "12s").CombinedOutput()
		monDone <- string(out)
	}()
	time.Sleep(2 * time.Second)
	if err := g.WriteConfig(l, next); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, cgwctl, "reload", "-socket", g.SocketPath(l)).CombinedOutput()
	took := time.Since(start)
	t.Logf("cgwctl reload (%v):\n%s", took.Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("cgwctl reload: %v", err)
	}
	c2 := l.Cfg.Connections[1]
	for _, w := range []string{"added      " + c2.Tunnels[0].Name + ", " + c2.Tunnels[1].Name, "changed    " + t2, "unchanged  " + t1} {
		if !strings.Contains(string(out), w) {
			t.Errorf("cgwctl reload output lacks %q", w)
		}
	}
	s, err = g.WaitStatus(wctx, l, "the second connection up, its VPC routed", func(s *status.Status) bool {
		r, ok := routeOf(s, lab.VPCPrefixOf(1).String())
		n := 0
		for _, tu := range s.Tunnels {
			if tu.State == "up" && len(tu.Children) > 0 {
				n++
			}
		}
		return ok && !r.Pending && n == 4
	})
	if err != nil {
		t.Fatalf("%v; tunnels %+v routes %+v", err, s.Tunnels, s.Routes)
	}
	upAfter := time.Since(start)
	pr := <-pingDone
	t.Logf("ping %s over %s during the reload: %d sent, %d received, %d lost; second connection up and routed %v after the reload",
		lab.VPCHostOf(0), t1, pr.Sent, pr.Received, pr.Sent-pr.Received, upAfter.Round(100*time.Millisecond))
	if pr.Sent != pings || pr.Received != pr.Sent {
		t.Errorf("ping over the unchanged tunnel lost %d of %d during the reload", pr.Sent-pr.Received, pr.Sent)
	}
	if a := activeOf(t, s, t1); a.InSPI != before.InSPI || a.OutSPI != before.OutSPI {
		t.Errorf("%s renegotiated by a reload that did not change it: %08x/%08x → %08x/%08x", t1, before.InSPI, before.OutSPI, a.InSPI, a.OutSPI)
	}
	if a := activeOf(t, s, t2); a.InSPI == beforeT2.InSPI {
		t.Errorf("%s kept its Child SA %08x although its DPD settings changed", t2, a.InSPI)
	}
	checkMapsMatch(t, g, l, s)
	mon := <-monDone
	t.Logf("cgwctl monitor during the reload:\n%s", mon)
	for _, w := range []string{"ike child-sa-deleted " + t2, "route add ", "ike tunnel-up " + c2.Tunnels[0].Name, "bgp established " + c2.Tunnels[0].Name,
		": " + lab.VPCPrefixOf(1).String() + " via " + c2.Name + "-"} {
		if !strings.Contains(mon, w) {
			t.Errorf("cgwctl monitor did not show %q", w)
		}
	}
	pr2, err := l.Ping(ctx, lab.LAN, lab.VPCHostOf(1), 5)
	if err != nil || pr2.Received < 4 {
		t.Errorf("ping through the added connection: %+v %v", pr2, err)
	}
	if err := l.WaitBGPOf(wctx, 1); err != nil {
		t.Errorf("BGP of the added connection: %v", err)
	}

	// A configuration that fails the check: refused, nothing changes.
	bad := clone(t, next)
	bad.Connections[1].Tunnels[0].PreSharedKey = "short"
	if err := g.WriteConfig(l, bad); err != nil {
		t.Fatal(err)
	}
	out, err = exec.CommandContext(ctx, cgwctl, "reload", "-socket", g.SocketPath(l)).CombinedOutput()
	t.Logf("cgwctl reload of a bad configuration: %v\n%s", err, out)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 || !strings.Contains(string(out), "pre_shared_key") || !strings.Contains(string(out), "nothing changed") {
		t.Errorf("a configuration with a 5-character PSK was not refused with the reason: %v", err)
	}
	same := func(what string) {
		t.Helper()
		after, err := g.Client(l).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tu := range s.Tunnels {
			a, b := activeOf(t, s, tu.Name), activeOf(t, after, tu.Name)
			if a.InSPI != b.InSPI {
				t.Errorf("%s: %s's Child SA changed %08x → %08x", what, tu.Name, a.InSPI, b.InSPI)
			}
		}
	}
	same("after a refused reload")

	// SIGHUP: the same reload (the file is good again, nothing to do);
	// the dataplane logs and goes on.
	if err := g.WriteConfig(l, next); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cgw-control", "cgw-dataplane"} {
		p, ok := g.ControlProc(l)
		if name == "cgw-dataplane" {
			p, ok = g.DataplaneProc(l)
		}
		if !ok {
			t.Fatalf("%s is not running", name)
		}
		if err := syscall.Kill(p.Pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if !p.Alive() {
			t.Errorf("%s died of SIGHUP", name)
		}
	}
	same("after SIGHUP")

	// The operator's views of the dataplane in the gateway's namespace,
	// under a ping: per-worker rates, and the NIC preflight of the veths.
	go l.PingEvery(ctx, lab.LAN, lab.VPCHostOf(0), 60, 50*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	dout, err := l.Exec(ctx, lab.CGW, cgwctl, "dataplane")
	t.Logf("cgwctl dataplane (%v):\n%s", err, dout)
	if err != nil || !strings.Contains(dout, "copy") || !strings.Contains(dout, "driver veth, XDP native") {
		t.Errorf("cgwctl dataplane: %v", err)
	}
	vout, verr := l.Exec(ctx, lab.CGW, cgwctl, "verify", "-config", l.GatewayConfigPath())
	t.Logf("cgwctl verify (%v):\n%s", verr, vout)
	for _, w := range []string{"driver veth", "no AF_XDP zero-copy", "fix:", "an XDP program is attached in native mode"} {
		if !strings.Contains(vout, w) {
			t.Errorf("cgwctl verify lacks %q", w)
		}
	}
	if pr, err := l.Ping(ctx, lab.LAN, lab.VPCHostOf(0), 5); err != nil || pr.Received < 4 {
		t.Errorf("ping after SIGHUP: %+v %v", pr, err)
	}
}

func routeOf(s *status.Status, prefix string) (status.Route, bool) {
	for _, r := range s.Routes {
		if r.Prefix.String() == prefix {
			return r, true
		}
	}
	return status.Route{}, false
}

// clone deep-copies a configuration (through YAML).
func clone(t *testing.T, c *config.Config) *config.Config {
	t.Helper()
	b, err := config.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	n, err := config.Parse(b)
	if err != nil {
		t.Fatal(fmt.Errorf("re-reading the lab configuration: %w", err))
	}
	return n
}
