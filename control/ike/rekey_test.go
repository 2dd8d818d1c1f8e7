package ike

import (
	"testing"
	"time"
)

func TestRekeyAfter(t *testing.T) {
	const h = time.Hour
	for _, c := range []struct {
		name         string
		life, margin time.Duration
		fuzz         int
		lo, hi       time.Duration
	}{
		{"AWS phase 2: 3600 s, margin 270 s, fuzz 100 %", h, 270 * time.Second, 100, h - 540*time.Second, h - 270*time.Second},
		{"no fuzz is exact", h, 270 * time.Second, 0, h - 270*time.Second, h - 270*time.Second},
		{"no margin: a tenth", h, 0, 0, 54 * time.Minute, 54 * time.Minute},
		{"margin past the lifetime: half", 30 * time.Second, 270 * time.Second, 0, 15 * time.Second, 15 * time.Second},
		{"never under a tenth", 30 * time.Second, 25 * time.Second, 100, 3 * time.Second, 5 * time.Second},
	} {
		seen := map[time.Duration]bool{}
		for range 200 {
			at := RekeyAfter(c.life, c.margin, c.fuzz)
			if at < c.lo || at > c.hi {
				t.Fatalf("%s: RekeyAfter = %v, want within [%v, %v]", c.name, at, c.lo, c.hi)
			}
			if at >= c.life {
				t.Fatalf("%s: rekey at %v is not before the lifetime %v", c.name, at, c.life)
			}
			seen[at] = true
		}
		if c.fuzz > 0 && c.margin < c.life/2 && len(seen) < 50 {
			t.Errorf("%s: only %d distinct rekey times in 200 draws: the fuzz is not random", c.name, len(seen))
		}
	}
}

func TestSPIs(t *testing.T) {
	var s SPIs[string]
	got := map[uint32]bool{}
	for range 1000 {
		spi := s.Alloc("a")
		if spi < 256 {
			t.Fatalf("SPI %d is reserved (RFC 4303 §2.1)", spi)
		}
		if got[spi] {
			t.Fatalf("SPI %#x handed out twice", spi)
		}
		got[spi] = true
	}
	var one uint32
	for spi := range got {
		one = spi
		break
	}
	s.Release("b", one)
	if o, ok := s.Owner(one); !ok || o != "a" {
		t.Fatalf("another owner released %#x: owner now %q, %v", one, o, ok)
	}
	s.Release("a", one)
	if _, ok := s.Owner(one); ok || s.Len() != 999 {
		t.Fatalf("after release: owned %v, %d held, want 999", ok, s.Len())
	}
}
