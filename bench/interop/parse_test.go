package interop

import (
	"strings"
	"testing"
)

// TestParsers checks the log and metrics parsing the lab tests rely on
// (no lab needed).
func TestParsers(t *testing.T) {
	out := `# HELP cgw_dataplane_drops_total Packets dropped
cgw_dataplane_drops_total{reason="no_sa",stage="esp_decap",worker="0"} 3
cgw_dataplane_drops_total{reason="no_sa",stage="esp_decap",worker="1"} 2
cgw_dataplane_late_view_total{worker="0"} 1
cgw_dataplane_packets_total{direction="in",worker="0"} 99
`
	m := parseDrops(out)
	if got := dropDelta(nil, m); got != "drops_total/no_sa/esp_decap +5, late_view_total +1" {
		t.Errorf("drops parsed as %q", got)
	}
	log := strings.Join([]string{
		"09[ENC] generating CREATE_CHILD_SA request 2 [ N(REKEY_SA) SA No KE TSi TSr ]",
		"09[ENC] generating CREATE_CHILD_SA request 3 [ SA No KE ]",
		"10[ENC] parsed CREATE_CHILD_SA request 4 [ N(REKEY_SA) SA No KE TSi TSr ]",
		"09[IKE] detected IKE_REKEY collision with IKE_REKEY",
	}, "\n")
	r := countRekeys(log)
	if r != (charonRekeys{childByCharon: 1, ikeByCharon: 1, childByPeer: 1, collisions: 1}) {
		t.Errorf("charon log counted as %+v", r)
	}
}
