// Package rfc2544 finds a device's throughput as RFC 2544 §26.1 defines
// it — the highest offered rate at which it forwards every frame (NDR,
// no-drop rate) — and the partial-drop rate (PDR: loss at most a
// tolerance, 0.5 % by default, as FD.io CSIT reports it), by binary
// search over bounded trials, then measures latency at the rates found.
// The search is pure logic over a Measure function, so it is tested
// against a simulated device; bench/b2b's trials are the real one.
package rfc2544

import (
	"context"
	"errors"
	"fmt"

	"github.com/cgw-project/cgw/bench/pktgen"
)

// Measure runs one bounded trial at pps frames per second; with latency
// set it also takes a timestamped latency sample.
type Measure func(ctx context.Context, pps float64, latency bool) (pktgen.Trial, error)

// Config bounds a search.
type Config struct {
	MaxPPS     float64 // the highest rate tried: what the generator can offer (required)
	MinPPS     float64 // give up below this rate (default MaxPPS/1000)
	Resolution float64 // stop when the bracket is this narrow relative to its top (default 0.02)
	PDRLoss    float64 // loss tolerated at the PDR (default 0.005)
	MaxTrials  int     // bound on search trials (default 30)
	Latency    bool    // run a final trial with a latency sample at NDR and at PDR
}

// Step is one search trial.
type Step struct {
	For   string // "NDR" or "PDR"
	PPS   float64
	Pass  bool
	Trial pktgen.Trial
}

// Result of a search. A rate of 0 means none passed down to MinPPS.
type Result struct {
	NDR, PDR float64
	// NDRTrial and PDRTrial are the final trials at the rates found (with
	// the latency sample when asked), or the passing search trial.
	NDRTrial, PDRTrial pktgen.Trial
	Steps              []Step
	// GeneratorBound: the top rate passed, so the figure is the
	// generator's limit, not the device's.
	GeneratorBound bool
}

func (c *Config) defaults() error {
	if c.MaxPPS <= 0 {
		return errors.New("rfc2544: MaxPPS (the generator's highest rate) is required")
	}
	if c.MinPPS <= 0 {
		c.MinPPS = c.MaxPPS / 1000
	}
	if c.Resolution <= 0 {
		c.Resolution = 0.02
	}
	if c.PDRLoss <= 0 {
		c.PDRLoss = 0.005
	}
	if c.MaxTrials <= 0 {
		c.MaxTrials = 30
	}
	return nil
}

// Search finds NDR, then PDR (which starts from what the NDR trials
// already showed: a rate with no loss passes PDR too, a rate over the
// tolerance fails it).
func Search(ctx context.Context, c Config, m Measure) (Result, error) {
	if err := c.defaults(); err != nil {
		return Result{}, err
	}
	var r Result
	trials := 0
	run := func(kind string, pps float64, tol float64) (Step, error) {
		if trials >= c.MaxTrials {
			return Step{}, fmt.Errorf("rfc2544: %s search used its %d trials without converging (set MaxTrials higher or Resolution coarser)", kind, c.MaxTrials)
		}
		trials++
		t, err := m(ctx, pps, false)
		if err != nil {
			return Step{}, err
		}
		// A generator that fell short of the rate asked offered what it
		// offered: the step counts at that rate.
		if o := t.OfferedPPS(); o > 0 && o < 0.98*pps {
			pps = o
		}
		s := Step{For: kind, PPS: pps, Pass: t.Loss() <= tol, Trial: t}
		r.Steps = append(r.Steps, s)
		return s, nil
	}
	var err error
	if r.NDR, err = r.bisect(c, "NDR", 0, run); err != nil {
		return r, err
	}
	if r.PDR, err = r.bisect(c, "PDR", c.PDRLoss, run); err != nil {
		return r, err
	}
	r.GeneratorBound = r.GeneratorBound || r.NDR > 0 && len(r.Steps) > 0 && r.NDR == r.Steps[0].PPS
	for _, x := range []struct {
		pps float64
		tol float64
		out *pktgen.Trial
	}{{r.NDR, 0, &r.NDRTrial}, {r.PDR, c.PDRLoss, &r.PDRTrial}} {
		if x.pps <= 0 {
			continue
		}
		if c.Latency {
			t, err := m(ctx, x.pps, true)
			if err != nil {
				return r, err
			}
			*x.out = t
			continue
		}
		for _, s := range r.Steps {
			if s.PPS == x.pps && s.Trial.Loss() <= x.tol {
				*x.out = s.Trial
			}
		}
	}
	return r, nil
}

// bisect finds the highest rate whose loss is at most tol. It starts from
// the bracket the earlier steps give (lowest failing rate above the
// highest passing one); with no failure known it tries MaxPPS first. Its
// first guess below a failure is what the device delivered there (less
// the tolerance): an overloaded device shows its capacity, which saves
// most of the halvings.
func (r *Result) bisect(c Config, kind string, tol float64, run func(string, float64, float64) (Step, error)) (float64, error) {
	lo, hi := 0.0, 0.0 // highest pass, lowest fail (0: none known)
	var hiDeliv float64
	for _, s := range r.Steps {
		if s.Trial.Loss() <= tol {
			lo = max(lo, s.PPS)
		}
	}
	for _, s := range r.Steps {
		if s.Trial.Loss() > tol && s.PPS > lo && (hi == 0 || s.PPS < hi) {
			hi, hiDeliv = s.PPS, s.Trial.DeliveredPPS()
		}
	}
	if hi == 0 && lo < c.MaxPPS {
		s, err := run(kind, c.MaxPPS, tol)
		if err != nil {
			return 0, err
		}
		if s.Pass {
			return s.PPS, nil
		}
		hi, hiDeliv = s.PPS, s.Trial.DeliveredPPS()
	}
	if hi == 0 {
		return lo, nil
	}
	guess := hiDeliv * (1 - tol) * 0.99
	short := 1.0 // offered ÷ asked in the last step: a generator short of the rate is asked for more
	for hi-lo > c.Resolution*hi {
		next := (lo + hi) / 2
		if guess > lo && guess < hi {
			next, guess = guess, 0
		}
		if next < c.MinPPS {
			return lo, nil
		}
		ask := min(next/short, c.MaxPPS)
		s, err := run(kind, ask, tol)
		if err != nil {
			return 0, err
		}
		short = min(1, s.PPS/ask)
		// The rates are what the generator offered (run counts a short
		// one at its offered rate), so the result is a rate some trial
		// passed at, and the trial reported with it.
		if s.Pass {
			if s.PPS <= lo { // it offered no more than a rate already passed: the limit is the generator's
				r.GeneratorBound = true
				return lo, nil
			}
			lo = s.PPS
		} else {
			hi = min(hi, s.PPS)
		}
	}
	return lo, nil
}
