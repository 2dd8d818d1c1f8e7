package interop

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/status"
)

const (
	dpdInterval = 2 * time.Second
	dpdRetries  = 3
)

// setDPD gives both of cgw's tunnels short DPD with action.
func setDPD(l *lab.Lab, action string) {
	for i := range l.Conn.Tunnels {
		l.Conn.Tunnels[i].DPD = config.DPD{Interval: config.Duration(dpdInterval), Retries: dpdRetries, Action: action}
	}
}

// TestInteropDPD stops AWS's tunnel 1 charon (SIGSTOP: it answers
// nothing, as a dead endpoint) under each DPD action and measures how long
// cgw takes, from the last packet tunnel 1 answered, to declare it dead.
func TestInteropDPD(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := lab.DefaultConfig()
	for i := range cfg.Connections[0].Tunnels {
		cfg.Connections[0].Tunnels[i].DPD = config.DPD{Interval: config.Duration(dpdInterval), Retries: dpdRetries, Action: config.DPDClear}
	}
	l, g := upLab(t, ctx, lab.Options{Config: cfg})
	n1, n2 := l.Conn.Tunnels[0].Name, l.Conn.Tunnels[1].Name
	dpdKey := `cgw_control_dpd_timeouts_total{tunnel="` + n1 + `"}`
	via := func(name string) func(*status.Status) bool {
		return func(s *status.Status) bool {
			return slices.ContainsFunc(s.Routes, func(r status.Route) bool { return r.Prefix == lab.VPCPrefix && r.Tunnel == name && !r.Pending })
		}
	}
	ready := func(t *testing.T) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
		defer wcancel()
		if s, err := g.WaitStatus(wctx, l, "both tunnels up", allUp); err != nil {
			t.Fatalf("%v; last %+v", err, s)
		}
		if err := l.WaitBGP(wctx); err != nil {
			t.Fatal(err)
		}
		if s, err := g.WaitStatus(wctx, l, lab.VPCPrefix.String()+" through "+n1, via(n1)); err != nil {
			t.Fatalf("%v; routes %+v", err, s.Routes)
		}
	}
	// reconfigure restarts cgw-control with DPD action and AWS's side
	// fresh (charon running, BGP on).
	reconfigure := func(t *testing.T, action string) {
		t.Helper()
		setDPD(l, action)
		if err := l.SetBGP(ctx, 0, true); err != nil {
			t.Fatal(err)
		}
		if err := g.StopControl(l, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := l.ReloadAWS(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.WriteGatewayConfig(); err != nil {
			t.Fatal(err)
		}
		if err := g.StartControl(ctx, l); err != nil {
			t.Fatal(err)
		}
		ready(t)
	}
	charon := func(t *testing.T) int {
		t.Helper()
		p, ok := l.CharonProc(lab.AWSEndpoint(0))
		if !ok {
			t.Fatal("aws-t1's charon is not running")
		}
		return p.Pid
	}
	// stopT1 pings over tunnel 1 (every 50 ms, so its last answered
	// packet is at most 50 ms before the stop) and SIGSTOPs its charon;
	// it returns the stop time and a function to resume it.
	stopT1 := func(t *testing.T) (time.Time, func()) {
		t.Helper()
		pid := charon(t)
		done := make(chan struct{})
		go func() {
			defer close(done)
			flood(ctx, l, 40, 50*time.Millisecond)
		}()
		time.Sleep(time.Second)
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		<-done
		return stopped, func() { syscall.Kill(pid, syscall.SIGCONT) }
	}
	// waitDead polls cgw's status every 50 ms until tunnel 1 is no longer
	// up and returns how long after stopped that was.
	waitDead := func(t *testing.T, stopped time.Time, limit time.Duration) (time.Duration, *status.Status) {
		t.Helper()
		c := g.Client(l)
		for time.Since(stopped) < limit {
			s, err := c.Status(ctx)
			if err == nil {
				if tu, _ := s.Tunnel(n1); tu != nil && tu.State != "up" {
					return time.Since(stopped), s
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		return 0, nil
	}
	bound := time.Duration(dpdRetries)*dpdInterval + time.Second
	var figures []string

	t.Run("clear", func(t *testing.T) {
		ready(t)
		d0 := metric(t, ctx, l, g, dpdKey)
		stopped, resume := stopT1(t)
		defer resume()
		took, s := waitDead(t, stopped, 30*time.Second)
		if s == nil {
			t.Fatalf("tunnel %s still up 30 s after its peer stopped answering (DPD %v × %d, clear)", n1, dpdInterval, dpdRetries)
		}
		figures = append(figures, fmt.Sprintf("clear: %.2fs", took.Seconds()))
		t.Logf("DPD clear: %s declared dead %.2fs after its last answered packet (DPD %v × %d; bound %v); last error: %s",
			n1, took.Seconds(), dpdInterval, dpdRetries, bound, lastErr(s, n1))
		if took > bound {
			t.Errorf("dead peer declared after %.2fs, want within interval × retries + 1 s = %v", took.Seconds(), bound)
		}
		if d := metric(t, ctx, l, g, dpdKey) - d0; d != 1 {
			t.Errorf("cgw_control_dpd_timeouts_total for %s rose by %.0f, want 1", n1, d)
		}
		// AWS's side of tunnel 1 is gone too: its BGP session drops
		// (here at once, instead of after its 30 s hold time).
		if err := l.SetBGP(ctx, 0, false); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		s, err := g.WaitStatus(wctx, l, lab.VPCPrefix.String()+" through "+n2+" only", func(s *status.Status) bool {
			return via(n2)(s) && !slices.ContainsFunc(s.Routes, func(r status.Route) bool { return r.Tunnel == n1 || r.Backup == n1 })
		})
		if err != nil {
			t.Fatalf("%v; routes %+v", err, s.Routes)
		}
		// The dataplane's view: tunnel 1 marked down with no SA left, the
		// VPC prefix routed through tunnel 2.
		if r, done, err := g.Maps(l); err != nil {
			t.Error(err)
		} else {
			tabs, err := r.Snapshot()
			done()
			t1, _ := s.Tunnel(n1)
			t2, _ := s.Tunnel(n2)
			switch {
			case err != nil:
				t.Error(err)
			case tabs.Tunnels[t1.ID].Flags&1 != 0:
				t.Errorf("tunnel %s still marked up in the tunnel map after DPD clear", n1)
			case !slices.ContainsFunc(tabs.Routes, func(r maps.RouteEntry) bool { return r.Prefix == lab.VPCPrefix && r.TunnelId == t2.ID }):
				t.Errorf("LPM map does not route %v through %s: %+v", lab.VPCPrefix, n2, tabs.Routes)
			case len(tabs.Inbound) != 1:
				t.Errorf("%d inbound SPIs in the map after DPD clear, want tunnel 2's only", len(tabs.Inbound))
			}
		}
		before, _ := s.Tunnel(n2)
		b, _ := before.Active()
		pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 10)
		if err != nil || pr.Received < pr.Sent-1 {
			t.Errorf("ping over %s after tunnel 1's DPD: %+v %v", n2, pr, err)
		}
		time.Sleep(time.Second) // control reads the SA counters every 500 ms
		s, err = g.Client(l).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := s.Tunnel(n2)
		a, _ := after.Active()
		if a == nil || b == nil || a.Out.Packets < b.Out.Packets+uint64(pr.Sent) {
			t.Errorf("%s's SA did not carry the pings: %+v -> %+v", n2, b, a)
		}
		// Clear: the tunnel stays down while the peer is silent.
		time.Sleep(2 * dpdInterval)
		s, _ = g.Client(l).Status(ctx)
		if tu, _ := s.Tunnel(n1); tu == nil || tu.State == "up" {
			t.Errorf("after DPD clear %s is %+v, want it down", n1, tu)
		}
	})

	t.Run("restart", func(t *testing.T) {
		reconfigure(t, config.DPDRestart)
		stopped, resume := stopT1(t)
		resumed := false
		defer func() {
			if !resumed {
				resume()
			}
		}()
		took, s := waitDead(t, stopped, 30*time.Second)
		if s == nil {
			t.Fatalf("tunnel %s still up 30 s after its peer stopped answering (DPD restart)", n1)
		}
		figures = append(figures, fmt.Sprintf("restart: %.2fs", took.Seconds()))
		t.Logf("DPD restart: %s declared dead %.2fs after its last answered packet (bound %v); last error: %s", n1, took.Seconds(), bound, lastErr(s, n1))
		if took > bound {
			t.Errorf("dead peer declared after %.2fs, want within interval × retries + 1 s = %v", took.Seconds(), bound)
		}
		time.Sleep(2 * time.Second) // cgw retries while the peer is away
		resume()
		resumed = true
		back := time.Now()
		wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
		defer wcancel()
		s, err := g.WaitStatus(wctx, l, n1+" up again by itself", func(s *status.Status) bool {
			tu, _ := s.Tunnel(n1)
			return tu != nil && tu.State == "up"
		})
		if err != nil {
			t.Fatalf("%v; last %+v", err, s)
		}
		t.Logf("DPD restart: %s up again %.1fs after its peer came back", n1, time.Since(back).Seconds())
		if err := l.WaitTunnel(wctx, 0); err != nil {
			t.Errorf("AWS's tunnel 1 after the restart: %v", err)
		}
		ready(t)
		pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 5)
		if err != nil || pr.Received < pr.Sent-1 {
			t.Errorf("ping over %s after the restart: %+v %v", n1, pr, err)
		}
	})

	t.Run("none", func(t *testing.T) {
		reconfigure(t, config.DPDNone)
		s0, err := g.Client(l).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before, _ := s0.Tunnel(n1)
		d0 := metric(t, ctx, l, g, dpdKey)
		stopped, resume := stopT1(t)
		wait := time.Duration(dpdRetries+2) * dpdInterval
		time.Sleep(wait - time.Since(stopped))
		s, err := g.Client(l).Status(ctx)
		resume()
		if err != nil {
			t.Fatal(err)
		}
		tu, _ := s.Tunnel(n1)
		if tu == nil || tu.State != "up" || tu.IKE == nil || before.IKE == nil || tu.IKE.SPIi != before.IKE.SPIi {
			t.Errorf("DPD none: after %v of silence %s is %+v, want it up on the same IKE SA", wait, n1, tu)
		}
		if d := metric(t, ctx, l, g, dpdKey) - d0; d != 0 {
			t.Errorf("DPD none: %.0f DPD timeouts counted", d)
		}
		t.Logf("DPD none: %s stayed up through %v of silence from its peer", n1, wait)
		pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 5)
		if err != nil || pr.Received < pr.Sent-1 {
			t.Errorf("ping over %s once its peer is back: %+v %v", n1, pr, err)
		}
	})
	t.Logf("DPD %v × %d, detection from the last answered packet: %s (bound %v)", dpdInterval, dpdRetries, strings.Join(figures, ", "), bound)
}

func lastErr(s *status.Status, name string) string {
	if tu, _ := s.Tunnel(name); tu != nil {
		return tu.LastError
	}
	return ""
}
