package ike

import (
	"testing"
	"time"
)

// TestReinit: the re-initiation back-off both engines follow.
func TestReinit(t *testing.T) {
	tim := Timing{ReinitMin: time.Second, ReinitMax: 5 * time.Second}.WithDefaults()
	now := time.Unix(1_800_000_000, 0)
	var r Reinit
	if r.Due(now) {
		t.Fatal("due before it was scheduled")
	}
	var waits []time.Duration
	for range 5 {
		r.Schedule(now, tim)
		waits = append(waits, r.At.Sub(now))
		if r.Due(r.At.Add(-time.Nanosecond)) || !r.Due(r.At) || r.Due(now.Add(time.Hour)) {
			t.Fatal("Due: not exactly once, at At")
		}
	}
	want := []time.Duration{1, 2, 4, 5, 5}
	for i := range want {
		if waits[i] != want[i]*time.Second {
			t.Fatalf("back-offs %v, want %v seconds", waits, want)
		}
	}
	r.Up()
	if r.Schedule(now, tim); r.At.Sub(now) != time.Second {
		t.Fatalf("after the tunnel came up: %v, want ReinitMin", r.At.Sub(now))
	}
}
