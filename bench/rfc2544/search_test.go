package rfc2544

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/bench/pktgen"
)

// device is a simulated device under test, deterministic: it forwards up
// to capacity frames per second and drops the excess, plus a fixed
// fraction of everything (background loss).
type device struct {
	capacity   float64
	background float64
	trials     int
	latency    int
}

func (d *device) measure(_ context.Context, pps float64, lat bool) (pktgen.Trial, error) {
	d.trials++
	sent := uint64(pps) // one-second trials
	deliv := math.Min(pps, d.capacity) * (1 - d.background)
	t := pktgen.Trial{TargetPPS: pps, Sent: sent, Expected: sent, Delivered: uint64(deliv), Seconds: 1}
	if lat {
		d.latency++
		t.Latency = &pktgen.Latency{Sent: 10, Received: 10}
	}
	return t, nil
}

func TestSearchFindsCapacity(t *testing.T) {
	for _, capacity := range []float64{123456, 500000, 1.9e6} {
		d := &device{capacity: capacity}
		r, err := Search(context.Background(), Config{MaxPPS: 2e6, Resolution: 0.01, Latency: true}, d.measure)
		if err != nil {
			t.Fatal(err)
		}
		// NDR: at most the capacity, within the resolution below it.
		if r.NDR > capacity || r.NDR < capacity*0.99 {
			t.Errorf("capacity %.0f: NDR %.0f, want within 1%% below", capacity, r.NDR)
		}
		// PDR: the rate whose excess is 0.5 % of what is offered.
		pdr := capacity / (1 - 0.005)
		if r.PDR > pdr || r.PDR < pdr*0.99 || r.PDR < r.NDR {
			t.Errorf("capacity %.0f: PDR %.0f, want within 1%% below %.0f and ≥ NDR", capacity, r.PDR, pdr)
		}
		if r.GeneratorBound {
			t.Errorf("capacity %.0f below the generator's: reported generator-bound", capacity)
		}
		if d.latency != 2 || r.NDRTrial.Latency == nil || r.PDRTrial.Latency == nil {
			t.Errorf("latency trials: %d, want one at NDR and one at PDR", d.latency)
		}
		if len(r.Steps) > 16 {
			t.Errorf("capacity %.0f: %d search trials, want few (the first guess is the delivered rate)", capacity, len(r.Steps))
		}
		for _, s := range r.Steps {
			if s.PPS > 2e6 {
				t.Errorf("trial at %.0f above MaxPPS", s.PPS)
			}
		}
	}
}

func TestSearchGeneratorBound(t *testing.T) {
	d := &device{capacity: 5e6}
	r, err := Search(context.Background(), Config{MaxPPS: 2e6}, d.measure)
	if err != nil {
		t.Fatal(err)
	}
	if r.NDR != 2e6 || r.PDR != 2e6 || !r.GeneratorBound || d.trials != 1 {
		t.Errorf("NDR %.0f PDR %.0f bound %v after %d trials; want 2e6, 2e6, true, 1 trial", r.NDR, r.PDR, r.GeneratorBound, d.trials)
	}
}

// A device that always loses 0.1 % has no NDR but a PDR.
func TestSearchBackgroundLoss(t *testing.T) {
	d := &device{capacity: 800000, background: 0.001}
	r, err := Search(context.Background(), Config{MaxPPS: 2e6, Resolution: 0.01}, d.measure)
	if err != nil {
		t.Fatal(err)
	}
	if r.NDR != 0 {
		t.Errorf("NDR %.0f, want 0 (loss at every rate)", r.NDR)
	}
	// loss(r) = 1 - min(r,c)(1-b)/r ≤ 0.005 ⇔ r ≤ c(1-b)/(1-0.005)
	pdr := 800000 * (1 - 0.001) / (1 - 0.005)
	if r.PDR > pdr || r.PDR < pdr*0.99 {
		t.Errorf("PDR %.0f, want within 1%% below %.0f", r.PDR, pdr)
	}
	if len(r.Steps) > 30 {
		t.Errorf("%d trials", len(r.Steps))
	}
}

func TestSearchBounded(t *testing.T) {
	low := &device{capacity: 1000}
	if r, err := Search(context.Background(), Config{MaxPPS: 2e6}, low.measure); err != nil || r.NDR != 0 || r.PDR != 0 {
		t.Errorf("a device below MinPPS: NDR %.0f PDR %.0f (%v), want 0, 0", r.NDR, r.PDR, err)
	}
	d := &device{capacity: 500000}
	if _, err := Search(context.Background(), Config{MaxPPS: 2e6, Resolution: 1e-9, MaxTrials: 5}, d.measure); err == nil || d.trials > 5 {
		t.Errorf("search ran %d trials with a budget of 5 (err %v)", d.trials, err)
	}
	if _, err := Search(context.Background(), Config{}, d.measure); err == nil {
		t.Error("a search without MaxPPS ran")
	}
}

// A generator that cannot reach MaxPPS: its real rate is what counts.
func TestSearchShortGenerator(t *testing.T) {
	d := &device{capacity: 5e6}
	m := func(ctx context.Context, pps float64, lat bool) (pktgen.Trial, error) {
		tr, err := d.measure(ctx, min(pps, 1.5e6), lat)
		tr.TargetPPS = pps
		return tr, err
	}
	r, err := Search(context.Background(), Config{MaxPPS: 3e6}, m)
	if err != nil {
		t.Fatal(err)
	}
	if r.NDR != 1.5e6 || !r.GeneratorBound {
		t.Errorf("NDR %.0f bound %v; want 1.5e6 (the generator's rate), bound", r.NDR, r.GeneratorBound)
	}
}

func TestReport(t *testing.T) {
	d := &device{capacity: 400000}
	r, err := Search(context.Background(), Config{MaxPPS: 2e6, Latency: true}, d.measure)
	if err != nil {
		t.Fatal(err)
	}
	rows := []Row{{Series: "encrypt", Mix: "imix", Flows: 1, Result: r}}
	var tb, c, j strings.Builder
	WriteTable(&tb, rows, 0.005)
	if err := WriteCSV(&c, rows); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&j, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tb.String(), "encrypt") || strings.Count(c.String(), "\n") != 2 || !strings.Contains(j.String(), `"NDR"`) {
		t.Errorf("table:\n%s\ncsv:\n%s", tb.String(), c.String())
	}
}

// TestSearchGeneratorShortMidway: a generator that falls 5 % short of the
// rate asked above 300 kpps, against a device of 340 kpps. The NDR and PDR
// found are rates offered (not asked) and come with the trial that passed
// at them, whose per-CPU figure the benchmark reports.
func TestSearchGeneratorShortMidway(t *testing.T) {
	d := &device{capacity: 340000}
	m := func(ctx context.Context, pps float64, lat bool) (pktgen.Trial, error) {
		off := pps
		if pps > 300000 {
			off = 0.95 * pps
		}
		tr, err := d.measure(ctx, off, lat)
		tr.TargetPPS = pps
		return tr, err
	}
	r, err := Search(context.Background(), Config{MaxPPS: 1e6, Resolution: 0.01}, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		name string
		pps  float64
		tr   pktgen.Trial
	}{{"NDR", r.NDR, r.NDRTrial}, {"PDR", r.PDR, r.PDRTrial}} {
		if x.pps > 340000 || x.pps < 0.97*340000 {
			t.Errorf("%s %.0f, want within 3 %% below the capacity 340000", x.name, x.pps)
		}
		if x.tr.Sent == 0 || math.Abs(x.tr.OfferedPPS()-x.pps) > 1 || x.tr.Loss() > 0.005 {
			t.Errorf("%s %.0f reported with trial %+v: want the passing trial offered at that rate", x.name, x.pps, x.tr)
		}
	}
}
