package buildinfo

import (
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLine(t *testing.T) {
	i := Read()
	if i.GoVersion != runtime.Version() || i.Version == "" || i.Commit == "" {
		t.Errorf("Read() = %+v", i)
	}
	l := Info{Version: "v1.2.3", Commit: "abc123", GoVersion: "go1.26.8"}.Line("cgwctl")
	if l != "cgwctl version v1.2.3 commit abc123 go1.26.8" {
		t.Errorf("Line = %q", l)
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector())
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "cgw_build_info" || len(mfs[0].Metric) != 1 {
		t.Fatalf("gathered %v, %v", mfs, err)
	}
	m := mfs[0].Metric[0]
	labels := map[string]string{}
	for _, l := range m.Label {
		labels[l.GetName()] = l.GetValue()
	}
	i := Read()
	if m.GetGauge().GetValue() != 1 || labels["version"] != i.Version || labels["commit"] != i.Commit || labels["goversion"] != i.GoVersion || len(labels) != 3 {
		t.Errorf("cgw_build_info %v = %v; want version, commit, goversion of %+v and 1", labels, m.GetGauge().GetValue(), i)
	}
}
