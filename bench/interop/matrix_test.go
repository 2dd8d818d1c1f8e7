package interop

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/status"
)

// suite is one encryption × integrity combination of a phase.
type suite struct {
	enc, integ string // AWS's names; integ "" for GCM in phase 2
}

// awsSuites lists every encryption × integrity combination AWS offers:
// AES-128/256-CBC with SHA1 and SHA2-256/384/512, and AES-128/256-GCM-16.
func awsSuites() []suite {
	var s []suite
	for _, e := range []string{"AES128", "AES256"} {
		for _, i := range []string{"SHA1", "SHA2-256", "SHA2-384", "SHA2-512"} {
			s = append(s, suite{e, i})
		}
	}
	return append(s, suite{"AES128-GCM-16", ""}, suite{"AES256-GCM-16", ""})
}

// swanGroup is strongSwan's name of each DH group the matrix uses (what
// swanctl --list-sas --raw reports as dh-group).
var swanGroup = map[int]string{2: "MODP_1024", 5: "MODP_1536", 14: "MODP_2048", 15: "MODP_3072", 16: "MODP_4096",
	19: "ECP_256", 20: "ECP_384", 21: "ECP_521", 24: "MODP_2048_256", 31: "CURVE_25519"}

// matrixCase sets one proposal (one suite, one group) per phase on both sides.
type matrixCase struct {
	p1, p2 suite
	g1, g2 int // phase 1 DH group, phase 2 PFS group
}

func (c matrixCase) String() string {
	f := func(s suite, g int) string {
		n := s.enc
		if s.integ != "" {
			n += "-" + s.integ
		}
		return fmt.Sprintf("%s-g%d", n, g)
	}
	return "ike=" + f(c.p1, c.g1) + "/esp=" + f(c.p2, c.g2)
}

// matrixCases covers each suite once in phase 1 and once in phase 2 and
// each group at least once (2 in both phases, 5 as child PFS only: AWS
// does not allow it for phase 1; 31 in both phases, last).
func matrixCases() []matrixCase {
	s := awsSuites()
	g1 := []int{2, 14, 15, 16, 19, 20, 21, 24, 14, 19}
	g2 := []int{5, 2, 14, 15, 16, 19, 20, 21, 24, 20}
	var cs []matrixCase
	for i := range s {
		// Phase 2 is shifted by 5 so CBC and GCM phases are mixed.
		p1 := s[i]
		if p1.integ == "" {
			p1.integ = "SHA2-256" // phase 1 GCM: the integrity names the PRF
			if i == len(s)-1 {
				p1.integ = "SHA2-512"
			}
		}
		cs = append(cs, matrixCase{p1: p1, p2: s[(i+5)%len(s)], g1: g1[i], g2: g2[i]})
	}
	return append(cs, matrixCase{p1: suite{"AES256-GCM-16", "SHA2-384"}, p2: suite{"AES256-GCM-16", ""}, g1: 31, g2: 31})
}

func (c matrixCase) apply(t *config.Tunnel) {
	t.Phase1.Encryption, t.Phase1.Integrity, t.Phase1.DHGroups = []string{c.p1.enc}, []string{c.p1.integ}, []int{c.g1}
	t.Phase2.Encryption, t.Phase2.DHGroups = []string{c.p2.enc}, []int{c.g2}
	t.Phase2.Integrity = nil
	if c.p2.integ != "" {
		t.Phase2.Integrity = []string{c.p2.integ}
	}
}

// staticConfig is the lab's connection with static routing: the route
// needs no BGP convergence after each cgw-control restart.
func staticConfig() *config.Config {
	cfg := lab.DefaultConfig()
	c := &cfg.Connections[0]
	c.Routing, c.BGP, c.Static = config.RoutingStatic, nil, []string{lab.VPCPrefix.String()}
	return cfg
}

// TestInteropProposals runs the algorithm matrix against strongSwan on one
// lab, then a phase 1 and a phase 2 proposal mismatch.
func TestInteropProposals(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Group 31 (Curve25519) is not an AWS group: the lab's configuration
	// admits it (gateway.testing.non_aws_dh_groups); charon's curve25519
	// plugin is a lab prerequisite (lab.Prereqs) that bench/lab loads.
	cfg := staticConfig()
	cfg.Gateway.Testing.NonAWSGroups = true
	l, g := upLab(t, ctx, lab.Options{Config: cfg})
	start := time.Now()
	cases := matrixCases()
	seen1, seen2 := map[int]bool{}, map[int]bool{}
	passed := 0
	for _, c := range cases {
		ok := t.Run(c.String(), func(t *testing.T) {
			cstart := time.Now()
			for i := range l.Conn.Tunnels {
				c.apply(&l.Conn.Tunnels[i])
			}
			l.SetOverrides(lab.Overrides{}) // AWS's copy is l.Conn: the same proposal
			if _, ok := g.ControlProc(l); ok {
				if err := g.StopControl(l, syscall.SIGTERM); err != nil { // SIGTERM: Delete both IKE SAs first
					t.Fatal(err)
				}
			}
			if err := l.ReloadAWS(ctx); err != nil {
				t.Fatal(err)
			}
			if err := g.RestartControl(ctx, l); err != nil {
				t.Fatal(err)
			}
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			defer wcancel()
			s, err := g.WaitStatus(wctx, l, "both tunnels up with "+c.String(), allUp)
			if err != nil {
				t.Fatalf("%v; last status %+v", err, s)
			}
			s, err = g.WaitRouteInstalled(wctx, l, lab.VPCPrefix)
			if err != nil {
				t.Fatal(err)
			}
			for i := range l.Conn.Tunnels {
				checkNegotiated(t, ctx, l, s, i, c)
			}
			pr, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 5)
			if err != nil || pr.Received < pr.Sent-1 {
				t.Fatalf("ping lan -> vpc with %s: %+v %v", c, pr, err)
			}
			// The first Child SA comes with IKE_AUTH, without a KE
			// (RFC 7296 §1.2): the PFS group is only used by a rekey.
			// cgw rekeys tunnel 1, strongSwan tunnel 2.
			checkPFS(t, ctx, l, g, 0, c.g2, func() error { return g.Client(l).RekeyChild(ctx, l.Conn.Tunnels[0].Name) })
			checkPFS(t, ctx, l, g, 1, c.g2, func() error {
				_, err := l.Swanctl(ctx, lab.AWSEndpoint(1), "--rekey", "--child", lab.BGPProtocol(1))
				return err
			})
			t1, _ := s.Tunnel(l.Conn.Tunnels[0].Name)
			t.Logf("%s: up, IKE %s, child %s, PFS rekeys both ways, ping %d/%d, %.1fs", c, t1.IKE.Proposal, t1.Children[0].Suite, pr.Received, pr.Sent, time.Since(cstart).Seconds())
		})
		if ok {
			passed++
			seen1[c.g1], seen2[c.g2] = true, true
		}
	}
	var groups []int
	for gr := range swanGroup {
		if seen1[gr] || seen2[gr] {
			groups = append(groups, gr)
		}
	}
	slices.Sort(groups)
	t.Logf("interop matrix: %d of %d cases established and carried traffic in %.1fs (10 phase 1 suites, 10 phase 2 suites, DH groups %v)",
		passed, len(cases), time.Since(start).Seconds(), groups)

	t.Run("proposal mismatch", func(t *testing.T) { proposalMismatch(t, ctx, l, g) })
	t.Run("idle keep-up", func(t *testing.T) { idleKeepUp(t, ctx, l, g) })
}

// idleKeepUp: with no traffic at all (static routing, so no BGP either) for
// several DPD intervals, cgw's own liveness checks keep both tunnels up on
// the same SAs. AWS's side runs no DPD here, so only cgw speaks.
func idleKeepUp(t *testing.T, ctx context.Context, l *lab.Lab, g *lab.CGWGateway) {
	const interval, retries = 2 * time.Second, 3
	for i := range l.Conn.Tunnels {
		tu := &l.Conn.Tunnels[i]
		matrixCase{p1: suite{"AES128", "SHA2-256"}, g1: 14, p2: suite{"AES128-GCM-16", ""}, g2: 14}.apply(tu)
		tu.DPD = config.DPD{Interval: config.Duration(interval), Retries: retries, Action: config.DPDClear}
	}
	l.SetOverrides(lab.Overrides{Tunnel: func(i int, tu *config.Tunnel) { tu.DPD.Action = config.DPDNone }})
	defer l.SetOverrides(lab.Overrides{})
	if err := g.StopControl(l, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := l.ReloadAWS(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.RestartControl(ctx, l); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	s0, err := g.WaitStatus(wctx, l, "both tunnels up", allUp)
	if err != nil {
		t.Fatalf("%v; last %+v", err, s0)
	}
	var logs [2]int
	for i := range logs {
		lg, _ := l.CharonLog(lab.AWSEndpoint(i))
		logs[i] = len(lg)
	}
	idle := 5 * interval
	time.Sleep(idle)
	s1, err := g.Client(l).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.ControlMetrics(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	for i, tu0 := range s0.Tunnels {
		tu1, _ := s1.Tunnel(tu0.Name)
		if tu1 == nil || tu1.State != "up" || tu1.IKE == nil || tu1.IKE.SPIi != tu0.IKE.SPIi || len(tu1.Children) != 1 || tu1.Children[0].InSPI != tu0.Children[0].InSPI {
			t.Errorf("%s after %v idle: %+v, want up on the same IKE and Child SAs", tu0.Name, idle, tu1)
		}
		if d := m[`cgw_control_dpd_timeouts_total{tunnel="`+tu0.Name+`"}`]; d != 0 {
			t.Errorf("%s: %.0f DPD timeouts while idle", tu0.Name, d)
		}
		lg, _ := l.CharonLog(lab.AWSEndpoint(i))
		checks := strings.Count(lg[min(logs[i], len(lg)):], "parsed INFORMATIONAL request")
		if checks < 2 {
			t.Errorf("%s: charon answered %d INFORMATIONAL requests in %v idle, want cgw's liveness checks every %v", lab.AWSEndpoint(i), checks, idle, interval)
		}
		sas, err := l.SwanctlListSAs(ctx, lab.AWSEndpoint(i))
		if err != nil || len(sas) != 1 || !sas[0].Up() {
			t.Errorf("%s after %v idle: %+v %v", lab.AWSEndpoint(i), idle, sas, err)
		}
		t.Logf("idle keep-up: %s up after %v without traffic (DPD %v × %d), %d liveness checks answered by %s", tu0.Name, idle, interval, retries, checks, lab.AWSEndpoint(i))
	}
}

// checkNegotiated compares what cgw-control and charon report for tunnel i
// with the case's algorithms.
func checkNegotiated(t *testing.T, ctx context.Context, l *lab.Lab, s *status.Status, i int, c matrixCase) {
	t.Helper()
	ep := lab.AWSEndpoint(i)
	tu, _ := s.Tunnel(l.Conn.Tunnels[i].Name)
	sas, err := l.SwanctlListSAs(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	if len(sas) != 1 || !sas[0].Up() {
		t.Fatalf("%s: charon's SAs %+v, want one established with a child", ep, sas)
	}
	ike := sas[0]
	child, _ := ike.InstalledChild()
	if got := ike.Fields["dh-group"]; got != swanGroup[c.g1] {
		t.Errorf("%s: IKE SA uses %s, want %s", ep, got, swanGroup[c.g1])
	}
	wantEnc := func(s suite) (alg, bits string) {
		bits = "128"
		if strings.HasPrefix(s.enc, "AES256") {
			bits = "256"
		}
		if strings.Contains(s.enc, "GCM") {
			return "AES_GCM_16", bits
		}
		return "AES_CBC", bits
	}
	a, b := wantEnc(c.p1)
	if ike.Fields["encr-alg"] != a || ike.Fields["encr-keysize"] != b {
		t.Errorf("%s: IKE SA encryption %s/%s, want %s/%s", ep, ike.Fields["encr-alg"], ike.Fields["encr-keysize"], a, b)
	}
	a, b = wantEnc(c.p2)
	if child.Fields["encr-alg"] != a || child.Fields["encr-keysize"] != b {
		t.Errorf("%s: child SA encryption %s/%s, want %s/%s", ep, child.Fields["encr-alg"], child.Fields["encr-keysize"], a, b)
	}
	if c.p2.integ != "" && child.Fields["integ-alg"] == "" {
		t.Errorf("%s: child SA without integrity, want %s", ep, c.p2.integ)
	}
	ca, ok := tu.Active()
	if !ok {
		t.Fatalf("tunnel %s: no active child in cgw's status", tu.Name)
	}
	if child.SPIIn != fmt.Sprintf("%08x", ca.OutSPI) || child.SPIOut != fmt.Sprintf("%08x", ca.InSPI) {
		t.Errorf("%s: charon's SPIs in %s out %s, cgw's in %08x out %08x", ep, child.SPIIn, child.SPIOut, ca.InSPI, ca.OutSPI)
	}
}

// proposalMismatch: tunnel 1's AWS side initiates a phase 1 that cgw does
// not accept (cgw answers, so its error shows both lists); tunnel 2's
// phase 2 differs while cgw initiates (charon's log shows both lists).
func proposalMismatch(t *testing.T, ctx context.Context, l *lab.Lab, g *lab.CGWGateway) {
	for i := range l.Conn.Tunnels {
		matrixCase{p1: suite{"AES128", "SHA2-256"}, g1: 14, p2: suite{"AES128-GCM-16", ""}, g2: 14}.apply(&l.Conn.Tunnels[i])
	}
	l.Conn.Tunnels[0].StartupAction = config.StartupAdd
	defer func() { l.Conn.Tunnels[0].StartupAction = config.StartupStart }()
	l.SetOverrides(lab.Overrides{
		Initiate: [2]bool{true, false},
		Tunnel: func(i int, tu *config.Tunnel) {
			if i == 0 {
				tu.Phase1.Encryption, tu.Phase1.Integrity, tu.Phase1.DHGroups = []string{"AES256"}, []string{"SHA2-512"}, []int{20}
			} else {
				tu.Phase2.Encryption, tu.Phase2.Integrity = []string{"AES256"}, []string{"SHA1"}
			}
		},
	})
	defer l.SetOverrides(lab.Overrides{})
	if err := g.StopControl(l, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// AWS first (charon initiates tunnel 1 as soon as it loads it and
	// retransmits until cgw-control listens), so cgw's tunnel 2 meets the
	// new configuration.
	if err := l.ReloadAWS(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteGatewayConfig(); err != nil {
		t.Fatal(err)
	}
	if err := g.StartControl(ctx, l); err != nil {
		t.Fatal(err)
	}
	n1, n2 := l.Conn.Tunnels[0].Name, l.Conn.Tunnels[1].Name
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	s, err := g.WaitStatus(wctx, l, "both tunnels failed with NO_PROPOSAL_CHOSEN", func(s *status.Status) bool {
		a, _ := s.Tunnel(n1)
		b, _ := s.Tunnel(n2)
		return a != nil && b != nil && strings.Contains(a.LastError, "NO_PROPOSAL_CHOSEN") && strings.Contains(b.LastError, "NO_PROPOSAL_CHOSEN") && !strings.Contains(b.LastError, "phase 1")
	})
	if err != nil {
		t.Fatalf("%v; last %+v", err, s)
	}
	a, _ := s.Tunnel(n1)
	b, _ := s.Tunnel(n2)
	t.Logf("%s (AWS initiates, phase 1 differs): %s", n1, a.LastError)
	t.Logf("%s (cgw initiates, phase 2 differs): %s", n2, b.LastError)
	for _, tu := range []*status.Tunnel{a, b} {
		if tu.State == "up" || len(tu.Children) > 0 {
			t.Errorf("tunnel %s is %s with %d children despite the mismatch", tu.Name, tu.State, len(tu.Children))
		}
	}
	// cgw as responder sees both lists: AWS's offer and its own.
	for _, w := range []string{"offered [IKE:aes256-sha512-prfsha512-ecp384]", "we accept [IKE:aes128-sha256-prfsha256-modp2048]"} {
		if !strings.Contains(a.LastError, w) {
			t.Errorf("%s's last error lacks %q (both proposal lists side by side): %s", n1, w, a.LastError)
		}
	}
	logb, _ := os.ReadFile(l.Dir + "/cgw-control.log")
	if !strings.Contains(string(logb), "NO_PROPOSAL_CHOSEN: peer") {
		t.Errorf("cgw-control's log lacks the responder's NO_PROPOSAL_CHOSEN line with both lists")
	}
	// cgw as initiator: AWS's charon logs what it received next to what
	// it has configured.
	clog, err := l.CharonLog(lab.AWSEndpoint(1))
	if err != nil {
		t.Fatal(err)
	}
	var recv, conf string
	for _, ln := range strings.Split(clog, "\n") {
		if strings.Contains(ln, "received proposals:") && strings.Contains(ln, "ESP:") {
			recv = ln
		}
		if strings.Contains(ln, "configured proposals:") && strings.Contains(ln, "ESP:") {
			conf = ln
		}
	}
	if recv == "" || conf == "" {
		t.Errorf("charon %s's log lacks the received/configured ESP proposal lines:\n%s", lab.AWSEndpoint(1), tailLines(clog, 30))
	} else {
		t.Logf("charon %s:\n%s\n%s", lab.AWSEndpoint(1), recv, conf)
	}
}

// checkPFS rekeys tunnel i's Child SA with rekey and checks that charon's
// new child used PFS group g.
func checkPFS(t *testing.T, ctx context.Context, l *lab.Lab, g *lab.CGWGateway, i, group int, rekey func() error) {
	t.Helper()
	name := l.Conn.Tunnels[i].Name
	s, err := g.Client(l).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tu, _ := s.Tunnel(name)
	old, ok := tu.Active()
	if !ok {
		t.Fatalf("%s: no active child", name)
	}
	if err := rekey(); err != nil {
		t.Fatalf("%s: child rekey: %v", name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s, err = g.WaitStatus(wctx, l, name+"'s child rekeyed", func(s *status.Status) bool {
		tu, _ := s.Tunnel(name)
		a, ok := tu.Active()
		return ok && a.InSPI != old.InSPI
	})
	if err != nil {
		t.Fatalf("%v; last %+v", err, s)
	}
	tu, _ = s.Tunnel(name)
	a, _ := tu.Active()
	sas, err := l.SwanctlListSAs(ctx, lab.AWSEndpoint(i))
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range sas {
		for _, c := range sa.Children {
			if c.SPIIn == fmt.Sprintf("%08x", a.OutSPI) {
				if got := c.Fields["dh-group"]; got != swanGroup[group] {
					t.Errorf("%s: rekeyed child SA used PFS group %q, want %s", lab.AWSEndpoint(i), got, swanGroup[group])
				}
				return
			}
		}
	}
	t.Errorf("%s: charon has no child with SPI %08x after the rekey: %+v", lab.AWSEndpoint(i), a.OutSPI, sas)
}
