// Package plots draws a benchmark run's figures as SVG with gonum/plot:
// efficiency against the floor per mix, NDR/PDR per mix and series, and
// loss against offered rate from the RFC 2544 search trials.
package plots

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/cgw-project/cgw/bench/rfc2544"
)

// Efficiency is one mix's packets per dataplane CPU-second: measured
// series and the floors 1/(t_forward + t_cipher).
type Efficiency struct {
	Mix                       string
	Forward, Encrypt, Decrypt float64
	FloorEnc, FloorDec        float64
}

// palette: colour-blind-safe (Okabe–Ito).
var palette = []color.Color{
	color.RGBA{0, 114, 178, 255}, color.RGBA{230, 159, 0, 255}, color.RGBA{0, 158, 115, 255},
	color.RGBA{204, 121, 167, 255}, color.RGBA{86, 180, 233, 255}, color.RGBA{213, 94, 0, 255},
	color.RGBA{0, 0, 0, 255}, color.RGBA{240, 228, 66, 255},
}

// Scaling is one series at 1 and 2 workers: the PDR (packets per
// wall-second at ≤ 0.5 % loss) and packets per dataplane CPU-second.
type Scaling struct {
	Label        string
	Wall, PerCPU [2]float64
}

// Compare is one mix through cgw↔cgw and strongSwan↔strongSwan: packets
// per CPU-second of both gateways, and NDR.
type Compare struct {
	Mix                   string
	CgwPerCPU, SwanPerCPU float64
	CgwNDR, SwanNDR       float64
}

// Files are the names Write produces in its directory.
var Files = []string{"efficiency.svg", "ndr.svg", "loss.svg", "scaling.svg", "strongswan.svg"}

// Write draws every plot the data allows into dir; caption (the machine
// line) goes under each.
func Write(dir, caption string, eff []Efficiency, rows []rfc2544.Row, sc []Scaling, cmp []Compare) error {
	if len(cmp) > 0 {
		var groups []string
		vals := make([]plotter.Values, 4)
		for _, c := range cmp {
			groups = append(groups, c.Mix)
			for i, v := range []float64{c.CgwPerCPU, c.SwanPerCPU, c.CgwNDR, c.SwanNDR} {
				vals[i] = append(vals[i], v/1e6)
			}
		}
		if err := bars(filepath.Join(dir, "strongswan.svg"), "cgw↔cgw vs strongSwan libipsec↔libipsec, AES-GCM-128 (UDP 4500)",
			"million packets per CPU-second of both gateways / per second", "mix\n"+caption, groups,
			[]string{"cgw per CPU-second", "strongSwan per CPU-second", "cgw NDR", "strongSwan NDR"}, vals); err != nil {
			return err
		}
	}
	if len(sc) > 0 {
		var groups []string
		vals := make([]plotter.Values, 4)
		for _, s := range sc {
			groups = append(groups, s.Label)
			vals[0] = append(vals[0], s.Wall[0]/1e6)
			vals[1] = append(vals[1], s.Wall[1]/1e6)
			vals[2] = append(vals[2], s.PerCPU[0]/1e6)
			vals[3] = append(vals[3], s.PerCPU[1]/1e6)
		}
		if err := bars(filepath.Join(dir, "scaling.svg"), "Scaling: 1 vs 2 workers (two-queue veth, two shared cores)",
			"million packets per second / per CPU-second", "series and mix\n"+caption, groups,
			[]string{"1 worker, PDR per second", "2 workers, PDR per second", "1 worker, per CPU-second", "2 workers, per CPU-second"}, vals); err != nil {
			return err
		}
	}
	if len(eff) > 0 {
		var mixes []string
		series := []struct {
			name string
			v    func(Efficiency) float64
		}{
			{"forwarder (no ESP)", func(e Efficiency) float64 { return e.Forward }},
			{"floor encrypt", func(e Efficiency) float64 { return e.FloorEnc }},
			{"encrypt", func(e Efficiency) float64 { return e.Encrypt }},
			{"floor decrypt", func(e Efficiency) float64 { return e.FloorDec }},
			{"decrypt", func(e Efficiency) float64 { return e.Decrypt }},
		}
		vals := make([]plotter.Values, len(series))
		for _, e := range eff {
			mixes = append(mixes, e.Mix)
			for i, s := range series {
				vals[i] = append(vals[i], s.v(e)/1e6)
			}
		}
		names := make([]string, len(series))
		for i, s := range series {
			names[i] = s.name
		}
		if err := bars(filepath.Join(dir, "efficiency.svg"), "Packets per dataplane CPU-second vs the floor 1/(t_fwd + t_cipher)",
			"million packets per CPU-second", "mix (frame size with FCS, or Simple IMIX)\n"+caption, mixes, names, vals); err != nil {
			return err
		}
	}
	if len(rows) == 0 {
		return nil
	}
	// NDR/PDR per mix, one bar group per mix, bars per series.
	var mixes []string
	idx := map[string]int{}
	for _, r := range rows {
		if _, ok := idx[r.Mix]; !ok {
			idx[r.Mix] = len(mixes)
			mixes = append(mixes, r.Mix)
		}
	}
	var names []string
	var vals []plotter.Values
	sidx := map[string]int{}
	for _, r := range rows {
		for _, k := range []struct {
			kind string
			v    float64
		}{{"NDR", r.NDR}, {"PDR", r.PDR}} {
			n := r.Series + " " + k.kind
			i, ok := sidx[n]
			if !ok {
				i = len(names)
				sidx[n] = i
				names = append(names, n)
				vals = append(vals, make(plotter.Values, len(mixes)))
			}
			vals[i][idx[r.Mix]] = k.v / 1e6
		}
	}
	if err := bars(filepath.Join(dir, "ndr.svg"), "RFC 2544 throughput, one worker (NDR: no loss; PDR: ≤ 0.5 % loss)",
		"million frames per second", "mix\n"+caption, mixes, names, vals); err != nil {
		return err
	}
	return lossPlot(filepath.Join(dir, "loss.svg"), caption, rows)
}

func bars(path, title, ylabel, xlabel string, groups, names []string, vals []plotter.Values) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.X.Label.Text = xlabel
	p.Y.Min = 0
	// Bars of a group fill 80 % of the space between groups; the headroom
	// above the tallest keeps the legend off the bars.
	w := vg.Points(0.8 * 560 / float64(max(1, len(groups))) / float64(max(1, len(names))))
	top := 0.0
	for _, v := range vals {
		for _, x := range v {
			top = max(top, x)
		}
	}
	p.Y.Max = top * 1.45
	p.X.Min, p.X.Max = -0.5, float64(len(groups))-0.5
	for i, v := range vals {
		b, err := plotter.NewBarChart(v, w)
		if err != nil {
			return fmt.Errorf("plots: %s: %w", path, err)
		}
		b.Color = palette[i%len(palette)]
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(i)-float64(len(vals)-1)/2)
		p.Add(b)
		p.Legend.Add(names[i], b)
	}
	p.Legend.Top = true
	p.NominalX(groups...)
	p.Add(plotter.NewGrid())
	return save(p, path)
}

// lossPlot draws loss (%) against offered rate for each search.
func lossPlot(path, caption string, rows []rfc2544.Row) error {
	p := plot.New()
	p.Title.Text = "Loss vs offered rate (RFC 2544 search trials)"
	p.Y.Label.Text = "loss (%)"
	p.X.Label.Text = "offered rate (million frames per second)\n" + caption
	p.Y.Min = 0
	for i, r := range rows {
		var pts plotter.XYs
		for _, s := range r.Steps {
			pts = append(pts, plotter.XY{X: s.Trial.OfferedPPS() / 1e6, Y: 100 * s.Trial.Loss()})
		}
		if len(pts) == 0 {
			continue
		}
		sort.Slice(pts, func(a, b int) bool { return pts[a].X < pts[b].X })
		l, s, err := plotterLinePoints(pts)
		if err != nil {
			return err
		}
		c := palette[i%len(palette)]
		l.Color, s.Color = c, c
		p.Add(l, s)
		p.Legend.Add(r.Series+" "+r.Mix, l, s)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return save(p, path)
}

func plotterLinePoints(pts plotter.XYs) (*plotter.Line, *plotter.Scatter, error) {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return nil, nil, err
	}
	s, err := plotter.NewScatter(pts)
	return l, s, err
}

// save writes the plot as SVG, and as PNG beside it when CGW_PLOTS_PNG
// is set (to look at one without a browser).
func save(p *plot.Plot, path string) error {
	if err := p.Save(9*vg.Inch, 5*vg.Inch, path); err != nil {
		return err
	}
	if os.Getenv("CGW_PLOTS_PNG") != "" {
		return p.Save(9*vg.Inch, 5*vg.Inch, strings.TrimSuffix(path, ".svg")+".png")
	}
	return nil
}
