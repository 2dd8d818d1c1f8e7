package kernelguard_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/control/kernelguard"
	"github.com/cgw-project/cgw/internal/netnstest"
)

var (
	vpc    = netip.MustParsePrefix("198.19.0.0/16")
	inside = netip.MustParsePrefix("169.254.10.0/30")
	bgp    = netip.MustParsePrefix("198.18.128.0/24")
	vpc6   = netip.MustParsePrefix("2001:db8:19::/48")
)

// open opens the guards of the namespace: the netlink socket made on the
// namespace's thread stays in it.
func open(t *testing.T, ns *netnstest.NS) *kernelguard.Routes {
	t.Helper()
	var r *kernelguard.Routes
	if err := ns.Do(func() (err error) { r, err = kernelguard.Open(kernelguard.Options{}); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// kernel lists the guards as ip shows them (proto 203, type unreachable).
func kernel(t *testing.T, ns *netnstest.NS) []string {
	t.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		for _, l := range strings.Split(ns.Run(t, "ip", fam, "route", "show", "proto", "203", "type", "unreachable", "metric", "4000000000"), "\n") {
			if f := strings.Fields(l); len(f) > 1 {
				out = append(out, f[1])
			}
		}
	}
	slices.Sort(out)
	return out
}

func want(t *testing.T, ns *netnstest.NS, r *kernelguard.Routes, ps ...netip.Prefix) {
	t.Helper()
	var w, got []string
	for _, p := range ps {
		w = append(w, p.String())
	}
	slices.Sort(w)
	for _, p := range r.Prefixes() {
		got = append(got, p.String())
	}
	slices.Sort(got)
	k := kernel(t, ns)
	if !slices.Equal(k, w) || !slices.Equal(got, w) {
		t.Fatalf("guards: kernel %v, Prefixes %v; want %v", k, got, w)
	}
}

// TestGuardsLifecycle follows the guards through a process's life and its
// successor's: configured ones follow the configuration, learnt ones stay
// after their route is gone, a restarted process adopts what it finds and
// sweeps only what nothing routes any more, and Remove leaves nothing.
func TestGuardsLifecycle(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t, "cgwbh")
	r := open(t, ns)
	want(t, ns, r)

	if err := r.Configure([]netip.Prefix{vpc, inside, vpc6}, nil); err != nil {
		t.Fatal(err)
	}
	want(t, ns, r, vpc, inside, vpc6)
	// The RIB routes a BGP prefix and a configured one into a tunnel.
	for _, p := range []netip.Prefix{bgp, vpc} {
		if err := r.Learn(p); err != nil {
			t.Fatal(err)
		}
	}
	want(t, ns, r, vpc, inside, vpc6, bgp)

	// Someone deletes a guard; a reload without the static route puts
	// back the one still wanted and removes the unconfigured one, though
	// it was routed (configured prefixes are not learnt).
	ns.Run(t, "ip", "route", "del", "unreachable", inside.String(), "proto", "203", "metric", "4000000000")
	if err := r.Configure([]netip.Prefix{inside, vpc6}, nil); err != nil {
		t.Fatal(err)
	}
	want(t, ns, r, inside, vpc6, bgp)

	// A successor adopts everything; the learnt BGP prefix stays until the
	// sweep finds nothing routes it.
	r.Close()
	r2 := open(t, ns)
	want(t, ns, r2, inside, vpc6, bgp)
	if err := r2.Configure([]netip.Prefix{inside}, nil); err != nil {
		t.Fatal(err)
	}
	want(t, ns, r2, inside, vpc6, bgp)
	n, err := r2.SweepAdopted([]netip.Prefix{bgp})
	if err != nil || n != 1 {
		t.Fatalf("SweepAdopted = %d, %v; want 1 removed (%v)", n, err, vpc6)
	}
	want(t, ns, r2, inside, bgp)

	// A prefix over an AWS endpoint gets no guard: it would cut IKE.
	r2.Exempt([]netip.Addr{netip.MustParseAddr("203.0.113.1")})
	over := netip.MustParsePrefix("203.0.113.0/24")
	if err := r2.Configure([]netip.Prefix{inside, over}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r2.Learn(netip.MustParsePrefix("203.0.113.0/28")); err != nil {
		t.Fatal(err)
	}
	want(t, ns, r2, inside, bgp)

	if err := r2.Remove(); err != nil {
		t.Fatal(err)
	}
	want(t, ns, r2)
}

// TestGuardsAfterReboot: the guarded prefixes are guarded again by a
// process started after a reboot (a fresh namespace: an empty routing
// table) from the state file, until the sweep finds nothing routes them.
func TestGuardsAfterReboot(t *testing.T) {
	netnstest.Require(t)
	state := filepath.Join(t.TempDir(), "guards")
	openState := func(ns *netnstest.NS) *kernelguard.Routes {
		t.Helper()
		var r *kernelguard.Routes
		if err := ns.Do(func() (err error) { r, err = kernelguard.Open(kernelguard.Options{State: state}); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
	before := netnstest.New(t, "cgwbh")
	r := openState(before)
	if err := r.Configure([]netip.Prefix{inside}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Learn(bgp); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if b, _ := os.ReadFile(state); string(b) != inside.String()+"\n"+bgp.String()+"\n" {
		t.Fatalf("state file %q; want the configured and the learnt prefix", b)
	}

	after := netnstest.New(t, "cgwbh")
	r = openState(after)
	if err := r.Configure([]netip.Prefix{inside}, nil); err != nil {
		t.Fatal(err)
	}
	want(t, after, r, inside, bgp)
	if _, err := r.SweepAdopted(nil); err != nil {
		t.Fatal(err)
	}
	want(t, after, r, inside)
	if b, _ := os.ReadFile(state); string(b) != inside.String()+"\n" {
		t.Errorf("state file after the sweep: %q; want the configured prefix only", b)
	}
}

// TestGuardWinsOverDefaultOnly checks what the guards are for: for a
// packet forwarded from the LAN the kernel picks the unreachable guard over the
// default route to the Internet, and a tunnel's own connected /30 (the
// slow-path TUN device) over the guard.
func TestGuardWinsOverDefaultOnly(t *testing.T) {
	netnstest.Require(t, "sysctl")
	ns := netnstest.New(t, "cgwbh")
	for _, l := range []string{"out", "in", "tun"} {
		ns.Run(t, "ip", "link", "add", l+"0", "type", "veth", "peer", "name", l+"1")
		ns.Run(t, "ip", "link", "set", l+"0", "up")
		ns.Run(t, "ip", "link", "set", l+"1", "up")
	}
	ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	ns.Run(t, "ip", "addr", "add", "192.0.2.10/24", "dev", "out0")
	ns.Run(t, "ip", "addr", "add", "198.18.0.1/24", "dev", "in0")
	ns.Run(t, "ip", "route", "add", "default", "via", "192.0.2.1")
	ns.Run(t, "ip", "addr", "add", "169.254.10.2/30", "dev", "tun0")
	// The kernel answers a route lookup that ends in an unreachable route with
	// EHOSTUNREACH.
	forward := func(dst string) string {
		out, _ := ns.Command("ip", "route", "get", dst, "from", "198.18.0.5", "iif", "in0").CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	const dropped = "RTNETLINK answers: No route to host"
	if got := forward("198.19.4.4"); !strings.Contains(got, "dev out0") {
		t.Fatalf("without guards, a LAN packet to 198.19.4.4 is routed %q; want out of out0 (the default route)", got)
	}

	r := open(t, ns)
	if err := r.Configure([]netip.Prefix{vpc, inside}, nil); err != nil {
		t.Fatal(err)
	}
	if got := forward("198.19.4.4"); got != dropped {
		t.Errorf("with the guard, a LAN packet to 198.19.4.4 is routed %q; want the unreachable guard (%q)", got, dropped)
	}
	if got := forward("169.254.10.1"); !strings.Contains(got, "dev tun0") {
		t.Errorf("a LAN packet to 169.254.10.1 is routed %q; want the connected route on tun0 over the guard", got)
	}
	ns.Run(t, "ip", "link", "del", "tun0")
	if got := forward("169.254.10.1"); got != dropped {
		t.Errorf("with tun0 gone, a LAN packet to 169.254.10.1 is routed %q; want the unreachable guard (%q)", got, dropped)
	}
	if got := forward("198.51.100.7"); !strings.Contains(got, "dev out0") {
		t.Errorf("a LAN packet to 198.51.100.7 (no tunnel) is routed %q; want out of out0", got)
	}
}

// TestGuardStats: Stats counts the guards, the adopted ones nothing has
// configured or learnt yet, and the guards a resync found missing and put
// back (cgw_control_kernel_guard_repairs_total); a guard removed on
// purpose is not a repair.
func TestGuardStats(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t, "cgwbh")
	r := open(t, ns)
	if err := r.Configure([]netip.Prefix{vpc, inside, vpc6}, []netip.Prefix{bgp}); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s != (kernelguard.Stats{Installed: 4}) {
		t.Fatalf("after Configure: %+v", s)
	}
	ns.Run(t, "ip", "route", "flush", "proto", "203")
	ns.Run(t, "ip", "-6", "route", "flush", "proto", "203")
	if err := r.Resync(); err != nil {
		t.Fatal(err)
	}
	want(t, ns, r, vpc, inside, vpc6, bgp)
	if s := r.Stats(); s.Repairs != 4 || s.Errors != 0 {
		t.Fatalf("after a flush and a resync: %+v; want 4 repairs", s)
	}
	if err := r.Configure([]netip.Prefix{inside}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Resync(); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s != (kernelguard.Stats{Installed: 2, Repairs: 4}) {
		t.Fatalf("after unconfiguring two: %+v; want 2 installed, still 4 repairs", s)
	}
	r.Close()
	r2 := open(t, ns)
	if s := r2.Stats(); s != (kernelguard.Stats{Installed: 2, Adopted: 2}) {
		t.Fatalf("a successor: %+v; want both adopted", s)
	}
	if err := r2.Configure([]netip.Prefix{inside}, nil); err != nil {
		t.Fatal(err)
	}
	if s := r2.Stats(); s != (kernelguard.Stats{Installed: 2, Adopted: 1}) {
		t.Fatalf("a successor, configured: %+v; want %v only adopted", s, bgp)
	}
}
