package routing

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/control/status"
)

// TestGracefulRestart: cgw-control crashes (SIGKILL) while traffic flows
// and is started again. The dataplane keeps forwarding on the SAs and
// routes in the maps; with BGP graceful restart (RFC 4724) AWS's BIRD
// keeps our prefix while the session is down, so the VPC keeps its route
// back. The new process reconnects with the Restart State and Forwarding
// State bits set, and AWS's routes come back without a gap. The same
// crash with graceful restart turned off in AWS's BIRD is measured first,
// for comparison.
func TestGracefulRestart(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, g := upLab(t, ctx, "g", lab.Options{})
	onprem := l.Cfg.Gateway.Inside.Address.Masked().String()
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := l.WaitTunnels(wctx); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitBGP(wctx); err != nil {
		t.Fatal(err)
	}
	if s, err := g.WaitRouteInstalled(wctx, l, lab.VPCPrefix); err != nil {
		t.Fatalf("%v; %+v", err, s)
	}
	caps, _ := l.BirdShow(ctx, "aws", "protocols", "all", "t1")
	if !strings.Contains(caps, "Restart time: 120") {
		t.Fatalf("AWS's BIRD does not list our graceful restart capability (restart time 120):\n%s", caps)
	}

	// Without graceful restart first (BIRD as AWS turned it off), then
	// with it: the same crash, the same ping.
	if err := l.SetAWSGracefulRestart(ctx, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitBGP(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := g.WaitRouteInstalled(ctx, l, lab.VPCPrefix); err != nil {
		t.Fatalf("%v; %+v", err, s)
	}
	kept, tr, outage, downFor := crashRestart(t, ctx, l, g, onprem)
	t.Logf("WITHOUT graceful restart: sessions back and routes re-learnt %v after the SIGKILL; AWS kept our prefix while down: %v; %d of %d pings (every %v) lost, longest gap between replies %v",
		downFor.Round(10*time.Millisecond), kept, tr.Sent-tr.Received, tr.Sent, pingEvery, outage.Round(time.Millisecond))
	if kept {
		t.Errorf("AWS kept %s with graceful restart off: the comparison below proves nothing", onprem)
	}

	if err := l.SetAWSGracefulRestart(ctx, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitBGP(ctx); err != nil {
		t.Fatal(err)
	}
	caps, _ = l.BirdShow(ctx, "aws", "protocols", "all", "t1")
	if !strings.Contains(caps, "Restart time: 120") {
		t.Fatalf("AWS's BIRD does not list our graceful restart capability (restart time 120):\n%s", caps)
	}
	kept, tr, outage, downFor = crashRestart(t, ctx, l, g, onprem)
	t.Logf("WITH graceful restart: sessions back and routes re-learnt %v after the SIGKILL; AWS kept our prefix while down: %v; %d of %d pings (every %v) lost, longest gap between replies %v",
		downFor.Round(10*time.Millisecond), kept, tr.Sent-tr.Received, tr.Sent, pingEvery, outage.Round(time.Millisecond))
	if !kept {
		t.Errorf("AWS dropped %s while cgw-control was down (graceful restart not in effect)", onprem)
	}
	// GoBGP ends a restart for the whole speaker once the first session
	// has synced (RFC 4724 §4.1 deferral is per speaker), so only the
	// first session to come back carries the bits; a later one is a plain
	// reconnect whose fresh routes replace the stale ones at once.
	all, _ := l.BirdShow(ctx, "aws", "protocols", "all")
	if !strings.Contains(all, "Restart recovery") || !strings.Contains(all, "AF preserved: ipv4") {
		t.Errorf("the restarted cgw-control's first OPEN should carry the Restart State and Forwarding State bits (BIRD: Restart recovery, AF preserved: ipv4):\n%s", all)
	}
	if tr.Received < tr.Sent*9/10 {
		t.Errorf("%d of %d pings lost across a control restart with graceful restart", tr.Sent-tr.Received, tr.Sent)
	}
}

// crashRestart kills cgw-control (SIGKILL) while pinging lan -> vpc at a
// fixed rate, looks whether AWS's BIRD kept our prefix once both sessions
// had gone down, starts control again and waits for BGP and the routes.
func crashRestart(t *testing.T, ctx context.Context, l *lab.Lab, g *lab.CGWGateway, onprem string) (kept bool, tr lab.PingTrace, outage, downFor time.Duration) {
	t.Helper()
	tr, outage = pingOutage(t, ctx, l, lab.VPCHost.String(), int(12*time.Second/pingEvery), pingEvery, time.Second, func() {
		if err := g.StopControl(l, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		// The kernel closed the sessions' TCP (FIN through the tunnels,
		// no NOTIFICATION): BIRD leaves Established; as receiving speaker
		// it keeps our prefix as stale.
		if err := waitUntil(ctx, 10*time.Second, func() bool {
			m, _ := l.BGPSessions(ctx, "aws")
			return m["t1"] != "Established" && m["t2"] != "Established"
		}); err != nil {
			m, _ := l.BGPSessions(ctx, "aws")
			t.Fatalf("AWS's sessions still Established 10 s after cgw-control died: %v", m)
		}
		out, _ := l.BirdShow(ctx, "aws", "route", onprem)
		kept = strings.Contains(out, onprem)
		t.Logf("AWS's BIRD with both sessions down %v after the crash:\n%s", time.Since(killed).Round(10*time.Millisecond), out)
		time.Sleep(time.Second)
		if err := g.StartControl(ctx, l); err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
		defer rcancel()
		if err := l.WaitBGP(rctx); err != nil {
			t.Fatal(err)
		}
		if s, err := g.WaitStatus(rctx, l, "every adopted route re-learnt", func(st *status.Status) bool {
			return len(st.Routes) > 0 && !slices.ContainsFunc(st.Routes, func(r status.Route) bool { return r.Stale })
		}); err != nil {
			t.Fatalf("%v; routes %+v", err, s.Routes)
		}
		downFor = time.Since(killed)
	})
	return kept, tr, outage, downFor
}
