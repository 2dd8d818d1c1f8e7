package pktgen

import (
	"fmt"
	"strconv"
	"strings"
)

// Mix is a packet-size mix: frame sizes (Ethernet with FCS, as RFC 2544
// counts them) and their integer weights.
type Mix struct {
	Sizes   []int
	Weights []int
	name    string
}

// SimpleIMIX is the "Simple IMIX" of the benchmarking tools (TRex, IXIA,
// FD.io CSIT): 64, 570 and 1518-byte frames in the proportion 7:4:1.
func SimpleIMIX() Mix { return Mix{Sizes: []int{64, 570, 1518}, Weights: []int{7, 4, 1}, name: "imix"} }

// Fixed is a mix of one frame size.
func Fixed(size int) Mix { return Mix{Sizes: []int{size}, Weights: []int{1}} }

// ParseMix reads "imix" (Simple IMIX), a size ("1400") or a custom mix of
// size:weight pairs ("64:7,570:4,1518:1").
func ParseMix(s string) (Mix, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "imix") {
		return SimpleIMIX(), nil
	}
	var m Mix
	for _, part := range strings.Split(s, ",") {
		sz, w, hasW := strings.Cut(strings.TrimSpace(part), ":")
		size, err := strconv.Atoi(sz)
		if err != nil {
			return Mix{}, fmt.Errorf("pktgen: mix %q: size %q is not a number (want imix, a size, or size:weight,…)", s, sz)
		}
		weight := 1
		if hasW {
			if weight, err = strconv.Atoi(w); err != nil || weight <= 0 {
				return Mix{}, fmt.Errorf("pktgen: mix %q: weight %q must be a positive integer", s, w)
			}
		}
		m.Sizes, m.Weights = append(m.Sizes, size), append(m.Weights, weight)
	}
	return m, m.Valid()
}

// Valid says what is wrong with the mix, if anything.
func (m Mix) Valid() error {
	if len(m.Sizes) == 0 || len(m.Sizes) != len(m.Weights) {
		return fmt.Errorf("pktgen: a mix needs one weight per size (got %d sizes, %d weights)", len(m.Sizes), len(m.Weights))
	}
	for i, s := range m.Sizes {
		if s < MinSize || s > MaxSize {
			return fmt.Errorf("pktgen: mix size %d out of range %d..%d (Ethernet frame with FCS)", s, MinSize, MaxSize)
		}
		if m.Weights[i] <= 0 {
			return fmt.Errorf("pktgen: mix weight of size %d must be positive (got %d)", s, m.Weights[i])
		}
	}
	return nil
}

// String names the mix as ParseMix reads it.
func (m Mix) String() string {
	if m.name != "" {
		return m.name
	}
	if len(m.Sizes) == 1 {
		return strconv.Itoa(m.Sizes[0])
	}
	parts := make([]string, len(m.Sizes))
	for i := range m.Sizes {
		parts[i] = fmt.Sprintf("%d:%d", m.Sizes[i], m.Weights[i])
	}
	return strings.Join(parts, ",")
}

// Period is the sum of the weights: Sequence repeats with this period and
// holds each size exactly its weight's times in every period.
func (m Mix) Period() int {
	n := 0
	for _, w := range m.Weights {
		n += w
	}
	return n
}

// MeanSize is the mean frame size (with FCS) of the mix.
func (m Mix) MeanSize() float64 {
	var s, w float64
	for i := range m.Sizes {
		s += float64(m.Sizes[i] * m.Weights[i])
		w += float64(m.Weights[i])
	}
	if w == 0 {
		return 0
	}
	return s / w
}

// Sequence returns the indexes (into Sizes) of one period, interleaved by
// smooth weighted round robin (nginx's): 7:4:1 gives
// 0 1 0 0 1 0 2 0 1 0 0 1 rather than seven 64-byte frames in a row, so a
// short burst of the generator already carries the mix.
func (m Mix) Sequence() []int {
	n := m.Period()
	seq := make([]int, 0, n)
	cur := make([]int, len(m.Weights))
	for len(seq) < n {
		for i, w := range m.Weights {
			cur[i] += w
		}
		best := 0
		for i := range cur {
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= n
		seq = append(seq, best)
	}
	return seq
}

// Ethernet's per-frame overhead on the wire beyond the frame: preamble and
// start delimiter (8) and the minimum inter-frame gap (12).
const L1Overhead = 20

// Rate is a target rate: frames per second, or bits per second of
// Ethernet frames with FCS (L2, as TRex's "bps"; the line rate of a NIC
// also counts L1Overhead per frame).
type Rate struct {
	PPS, BPS float64
}

// ParseRate reads "0" (as fast as the generator goes), "500k", "1.2M"
// (frames per second, "pps" optional) or "800Mbps", "2.5Gbps", "100kbps".
func ParseRate(s string) (Rate, error) {
	t := strings.TrimSpace(s)
	bits := false
	lower := strings.ToLower(t)
	switch {
	case strings.HasSuffix(lower, "bps"):
		bits, t = true, t[:len(t)-3]
	case strings.HasSuffix(lower, "bit/s"):
		bits, t = true, t[:len(t)-5]
	case strings.HasSuffix(lower, "pps"):
		t = t[:len(t)-3]
	}
	mult := 1.0
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mult, t = 1e3, t[:len(t)-1]
		case 'M':
			mult, t = 1e6, t[:len(t)-1]
		case 'G':
			mult, t = 1e9, t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return Rate{}, fmt.Errorf("pktgen: rate %q: want frames per second (500k, 1.2M) or bits per second (800Mbps, 2.5Gbps); 0 for as fast as possible", s)
	}
	if bits {
		return Rate{BPS: v * mult}, nil
	}
	return Rate{PPS: v * mult}, nil
}

// Unlimited reports whether the rate asks for as fast as possible.
func (r Rate) Unlimited() bool { return r.PPS <= 0 && r.BPS <= 0 }

// FramesPerSecond is the rate in frames per second for frames of mean
// size mean (with FCS).
func (r Rate) FramesPerSecond(mean float64) float64 {
	if r.BPS > 0 {
		return r.BPS / (8 * mean)
	}
	return r.PPS
}

func (r Rate) String() string {
	switch {
	case r.BPS > 0:
		return fmt.Sprintf("%.4g bit/s", r.BPS)
	case r.PPS > 0:
		return fmt.Sprintf("%.4g pps", r.PPS)
	}
	return "unlimited"
}
