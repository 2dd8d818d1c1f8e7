package main

import (
	"strings"
	"testing"

	"github.com/cgw-project/cgw/bench/rfc2544"
)

// TestReportHasNoBlankLine: make bench appends the report to
// perf/results/bench.txt, where an empty line ends a record.
func TestReportHasNoBlankLine(t *testing.T) {
	rep := benchReport{Machine: "machine: test", Path: "p", Suite: "aes128gcm16",
		Efficiency: []effRow{{Mix: "64", FwdPerCPU: 2e6, EncPerCPU: 1.5e6}},
		RFC2544:    []rfc2544.Row{{Series: "encrypt", Mix: "64", Flows: 1}},
		Scaling:    []scaleRow{{Series: "encrypt", Mix: "1400"}},
		StrongSwan: []swanRow{{Setup: "cgw", Mix: "64"}, {Setup: "strongswan", Mix: "64"}}}
	var b strings.Builder
	rep.write(&b, 5, 0.005)
	if strings.Contains(b.String(), "\n\n") || strings.HasPrefix(b.String(), "\n") {
		t.Errorf("report has an empty line:\n%s", b.String())
	}
	for _, want := range []string{"efficiency against", "RFC 2544", "scaling", "strongSwan"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
