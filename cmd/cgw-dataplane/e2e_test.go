package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// site is one gateway of the smoke test: namespaces <p>la (LAN host),
// <p>a (gateway) for site A, <p>lb and <p>b for site B.
type site struct {
	ns, lanNS     string
	instance      string
	outside, peer netip.Addr

	insideT         netip.Addr // our tunnel inside address
	route           netip.Prefix
	outSPI, inSPI   uint32
	outSeed, inSeed byte
	proc            *exec.Cmd
	starts          int
	extra           []string // more flags
	log             string
	objs            *maps.Objects
	w               *maps.Writer
}

func buildBinary(t *testing.T) string {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(t.TempDir(), "cgw-dataplane")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building cgw-dataplane: %v\n%s", err, out)
	}
	return bin
}

func gcm(t *testing.T, spi, tunnel uint32, dir maps.SADir, seed byte, local, remote netip.Addr) maps.SA {
	s, err := transform.ParseSuite("aes128gcm16")
	if err != nil {
		t.Fatal(err)
	}
	sa := maps.SA{Spi: spi, TunnelId: tunnel, Direction: uint8(dir), State: uint8(maps.StateActive), ReplayWindow: 1024,
		LocalAddr: maps.Addr16(local), RemoteAddr: maps.Addr16(remote)}
	km := make([]byte, 20)
	for i := range km {
		km[i] = seed * byte(i+3)
	}
	if err := maps.SetKeys(&sa, s, km); err != nil {
		t.Fatal(err)
	}
	return sa
}

// install writes the static SAs, the tunnel and the route of a site.
func (s *site) install(t *testing.T) {
	var err error
	if s.objs, err = maps.Load(s.instance); err != nil {
		t.Fatal(err)
	}
	if s.w, err = maps.NewWriter(s.objs); err != nil {
		t.Fatal(err)
	}
	w := s.w
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.SetTunnel(1, maps.Tunnel{Flags: uint32(maps.TunnelUp), Mtu: 1399, Mss: 1379,
		LocalAddr: maps.Addr16(s.outside), RemoteAddr: maps.Addr16(s.peer),
		InsideAddr: maps.Addr16(s.insideT), InsidePrefixlen: 30}))
	must(w.InstallInboundSA(1, gcm(t, s.inSPI, 1, maps.DirInbound, s.inSeed, s.outside, s.peer)))
	must(w.InstallSA(2, gcm(t, s.outSPI, 1, maps.DirOutbound, s.outSeed, s.outside, s.peer)))
	must(w.SetOutboundSA(1, 2))
	must(w.AddRoute(s.route, maps.Route{TunnelId: 1}))
	must(w.AddLocalAddr(s.outside, maps.LocalOutside))
}

func (s *site) start(t *testing.T, bin string) {
	lf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	// nsenter, not ip netns exec: ip netns exec remounts /sys, which
	// hides /sys/fs/bpf, so the dataplane would mount a bpffs of its own
	// and never see the maps this test pinned.
	args := []string{"--net=/run/netns/" + s.ns, bin, "-instance", s.instance, "-inside-if", "in0", "-outside-if", "out0",
		"-cpus", "0,1", "-metrics", "127.0.0.1:19472"}
	cmd := exec.Command("nsenter", append(args, s.extra...)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.proc = cmd
	// Up when it logs its start line (or dies).
	prev := s.starts
	s.starts++
	for i := 0; i < 100; i++ {
		b, _ := os.ReadFile(s.log)
		if strings.Count(string(b), "2 worker(s) on CPUs") > prev {
			return
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(s.log)
	t.Fatalf("%s: cgw-dataplane did not start; log:\n%s", s.ns, b)
}

func (s *site) stop(t *testing.T) {
	if s.proc == nil {
		return
	}
	s.proc.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.proc.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.proc.Process.Kill()
		<-done
		t.Errorf("%s: cgw-dataplane ignored SIGTERM for 5 s", s.ns)
	}
	s.proc = nil
}

func pingCount(ns, dst string, n int) (int, string) {
	out, _ := exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-c", fmt.Sprint(n), "-i", "0.2", "-W", "1", dst).CombinedOutput()
	var got int
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "received") {
			fmt.Sscanf(strings.Split(l, ", ")[1], "%d received", &got)
		}
	}
	return got, string(out)
}

// TestSmokeBackToBack: two dataplanes with static SAs back to back;
// pings between the two LANs and between the tunnel inside addresses
// (slow path); a restart of one dataplane continues its sequence numbers.
func TestSmokeBackToBack(t *testing.T) {
	netnstest.Require(t, "ping", "ethtool", "nsenter", "curl")
	bin := buildBinary(t)
	p := fmt.Sprintf("cdp%d", os.Getpid()%100000)
	A, B, LA, LB := netnstest.New(t, p+"a"), netnstest.New(t, p+"b"), netnstest.New(t, p+"la"), netnstest.New(t, p+"lb")
	nsA, nsB, nsLA, nsLB := A.Name(), B.Name(), LA.Name(), LB.Name()
	dir := t.TempDir()
	a := &site{ns: nsA, lanNS: nsLA, instance: p + "-a", outside: netip.MustParseAddr("192.0.2.10"), peer: netip.MustParseAddr("192.0.2.11"),
		insideT: netip.MustParseAddr("169.254.10.2"), route: netip.MustParsePrefix("198.19.0.0/24"),
		outSPI: 0xa0000001, inSPI: 0xb0000001, outSeed: 1, inSeed: 2, log: filepath.Join(dir, "a.log")}
	b := &site{ns: nsB, lanNS: nsLB, instance: p + "-b", outside: netip.MustParseAddr("192.0.2.11"), peer: netip.MustParseAddr("192.0.2.10"),
		insideT: netip.MustParseAddr("169.254.10.1"), route: netip.MustParsePrefix("198.18.0.0/24"),
		outSPI: 0xb0000001, inSPI: 0xa0000001, outSeed: 2, inSeed: 1, log: filepath.Join(dir, "b.log")}
	t.Cleanup(func() {
		for _, s := range []*site{a, b} {
			if t.Failed() {
				m, _ := exec.Command("nsenter", "--net=/run/netns/"+s.ns, "curl", "-s", "http://127.0.0.1:19472/metrics").CombinedOutput()
				var keep []string
				for _, l := range strings.Split(string(m), "\n") {
					if !strings.HasPrefix(l, "#") && !strings.HasSuffix(l, " 0") && !strings.Contains(l, "go_") {
						keep = append(keep, l)
					}
				}
				l, _ := exec.Command("ip", "-n", s.ns, "-br", "addr").CombinedOutput()
				t.Logf("%s metrics (non-zero):\n%s\n%s", s.ns, strings.Join(keep, "\n"), l)
			}
			s.stop(t)
			if s.w != nil {
				s.w.Close()
			}
			if s.objs != nil {
				s.objs.Close()
			}
			maps.Remove(s.instance)
			if t.Failed() {
				l, _ := os.ReadFile(s.log)
				t.Logf("%s log:\n%s", s.ns, l)
			}
		}
	})
	topology(t, A, B, LA, LB)

	a.install(t)
	b.install(t)
	a.start(t, bin)
	b.start(t, bin)

	// The first packets may go while ARP resolves (no_neighbour drops).
	got, out := pingCount(nsLA, "198.19.0.2", 10)
	if got < 5 {
		t.Fatalf("LAN A → LAN B through two dataplanes: %d of 10 replies\n%s", got, out)
	}
	ca, _ := a.w.ReadSACounters(2)
	cb, _ := b.w.ReadSACounters(1)
	if ca.Packets == 0 || ca.Seq == 0 || cb.Packets == 0 || cb.Seq == 0 {
		t.Fatalf("per-SA counters: A outbound %+v, B inbound %+v", ca, cb)
	}

	// The metrics endpoint: traffic counted, and every inside frame came
	// with the XDP program's tunnel metadata.
	m := metricsOf(t, a.ns)
	if m[`cgw_dataplane_packets_total{direction="out",worker="0"}`]+m[`cgw_dataplane_packets_total{direction="out",worker="1"}`] == 0 {
		t.Fatalf("A's metrics show no outbound packets:\n%v", m)
	}
	if n := m[`cgw_dataplane_inside_no_metadata_total{worker="0"}`] + m[`cgw_dataplane_inside_no_metadata_total{worker="1"}`]; n != 0 {
		t.Fatalf("%v inside frames arrived without XDP metadata", n)
	}

	// Slow path: the kernel of B pings A's tunnel inside address through
	// the TUN devices.
	got, out = pingCount(nsB, "169.254.10.2", 5)
	if got < 3 {
		t.Fatalf("tunnel inside address via the slow path: %d of 5 replies\n%s", got, out)
	}

	// Restart A: its outbound sequence continues from the shared counter.
	before, _ := a.w.ReadSACounters(2)
	a.stop(t)
	a.start(t, bin)
	got, out = pingCount(nsLA, "198.19.0.2", 5)
	if got < 3 {
		t.Fatalf("after restarting A: %d of 5 replies\n%s", got, out)
	}
	after, _ := a.w.ReadSACounters(2)
	if after.Seq <= before.Seq {
		t.Fatalf("A's outbound seq went from %d to %d across the restart", before.Seq, after.Seq)
	}
	cbi, _ := b.w.ReadSACounters(1)
	if cbi.DropReplay != 0 {
		t.Fatalf("B dropped %d packets as replays after A restarted: sequence numbers were reused", cbi.DropReplay)
	}

	// SIGTERM leaves the programs attached (pinned links); -detach
	// removes them.
	a.stop(t)
	xdp := func(dev string) bool {
		out, _ := exec.Command("ip", "-n", a.ns, "link", "show", "dev", dev).CombinedOutput()
		return strings.Contains(string(out), "prog/xdp")
	}
	if !xdp("in0") || !xdp("out0") {
		t.Fatalf("A's XDP programs detached on SIGTERM: want them kept by their pinned links")
	}
	if out, err := exec.Command("nsenter", "--net=/run/netns/"+a.ns, bin, "-instance", a.instance, "-detach").CombinedOutput(); err != nil {
		t.Fatalf("cgw-dataplane -detach: %v\n%s", err, out)
	}
	if xdp("in0") || xdp("out0") {
		t.Fatalf("XDP programs still attached after cgw-dataplane -detach")
	}
}

// metricsOf scrapes a site's dataplane metrics into name{labels} → value.
func metricsOf(t *testing.T, ns string) map[string]float64 {
	t.Helper()
	out, err := exec.Command("nsenter", "--net=/run/netns/"+ns, "curl", "-sf", "http://127.0.0.1:19472/metrics").CombinedOutput()
	if err != nil {
		t.Fatalf("scraping %s's metrics: %v\n%s", ns, err, out)
	}
	m := map[string]float64{}
	for _, l := range strings.Split(string(out), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		var v float64
		fmt.Sscan(l[i+1:], &v)
		m[l[:i]] = v
	}
	return m
}

// topology builds lan A — gateway A — gateway B — lan B with two-queue
// veths (two workers per dataplane; a veth puts a frame on rx queue =
// sending CPU % queues).
func topology(t *testing.T, a, b, la, lb *netnstest.NS) {
	end := func(ns *netnstest.NS, name, addr string) netnstest.End {
		return netnstest.End{NS: ns, Name: name, Addrs: []netip.Prefix{netip.MustParsePrefix(addr)}}
	}
	for _, v := range []netnstest.Veth{
		{A: end(la, "l0", "198.18.0.2/24"), B: end(a, "in0", "198.18.0.1/24"), Queues: 2},
		{A: end(a, "out0", "192.0.2.10/24"), B: end(b, "out0", "192.0.2.11/24"), Queues: 2},
		{A: end(lb, "l0", "198.19.0.2/24"), B: end(b, "in0", "198.19.0.1/24"), Queues: 2},
	} {
		v.Create(t)
		v.A.NS.Run(t, "ethtool", "-K", v.A.Name, "tx", "off")
		v.B.NS.Run(t, "ethtool", "-K", v.B.Name, "tx", "off")
	}
	la.Run(t, "ip", "route", "add", "default", "via", "198.18.0.1")
	lb.Run(t, "ip", "route", "add", "default", "via", "198.19.0.1")
}

// TestSmokeNoCrypto: -no-crypto forwards inside → outside with a MAC
// rewrite only (the benchmark's baseline): gateway A's dataplane carries
// LAN A → LAN B, the kernels carry the rest.
func TestSmokeNoCrypto(t *testing.T) {
	netnstest.Require(t, "ping", "ethtool", "nsenter", "curl")
	bin := buildBinary(t)
	p := fmt.Sprintf("cdn%d", os.Getpid()%100000)
	A, B, LA, LB := netnstest.New(t, p+"a"), netnstest.New(t, p+"b"), netnstest.New(t, p+"la"), netnstest.New(t, p+"lb")
	nsA, nsLA := A.Name(), LA.Name()
	a := &site{ns: nsA, instance: p + "-a", outside: netip.MustParseAddr("192.0.2.10"), peer: netip.MustParseAddr("192.0.2.11"),
		insideT: netip.MustParseAddr("169.254.10.2"), route: netip.MustParsePrefix("198.19.0.0/24"),
		outSPI: 0xa0000001, inSPI: 0xb0000001, outSeed: 1, inSeed: 2, log: filepath.Join(t.TempDir(), "a.log"),
		extra: []string{"-no-crypto"}}
	t.Cleanup(func() {
		a.stop(t)
		if a.w != nil {
			a.w.Close()
		}
		if a.objs != nil {
			a.objs.Close()
		}
		maps.Remove(a.instance)
		if t.Failed() {
			l, _ := os.ReadFile(a.log)
			t.Logf("A log:\n%s", l)
		}
	})
	topology(t, A, B, LA, LB)
	A.Run(t, "ip", "route", "add", "198.19.0.0/24", "via", "192.0.2.11")
	B.Run(t, "ip", "route", "add", "198.18.0.0/24", "via", "192.0.2.10")
	for _, ns := range []*netnstest.NS{A, B} {
		ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	a.install(t) // the inside XDP program steers what routes to an up tunnel
	a.start(t, bin)
	got, out := pingCount(nsLA, "198.19.0.2", 10)
	if got < 5 {
		t.Fatalf("LAN A → LAN B through the -no-crypto forwarder: %d of 10 replies\n%s", got, out)
	}
	m := metricsOf(t, nsA)
	if n := m[`cgw_dataplane_packets_total{direction="out",worker="0"}`] + m[`cgw_dataplane_packets_total{direction="out",worker="1"}`]; n < 5 {
		t.Fatalf("the forwarder counted %v outbound packets, want ≥ 5", n)
	}
}
