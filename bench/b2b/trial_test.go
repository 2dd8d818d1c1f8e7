package b2b

import (
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/pktgen"
)

// TestFragments: IMIX's 1518-byte frame through the 1399-byte tunnel is
// two fragments whose data adds up, with offsets, MF and checksums right.
func TestFragments(t *testing.T) {
	b, err := pktgen.Frame{SrcMAC: make([]byte, 6), DstMAC: make([]byte, 6), Src: netip.MustParseAddrPort("198.18.0.2:9"),
		Dst: netip.MustParseAddrPort("198.19.0.2:9"), Size: 1518, NoDF: true}.Build()
	if err != nil {
		t.Fatal(err)
	}
	ip := b[14:]
	fs := Fragments(ip, TunnelMTU)
	if len(fs) != 2 {
		t.Fatalf("%d fragments, want 2", len(fs))
	}
	data := 0
	for i, f := range fs {
		if len(f) > TunnelMTU || int(binary.BigEndian.Uint16(f[2:])) != len(f) || ipChecksum(f[:20]) != 0 {
			t.Errorf("fragment %d: %d bytes, total length %d, checksum %#x", i, len(f), binary.BigEndian.Uint16(f[2:]), ipChecksum(f[:20]))
		}
		fo := binary.BigEndian.Uint16(f[6:])
		if int(fo&0x1fff)*8 != data || (fo&0x2000 != 0) != (i == 0) {
			t.Errorf("fragment %d: offset field %#x, want offset %d and MF only on the first", i, fo, data)
		}
		data += len(f) - 20
	}
	if data != len(ip)-20 {
		t.Errorf("fragments carry %d bytes, want %d", data, len(ip)-20)
	}
	if got := Fragments(ip[:1000], TunnelMTU); len(got) != 1 {
		t.Errorf("a packet under the MTU was fragmented")
	}
}

// TestLatencyProbes: probes cross site A beside a paced IMIX load, each
// way, and come back as one-way times; the sink does not count them.
func TestLatencyProbes(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tp := upForTest(ctx, t, Options{Prefix: "b2bl", NoReplay: true}, "A", "B")
	load, err := tp.NewLoad()
	if err != nil {
		t.Fatal(err)
	}
	defer load.Close()
	if err := CheckProbeMix(pktgen.Fixed(ProbeFrameSize + 1)); err == nil {
		t.Error("a mix size next to the probes' was accepted")
	}
	for _, d := range []Direction{Outbound, Inbound} {
		tr, err := load.Trial(ctx, TrialConfig{Dir: d, Mix: pktgen.SimpleIMIX(), Rate: pktgen.Rate{PPS: 20000},
			Duration: 500 * time.Millisecond, GenCPU: -1, Latency: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		l := tr.Latency
		if l == nil || l.Sent < 10 || l.Received == 0 || l.Received > l.Sent || l.MinUs <= 0 || l.MaxUs < l.P99Us || l.P99Us < l.P50Us {
			t.Fatalf("%v: latency sample %+v", d, l)
		}
		if tr.Delivered > tr.Expected {
			t.Errorf("%v: the sink counted %d of %d expected: probes counted", d, tr.Delivered, tr.Expected)
		}
		t.Logf("%v: %d of %d probes, µs min %.0f avg %.0f p50 %.0f p99 %.0f max %.0f; load %d of %d", d, l.Received, l.Sent, l.MinUs, l.AvgUs, l.P50Us, l.P99Us, l.MaxUs, tr.Delivered, tr.Expected)
	}
}

// TestStrongSwanBaseline: the back-to-back comparison's two setups carry
// the same paced IMIX through A and B into vpc — cgw's dataplanes, then
// strongSwan libipsec in fresh namespaces — and TCP crosses each.
func TestStrongSwanBaseline(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, swan := range []bool{false, true} {
		tp := New(Options{Prefix: "b2bw", Dataplane: dataplaneBinary(t), LogDir: t.TempDir(), NoReplay: !swan, UDPEncap: true})
		if err := tp.Up(ctx); err != nil {
			tp.Down()
			t.Fatal(err)
		}
		var pids []int
		if swan {
			sw, err := tp.StartStrongSwan(ctx)
			if err != nil {
				tp.Down()
				t.Fatal(err)
			}
			pids = sw.PIDs()
			var pass *pktgen.Pass
			if err := pktgen.InNetns(tp.NS(SiteA), func() (err error) { pass, err = pktgen.NewPass(InsideDev); return err }); err != nil {
				t.Fatal(err)
			}
			defer pass.Close()
		} else {
			for _, s := range []*Site{tp.A, tp.B} {
				if _, err := tp.RunDataplane(ctx, s, 20*time.Second); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n, err := tp.Iperf(ctx, LAN, VPC, VPCHost, 5320, "-n", "1M"); err != nil || n == 0 {
			t.Errorf("strongswan=%v: TCP lan→vpc: %d bytes (%v)", swan, n, err)
		}
		load, err := tp.NewLoad()
		if err != nil {
			t.Fatal(err)
		}
		tr, err := load.Trial(ctx, TrialConfig{Dir: Through, Mix: pktgen.SimpleIMIX(), Rate: pktgen.Rate{PPS: 5000}, Duration: time.Second, GenCPU: -1, PIDs: pids})
		load.Close()
		if err != nil {
			t.Fatal(err)
		}
		if tr.Delivered == 0 || tr.Delivered > tr.Expected || tr.CPUSeconds <= 0 {
			t.Errorf("strongswan=%v: through A and B: sent %d, expected %d, delivered %d, CPU %.3f s", swan, tr.Sent, tr.Expected, tr.Delivered, tr.CPUSeconds)
		}
		t.Logf("strongswan=%v: %d of %d delivered, %.0f per CPU-second of both gateways", swan, tr.Delivered, tr.Expected, tr.PerCPUSecond())
		if err := tp.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	}
}
