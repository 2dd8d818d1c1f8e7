package b2b

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/pktgen"
	"github.com/cgw-project/cgw/crypto/transform"
)

// TestBackToBackCBC carries ping and UDP both ways over an AES-256-CBC +
// HMAC-SHA-256 SA pair and has tshark decrypt every ESP packet.
func TestBackToBackCBC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := transform.ParseSuite("aes256-sha256")
	if err != nil {
		t.Fatal(err)
	}
	tp := upPair(t, ctx, Options{Prefix: "b2bc", Suite: s})
	c := tp.capture(t, ctx, "cbc")
	if r, err := tp.Ping(ctx, LAN, VPCHost, 5, "-i", "0.1", "-s", "1000"); err != nil || r.Received != 5 {
		t.Errorf("ping lan→vpc: %d/%d (%v)\n%s", r.Received, r.Sent, err, r.Output)
	}
	for _, dir := range [][]string{{"-u", "-b", "5M", "-l", "1300", "-t", "1"}, {"-u", "-b", "5M", "-l", "1300", "-t", "1", "-R"}} {
		if n, err := tp.Iperf(ctx, LAN, VPC, VPCHost, 5310, dir...); err != nil || n == 0 {
			t.Errorf("UDP %v: %d bytes (%v)", dir, n, err)
		}
	}
	c.Stop()
	ps := checkESP(t, ctx, c.Path, saList(tp.SAs))
	per := map[uint32]int{}
	for _, p := range ps {
		per[p.SPI]++
	}
	if per[tp.SAs.AB.SPI] == 0 || per[tp.SAs.BA.SPI] == 0 {
		t.Errorf("ESP per SPI %v: want both directions", per)
	}
}

// TestBenchPath runs the benchmark's paths briefly: the generator's frames
// must cross site A's dataplane into the sink, outbound encrypted (bigger)
// or forwarded as they are (-no-crypto), inbound decrypted back to the
// original frame size.
func TestBenchPath(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tp := New(Options{Prefix: "b2bp", Dataplane: dataplaneBinary(t), LogDir: t.TempDir(), CPU: map[string]string{"A": "1"}, NoReplay: true})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dataplane A log:\n%s", tp.A.DataplaneLog())
		}
		if err := tp.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	if err := tp.Up(ctx); err != nil {
		t.Fatal(err)
	}
	load, err := tp.NewLoad()
	if err != nil {
		t.Fatal(err)
	}
	defer load.Close()
	for _, noCrypto := range []bool{false, true} {
		tp.Opts.NoCrypto = noCrypto
		if _, err := tp.RunDataplane(ctx, tp.A, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		for _, d := range []Direction{Outbound, Inbound} {
			if d == Inbound && noCrypto {
				continue // no inbound counterpart: the ESP frame is addressed to A itself
			}
			for _, size := range []int{64, 1400} {
				const n = 20000
				// A first burst may meet cold caches and neighbour
				// resolution; what counts is that traffic flows after.
				load.Run(ctx, d, size, 2000, -1)
				r, err := load.Run(ctx, d, size, n, -1)
				if err != nil {
					t.Fatal(err)
				}
				plain := uint64(size - 4) // the frame as generated (no FCS)
				if r.Sink.Packets == 0 || r.Sink.Packets > n {
					t.Errorf("%v no-crypto=%v %d B: sink counted %d of %d", d, noCrypto, size, r.Sink.Packets, r.Gen.Sent)
				}
				switch {
				case d == Outbound && noCrypto, d == Inbound:
					if r.Sink.Bytes != r.Sink.Packets*plain {
						t.Errorf("%v no-crypto=%v %d B: %d bytes for %d packets, want %d each", d, noCrypto, size, r.Sink.Bytes, r.Sink.Packets, plain)
					}
				default: // an ESP frame: outer IPv4 20 + ESP header 8 + IV 8 + ICV 16 + trailer 2, at least
					if r.Sink.Bytes < r.Sink.Packets*(plain+54) {
						t.Errorf("%v no-crypto=%v %d B: %d bytes for %d packets, want ESP-sized frames", d, noCrypto, size, r.Sink.Bytes, r.Sink.Packets)
					}
				}
				t.Logf("%v no-crypto=%v %d B: %d of %d delivered, %.0f pps", d, noCrypto, size, r.Sink.Packets, r.Gen.Sent, r.Sink.PPS())
			}
			// A paced trial of Simple IMIX over several flows: the 1518-byte
			// frames cross the 1399-byte tunnel as two fragments, which the
			// expected count includes.
			src, _ := pktgen.ParseEndpoints("198.18.0.2-198.18.0.9:1024-1027", 9)
			dst, _ := pktgen.ParseEndpoints("198.19.0.2-198.19.0.5:9", 9)
			tr, err := load.Trial(ctx, TrialConfig{Dir: d, Mix: pktgen.SimpleIMIX(), Flows: pktgen.Flows{Src: src, Dst: dst, N: 16},
				Rate: pktgen.Rate{PPS: 20000}, Duration: 500 * time.Millisecond, GenCPU: -1})
			if err != nil {
				t.Fatal(err)
			}
			if tr.Sent == 0 || tr.Delivered == 0 || tr.Delivered > tr.Expected || tr.Expected <= tr.Sent && d == Outbound {
				t.Errorf("%v no-crypto=%v IMIX trial: sent %d, expected %d, delivered %d", d, noCrypto, tr.Sent, tr.Expected, tr.Delivered)
			}
			t.Logf("%v no-crypto=%v IMIX trial: sent %d (%.0f pps), expected %d, delivered %d, %.3f CPU s", d, noCrypto, tr.Sent, tr.OfferedPPS(), tr.Expected, tr.Delivered, tr.CPUSeconds)
		}
		if err := tp.StopDataplane(tp.A, false); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackToBackNATT carries the tunnel as ESP in UDP 4500 (RFC 3948):
// nothing crosses the wire as raw ESP, and tshark decrypts every
// encapsulated packet.
func TestBackToBackNATT(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tp := upPair(t, ctx, Options{Prefix: "b2bn", UDPEncap: true})
	c := tp.capture(t, ctx, "natt")
	if r, err := tp.Ping(ctx, LAN, VPCHost, 5, "-i", "0.1"); err != nil || r.Received != 5 {
		t.Errorf("ping lan→vpc: %d/%d (%v)\n%s", r.Received, r.Sent, err, r.Output)
	}
	if n, err := tp.Iperf(ctx, LAN, VPC, VPCHost, 5320, "-n", "1M"); err != nil || n == 0 {
		t.Errorf("TCP lan→vpc: %d bytes (%v)", n, err)
	}
	c.Stop()
	pkts, err := ReadPcap(c.Path)
	if err != nil {
		t.Fatal(err)
	}
	var raw, natt int
	for _, p := range pkts {
		switch {
		case p[9] == 50:
			raw++
		case p[9] == 17 && len(p) >= 28 && p[22] == NATTPort>>8 && p[23] == NATTPort&0xff:
			natt++
		}
	}
	ps := checkESP(t, ctx, c.Path, saList(tp.SAs))
	if raw != 0 || natt != len(ps) {
		t.Errorf("wire: %d raw ESP packets and %d to UDP 4500 (tshark's ESP count %d); want 0 raw and every ESP packet in UDP", raw, natt, len(ps))
	}
}

// TestNoSlowPathSweepsStaleTUN: a dataplane killed with -9 leaves its
// tunnel's TUN device (persistent, no carrier); one started after it
// without a slow path (here -no-crypto) removes it, since nothing else
// would take it over.
func TestNoSlowPathSweepsStaleTUN(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp := upForTest(ctx, t, Options{Prefix: "b2bu", NoReplay: true}, "A")
	tunDev := func() bool {
		out, _ := tp.Exec(ctx, SiteA, "ip", "-br", "link", "show", "type", "tun")
		return strings.Contains(out, "cgw-t")
	}
	waitFor := func(want bool, what string) {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); tunDev() != want; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(end) {
				out, _ := tp.Exec(ctx, SiteA, "ip", "-br", "link")
				t.Fatalf("%s; links:\n%s", what, out)
			}
		}
	}
	waitFor(true, "the gateway made no TUN device for its tunnel")
	tp.StopDataplane(tp.A, true)
	time.Sleep(200 * time.Millisecond)
	waitFor(true, "the killed dataplane's TUN device is gone already: nothing left to sweep")
	tp.Opts.NoCrypto = true
	if _, err := tp.RunDataplane(ctx, tp.A, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(false, "the dataplane without a slow path left the stale TUN device")
}
