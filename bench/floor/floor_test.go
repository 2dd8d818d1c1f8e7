package floor

import (
	"math"
	"testing"
	"time"

	"github.com/cgw-project/cgw/crypto/transform"
)

func TestPlaintextLen(t *testing.T) {
	for _, c := range []struct{ n, block, want int }{{46, 4, 48}, {1382, 4, 1384}, {1383, 4, 1388}, {46, 16, 48}, {47, 16, 64}, {46, 1, 48}} {
		if got := PlaintextLen(c.n, c.block); got != c.want {
			t.Errorf("PlaintextLen(%d, %d) = %d, want %d", c.n, c.block, got, c.want)
		}
	}
}

func TestMeasureAndEfficiency(t *testing.T) {
	s := transform.Suite{Encr: transform.ENCR_AES_GCM_16, KeyBits: 128}
	c, err := Measure(s, 1382, 200, 3, -1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Seal <= 0 || c.Open <= 0 {
		t.Errorf("costs %+v, want positive", c)
	}
	// A forwarder at 2 M/CPU-s (500 ns) and a 500 ns cipher: the floor
	// is 1 M/CPU-s; a gateway at 0.95 M is 95 % of it.
	if e := Efficiency(0.95e6, 2e6, 500*time.Nanosecond); math.Abs(e-0.95) > 1e-9 {
		t.Errorf("efficiency %v, want 0.95", e)
	}
	if Efficiency(1, 0, time.Second) != 0 {
		t.Error("efficiency without a forwarder figure")
	}
}
