package routing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/control/status"
)

// TestCloudHub: two VPN connections to two emulated AWS gateways with
// different VPC prefixes (DESIGN.md §1 CloudHub). Each VPC prefix is
// installed through its own connection's first tunnel; traffic to each
// VPC goes through that connection (its SAs count the packets, the other
// connection's do not); our prefix reaches both AWS sides, and neither
// learns the other's VPC from us (no transit).
func TestCloudHub(t *testing.T) { cloudHub(t, 2, "h", 10) }

// TestCloudHubTen: ten VPN connections on one gateway (AWS's CloudHub
// supports at least ten, DESIGN.md §1), each VPC through its own.
func TestCloudHubTen(t *testing.T) { cloudHub(t, 10, "x", 5) }

func cloudHub(t *testing.T, n int, tag string, pings int) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	l, g := upLab(t, ctx, tag, lab.Options{Connections: n})
	if l.Connections() != n {
		t.Fatalf("lab emulates %d connections, want %d", l.Connections(), n)
	}
	wctx, wcancel := context.WithTimeout(ctx, 150*time.Second)
	defer wcancel()
	if err := l.WaitTunnels(wctx); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitBGP(wctx); err != nil {
		t.Fatal(err)
	}
	type conn struct {
		vpc, tunnel, ep string
		host            string
	}
	var cs []conn
	for c := 0; c < n; c++ {
		cs = append(cs, conn{vpc: lab.VPCPrefixOf(c).String(), tunnel: l.Cfg.Connections[c].Tunnels[0].Name, ep: lab.AWSEndpointOf(c, 0), host: lab.VPCHostOf(c).String()})
	}
	s, err := g.WaitStatus(wctx, l, "each VPC prefix through its connection's tunnel 1", func(s *status.Status) bool {
		for _, c := range cs {
			if !routeVia(c.vpc, c.tunnel)(s) {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("%v; routes %+v", err, s.Routes)
	}
	t.Logf("%d connections: lab up, %d tunnels and %d BGP sessions established, every VPC routed, %v after the start",
		n, 2*n, 2*n, time.Since(start).Round(100*time.Millisecond))
	for _, r := range s.Routes {
		t.Logf("cgw route %v via %s (backup %q, %s)", r.Prefix, r.Tunnel, r.Backup, r.Source)
	}
	rs := lpm(t, g, l)
	for _, c := range cs {
		id := tunnelID(t, s, c.tunnel)
		found := false
		for _, r := range rs {
			if r.Prefix.String() == c.vpc {
				found = r.TunnelId == id
			}
		}
		if !found {
			t.Errorf("LPM map does not route %s through %s (id %d): %+v", c.vpc, c.tunnel, id, rs)
		}
	}

	for k, c := range cs {
		o := (k + 1) % n
		other := cs[o]
		pr, d := counted(t, ctx, l, c.host, pings, c.ep, other.ep, lab.AWSEndpointOf(o, 1))
		t.Logf("ping %s (VPC %s): %d/%d answered; %s received %d packets, connection %d's endpoints %d and %d",
			c.host, c.vpc, pr.Received, pr.Sent, c.ep, d[0], o+1, d[1], d[2])
		if pr.Received < pr.Sent-1 {
			t.Errorf("ping %s: %d/%d answered", c.host, pr.Received, pr.Sent)
		}
		if d[0] < int64(pr.Sent) || d[1] > 5 || d[2] > 5 {
			t.Errorf("traffic to %s should use %s only: %s +%d, connection %d's endpoints +%d/+%d", c.vpc, c.ep, c.ep, d[0], o+1, d[1], d[2])
		}
	}

	for c := 0; c < n; c++ {
		sp := lab.AWSRole(c)
		out, err := l.BirdShow(ctx, sp, "route")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "198.18.0.0/24") {
			t.Errorf("%s's BIRD lacks the on-premises prefix:\n%s", sp, out)
		}
		if o := lab.VPCPrefixOf((c + 1) % n).String(); strings.Contains(out, o) {
			t.Errorf("%s learnt the other VPC %s from the gateway (transit):\n%s", sp, o, out)
		}
	}
}
