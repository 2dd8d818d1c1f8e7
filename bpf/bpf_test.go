package bpf_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cgw-project/cgw/bpf"
)

// A restarted process (a second LoadPinned of the same instance) must find
// the entries the first one wrote.
func TestPinnedMapsSurviveReload(t *testing.T) {
	if testing.Short() {
		t.Skip("loads BPF maps: needs root; run without -short")
	}
	if os.Geteuid() != 0 {
		t.Fatalf("loading BPF programs needs root (run the tests as root)")
	}
	name := fmt.Sprintf("test-pin-%d", os.Getpid())
	t.Cleanup(func() { bpf.Remove(name) })

	o, err := bpf.LoadPinned(name)
	if err != nil {
		t.Fatalf("LoadPinned: %v", err)
	}
	if err := o.InboundSpi.Put(uint32(0x1001), bpf.CgwInboundSa{SaIndex: 7, TunnelId: 2}); err != nil {
		t.Fatal(err)
	}
	o.Close()

	o, err = bpf.LoadPinned(name)
	if err != nil {
		t.Fatalf("LoadPinned after close: %v", err)
	}
	var v bpf.CgwInboundSa
	if err := o.InboundSpi.Lookup(uint32(0x1001), &v); err != nil || v.SaIndex != 7 || v.TunnelId != 2 {
		t.Errorf("after reload: %+v, %v; want SA 7 tunnel 2", v, err)
	}
	o.Close()

	dir, _ := bpf.PinDir(name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, m := range []string{bpf.CgwMapInboundSpi, bpf.CgwMapOutboundSa, bpf.CgwMapSaTable, bpf.CgwMapSaStats,
		bpf.CgwMapTunnels, bpf.CgwMapRoutesV4, bpf.CgwMapRoutesV6, bpf.CgwMapLocalAddrs, bpf.CgwMapCgwConfig,
		bpf.CgwMapXsksOutside, bpf.CgwMapXsksInside, bpf.CgwMapXdpStats} {
		want[m] = true
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
		delete(want, e.Name())
	}
	if len(want) > 0 {
		t.Errorf("maps not pinned: %v", want)
	}
	for _, d := range []string{bpf.Root, dir} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want mode 0700", d, fi.Mode().Perm(), err)
		}
	}

	if err := bpf.Remove(name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, bpf.CgwMapInboundSpi)); !os.IsNotExist(err) {
		t.Errorf("after Remove, %s still exists (%v)", dir, err)
	}
}

func TestPinDirRejectsTraversal(t *testing.T) {
	for _, n := range []string{"", "..", "a/b", "../x", "x y"} {
		if _, err := bpf.PinDir(n); err == nil {
			t.Errorf("PinDir(%q) accepted", n)
		}
	}
	if d, err := bpf.PinDir("lab-1"); err != nil || d != "/sys/fs/bpf/cgw/lab-1" {
		t.Errorf("PinDir(lab-1) = %q, %v", d, err)
	}
}

// Two processes starting together on a fresh instance both end up on the
// same maps.
func TestConcurrentFirstLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("loads BPF maps: needs root; run without -short")
	}
	for i := range 5 {
		name := fmt.Sprintf("test-race-%d-%d", os.Getpid(), i)
		t.Cleanup(func() { bpf.Remove(name) })
		objs := make([]*bpf.Objects, 2)
		errs := make(chan error, 2)
		for j := range objs {
			go func() {
				var err error
				objs[j], err = bpf.LoadPinned(name)
				errs <- err
			}()
		}
		for range objs {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		}
		if err := objs[0].Tunnels.Put(uint32(1), bpf.CgwTunnel{Mtu: 1399}); err != nil {
			t.Fatal(err)
		}
		var tun bpf.CgwTunnel
		if err := objs[1].Tunnels.Lookup(uint32(1), &tun); err != nil || tun.Mtu != 1399 {
			t.Errorf("round %d: the two loads got different maps (%+v, %v)", i, tun, err)
		}
		objs[0].Close()
		objs[1].Close()
	}
}
