package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// dataplane turns two reads of the metrics endpoint into per-worker rates
// and the drops table.
func TestDataplane(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := float64(n.Add(1) - 1) // 0, then 1
		fmt.Fprintf(w, `# TYPE cgw_dataplane_worker_info gauge
cgw_dataplane_worker_info{worker="0",cpu="2",queue="0"} 1
cgw_dataplane_worker_info{worker="1",cpu="-1",queue="1"} 1
# TYPE cgw_dataplane_afxdp_mode_info gauge
cgw_dataplane_afxdp_mode_info{worker="0",device="inside",mode="copy"} 1
cgw_dataplane_afxdp_mode_info{worker="0",device="outside",mode="zerocopy"} 1
# TYPE cgw_dataplane_nic_info gauge
cgw_dataplane_nic_info{device="outside",interface="eth0",driver="ice",xdp_mode="native"} 1
# TYPE cgw_dataplane_worker_cpu_seconds_total counter
cgw_dataplane_worker_cpu_seconds_total{worker="0"} %g
# TYPE cgw_dataplane_packets_total counter
cgw_dataplane_packets_total{worker="0",direction="out"} %g
cgw_dataplane_packets_total{worker="0",direction="in"} %g
# TYPE cgw_dataplane_drops_total counter
cgw_dataplane_drops_total{worker="0",stage="route",reason="no_route"} %g
`, 10+0.01*k, 1000+50*k, 500+20*k, 7+3*k)
	}))
	defer srv.Close()
	code, out, errs := runCmd(t, "dataplane", "-metrics", strings.TrimPrefix(srv.URL, "http://"), "-interval", "10ms")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	t.Log("\n" + out)
	for _, w := range []string{"outside eth0: driver ice, XDP native", "copy", "zerocopy", "any", "route  no_route  10"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	// 50 packets in ~10 ms: thousands per second, never 0.
	if strings.Contains(out, "     0     0     0") {
		t.Errorf("no rate computed:\n%s", out)
	}
}
