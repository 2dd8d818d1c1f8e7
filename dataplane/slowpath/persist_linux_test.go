package slowpath

import (
	"net/netip"
	"testing"

	"github.com/cgw-project/cgw/internal/netnstest"
)

// crash ends d as a killed process would: its descriptor closed, the
// device left persistent.
func crash(t *testing.T, d *Device) {
	t.Helper()
	if err := d.f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSurvivesCrash: a device outlives its process's descriptor (so a
// killed dataplane's exit does not wait for the kernel to unregister it),
// the next Create takes it over with its addresses, and Close removes it.
func TestSurvivesCrash(t *testing.T) {
	netnstest.Require(t, "ping", "/dev/net/tun")
	ns := netnstest.New(t, "cgwsp")
	d := newDevice(t, ns, "cgwsp-persist")
	idx := d.Ifindex()
	crash(t, d)
	if !linkExists(ns, "cgwsp-persist") {
		t.Fatal("the device went with its descriptor: not persistent")
	}
	d2, err := Create(ns.Name(), Config{Name: "cgwsp-persist", Addrs: []netip.Prefix{gwAddr}})
	if err != nil {
		t.Fatalf("taking over the device a crashed process left: %v", err)
	}
	if d2.Ifindex() != idx {
		t.Errorf("ifindex %d after the takeover, was %d: a new device, not the one left", d2.Ifindex(), idx)
	}
	// The kernel's packets reach the new descriptor (nothing answers the
	// ping: its exit status says nothing).
	ns.Command("ping", "-c", "2", "-W", "1", "-i", "0.2", "169.254.44.89").Run()
	readPackets(t, d2, 1, func([]byte) bool { return true })
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, ns, "cgwsp-persist")
}

// TestRemoveStale: a device a crashed process left is removed unless it is
// wanted; a device a process holds is never removed.
func TestRemoveStale(t *testing.T) {
	netnstest.Require(t, "ping", "/dev/net/tun")
	ns := netnstest.New(t, "cgwsp")
	crash(t, newDevice(t, ns, "cgwsp-st1"))
	crash(t, newDevice(t, ns, "cgwsp-st2"))
	newDevice(t, ns, "cgwsp-st3") // held by this process
	m := NewManager(ns.Name())
	defer m.Close()
	if err := m.RemoveStale("cgwsp-st", []Config{{Name: "cgwsp-st2"}}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, ns, "cgwsp-st1")
	if !linkExists(ns, "cgwsp-st2") {
		t.Error("RemoveStale removed a wanted device")
	}
	if !linkExists(ns, "cgwsp-st3") {
		t.Error("RemoveStale removed a device a process holds")
	}
	// Clean up the wanted one the way the dataplane would: take it over.
	d, err := Create(ns.Name(), Config{Name: "cgwsp-st2", Addrs: []netip.Prefix{gwAddr}})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
}
