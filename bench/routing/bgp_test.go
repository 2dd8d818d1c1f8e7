package routing

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/status"
)

// Timers of the failover tests: short, so the tests are quick, and the
// same on both sides (BIRD's hold time comes from the same config).
const (
	holdTime    = 9 * time.Second
	dpdInterval = 3 * time.Second
	dpdRetries  = 3
	pingEvery   = 50 * time.Millisecond
)

var (
	morePrefix = netip.MustParsePrefix("198.19.0.128/25") // AWS announces it on tunnel 2 only
	moreHost   = netip.MustParseAddr("198.19.0.130")      // an extra address of the VPC host, inside the /25
)

// shortTimers sets the failover timers on every tunnel: DPD with action
// restart on the gateway (so a tunnel that died comes back by itself),
// clear on AWS (which never initiates here, as AWS's default).
func shortTimers(c *config.Connection) lab.Overrides {
	for i := range c.Tunnels {
		c.Tunnels[i].DPD = config.DPD{Interval: config.Duration(dpdInterval), Retries: dpdRetries, Action: config.DPDRestart}
	}
	return lab.Overrides{Tunnel: func(i int, t *config.Tunnel) { t.DPD.Action = config.DPDClear }}
}

// TestBGP: both sessions Established; AWS sees our prefix with the
// prepending configured on tunnel 2; cgw installs the VPC prefix through
// tunnel 1 (backup tunnel 2) and a more specific /25 that AWS announces
// on tunnel 2 only through tunnel 2 (longest prefix wins); traffic flows
// through the tunnel its route names; when tunnel 1's AWS endpoint goes
// silent traffic moves to tunnel 2 within the first timer to fire (BGP
// hold time or DPD) and comes back when it returns.
func TestBGP(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := lab.DefaultConfig()
	c := &cfg.Connections[0]
	c.BGP.HoldTime = config.Duration(holdTime)
	c.Tunnels[1].ASPathPrepend = 2
	ov := shortTimers(c)
	ov.Export = [2][]netip.Prefix{nil, {morePrefix}}
	l, g := upLab(t, ctx, "b", lab.Options{Config: cfg, Overrides: ov})
	t1, t2 := c.Tunnels[0].Name, c.Tunnels[1].Name
	ep1, ep2 := lab.AWSEndpoint(0), lab.AWSEndpoint(1)
	vpc := lab.VPCPrefix.String()
	if _, err := l.Exec(ctx, lab.VPC, "ip", "addr", "add", moreHost.String()+"/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}

	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	defer wcancel()
	if err := l.WaitTunnels(wctx); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitBGP(wctx); err != nil {
		t.Fatal(err)
	}
	s, err := g.WaitStatus(wctx, l, vpc+" via "+t1+" and "+morePrefix.String()+" via "+t2, func(s *status.Status) bool {
		return routeVia(vpc, t1)(s) && routeVia(morePrefix.String(), t2)(s)
	})
	if err != nil {
		t.Fatalf("%v; routes %+v", err, s.Routes)
	}
	id1, id2 := tunnelID(t, s, t1), tunnelID(t, s, t2)

	t.Run("sessions, prepending and the LPM map", func(t *testing.T) {
		sess, err := l.BGPSessions(ctx, "aws")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"t1", "t2"} {
			if sess[p] != "Established" {
				t.Errorf("AWS's session %s: %s, want Established", p, sess[p])
			}
		}
		var out string
		if err := waitUntil(ctx, 20*time.Second, func() bool {
			out, _ = l.BirdShow(ctx, "aws", "route", "all", "198.18.0.0/24")
			r := birdRoutes(out)
			return strings.Contains(r["t1"], "BGP.as_path: 65000\n") && strings.Contains(r["t2"], "BGP.as_path: 65000 65000 65000\n")
		}); err != nil {
			t.Errorf("AWS's BIRD should have 198.18.0.0/24 with AS_PATH 65000 via t1 and 65000 65000 65000 via t2 (as_path_prepend 2):\n%s", out)
		}
		t.Logf("AWS's routes to the on-premises prefix:\n%s", out)
		rs := lpm(t, g, l)
		want := map[netip.Prefix]maps.Route{lab.VPCPrefix: {TunnelId: id1, BackupTunnelId: id2}, morePrefix: {TunnelId: id2}}
		for p, w := range want {
			i := slices.IndexFunc(rs, func(r maps.RouteEntry) bool { return r.Prefix == p })
			if i < 0 || rs[i].TunnelId != w.TunnelId || rs[i].BackupTunnelId != w.BackupTunnelId {
				t.Errorf("LPM map entry for %v: %+v, want tunnel %d backup %d (map %+v)", p, rs, w.TunnelId, w.BackupTunnelId, rs)
			}
		}
		for _, r := range s.Routes {
			t.Logf("cgw route %v via %s (backup %q, %s): %s", r.Prefix, r.Tunnel, r.Backup, r.Source, r.Reason)
		}
	})

	t.Run("traffic through tunnel 1", func(t *testing.T) {
		b1, b2 := swBytes(ctx, l, ep1), swBytes(ctx, l, ep2)
		pr, d := counted(t, ctx, l, lab.VPCHost.String(), 10, ep1, ep2)
		if pr.Received < pr.Sent-1 {
			t.Errorf("ping lan -> vpc: %d of %d answered", pr.Received, pr.Sent)
		}
		tr, err := l.Transfer(ctx, lab.LAN, lab.VPC, lab.VPCHost, lab.TransferOptions{Bytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		a1, a2 := swBytes(ctx, l, ep1), swBytes(ctx, l, ep2)
		t.Logf("ping: %s received %d packets, %s %d; TCP lan -> vpc %d bytes in %.2fs (%.0f Mbit/s): %s received %d bytes, %s %d",
			ep1, d[0], ep2, d[1], tr.Bytes, tr.Seconds, tr.BitsPerSec/1e6, ep1, a1-b1, ep2, a2-b2)
		if d[0] < int64(pr.Sent) || d[1] > 5 {
			t.Errorf("pings: %s's SA received %d packets (want ≥ %d), %s's %d (want only BGP keepalives, ≤ 5)", ep1, d[0], pr.Sent, ep2, d[1])
		}
		if a1-b1 < uint64(tr.Bytes) || a2-b2 > 64<<10 {
			t.Errorf("TCP: %s's SA received %d bytes (want ≥ %d), %s's %d (want only BGP)", ep1, a1-b1, tr.Bytes, ep2, a2-b2)
		}
	})

	t.Run("longest prefix", func(t *testing.T) {
		pr, d := counted(t, ctx, l, moreHost.String(), 10, ep1, ep2)
		t.Logf("ping %v (in %v, learnt on %s): %d/%d answered; %s received %d packets, %s %d", moreHost, morePrefix, t2, pr.Received, pr.Sent, ep1, d[0], ep2, d[1])
		if pr.Received < pr.Sent-1 || d[1] < int64(pr.Sent) || d[0] > 5 {
			t.Errorf("%v should go through %s (the /25 beats the /24): %d/%d answered, %s +%d, %s +%d", moreHost, t2, pr.Received, pr.Sent, ep2, d[1], ep1, d[0])
		}
		pr, d = counted(t, ctx, l, lab.VPCHost.String(), 10, ep1, ep2)
		t.Logf("ping %v (outside the /25): %d/%d answered; %s received %d packets, %s %d", lab.VPCHost, pr.Received, pr.Sent, ep1, d[0], ep2, d[1])
		if pr.Received < pr.Sent-1 || d[0] < int64(pr.Sent) || d[1] > 5 {
			t.Errorf("%v should go through %s: %d/%d answered, %s +%d, %s +%d", lab.VPCHost, t1, pr.Received, pr.Sent, ep1, d[0], ep2, d[1])
		}
	})

	t.Run("failover when tunnel 1's endpoint goes silent", func(t *testing.T) {
		logBefore := controlLog(l)
		var cut time.Time
		var moved time.Time
		var t1State string
		bound := min(dpdInterval*dpdRetries, holdTime) + time.Second
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
		timer := "BGP hold timer (tunnel 1 still up in IKE when its routes left)"
		if t1State != "up" {
			timer = "DPD (tunnel 1 down in IKE when its routes left)"
		}
		aws, _ := l.BirdShow(ctx, "aws", "protocols", "all", "t1")
		awsWhy := "?"
		if i := strings.Index(aws, "Last error:"); i >= 0 {
			awsWhy = strings.TrimSpace(strings.SplitN(aws[i+len("Last error:"):], "\n", 2)[0])
		}
		newLog := strings.TrimPrefix(controlLog(l), logBefore)
		t.Logf("failover: outage %v (longest gap between replies); %d of %d pings (every %v) lost, longest run %d = %v; cgw moved %s to %s %v after the cut; timer on cgw: %s; AWS's BIRD t1: %q; DPD timeouts cgw-control logged by the end of the ping run (later than the move): %d; bound min(DPD %v×%d, hold %v) + 1 s = %v",
			outage, tr.Sent-tr.Received, tr.Sent, pingEvery, tr.LostRun, time.Duration(tr.LostRun)*pingEvery, vpc, t2, moved.Sub(cut).Round(10*time.Millisecond), timer, awsWhy,
			strings.Count(newLog, "peer is not answering"), dpdInterval, dpdRetries, holdTime, bound)
		if tr.Received == 0 {
			t.Fatalf("no ping answered at all across the failover: %+v", tr)
		}
		if outage > bound {
			t.Errorf("outage %v exceeds min(DPD interval×retries, hold time) + 1 s = %v", outage, bound)
		}
		pr, d := counted(t, ctx, l, lab.VPCHost.String(), 5, ep2)
		if pr.Received < pr.Sent-1 || d[0] < int64(pr.Sent) {
			t.Errorf("after failover: ping %d/%d, %s's SA received %d packets", pr.Received, pr.Sent, ep2, d[0])
		}

		// Back: both sides prefer tunnel 1 again once its session returns.
		tr, outage = pingOutage(t, ctx, l, lab.VPCHost.String(), int(25*time.Second/pingEvery), pingEvery, time.Second, func() {
			if err := l.SetEndpointLink(ctx, 0, 0, true); err != nil {
				t.Fatal(err)
			}
			bctx, bcancel := context.WithTimeout(ctx, 60*time.Second)
			defer bcancel()
			back := time.Now()
			if st, err := g.WaitStatus(bctx, l, vpc+" back through "+t1, routeVia(vpc, t1)); err != nil {
				t.Fatalf("%v; routes %+v", err, st.Routes)
			}
			if err := l.WaitBGP(bctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("failback: %s back through %s %v after the endpoint returned", vpc, t1, time.Since(back).Round(10*time.Millisecond))
		})
		t.Logf("failback: %d of %d pings lost, longest gap between replies %v, while tunnel 1 returned", tr.Sent-tr.Received, tr.Sent, outage)
		if err := waitUntil(ctx, 20*time.Second, func() bool {
			out, _ := l.BirdShow(ctx, "aws", "route", "198.18.0.0/24")
			return strings.Contains(out, "vgw-t1")
		}); err != nil {
			t.Errorf("AWS does not route 198.18.0.0/24 through t1 again")
		}
		pr, d = counted(t, ctx, l, lab.VPCHost.String(), 10, ep1, ep2)
		t.Logf("after failback: ping %d/%d; %s received %d packets, %s %d", pr.Received, pr.Sent, ep1, d[0], ep2, d[1])
		if pr.Received < pr.Sent-1 || d[0] < int64(pr.Sent) || d[1] > 5 {
			t.Errorf("traffic did not return to %s: ping %d/%d, %s +%d, %s +%d", t1, pr.Received, pr.Sent, ep1, d[0], ep2, d[1])
		}
	})
}

func swBytes(ctx context.Context, l *lab.Lab, ep string) uint64 {
	c, err := l.ChildCounters(ctx, ep)
	if err != nil {
		return 0
	}
	return c.BytesIn
}

func controlLog(l *lab.Lab) string {
	b, _ := os.ReadFile(filepath.Join(l.Dir, "cgw-control.log"))
	return string(b)
}

func waitUntil(ctx context.Context, d time.Duration, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}
