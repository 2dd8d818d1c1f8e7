package adversary

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/control/status"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// One lab serves every probe (they run one after another and each starts
// by waiting for a healthy lab): tunnel 1 on IKEv1, tunnel 2 on IKEv2,
// both to strongSwan, BGP with BIRD, cgw built without the race detector
// so floods meet the gateway as it ships.
var shared struct {
	once   sync.Once
	err    error
	l      *lab.Lab
	g      *lab.CGWGateway
	cgwctl string
	dir    string
	log    strings.Builder
	mu     sync.Mutex
}

// Tunnel indexes and the addresses the probes use.
const (
	v1 = 0 // tunnel 1: IKEv1
	v2 = 1 // tunnel 2: IKEv2
)

var (
	gatewayOutside = netip.MustParseAddr("192.0.2.10")
	thirdParty     = netip.MustParseAddr("198.51.100.66")
)

func awsOutside(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}) }

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.l != nil {
		if code != 0 {
			for _, f := range []string{"cgw-control.log", "cgw-dataplane.log"} {
				b, _ := os.ReadFile(shared.l.Dir + "/" + f)
				fmt.Fprintf(os.Stderr, "--- %s (tail) ---\n%s\n", f, tailLines(string(b), 60))
			}
		}
		if err := shared.l.Down(); err != nil {
			fmt.Fprintf(os.Stderr, "lab down: %v\n", err)
			code = 1
		}
		if err := shared.g.Cleanup(shared.l); err != nil {
			fmt.Fprintf(os.Stderr, "removing pinned maps: %v\n", err)
			code = 1
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

type progress struct{}

func (progress) Write(b []byte) (int, error) {
	shared.mu.Lock()
	shared.log.Write(b)
	shared.mu.Unlock()
	return len(b), nil
}

// adversaryLab returns the shared lab, bringing it up on first use, and
// waits until it is healthy: both tunnels up, BGP established, the VPC
// route installed and a ping answered. A probe that left it broken (a
// vulnerable gateway) gets cgw-control restarted once so the next probe
// starts clean.
func adversaryLab(t *testing.T) (*lab.Lab, *lab.CGWGateway, string) {
	t.Helper()
	netnstest.Require(t, "ethtool", "nsenter", "curl", "setpriv", "go")
	if miss := lab.Prereqs(); len(miss) > 0 {
		t.Fatalf("lab prerequisites missing: %s", strings.Join(miss, "; "))
	}
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared.dir, shared.err = os.MkdirTemp("", "cgw-adversary-")
		if shared.err != nil {
			return
		}
		shared.g, shared.cgwctl, shared.err = lab.BuildCGW(ctx, shared.dir, false)
		if shared.err != nil {
			return
		}
		cfg := lab.DefaultConfig()
		cfg.Connections[0].Tunnels[v1].IKEVersion = 1
		cfg.Connections[0].Tunnels[v2].IKEVersion = 2
		o := lab.Options{Config: cfg, Prefix: fmt.Sprintf("adv%d", os.Getpid()%100000), StateRoot: shared.dir + "/state",
			Gateway: shared.g, Progress: progress{}}
		shared.l, shared.err = lab.New(o)
		if shared.err != nil {
			return
		}
		shared.err = shared.l.Up(ctx)
	})
	if shared.err != nil {
		shared.mu.Lock()
		t.Logf("lab progress:\n%s", shared.log.String())
		shared.mu.Unlock()
		t.Fatalf("adversary lab: %v", shared.err)
	}
	l, g := shared.l, shared.g
	if err := healthy(t, l, g, 60*time.Second); err != nil {
		t.Logf("lab not healthy (%v): restarting cgw-control so this probe starts clean", err)
		if err := g.StopControl(l, syscall.SIGTERM); err != nil {
			t.Logf("stopping cgw-control: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.StartControl(ctx, l); err != nil {
			t.Fatal(err)
		}
		if err := healthy(t, l, g, 90*time.Second); err != nil {
			t.Fatalf("lab not healthy after restarting cgw-control: %v", err)
		}
	}
	return l, g, shared.cgwctl
}

// healthy waits until both tunnels are up with one active child each,
// both BGP sessions are established, the VPC route is in the dataplane's
// map and a LAN -> VPC ping is answered.
func healthy(t *testing.T, l *lab.Lab, g *lab.CGWGateway, within time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if s, err := g.WaitStatus(ctx, l, "both tunnels up", allUp); err != nil {
		return fmt.Errorf("%v; last status %+v", err, s)
	}
	if err := l.WaitTunnels(ctx); err != nil {
		return err
	}
	if err := l.WaitBGP(ctx); err != nil {
		return err
	}
	if _, err := g.WaitRouteInstalled(ctx, l, lab.VPCPrefix); err != nil {
		return err
	}
	for ctx.Err() == nil {
		if pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 2); err == nil && pr.Received > 0 {
			return nil
		}
	}
	return fmt.Errorf("no ping answered LAN -> VPC within %v", within)
}

func allUp(s *status.Status) bool {
	if len(s.Tunnels) != 2 {
		return false
	}
	for _, tu := range s.Tunnels {
		if tu.State != "up" || tu.IKE == nil || len(tu.Children) == 0 {
			return false
		}
		if _, ok := tu.Active(); !ok {
			return false
		}
	}
	return true
}

// tunnel returns tunnel i's status.
func tunnel(t *testing.T, l *lab.Lab, g *lab.CGWGateway, i int) status.Tunnel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := g.Client(l).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tu, ok := s.Tunnel(l.Conn.Tunnels[i].Name)
	if !ok {
		t.Fatalf("no tunnel %s in cgw-control's status", l.Conn.Tunnels[i].Name)
	}
	return *tu
}

// ikeSPIs is a tunnel's IKE SA as "SPIi/SPIr" (IKEv1: the cookies).
func ikeSPIs(tu status.Tunnel) string {
	if tu.IKE == nil {
		return "none"
	}
	return tu.IKE.SPIi + "/" + tu.IKE.SPIr
}

// passLine logs the line the table is built from.
func passLine(t *testing.T, probe, rate, measured string) {
	t.Helper()
	res := "pass"
	if t.Failed() {
		res = "FAIL"
	}
	t.Logf("PASS-LINE: probe=%s, rate=%s, measured=%s, result=%s", probe, rate, measured, res)
}

func tailLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// pinger runs a fixed-rate LAN -> VPC ping in the background.
type pinger struct {
	done chan lab.PingResult
}

func startPing(l *lab.Lab, count int, every time.Duration) *pinger {
	p := &pinger{done: make(chan lab.PingResult, 1)}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(count)*every+30*time.Second)
		defer cancel()
		pr, _ := l.PingEvery(ctx, lab.LAN, lab.VPCHost, count, every)
		p.done <- pr
	}()
	return p
}

func (p *pinger) wait() lab.PingResult { return <-p.done }

// fullRun is set by CGW_ADVERSARY_FULL=1: the probes run at the issue's
// rates and durations (TestSpoofedMainMode1 alone takes 2 minutes);
// without it make test runs each at a shorter schedule that keeps the
// suite within a few minutes and attacks the same property.
var fullRun = os.Getenv("CGW_ADVERSARY_FULL") == "1"

// probeSchedule returns the full or the make-test schedule.
func probeSchedule(fullEvery time.Duration, fullRounds int, ciEvery time.Duration, ciRounds int) (time.Duration, int) {
	if fullRun {
		return fullEvery, fullRounds
	}
	return ciEvery, ciRounds
}
