package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/internal/netnstest"
	"github.com/cgw-project/cgw/internal/prereq"
)

// TestLabEndToEnd brings the lab up with the strongSwan stand-in, checks
// both tunnels and BGP sessions, sends pings and a bounded TCP transfer
// from lan to vpc through EACH tunnel (checking the bytes on that
// tunnel's SA counters), then tears down and checks nothing is left.
func TestLabEndToEnd(t *testing.T) {
	netnstest.Require(t)
	if miss := Prereqs(); len(miss) > 0 {
		t.Fatalf("lab prerequisites missing: %s", strings.Join(miss, "; "))
	}
	prefix := fmt.Sprintf("cgwt%d", os.Getpid()%100000)
	l, err := New(Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			if err := l.Down(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	if err := l.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	if err := l.WaitTunnels(ctx); err != nil {
		t.Fatal(err)
	}
	// Both ends of both tunnels: established IKEv2, installed ESP-in-UDP
	// child (libipsec always encapsulates), peers as configured.
	for i := range l.Conn.Tunnels {
		tu := &l.Conn.Tunnels[i]
		for _, side := range []struct{ ep, peer string }{
			{AWSEndpoint(i), l.StandInOutside(i).String()},
			{gwEndpoint(i), tu.AWSOutside.String()},
		} {
			sas, err := l.SwanctlListSAs(ctx, side.ep)
			if err != nil {
				t.Fatal(err)
			}
			if len(sas) != 1 || !sas[0].Up() {
				t.Fatalf("%s: want one established IKE_SA with an installed child, got %+v", side.ep, sas)
			}
			s := sas[0]
			if s.Version != 2 || s.RemoteHost != side.peer {
				t.Errorf("%s: IKE_SA version %d with %s, want IKEv2 with %s", side.ep, s.Version, s.RemoteHost, side.peer)
			}
			if c, _ := s.InstalledChild(); !c.Encap || c.EncrAlg != "AES_GCM_16" {
				t.Errorf("%s: child %+v, want ESP-in-UDP AES_GCM_16", side.ep, c)
			}
		}
	}
	if err := l.WaitBGP(ctx); err != nil {
		t.Fatal(err)
	}
	gwSessions, err := l.BGPSessions(ctx, "cgw")
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Conn.Tunnels {
		if gwSessions[BGPProtocol(i)] != "Established" {
			t.Errorf("gateway side BGP %s: %q, want Established", BGPProtocol(i), gwSessions[BGPProtocol(i)])
		}
	}
	// Established comes before the first UPDATE: wait for the route itself.
	var routes string
	err = waitFor(ctx, "the gateway's BIRD to learn "+VPCPrefix.String(), 30*time.Second, func() bool {
		routes, err = l.BirdShow(ctx, "cgw", "route", VPCPrefix.String())
		return err == nil && strings.Contains(routes, VPCPrefix.String()) && strings.Contains(routes, "AS64512")
	})
	if err != nil {
		t.Fatalf("gateway did not learn %s from AS64512: %v\n%s", VPCPrefix, err, routes)
	}

	const minBytes = 1 << 20
	lanPrefix := l.Cfg.Gateway.Inside.Address.Masked()
	for i := range l.Conn.Tunnels {
		other := 1 - i
		// Force tunnel i: close the other tunnel's BGP session.
		if err := l.SetBGP(ctx, other, false); err != nil {
			t.Fatal(err)
		}
		if err := l.WaitRoute(ctx, CGW, VPCPrefix, GatewayTunnelIf(i)); err != nil {
			t.Fatal(err)
		}
		if err := l.WaitRoute(ctx, AWS, lanPrefix, AWSTunnelIf(i)); err != nil {
			t.Fatal(err)
		}
		before, err := l.ChildCounters(ctx, AWSEndpoint(i))
		if err != nil {
			t.Fatal(err)
		}
		beforeOther, err := l.ChildCounters(ctx, AWSEndpoint(other))
		if err != nil {
			t.Fatal(err)
		}
		// The wire (inet's link to the AWS endpoint) carries ESP in
		// UDP 4500 only: no inner address in clear.
		capt, err := l.StartCapture(ctx, Inet, fmt.Sprintf("t%d", i+1), "", fmt.Sprintf("wire-t%d", i+1), 200)
		if err != nil {
			t.Fatal(err)
		}
		p, err := l.Ping(ctx, LAN, VPCHost, 5)
		if err != nil {
			t.Fatal(err)
		}
		if p.Received != p.Sent {
			t.Errorf("tunnel %d: ping lan->vpc: %d of %d answered", i+1, p.Received, p.Sent)
		}
		wire, err := capt.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(wire, ".4500: UDP-encap: ESP"); n < 10 || strings.Contains(wire, VPCHost.String()) {
			t.Errorf("tunnel %d: the wire should show >= 10 ESP-in-UDP packets and no inner address; got %d:\n%s", i+1, n, wire)
		}
		r, err := l.Transfer(ctx, LAN, VPC, VPCHost, TransferOptions{Duration: 2 * time.Second})
		if err != nil {
			t.Fatalf("tunnel %d: TCP transfer: %v", i+1, err)
		}
		after, err := l.ChildCounters(ctx, AWSEndpoint(i))
		if err != nil {
			t.Fatal(err)
		}
		afterOther, err := l.ChildCounters(ctx, AWSEndpoint(other))
		if err != nil {
			t.Fatal(err)
		}
		in := after.BytesIn - before.BytesIn
		// The SA counts inner IP packets, so it saw at least the TCP
		// payload iperf3's receiver got.
		if r.Bytes < minBytes || after.SPIIn != before.SPIIn || in < uint64(r.Bytes) {
			t.Errorf("tunnel %d: iperf3 delivered %d bytes; AWS SA %s received %d bytes (SA before %s), want >= max(%d, delivered)", i+1, r.Bytes, after.SPIIn, in, before.SPIIn, minBytes)
		}
		if d := afterOther.BytesIn - beforeOther.BytesIn; afterOther.SPIIn == beforeOther.SPIIn && d > minBytes/8 {
			t.Errorf("tunnel %d forced, yet tunnel %d's SA received %d bytes", i+1, other+1, d)
		}
		t.Logf("tunnel %d: %d bytes in %.1fs (%.0f Mbit/s), AWS SA %s in +%d bytes", i+1, r.Bytes, r.Seconds, r.BitsPerSec/1e6, after.SPIIn, in)
		if err := l.SetBGP(ctx, other, true); err != nil {
			t.Fatal(err)
		}
		if err := l.WaitBGP(ctx); err != nil {
			t.Fatal(err)
		}
	}

	st := l.State()
	downDone = true
	if err := l.Down(); err != nil {
		t.Fatalf("down: %v", err)
	}
	checkGone(t, st, l.Dir)
	if err := l.Down(); err != nil {
		t.Errorf("second down (must be idempotent): %v", err)
	}
}

func checkGone(t *testing.T, st State, dir string) {
	t.Helper()
	if len(st.Namespaces) < 7 || len(st.Procs) < 3 {
		t.Errorf("state recorded %d namespaces and %d processes, want >= 7 and >= 3", len(st.Namespaces), len(st.Procs))
	}
	for _, ns := range st.Namespaces {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	for _, p := range st.Procs {
		if p.Alive() {
			t.Errorf("process %s (pid %d) left running", p.Name, p.Pid)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory %s left behind", dir)
	}
	// The lab creates no link in the host namespace (veths are created
	// inside their namespaces); check no lab-named link leaked there.
	out, _ := run(context.Background(), "ip", "-o", "link", "show")
	for _, name := range []string{"vgw-t", "gw-t", "ipsec0"} {
		if strings.Contains(out, " "+name) {
			t.Errorf("host namespace has a lab link %q:\n%s", name, out)
		}
	}
}

// TestLabNAT puts the gateway behind source NAT in inet (RFC 3947/3948):
// AWS must see the NAT address, the tunnels still come up and carry a
// ping, and teardown still leaves nothing behind.
func TestLabNAT(t *testing.T) {
	netnstest.Require(t)
	miss := Prereqs()
	miss = append(miss, prereq.Commands("nft")...)
	if len(miss) > 0 {
		t.Fatalf("lab prerequisites missing: %s", strings.Join(miss, "; "))
	}
	prefix := fmt.Sprintf("cgwn%d", os.Getpid()%100000)
	l, err := New(Options{Prefix: prefix, NAT: true})
	if err != nil {
		t.Fatal(err)
	}
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			if err := l.Down(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := l.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	if err := l.WaitTunnels(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range l.Conn.Tunnels {
		sas, err := l.SwanctlListSAs(ctx, AWSEndpoint(i))
		if err != nil {
			t.Fatal(err)
		}
		if len(sas) != 1 || sas[0].RemoteHost != NATAddress.String() || sas[0].RemotePort == 500 {
			t.Errorf("%s: want the gateway seen at %s (NAT-T port), got %+v", AWSEndpoint(i), NATAddress, sas)
		}
	}
	if err := l.WaitBGP(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitRoute(ctx, CGW, VPCPrefix, ""); err != nil {
		t.Fatal(err)
	}
	p, err := l.Ping(ctx, LAN, VPCHost, 3)
	if err != nil || p.Received != p.Sent {
		t.Errorf("ping lan->vpc behind NAT: %+v, %v", p, err)
	}
	st := l.State()
	downDone = true
	if err := l.Down(); err != nil {
		t.Fatalf("down: %v", err)
	}
	checkGone(t, st, l.Dir)
}

// TestLabProcessGateway plugs a different gateway into the cgw namespace
// (here a placeholder process, as cgw-control/cgw-dataplane will be): the
// AWS side comes up and waits, cgw reaches both AWS endpoints through
// inet, the gateway's configuration is written, and Down ends the
// gateway's process by pid.
func TestLabProcessGateway(t *testing.T) {
	netnstest.Require(t)
	if miss := Prereqs(); len(miss) > 0 {
		t.Fatalf("lab prerequisites missing: %s", strings.Join(miss, "; "))
	}
	prefix := fmt.Sprintf("cgwp%d", os.Getpid()%100000)
	gw := &ProcessGateway{Label: "placeholder", Commands: [][]string{{"sleep", "600"}}}
	l, err := New(Options{Prefix: prefix, Gateway: gw})
	if err != nil {
		t.Fatal(err)
	}
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			if err := l.Down(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := l.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	if _, err := config.Load(l.GatewayConfigPath()); err != nil {
		t.Errorf("gateway configuration written by the lab does not load: %v", err)
	}
	for i := range l.Conn.Tunnels {
		p, err := l.Ping(ctx, CGW, l.Conn.Tunnels[i].AWSOutside, 2)
		if err != nil || p.Received != p.Sent {
			t.Errorf("cgw -> %s: %+v %v", l.Conn.Tunnels[i].AWSOutside, p, err)
		}
		sas, err := l.SwanctlListSAs(ctx, AWSEndpoint(i))
		if err != nil || len(sas) != 0 {
			t.Errorf("%s: want no SA without a gateway, got %+v %v", AWSEndpoint(i), sas, err)
		}
	}
	st := l.State()
	found := false
	for _, p := range st.Procs {
		found = found || (strings.Contains(p.Name, "sleep") && p.NS == l.NS(CGW) && p.Alive())
	}
	if !found {
		t.Errorf("gateway process not recorded/running: %+v", st.Procs)
	}
	downDone = true
	if err := l.Down(); err != nil {
		t.Fatalf("down: %v", err)
	}
	checkGone(t, st, l.Dir)
}

// TestLabOverrides changes the AWS side only: tunnel 1's ESP proposal no
// longer matches the gateway's (the CHILD_SA must fail with
// NO_PROPOSAL_CHOSEN, RFC 7296 §3.10.1), and tunnel 2's CHILD_SA lifetime
// is so short that AWS rekeys it (CREATE_CHILD_SA with PFS) while traffic
// keeps flowing over the new SA.
func TestLabOverrides(t *testing.T) {
	netnstest.Require(t)
	if miss := Prereqs(); len(miss) > 0 {
		t.Fatalf("lab prerequisites missing: %s", strings.Join(miss, "; "))
	}
	prefix := fmt.Sprintf("cgwo%d", os.Getpid()%100000)
	l, err := New(Options{Prefix: prefix, Overrides: Overrides{Tunnel: func(i int, tu *config.Tunnel) {
		if i == 0 {
			tu.Phase2.Encryption = []string{"AES256-GCM-16"}
		} else {
			tu.Phase2.Lifetime = config.Duration(24 * time.Second)
			tu.RekeyMargin = config.Duration(12 * time.Second)
			tu.RekeyFuzz = 0
		}
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	if err := l.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	if err := l.WaitTunnel(ctx, 1); err != nil {
		t.Fatal(err)
	}
	first, err := l.ChildCounters(ctx, AWSEndpoint(1))
	if err != nil {
		t.Fatal(err)
	}
	// Tunnel 1: the mismatch is reported and no CHILD_SA is installed.
	err = waitFor(ctx, "NO_PROPOSAL_CHOSEN in the stand-in's tunnel 1 log", 20*time.Second, func() bool {
		log, _ := l.CharonLog(gwEndpoint(0))
		return strings.Contains(log, "NO_PROPOSAL_CHOSEN")
	})
	if err != nil {
		t.Error(err)
	}
	if c, err := l.ChildCounters(ctx, AWSEndpoint(0)); err == nil {
		t.Errorf("tunnel 1 installed a CHILD_SA %+v despite the ESP proposal mismatch", c)
	}
	// Tunnel 2 carries the traffic (tunnel 1 has no SA, so no BGP).
	if err := l.WaitRoute(ctx, CGW, VPCPrefix, GatewayTunnelIf(1)); err != nil {
		t.Fatal(err)
	}
	// AWS rekeys tunnel 2's CHILD_SA at 24 − 12 s: wait for a new SPI.
	var rekeyed ChildSA
	err = waitFor(ctx, "AWS to rekey tunnel 2's CHILD_SA", 40*time.Second, func() bool {
		c, err := l.ChildCounters(ctx, AWSEndpoint(1))
		if err == nil && c.SPIIn != first.SPIIn {
			rekeyed = c
			return true
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	if log, _ := l.CharonLog(AWSEndpoint(1)); !strings.Contains(log, "CREATE_CHILD_SA") {
		t.Errorf("AWS tunnel 2 log shows no CREATE_CHILD_SA exchange")
	}
	p, err := l.Ping(ctx, LAN, VPCHost, 5)
	if err != nil || p.Received != p.Sent {
		t.Fatalf("ping after rekey: %+v %v", p, err)
	}
	after, err := l.ChildCounters(ctx, AWSEndpoint(1))
	if err != nil {
		t.Fatal(err)
	}
	if after.SPIIn == rekeyed.SPIIn && after.PacketsIn < rekeyed.PacketsIn+5 {
		t.Errorf("pings after the rekey did not arrive on the new SA %s: packets %d -> %d", after.SPIIn, rekeyed.PacketsIn, after.PacketsIn)
	}
	t.Logf("tunnel 2 CHILD_SA rekeyed by AWS: SPI %s -> %s", first.SPIIn, rekeyed.SPIIn)
}
