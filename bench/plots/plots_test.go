package plots

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/bench/pktgen"
	"github.com/cgw-project/cgw/bench/rfc2544"
)

// TestWrite draws every plot from a small synthetic run and checks each
// is an SVG.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	if d := os.Getenv("CGW_PLOTS_DIR"); d != "" {
		dir = d
	}
	eff := []Efficiency{{Mix: "64", Forward: 2.5e6, Encrypt: 1.9e6, Decrypt: 1.8e6, FloorEnc: 2e6, FloorDec: 1.9e6},
		{Mix: "imix", Forward: 2e6, Encrypt: 1.2e6, Decrypt: 1.1e6, FloorEnc: 1.3e6, FloorDec: 1.2e6}}
	step := func(pps float64, deliv uint64) rfc2544.Step {
		return rfc2544.Step{PPS: pps, Trial: pktgen.Trial{Sent: uint64(pps), Expected: uint64(pps), Delivered: deliv, Seconds: 1}}
	}
	rows := []rfc2544.Row{
		{Series: "encrypt", Mix: "64", Result: rfc2544.Result{NDR: 4e5, PDR: 4.2e5, Steps: []rfc2544.Step{step(2e6, 5e5), step(4e5, 4e5)}}},
		{Series: "decrypt", Mix: "imix", Result: rfc2544.Result{NDR: 3e5, PDR: 3.1e5, Steps: []rfc2544.Step{step(1e6, 3e5)}}},
	}
	sc := []Scaling{{Label: "encrypt 1400", Wall: [2]float64{3e5, 4e5}, PerCPU: [2]float64{5e5, 4.8e5}}}
	cmp := []Compare{{Mix: "64", CgwPerCPU: 1.6e5, SwanPerCPU: 3e4, CgwNDR: 6e4, SwanNDR: 9e3}}
	if err := Write(dir, "machine: test", eff, rows, sc, cmp); err != nil {
		t.Fatal(err)
	}
	for _, f := range Files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b[:min(len(b), 400)]), "<svg") {
			t.Errorf("%s is not an SVG", f)
		}
	}
}
