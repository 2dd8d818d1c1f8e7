package pktgen

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // 1..100 µs, unsorted
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	l := Summarize(110, d)
	if l.Sent != 110 || l.Received != 100 || l.MinUs != 1 || l.MaxUs != 100 || l.AvgUs != 50.5 || l.P50Us != 50 || l.P99Us != 99 {
		t.Errorf("got %+v, want 100 of 110, min 1 avg 50.5 p50 50 p99 99 max 100", *l)
	}
	if e := Summarize(5, nil); e.Received != 0 || e.Sent != 5 {
		t.Errorf("empty sample: %+v", *e)
	}
}

func TestTrialOutputs(t *testing.T) {
	tr := Trial{Label: "encrypt", Mix: "imix", Flows: 4, TargetPPS: 1e5, Sent: 100000, Bytes: 100000 * 354, Expected: 100000,
		Delivered: 99500, Seconds: 1, CPUSeconds: 0.25, Latency: Summarize(10, []time.Duration{time.Microsecond})}
	if tr.Loss() != 0.005 || tr.PerCPUSecond() != 398000 || tr.OfferedBPS() != 8*354e5 {
		t.Errorf("loss %v, per CPU-s %v, bps %v", tr.Loss(), tr.PerCPUSecond(), tr.OfferedBPS())
	}
	over := tr
	over.Delivered = 100001 // fragments counted twice, say: no negative loss
	if over.Loss() != 0 {
		t.Errorf("loss %v with more delivered than expected", over.Loss())
	}
	var c, j, h bytes.Buffer
	if err := WriteCSV(&c, []Trial{tr, over}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&c).ReadAll()
	if err != nil || len(rows) != 3 || len(rows[1]) != len(CSVHeader) || rows[1][13] != "0.005" {
		t.Fatalf("CSV %v, %v", rows, err)
	}
	if err := WriteJSON(&j, []Trial{tr}); err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(j.Bytes(), &back); err != nil || back[0]["loss"] != 0.005 || back[0]["mix"] != "imix" || back[0]["latency"] == nil {
		t.Fatalf("JSON %s, %v", j.String(), err)
	}
	WriteTable(&h, []Trial{tr})
	if !strings.Contains(h.String(), "0.500%") || !strings.Contains(h.String(), "398000") {
		t.Errorf("table:\n%s", h.String())
	}
	p := progressOf(monSample{at: time.Unix(0, 0)}, monSample{at: time.Unix(1, 0), sent: 1000, bytes: 64000, exp: 1000, deliv: 900, cpu: time.Second / 2},
		time.Second, true, true)
	if p.OfferedPPS != 1000 || p.OfferedB != 512000 || p.DeliveredPPS != 900 || p.Loss != 0.1 || p.CPU != 0.5 {
		t.Errorf("progress %+v", p)
	}
	if l := (Progress{At: time.Second, OfferedPPS: 1e6, OfferedB: 5.12e8, DeliveredPPS: 9e5, Loss: 0.1, CPU: 0.5}).Line(); !strings.Contains(l, "loss  10.00%") || !strings.Contains(l, "CPU  50.0%") {
		t.Errorf("progress line %q", l)
	}
}
