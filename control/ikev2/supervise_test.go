package ikev2

import (
	"testing"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
)

// TestPanicRestartsOneTunnel: a panic on one tunnel's goroutine is
// recovered and counted, that tunnel comes back up, a command that
// panics answers instead of hanging, and another tunnel of the same
// Manager keeps running.
func TestPanicRestartsOneTunnel(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	established(t, a, b)
	other := testTunnel("t2")
	other.AWSOutside, other.StartupAction = mustAddr("192.0.2.1"), config.StartupAdd
	if err := a.m.AddTunnel(other, TunnelOptions{}); err != nil {
		t.Fatal(err)
	}
	global := ike.Panics.Load()
	_, up := a.waitType(TunnelUp, 0)
	tun, _ := a.m.Tunnel("t1")
	tun.do(func() { panic("injected") })
	_, down := a.waitType(TunnelDown, up)
	_, up = a.waitType(TunnelUp, down)
	if n := a.m.Panics(); n != 1 || ike.Panics.Load() != global+1 {
		t.Fatalf("Panics() = %d, ike.Panics %d (was %d), want 1 and one more", n, ike.Panics.Load(), global)
	}
	if err := a.m.tunnels.Command("t1", func(*Tunnel) error { panic("injected in a command") }); err == nil {
		t.Fatal("a panicking command answered no error")
	}
	a.waitType(TunnelUp, up+1)
	for _, s := range a.m.Status() {
		if s.Name == "t2" && s.State != "down" {
			t.Fatalf("t2: %+v", s)
		}
	}
	if n := a.m.Panics(); n != 2 {
		t.Fatalf("Panics() = %d, want 2", n)
	}
	// What the panicked state held is released: one SPI per Child SA.
	for _, s := range a.m.Status() {
		if s.Name == "t1" && a.m.spis.Len() != len(s.Children) {
			t.Fatalf("%d inbound SPIs held for %d Child SAs", a.m.spis.Len(), len(s.Children))
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return len(b) > 0
}

// TestIKEKeysWiped: an IKE SA's SK_d, SK_a, SK_e and SK_p are zeroed
// when it goes (replaced by a rekey, or the tunnel goes down); the live
// SA's are not.
func TestIKEKeysWiped(t *testing.T) {
	a, b, _ := syncPair(t, testTunnel("t1"), Options{})
	secrets := func(sa *ikeSA) [][]byte {
		k := sa.sk
		var out [][]byte
		for _, b := range [][]byte{k.SKd, k.SKai, k.SKar, k.SKei, k.SKer, k.SKpi, k.SKpr} {
			if len(b) > 0 { // no SK_a with an AEAD
				out = append(out, b)
			}
		}
		return out
	}
	oldA, oldB := a.t.ike, b.t.ike
	was := append(secrets(oldA), secrets(oldB)...)
	a.t.rekeyIKE(oldA)
	pump(a, b)
	if a.t.ike == oldA || b.t.ike == oldB || len(a.t.sas) != 1 || len(b.t.sas) != 1 {
		t.Fatalf("IKE rekey did not complete: %d/%d IKE SAs", len(a.t.sas), len(b.t.sas))
	}
	for i, k := range was {
		if !allZero(k) {
			t.Errorf("replaced IKE SA: key #%d of %d not zeroed", i, len(was))
		}
	}
	cur := secrets(a.t.ike)
	for i, k := range cur {
		if allZero(k) {
			t.Fatalf("the live IKE SA's key #%d was zeroed", i)
		}
	}
	a.t.down("test", nil, false)
	for i, k := range cur {
		if !allZero(k) {
			t.Errorf("IKE SA of a tunnel gone down: key #%d not zeroed", i)
		}
	}
}
