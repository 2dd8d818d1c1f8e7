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
	if err := a.m.command("t1", func(*Tunnel) error { panic("injected in a command") }); err == nil {
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
