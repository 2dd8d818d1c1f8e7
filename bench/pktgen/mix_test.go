package pktgen

import (
	"math"
	"net/netip"
	"testing"
	"time"
)

func TestSimpleIMIXProportions(t *testing.T) {
	m := SimpleIMIX()
	seq := m.Sequence()
	if len(seq) != 12 {
		t.Fatalf("period %d, want 12", len(seq))
	}
	count := map[int]int{}
	for _, i := range seq {
		count[m.Sizes[i]]++
	}
	if count[64] != 7 || count[570] != 4 || count[1518] != 1 {
		t.Errorf("one period holds %v, want 64:7 570:4 1518:1", count)
	}
	// Interleaved: never more than two 64-byte frames in a row.
	run := 0
	for _, i := range append(seq, seq...) {
		if m.Sizes[i] == 64 {
			run++
		} else {
			run = 0
		}
		if run > 2 {
			t.Fatalf("sequence %v has a run of %d 64-byte frames", seq, run)
		}
	}
	// (7·64 + 4·570 + 1518) / 12 = 353.83 bytes, the figure the tools quote.
	if got := m.MeanSize(); math.Abs(got-353.83) > 0.01 {
		t.Errorf("mean size %.2f, want 353.83", got)
	}
	// Through a plan of 3 flows, every flow carries the mix exactly.
	p, err := BuildPlan(m, 3, 1, func(f, size int) ([]Template, error) {
		return []Template{{Frame: make([]byte, size-4), Out: f}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	per := map[[2]int]int{}
	for _, s := range p.Slots {
		tp := p.Templates[s]
		per[[2]int{tp.Out, tp.WireSize()}]++
	}
	for f := 0; f < 3; f++ {
		if per[[2]int{f, 64}] != 7 || per[[2]int{f, 570}] != 4 || per[[2]int{f, 1518}] != 1 {
			t.Errorf("flow %d carries %v per period, want 7/4/1", f, per)
		}
	}
}

func TestParseMix(t *testing.T) {
	for in, want := range map[string]string{"imix": "imix", "IMIX": "imix", "1400": "1400", "64:7,570:4,1518:1": "64:7,570:4,1518:1", "64,1518": "64:1,1518:1"} {
		m, err := ParseMix(in)
		if err != nil || m.String() != want {
			t.Errorf("ParseMix(%q) = %v, %v; want %s", in, m, err, want)
		}
	}
	m, _ := ParseMix("100:3,200:1")
	if got := m.Sequence(); len(got) != 4 {
		t.Errorf("custom mix period %v", got)
	}
	for _, bad := range []string{"", "63", "1519", "64:0", "64:x", "a"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{"0": {}, "500k": {PPS: 5e5}, "1.2Mpps": {PPS: 1.2e6}, "800Mbps": {BPS: 8e8}, "2.5Gbps": {BPS: 2.5e9}, "100kbit/s": {BPS: 1e5}} {
		r, err := ParseRate(in)
		if err != nil || r != want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", in, r, err, want)
		}
	}
	for _, bad := range []string{"-1", "fast", "1X"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
	if got := (Rate{BPS: 8e8}).FramesPerSecond(1000); got != 1e5 {
		t.Errorf("800 Mbit/s of 1000-byte frames = %v pps, want 100000", got)
	}
}

// TestPacer runs the generator's pacing against a simulated clock whose
// sleeps overshoot (as the scheduler's do) and whose bursts take time: the
// rate reached is the rate asked, within one burst, and the overshoot
// never accumulates.
func TestPacer(t *testing.T) {
	for _, c := range []struct {
		rate      float64
		burst     float64
		overshoot time.Duration
		perUnit   time.Duration
	}{
		{1e6, 32, 80 * time.Microsecond, 200 * time.Nanosecond},
		{1e5, 32, time.Millisecond, 300 * time.Nanosecond},
		{8e8, 32 * 8 * 1518, 50 * time.Microsecond, 0}, // bits: 32 frames of 1518 B at 800 Mbit/s
	} {
		p := Pacer{PerSecond: c.rate}
		var now time.Duration
		var sent float64
		maxAhead := 0.0
		for now < 2*time.Second {
			if w := p.Wait(now, sent, c.burst); w > 0 {
				now += w + c.overshoot
			} else {
				sent += p.Late(now, sent, c.burst)
			}
			sent += c.burst
			now += time.Duration(c.burst) * c.perUnit
			if a := sent - p.Due(now); a > maxAhead {
				maxAhead = a
			}
		}
		// Behind by at most a burst plus what one late wake-up lost (it is
		// caught up with by bursts without waiting).
		want, tol := c.rate*now.Seconds(), 2*c.burst+c.rate*c.overshoot.Seconds()
		if math.Abs(sent-want) > tol {
			t.Errorf("rate %g: sent %g units in %v, want %g ± %g", c.rate, sent, now, want, tol)
		}
		if maxAhead > c.burst {
			t.Errorf("rate %g: ran %g units ahead of the schedule, more than one burst", c.rate, maxAhead)
		}
	}
	// A sender that wakes with 31 bursts due and none sent catches up
	// with two bursts back to back and skips the rest.
	p := Pacer{PerSecond: 1e5}
	burst := 64.0
	now := 20 * time.Millisecond
	late := p.Due(now) // 2000 units
	if w := p.Wait(now, 0, burst); w != 0 {
		t.Fatalf("late sender told to wait %v", w)
	}
	if skip := p.Late(now, 0, burst); math.Abs(skip-(late-2*burst)) > 1e-6 {
		t.Errorf("late by %g units: skips %g, want %g (all but two bursts)", late, skip, late-2*burst)
	}
	if skip := p.Late(now, late-burst, burst); skip != 0 {
		t.Errorf("a burst behind: skips %g, want 0", skip)
	}
	if skip := (Pacer{}).Late(now, 0, burst); skip != 0 {
		t.Errorf("unlimited pacer skips %g", skip)
	}
	// Unlimited never waits.
	if w := (Pacer{}).Wait(0, 1e9, 1); w != 0 {
		t.Errorf("unlimited pacer waits %v", w)
	}
}

// TestFlowSpreading: flows alternate between blocks (tunnels' prefixes)
// whatever their sizes, and within a block every flow is distinct up to
// its size.
func TestFlowSpreading(t *testing.T) {
	src, err := ParseEndpoints("198.18.0.2-198.18.0.9:1024-1031", 9)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := ParseEndpoints("198.19.0.0/24:9,198.19.1.0/25:9,198.19.2.0-198.19.2.99:9-10", 9)
	if err != nil {
		t.Fatal(err)
	}
	if src[0].Size() != 64 || dst[0].Size() != 254 || dst[1].Size() != 126 || dst[2].Size() != 200 {
		t.Fatalf("block sizes %d %d %d %d, want 64 254 126 200", src[0].Size(), dst[0].Size(), dst[1].Size(), dst[2].Size())
	}
	if one, err := ParseEndpoints("198.19.2.7", 9); err != nil || one[0].Size() != 1 || one[0].At(5) != netip.MustParseAddrPort("198.19.2.7:9") {
		t.Errorf("one-address block: %v, %v", one, err)
	}
	f := Flows{Src: src, Dst: dst, N: 300}
	if err := f.Valid(); err != nil {
		t.Fatal(err)
	}
	perBlock := map[netip.Prefix]int{}
	seen := map[[2]netip.AddrPort]bool{}
	srcSeen := map[netip.AddrPort]int{}
	for i := 0; i < f.N; i++ {
		s, d := f.Flow(i)
		for _, p := range []string{"198.19.0.0/24", "198.19.1.0/25", "198.19.2.0/24"} {
			if netip.MustParsePrefix(p).Contains(d.Addr()) {
				perBlock[netip.MustParsePrefix(p)]++
			}
		}
		if !Bench.Contains(s.Addr()) || s.Port() < 1024 || s.Port() > 1031 {
			t.Fatalf("flow %d source %v outside its block", i, s)
		}
		seen[[2]netip.AddrPort{s, d}] = true
		srcSeen[s]++
	}
	for p, n := range perBlock {
		if n != 100 {
			t.Errorf("block %v got %d of 300 flows, want 100", p, n)
		}
	}
	if len(seen) != 300 {
		t.Errorf("%d distinct flows of 300", len(seen))
	}
	// 300 flows over 64 sources: each used 4 or 5 times.
	for s, n := range srcSeen {
		if n < 4 || n > 5 {
			t.Errorf("source %v used %d times, want 4 or 5", s, n)
		}
	}
	if len(srcSeen) != 64 {
		t.Errorf("%d sources used, want all 64", len(srcSeen))
	}
	for _, bad := range []string{"192.0.2.1", "10.0.0.0/8", "198.18.0.9-198.18.0.2", "198.18.0.1:9-1", "198.18.0.1:x"} {
		if _, err := ParseEndpoints(bad, 9); err == nil {
			t.Errorf("ParseEndpoints(%q) accepted", bad)
		}
	}
}
