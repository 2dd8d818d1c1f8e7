package failclosed

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/control/status"
)

// TestFailClosed runs the scenarios one after the other on one lab, each
// with a capture on the outside link and a LAN→VPC ping at 10/s across the
// event (10 pings before it), and checks the counters that explain why
// nothing left in clear: the XDP drop counters (pinned, they outlive the
// dataplane) or the kernel guards and the ICMP unreachables they send.
func TestFailClosed(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l, g := upLab(t, ctx, "a")
	wantGuards(t, ctx, l)
	if s, err := g.Client(l).Status(ctx); err != nil {
		t.Fatal(err)
	} else if !slices.Contains(s.Guards, lab.VPCPrefix) {
		t.Errorf("cgw-control's status does not list the kernel guard of %v: guards %v", lab.VPCPrefix, s.Guards)
	}

	restart := func(t *testing.T) {
		if err := g.StartDataplane(ctx, l); err != nil {
			t.Fatal(err)
		}
		forwarding(t, ctx, l, g)
	}
	// dataplaneGone: the pinned XDP programs stay attached and drop what
	// no socket takes (in_drop_no_socket).
	dataplaneGone := func(t *testing.T, name string, sig syscall.Signal) {
		before := xdpStats(t, l, g)
		w := capture(t, ctx, l, name)
		p := ping(ctx, l, 60)
		time.Sleep(time.Second)
		killDataplane(t, l, g, sig)
		pr := p.wait()
		check(t, ctx, l, w, name, pr.Sent-10)
		d := statDelta(before, xdpStats(t, l, g))
		t.Logf("%s: XDP counters moved %v; XDP attached: %v", name, d, xdpAttached(t, ctx, l))
		if d[maps.StatInDropNoSocket.String()] == 0 {
			t.Errorf("%s: in_drop_no_socket did not move: the pings were not dropped by XDP", name)
		}
		restart(t)
	}

	t.Run("dataplane SIGKILL", func(t *testing.T) { dataplaneGone(t, "sigkill", syscall.SIGKILL) })
	t.Run("dataplane SIGTERM", func(t *testing.T) { dataplaneGone(t, "sigterm", syscall.SIGTERM) })

	// Only the kernel guards stand between the LAN and the Internet here.
	t.Run("dataplane stopped and detached", func(t *testing.T) {
		w := capture(t, ctx, l, "detached")
		u0 := unreachables(t, ctx, l)
		p := ping(ctx, l, 60)
		time.Sleep(time.Second)
		killDataplane(t, l, g, syscall.SIGTERM)
		detach(t, ctx, l, g)
		if xdpAttached(t, ctx, l) {
			t.Fatal("an XDP program is still attached to the inside interface after cgw-dataplane -detach")
		}
		pr := p.wait()
		check(t, ctx, l, w, "dataplane stopped, XDP detached", pr.Sent-10)
		wantGuards(t, ctx, l)
		u := unreachables(t, ctx, l) - u0
		t.Logf("detached: %d ICMP unreachables sent by the kernel guards", u)
		if u == 0 {
			t.Errorf("detached: the gateway sent no ICMP unreachable: the pings did not meet the kernel guard")
		}
		restart(t)
	})

	// cgw-control's clean stop withdraws the routes from the dataplane's
	// table; its guards stay in the kernel.
	t.Run("control stopped as well", func(t *testing.T) {
		w := capture(t, ctx, l, "control")
		before, u0 := xdpStats(t, l, g), unreachables(t, ctx, l)
		p := ping(ctx, l, 60)
		time.Sleep(time.Second)
		if err := g.StopControl(l, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		killDataplane(t, l, g, syscall.SIGKILL)
		pr := p.wait()
		check(t, ctx, l, w, "control SIGTERM, dataplane SIGKILL", pr.Sent-10)
		wantGuards(t, ctx, l)
		t.Logf("control stopped: XDP counters moved %v, %d ICMP unreachables", statDelta(before, xdpStats(t, l, g)), unreachables(t, ctx, l)-u0)
		if err := g.StartDataplane(ctx, l); err != nil {
			t.Fatal(err)
		}
		if err := g.StartControl(ctx, l); err != nil {
			t.Fatal(err)
		}
		forwarding(t, ctx, l, g)
	})

	// The tunnels go down at DPD; BGP's routes go with them, and what XDP
	// then leaves to the kernel meets the guards.
	t.Run("peers silenced", func(t *testing.T) {
		w := capture(t, ctx, l, "silenced")
		before, u0 := xdpStats(t, l, g), unreachables(t, ctx, l)
		pctx, pcancel := context.WithCancel(ctx)
		defer pcancel()
		p := ping(pctx, l, 600)
		time.Sleep(time.Second)
		start := time.Now()
		for i := range l.Conn.Tunnels {
			if err := l.SetEndpointLink(ctx, 0, i, false); err != nil {
				t.Fatal(err)
			}
		}
		wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
		defer wcancel()
		if s, err := g.WaitStatus(wctx, l, "both tunnels down", func(s *status.Status) bool { return upCount(s) == 0 }); err != nil {
			t.Fatalf("%v; last status %+v", err, s)
		}
		down := time.Since(start)
		// The routes are withdrawn with the sessions; keep pinging past it.
		time.Sleep(5 * time.Second)
		sent := int((time.Since(start)) / (100 * time.Millisecond))
		pcancel()
		p.wait()
		t.Logf("both tunnels down %v after the endpoints went silent", down.Round(100*time.Millisecond))
		check(t, ctx, l, w, "both endpoints silenced", sent)
		wantGuards(t, ctx, l)
		d, u := statDelta(before, xdpStats(t, l, g)), unreachables(t, ctx, l)-u0
		t.Logf("silenced: XDP counters moved %v, %d ICMP unreachables", d, u)
		if d[maps.StatInDropTunnelDown.String()] == 0 && u == 0 {
			t.Errorf("silenced: neither in_drop_tunnel_down nor the kernel guards' ICMP unreachables moved")
		}
		for i := range l.Conn.Tunnels {
			if err := l.SetEndpointLink(ctx, 0, i, true); err != nil {
				t.Fatal(err)
			}
		}
	})
}
