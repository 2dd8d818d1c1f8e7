package b2b

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/internal/netnstest"
)

func requireE2E(t *testing.T) {
	t.Helper()
	netnstest.Require(t)
	if miss := Prereqs(); len(miss) > 0 {
		t.Fatalf("end-to-end: missing prerequisites: %s", strings.Join(miss, ", "))
	}
}

// TestTopologyUpDown builds the topology without dataplanes, checks every
// link and the installed tables, and that Down leaves nothing behind.
func TestTopologyUpDown(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tp := New(Options{Prefix: "b2bt"})
	t.Cleanup(func() { tp.Down() })
	if err := tp.Up(ctx); err != nil {
		t.Fatal(err)
	}
	// Without dataplanes the sites' kernels answer for their own addresses
	// but forward nothing (ip_forward 0: no plaintext past a stopped gateway).
	for _, p := range []struct{ from, to string }{{LAN, AInside.String()}, {VPC, BInside.String()}, {Wire, AOutside.String()}, {Wire, BOutside.String()}} {
		if out, err := tp.Exec(ctx, p.from, "ping", "-c", "1", "-W", "2", p.to); err != nil {
			t.Errorf("ping %s from %s: %v\n%s", p.to, p.from, err, out)
		}
	}
	if _, err := tp.Exec(ctx, LAN, "ping", "-c", "1", "-W", "1", VPCHost.String()); err == nil {
		t.Errorf("lan reached vpc with no dataplane running: a site forwards in plaintext")
	}
	for _, s := range []*Site{tp.A, tp.B} {
		tb, err := s.Reader.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if len(tb.Inbound) != 1 || tb.Outbound[TunnelID] == 0 || len(tb.Routes) != 1 || tb.Tunnels[TunnelID].Flags&1 == 0 {
			t.Errorf("site %s tables: %d inbound SAs, outbound %d, %d routes, tunnel flags %#x; want 1, set, 1, up",
				s.Name, len(tb.Inbound), tb.Outbound[TunnelID], len(tb.Routes), tb.Tunnels[TunnelID].Flags)
		}
	}
	if err := tp.StartDataplane(tp.A); err == nil {
		t.Errorf("StartDataplane without a binary succeeded")
	}
	if err := tp.Down(); err != nil {
		t.Fatal(err)
	}
	for _, r := range Roles {
		if _, err := os.Stat("/run/netns/" + tp.NS(r)); err == nil {
			t.Errorf("namespace %s left behind", tp.NS(r))
		}
	}
	for _, s := range []*Site{tp.A, tp.B} {
		if _, err := os.Stat("/sys/fs/bpf/cgw/" + s.Instance); err == nil {
			t.Errorf("pinned maps of %s left behind", s.Instance)
		}
	}
	if _, err := os.Stat(tp.Dir); err == nil {
		t.Errorf("state directory %s left behind", tp.Dir)
	}
}

// TestClearTo: HitlessRestart's leak check counts an ICMP packet to the
// VPC, not ESP (raw or in UDP 4500) nor packets to elsewhere.
func TestClearTo(t *testing.T) {
	ip := func(proto byte, dst netip.Addr, udpDst uint16) []byte {
		p := make([]byte, 40)
		p[0], p[9] = 0x45, proto
		copy(p[16:20], dst.AsSlice())
		binary.BigEndian.PutUint16(p[22:], udpDst)
		binary.BigEndian.PutUint32(p[28:], 0x1001) // a SPI, not a NAT-T keepalive
		return p
	}
	other := netip.MustParseAddr("192.0.2.7")
	pkts := [][]byte{ip(1, VPCHost, 0), ip(50, VPCHost, 0), ip(17, VPCHost, 4500), ip(1, other, 0), ip(17, VPCHost, 53)}
	if n := clearTo(pkts, VPCNet); n != 2 {
		t.Fatalf("clearTo: %d, want 2 (the ICMP and the UDP/53 packet to %v)", n, VPCNet)
	}
}

func TestReplyGap(t *testing.T) {
	out := `PING 198.19.0.2 (198.19.0.2) 56(84) bytes of data.
[1000.000000] 64 bytes from 198.19.0.2: icmp_seq=1 ttl=62 time=0.3 ms
[1000.015000] 64 bytes from 198.19.0.2: icmp_seq=2 ttl=62 time=0.3 ms
[1000.030000] 64 bytes from 198.19.0.2: icmp_seq=3 ttl=62 time=0.3 ms
[1000.105000] 64 bytes from 198.19.0.2: icmp_seq=8 ttl=62 time=0.3 ms
[1000.120000] 64 bytes from 198.19.0.2: icmp_seq=9 ttl=62 time=0.3 ms
`
	gap, every, a, b := replyGap(out)
	if gap.Round(time.Millisecond) != 75*time.Millisecond || every.Round(time.Millisecond) != 15*time.Millisecond || a != 3 || b != 8 {
		t.Fatalf("replyGap: %v every %v, seq %d → %d; want 75ms every 15ms, 3 → 8", gap, every, a, b)
	}
}

// upForTest builds a topology that the test's end removes (logging the
// dataplanes' output if it failed) and starts the dataplanes of sites;
// Dataplane and LogDir default to a fresh build and a temporary folder.
func upForTest(ctx context.Context, t *testing.T, o Options, sites ...string) *Topology {
	t.Helper()
	if o.Dataplane == "" {
		o.Dataplane = dataplaneBinary(t)
	}
	if o.LogDir == "" {
		o.LogDir = t.TempDir()
	}
	tp := New(o)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dataplane A log:\n%s\nB:\n%s", tp.A.DataplaneLog(), tp.B.DataplaneLog())
		}
		if err := tp.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	if err := tp.Up(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range sites {
		s := map[string]*Site{"A": tp.A, "B": tp.B}[name]
		if _, err := tp.RunDataplane(ctx, s, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return tp
}
