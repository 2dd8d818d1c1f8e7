package routing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/status"
)

// TestStaticFailover: a static VPN connection (AWS's NoBGPVPNConnection:
// static routes on both sides). cgw routes the VPC prefix through tunnel
// 1 while it is up; AWS routes ours through the tunnel that is up
// (lab.StaticFailover). When tunnel 1's endpoint goes silent, DPD is the
// only detector on either side: cgw declares the peer dead after its DPD
// interval of silence plus retries × interval, and moves the route to
// tunnel 2; AWS (short retransmission here) does the same. When the
// endpoint returns, cgw's DPD action restart brings tunnel 1 back and
// traffic returns to it.
func TestStaticFailover(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := lab.DefaultConfig()
	c := &cfg.Connections[0]
	c.Routing, c.BGP, c.Static = config.RoutingStatic, nil, []string{lab.VPCPrefix.String()}
	ov := shortTimers(c)
	ov.Retransmit = lab.Retransmit{Tries: 2, Timeout: 1, Base: 1}
	l, g := upLab(t, ctx, "s", lab.Options{Config: cfg, Overrides: ov})
	t1, t2 := c.Tunnels[0].Name, c.Tunnels[1].Name
	ep1, ep2 := lab.AWSEndpoint(0), lab.AWSEndpoint(1)
	vpc := lab.VPCPrefix.String()

	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := l.WaitTunnels(wctx); err != nil {
		t.Fatal(err)
	}
	s, err := g.WaitStatus(wctx, l, vpc+" static via "+t1, routeVia(vpc, t1))
	if err != nil {
		t.Fatalf("%v; routes %+v", err, s.Routes)
	}
	for _, r := range s.Routes {
		if r.Source != "static" {
			t.Errorf("route %+v: want static", r)
		}
	}
	if len(s.Neighbors) != 0 {
		t.Errorf("static connection has BGP neighbours %+v", s.Neighbors)
	}
	stop := l.StaticFailover(ctx, 0, 200*time.Millisecond)
	defer stop()
	pr, d := counted(t, ctx, l, lab.VPCHost.String(), 10, ep1, ep2)
	t.Logf("static, both tunnels up: ping %d/%d; %s received %d packets, %s %d", pr.Received, pr.Sent, ep1, d[0], ep2, d[1])
	if pr.Received < pr.Sent-1 || d[0] < int64(pr.Sent) || d[1] > 2 {
		t.Errorf("traffic should use %s: ping %d/%d, %s +%d, %s +%d", t1, pr.Received, pr.Sent, ep1, d[0], ep2, d[1])
	}

	// The bound of cgw's DPD: an interval of silence, then retries
	// checks an interval apart.
	bound := dpdInterval*(dpdRetries+1) + time.Second
	var cut, moved time.Time
	var t1State string
	tr, outage := pingOutage(t, ctx, l, lab.VPCHost.String(), int((bound+6*time.Second)/pingEvery), pingEvery, time.Second, func() {
		cut = time.Now()
		if err := l.SetEndpointLink(ctx, 0, 0, false); err != nil {
			t.Fatal(err)
		}
		st, err := g.WaitStatus(ctx, l, vpc+" through "+t2, func(s *status.Status) bool {
			if routeVia(vpc, t2)(s) {
				tu, _ := s.Tunnel(t1)
				t1State = tu.State
				return true
			}
			return false
		})
		if err != nil {
			t.Fatalf("%v; routes %+v", err, st.Routes)
		}
		moved = time.Now()
	})
	sw := stop()
	awsMoved := "never"
	for _, x := range sw {
		if x.Tunnel == 1 {
			awsMoved = x.At.Sub(cut).Round(10 * time.Millisecond).String()
		}
	}
	t.Logf("static failover: outage %v (longest gap between replies); %d of %d pings (every %v) lost, longest run %d = %v; cgw moved %s to %s %v after the cut (tunnel 1 %q: DPD); AWS moved its static route to tunnel 2 %s after the cut (its DPD %v, retransmit 2×1 s); bound DPD %v × (1 + %d retries) + 1 s = %v",
		outage, tr.Sent-tr.Received, tr.Sent, pingEvery, tr.LostRun, time.Duration(tr.LostRun)*pingEvery, vpc, t2, moved.Sub(cut).Round(10*time.Millisecond), t1State, awsMoved, dpdInterval, dpdInterval, dpdRetries, bound)
	if !strings.Contains(controlLog(l), "peer is not answering") {
		t.Errorf("cgw-control did not log a DPD timeout: the static route moved for another reason")
	}
	if tr.Received == 0 {
		t.Fatalf("no ping answered at all across the failover: %+v", tr)
	}
	if outage > bound {
		t.Errorf("outage %v exceeds cgw's DPD bound %v", outage, bound)
	}
	pr, d = counted(t, ctx, l, lab.VPCHost.String(), 5, ep2)
	if pr.Received < pr.Sent-1 || d[0] < int64(pr.Sent) {
		t.Errorf("after failover: ping %d/%d, %s's SA received %d packets", pr.Received, pr.Sent, ep2, d[0])
	}

	// Back: cgw re-initiates tunnel 1 (DPD action restart); both sides
	// route through it again.
	stop = l.StaticFailover(ctx, 0, 200*time.Millisecond)
	defer stop()
	back := time.Now()
	if err := l.SetEndpointLink(ctx, 0, 0, true); err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithTimeout(ctx, 60*time.Second)
	defer bcancel()
	if st, err := g.WaitStatus(bctx, l, vpc+" back through "+t1, routeVia(vpc, t1)); err != nil {
		t.Fatalf("%v; routes %+v", err, st.Routes)
	}
	if err := l.WaitTunnel(bctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := waitUntil(bctx, 10*time.Second, func() bool {
		out, _ := l.Exec(ctx, lab.AWS, "ip", "route", "show", l.Cfg.Gateway.Inside.Address.Masked().String())
		return strings.Contains(out, lab.AWSTunnelIf(0))
	}); err != nil {
		t.Errorf("AWS's static route did not return to %s", lab.AWSTunnelIf(0))
	}
	t.Logf("static failback: %s back through %s %v after the endpoint returned", vpc, t1, time.Since(back).Round(10*time.Millisecond))
	pr, d = counted(t, ctx, l, lab.VPCHost.String(), 10, ep1, ep2)
	t.Logf("after failback: ping %d/%d; %s received %d packets, %s %d", pr.Received, pr.Sent, ep1, d[0], ep2, d[1])
	if pr.Received < pr.Sent-1 || d[0] < int64(pr.Sent) || d[1] > 2 {
		t.Errorf("traffic did not return to %s: ping %d/%d, %s +%d, %s +%d", t1, pr.Received, pr.Sent, ep1, d[0], ep2, d[1])
	}
}
