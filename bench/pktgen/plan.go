package pktgen

import (
	"fmt"
	"sync/atomic"
)

// Template is one frame the generator sends.
type Template struct {
	Frame []byte
	// Out is what the receiving end should count per frame sent: 1, or the
	// fragments a gateway makes of a packet over the tunnel MTU, or 0 for
	// a frame that is not counted.
	Out int
}

// WireSize is the frame's size with FCS, as rates and RFC 2544 count it.
func (t Template) WireSize() int { return len(t.Frame) + fcsLen }

// Plan is what a run sends: Slots index Templates in sending order, and
// each slot sends Burst copies of its template in one BPF_PROG_RUN call.
type Plan struct {
	Templates []Template
	Slots     []int
	Burst     int
}

// MaxPlanBytes bounds the frames one plan holds.
const MaxPlanBytes = 64 << 20

// BuildPlan makes a plan of nFlows flows each carrying mix m: build
// returns the frames of flow f at frame size size (more than one when the
// packet goes out as fragments; they then leave back to back). One period
// of the plan sends every flow the mix's Sequence once, so flows and
// sizes keep their proportions exactly over every period.
func BuildPlan(m Mix, nFlows, burst int, build func(flow, size int) ([]Template, error)) (Plan, error) {
	if err := m.Valid(); err != nil {
		return Plan{}, err
	}
	if nFlows < 1 || nFlows > MaxFlows {
		return Plan{}, fmt.Errorf("pktgen: %d flows: want 1..%d", nFlows, MaxFlows)
	}
	if burst < 1 {
		return Plan{}, fmt.Errorf("pktgen: burst %d: want at least 1", burst)
	}
	p := Plan{Burst: burst}
	idx := make([][]int, nFlows*len(m.Sizes)) // (flow, size index) → template indexes
	total := 0
	for f := 0; f < nFlows; f++ {
		for s, size := range m.Sizes {
			ts, err := build(f, size)
			if err != nil {
				return Plan{}, err
			}
			if len(ts) == 0 {
				return Plan{}, fmt.Errorf("pktgen: no frame for flow %d, size %d", f, size)
			}
			for _, t := range ts {
				if total += len(t.Frame); total > MaxPlanBytes {
					return Plan{}, fmt.Errorf("pktgen: %d flows of mix %v need more than %d MB of frames: use fewer flows", nFlows, m, MaxPlanBytes>>20)
				}
				idx[f*len(m.Sizes)+s] = append(idx[f*len(m.Sizes)+s], len(p.Templates))
				p.Templates = append(p.Templates, t)
			}
		}
	}
	for _, s := range m.Sequence() {
		for f := 0; f < nFlows; f++ {
			p.Slots = append(p.Slots, idx[f*len(m.Sizes)+s]...)
		}
	}
	return p, nil
}

// Live is a run's progress, updated by the generator as it goes and safe
// to read from another goroutine (the once-a-second progress line).
type Live struct {
	Sent, Bytes, Expected atomic.Uint64
}
