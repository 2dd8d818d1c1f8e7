package b2b

import (
	"context"
	"testing"
	"time"

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

// TestBenchPath runs the benchmark's path briefly in both modes: the
// generator's frames must cross site A's dataplane into the sink on the
// wire, encrypted (ESP) and forwarded as they are (-no-crypto).
func TestBenchPath(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tp := New(Options{Prefix: "b2bp", Dataplane: dataplaneBinary(t), LogDir: t.TempDir(), CPU: map[string]string{"A": "1"}})
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
		for _, size := range []int{64, 1400} {
			const n = 20000
			r, err := load.Run(ctx, size, n, -1)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes := uint64(size - 4) // IP frame as generated, without FCS
			if !noCrypto {
				wantBytes += 14 // at least: ESP adds more than this to every frame
			}
			if r.Sink.Packets == 0 || r.Sink.Packets > n || r.Sink.Bytes < r.Sink.Packets*wantBytes {
				t.Errorf("no-crypto=%v %d B: sink counted %d packets, %d bytes of %d sent; want 1..%d packets of at least %d bytes",
					noCrypto, size, r.Sink.Packets, r.Sink.Bytes, r.Gen.Sent, n, wantBytes)
			}
			if noCrypto && r.Sink.Bytes != r.Sink.Packets*uint64(size-4) {
				t.Errorf("no-crypto %d B: sink bytes %d for %d packets: frames changed size", size, r.Sink.Bytes, r.Sink.Packets)
			}
			t.Logf("no-crypto=%v %d B: %d of %d delivered, %.0f pps", noCrypto, size, r.Sink.Packets, r.Gen.Sent, r.Sink.PPS())
		}
		if err := tp.StopDataplane(tp.A, false); err != nil {
			t.Fatal(err)
		}
	}
}
