package pktgen

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
)

// Trial is the outcome of one bounded run at one offered rate: what the
// generator sent, what the sink counted, and the CPU time of the device
// under test.
type Trial struct {
	Label     string  `json:"label"`                // e.g. "encrypt"
	Mix       string  `json:"mix"`                  // as ParseMix reads it
	Flows     int     `json:"flows"`                // flows generated
	TargetPPS float64 `json:"target_pps,omitempty"` // 0: as fast as possible
	Sent      uint64  `json:"sent"`                 // frames generated
	Bytes     uint64  `json:"bytes"`                // their bytes with FCS
	Expected  uint64  `json:"expected"`             // frames the sink should have counted
	Delivered uint64  `json:"delivered"`            // frames the sink counted
	// Seconds is the generator's sending time; CPUSeconds the device
	// under test's CPU time over the trial (0: not measured).
	Seconds    float64    `json:"seconds"`
	CPUSeconds float64    `json:"cpu_seconds"`
	Latency    *Latency   `json:"latency,omitempty"`
	Progress   []Progress `json:"-"`
}

// OfferedPPS is the rate the generator reached.
func (t Trial) OfferedPPS() float64 { return per(float64(t.Sent), t.Seconds) }

// OfferedBPS is the offered rate in bits of frames with FCS per second.
func (t Trial) OfferedBPS() float64 { return per(8*float64(t.Bytes), t.Seconds) }

// DeliveredPPS is the sink's count over the generator's sending time.
func (t Trial) DeliveredPPS() float64 { return per(float64(t.Delivered), t.Seconds) }

// Loss is the fraction of expected frames the sink did not count (never
// negative: a sink that counted more than expected lost nothing).
func (t Trial) Loss() float64 {
	if t.Expected == 0 || t.Delivered >= t.Expected {
		return 0
	}
	return float64(t.Expected-t.Delivered) / float64(t.Expected)
}

// PerCPUSecond is the delivered frames per CPU-second of the device under
// test.
func (t Trial) PerCPUSecond() float64 { return per(float64(t.Delivered), t.CPUSeconds) }

func per(n, s float64) float64 {
	if s <= 0 {
		return 0
	}
	return n / s
}

// Progress is one progress line's figures (one second of a run).
type Progress struct {
	At                   time.Duration
	OfferedPPS, OfferedB float64
	DeliveredPPS, Loss   float64
	CPU                  float64 // of one core, 0..1 per busy core
}

// Line formats a progress line: offered, delivered, loss, CPU.
func (p Progress) Line() string {
	s := fmt.Sprintf("%5.1fs  offered %8.3f Mpps %8.1f Mbit/s", p.At.Seconds(), p.OfferedPPS/1e6, p.OfferedB/1e6)
	if p.DeliveredPPS >= 0 {
		s += fmt.Sprintf("  delivered %8.3f Mpps  loss %6.2f%%", p.DeliveredPPS/1e6, 100*p.Loss)
	}
	if p.CPU >= 0 {
		s += fmt.Sprintf("  dataplane CPU %5.1f%%", 100*p.CPU)
	}
	return s
}

// Latency summarises a timestamped sample: one-way times of probe
// frames sent through the device under test during a trial.
type Latency struct {
	Sent, Received                    int
	MinUs, AvgUs, P50Us, P99Us, MaxUs float64
}

// Summarize computes the statistics of a sample of one-way times (nearest
// rank percentiles).
func Summarize(sent int, d []time.Duration) *Latency {
	l := &Latency{Sent: sent, Received: len(d)}
	if len(d) == 0 {
		return l
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	us := func(x time.Duration) float64 { return float64(x) / 1e3 }
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	l.MinUs, l.MaxUs = us(s[0]), us(s[len(s)-1])
	l.AvgUs = us(sum / time.Duration(len(s)))
	l.P50Us, l.P99Us = us(rank(0.50)), us(rank(0.99))
	return l
}

// WriteTable writes the trials as the human table.
func WriteTable(w io.Writer, ts []Trial) {
	fmt.Fprintf(w, "%-10s %-18s %6s %12s %10s %12s %12s %8s %8s %14s  %s\n", "series", "mix", "flows",
		"target pps", "offered", "offered pps", "deliv. pps", "loss", "CPU s", "pkt/CPU-s", "latency µs min/avg/p50/p99/max")
	for _, t := range ts {
		tgt := "max"
		if t.TargetPPS > 0 {
			tgt = fmt.Sprintf("%.0f", t.TargetPPS)
		}
		lat := "-"
		if l := t.Latency; l != nil && l.Received > 0 {
			lat = fmt.Sprintf("%.0f/%.0f/%.0f/%.0f/%.0f (%d of %d)", l.MinUs, l.AvgUs, l.P50Us, l.P99Us, l.MaxUs, l.Received, l.Sent)
		}
		fmt.Fprintf(w, "%-10s %-18s %6d %12s %10d %12.0f %12.0f %7.3f%% %8.3f %14.0f  %s\n", t.Label, t.Mix, t.Flows,
			tgt, t.Sent, t.OfferedPPS(), t.DeliveredPPS(), 100*t.Loss(), t.CPUSeconds, t.PerCPUSecond(), lat)
	}
}

// CSVHeader is the first row WriteCSV writes.
var CSVHeader = []string{"series", "mix", "flows", "target_pps", "sent", "bytes", "expected", "delivered", "seconds", "cpu_seconds",
	"offered_pps", "offered_bps", "delivered_pps", "loss", "pkt_per_cpu_s", "lat_n", "lat_min_us", "lat_avg_us", "lat_p50_us", "lat_p99_us", "lat_max_us"}

// WriteCSV writes the trials as CSV, one row each.
func WriteCSV(w io.Writer, ts []Trial) error {
	c := csv.NewWriter(w)
	c.Write(CSVHeader)
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	for _, t := range ts {
		row := []string{t.Label, t.Mix, strconv.Itoa(t.Flows), f(t.TargetPPS), u(t.Sent), u(t.Bytes), u(t.Expected), u(t.Delivered),
			f(t.Seconds), f(t.CPUSeconds), f(t.OfferedPPS()), f(t.OfferedBPS()), f(t.DeliveredPPS()), f(t.Loss()), f(t.PerCPUSecond())}
		if l := t.Latency; l != nil {
			row = append(row, strconv.Itoa(l.Received), f(l.MinUs), f(l.AvgUs), f(l.P50Us), f(l.P99Us), f(l.MaxUs))
		} else {
			row = append(row, "", "", "", "", "", "")
		}
		c.Write(row)
	}
	c.Flush()
	return c.Error()
}

// trialJSON adds the derived rates to a trial's JSON.
type trialJSON struct {
	Trial
	OfferedPPS   float64 `json:"offered_pps"`
	OfferedBPS   float64 `json:"offered_bps"`
	DeliveredPPS float64 `json:"delivered_pps"`
	Loss         float64 `json:"loss"`
	PerCPUSecond float64 `json:"pkt_per_cpu_s"`
}

// WriteJSON writes the trials as a JSON array, with the derived rates.
func WriteJSON(w io.Writer, ts []Trial) error {
	out := make([]trialJSON, len(ts))
	for i, t := range ts {
		out[i] = trialJSON{t, t.OfferedPPS(), t.OfferedBPS(), t.DeliveredPPS(), t.Loss(), t.PerCPUSecond()}
	}
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(out)
}
