package ikev2

import (
	"testing"
)

// BenchmarkEstablish: IKE_SA_INIT + IKE_AUTH with the first Child SA over
// loopback (AES-128-GCM, ECP-256), both ends in this process.
func BenchmarkEstablish(b *testing.B) {
	tun := testTunnel("t1")
	tun.Phase1.Encryption, tun.Phase1.Integrity, tun.Phase1.DHGroups = []string{"AES128-GCM-16"}, []string{"SHA2-256"}, []int{19}
	t := &testing.T{}
	for b.Loop() {
		b.StopTimer()
		x, y := newNode(t, "i", Options{}), newNode(t, "r", Options{})
		x.m.log, y.m.log = discardLog, discardLog
		b.StartTimer()
		connect(t, x, y, tun, tun)
		x.waitType(TunnelUp, 0)
		b.StopTimer()
		x.m.Close(b.Context())
		y.m.Close(b.Context())
		b.StartTimer()
	}
}

// BenchmarkChildRekey: one CREATE_CHILD_SA rekey with PFS (ECP-256) until
// the old pair is deleted, over loopback.
func BenchmarkChildRekey(b *testing.B) {
	tun := testTunnel("t1")
	tun.Phase2.Encryption, tun.Phase2.Integrity, tun.Phase2.DHGroups = []string{"AES128-GCM-16"}, []string{"SHA2-256"}, []int{19}
	t := &testing.T{}
	x, y := newNode(t, "i", Options{}), newNode(t, "r", Options{})
	defer x.m.Close(b.Context())
	defer y.m.Close(b.Context())
	connect(t, x, y, tun, tun)
	x.waitType(TunnelUp, 0)
	for b.Loop() {
		k := x.count()
		x.m.RekeyChild("t1")
		x.wait("rekeyed", k, func(e Event) bool { return e.Type == OutboundSwitch })
	}
}
