package rib

import (
	"net/netip"
	"slices"
	"testing"
)

// TestAddRemoveTunnel: a reload adds a connection (its static route is
// installed once a tunnel is up) and removes one (its routes leave the
// map, the other connection's stay, tie-break order is kept).
func TestAddRemoveTunnel(t *testing.T) {
	s := newSink()
	r, err := New(s, twoConns[:2], Options{})
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := netip.MustParsePrefix("198.19.0.0/24"), netip.MustParsePrefix("198.19.1.0/24")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.SetStatic("a", []netip.Prefix{pa}))
	must(r.SetTunnelUp(1, true))
	must(r.SetTunnelUp(2, true))
	s.take()

	// Added: connection b.
	must(r.AddTunnel(twoConns[2]))
	must(r.AddTunnel(twoConns[3]))
	if err := r.AddTunnel(twoConns[3]); err == nil {
		t.Errorf("a tunnel id added twice was accepted")
	}
	must(r.SetStatic("b", []netip.Prefix{pb}))
	if got := s.take(); len(got) != 0 {
		t.Errorf("routes through tunnels that are down installed: %v", got)
	}
	must(r.SetTunnelUp(4, true))
	if got, want := s.take(), []string{"add 198.19.1.0/24 4/0"}; !slices.Equal(got, want) {
		t.Errorf("after b-t2 up: %v, want %v", got, want)
	}
	must(r.SetTunnelUp(3, true))
	if got, want := s.take(), []string{"replace 198.19.1.0/24 3/4"}; !slices.Equal(got, want) {
		t.Errorf("after b-t1 up: %v, want %v (t1 before t2)", got, want)
	}

	// Removed: connection a; b's route stays untouched.
	must(r.RemoveTunnel(1))
	if got, want := s.take(), []string{"replace 198.19.0.0/24 2/0"}; !slices.Equal(got, want) {
		t.Errorf("after removing a-t1: %v, want %v", got, want)
	}
	must(r.RemoveTunnel(2))
	if got, want := s.take(), []string{"delete 198.19.0.0/24"}; !slices.Equal(got, want) {
		t.Errorf("after removing a-t2: %v, want %v", got, want)
	}
	if err := r.SetStatic("a", []netip.Prefix{pa}); err == nil {
		t.Errorf("static routes accepted for a connection without tunnels")
	}
	if err := r.SetTunnelUp(1, true); err == nil {
		t.Errorf("a removed tunnel can still be marked up")
	}
	var names []string
	for _, tc := range r.InstalledPerTunnel() {
		names = append(names, tc.Tunnel.Name)
	}
	if !slices.Equal(names, []string{"b-t1", "b-t2"}) {
		t.Errorf("tunnels after removal: %v", names)
	}
	// A re-added id ranks last.
	must(r.AddTunnel(twoConns[0]))
	if got := r.Tunnels(); got[len(got)-1].Name != "a-t1" {
		t.Errorf("re-added tunnel not last: %v", got)
	}
}
