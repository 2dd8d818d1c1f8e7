package daemon

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/status"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// TestReload: three daemons over loopback. The initiator runs one
// tunnel; a reload adds a connection (its tunnel comes up, its static
// route reaches the map) while the first tunnel keeps its Child SA; a
// reload changing the first tunnel's DPD renegotiates that tunnel only;
// a configuration with a problem is refused and changes nothing; a
// reload removing the connection takes its SAs, tunnel entry and route
// out of the maps.
func TestReload(t *testing.T) {
	netnstest.Require(t)
	base := fmt.Sprintf("rl%d", os.Getpid())
	ns := netnstest.New(t, "cgwdt-"+base)
	// Valid configurations (a reload checks them as config check does):
	// documentation addresses on the namespace's loopback, two tunnels
	// per connection; the second of each has no peer and waits.
	for i := 1; i <= 5; i++ {
		ns.Run(t, "ip", "addr", "add", fmt.Sprintf("192.0.2.%d/32", i), "dev", "lo")
	}
	conn := func(name, local, peer, start string, third byte) config.Connection {
		c := testConfig().Connections[0]
		c.Name, c.Static = name, []string{fmt.Sprintf("198.19.%d.0/24", third)}
		for i := range c.Tunnels {
			tu := &c.Tunnels[i]
			tu.Name = fmt.Sprintf("%s-t%d", name, i+1)
			tu.LocalOutside, tu.AWSOutside, tu.StartupAction = netip.MustParseAddr(local), netip.MustParseAddr(peer), start
			tu.InsideCIDR = netip.PrefixFrom(netip.AddrFrom4([4]byte{169, 254, 10 + 2*third + byte(i), 0}), 30)
			if i == 1 {
				tu.AWSOutside, tu.StartupAction = netip.AddrFrom4([4]byte{192, 0, 2, 4 + third}), config.StartupAdd
			}
		}
		return c
	}
	gateway := config.Gateway{Name: "t",
		Outside: config.Interface{Name: "wan0", Address: netip.MustParsePrefix("192.0.2.1/24")},
		Inside:  config.Interface{Name: "lan0", Address: netip.MustParsePrefix("198.18.0.1/24")}}
	cfg := func(conns ...config.Connection) *config.Config {
		c := &config.Config{Gateway: gateway, Connections: conns}
		c.ApplyDefaults()
		return c
	}
	start := func(name string, conns ...config.Connection) *Daemon {
		c := cfg(conns...)
		inst := base + name
		t.Cleanup(func() { maps.Remove(inst) })
		maps.Remove(inst)
		d := startQuiet(t, ns, inst, Options{Config: c})
		return d
	}
	start("r1", conn("vpn", "192.0.2.2", "192.0.2.1", config.StartupAdd, 0))
	start("r2", conn("b", "192.0.2.3", "192.0.2.1", config.StartupAdd, 1))
	a := start("i", conn("vpn", "192.0.2.1", "192.0.2.2", config.StartupStart, 0))

	activeIn := func(name string) (uint32, bool) {
		tu, ok := a.Status().Tunnel(name)
		if !ok || tu.State != "up" {
			return 0, false
		}
		c, ok := tu.Active()
		if !ok || c.InIndex == 0 {
			return 0, false
		}
		return c.InSPI, true
	}
	wait := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %+v", what, a.Status().Tunnels)
			}
		}
	}
	var spi1 uint32
	wait("vpn-t1 up", func() (ok bool) { spi1, ok = activeIn("vpn-t1"); return })

	reload := func(c *config.Config) *status.ReloadResult {
		t.Helper()
		// Added tunnels use the sockets already open in the namespace.
		return a.ReloadConfig(c)
	}

	// Add connection b.
	r := reload(cfg(conn("vpn", "192.0.2.1", "192.0.2.2", config.StartupStart, 0), conn("b", "192.0.2.1", "192.0.2.3", config.StartupStart, 1)))
	if !r.Applied || len(r.Errors) > 0 || fmt.Sprint(r.Added) != "[b-t1 b-t2]" || fmt.Sprint(r.Unchanged) != "[vpn-t1 vpn-t2]" {
		t.Fatalf("adding a connection: %+v", r)
	}
	wait("b-t1 up after the reload", func() bool { _, ok := activeIn("b-t1"); return ok })
	if s, _ := activeIn("vpn-t1"); s != spi1 {
		t.Errorf("vpn-t1 renegotiated (Child SA %08x → %08x) by a reload that did not change it", spi1, s)
	}
	tabs := snapshot(t, a)
	b1, _ := a.Status().Tunnel("b-t1")
	if tabs.Tunnels[b1.ID].Flags&uint32(maps.TunnelUp) == 0 || maps.AddrFrom16(tabs.Tunnels[b1.ID].RemoteAddr).Unmap() != netip.MustParseAddr("192.0.2.3") {
		t.Errorf("b-t1 (id %d) not up in the tunnel map: %+v", b1.ID, tabs.Tunnels[b1.ID])
	}
	wantRoute := func(p string, id uint32) {
		t.Helper()
		for _, rt := range snapshot(t, a).Routes {
			if rt.Prefix == netip.MustParsePrefix(p) {
				if id == 0 || rt.Route.TunnelId != id {
					t.Errorf("route %s via tunnel %d, want %d", p, rt.Route.TunnelId, id)
				}
				return
			}
		}
		if id != 0 {
			t.Errorf("route %s not in the map", p)
		}
	}
	wantRoute("198.19.1.0/24", b1.ID)

	// A bad configuration changes nothing.
	bad := cfg(conn("vpn", "192.0.2.1", "192.0.2.2", config.StartupStart, 0), conn("b", "192.0.2.1", "192.0.2.3", config.StartupStart, 1))
	bad.Connections[0].Tunnels[0].PreSharedKey = "short"
	bad.Connections[1].Tunnels[0].DPD.Interval = config.Duration(time.Hour)
	if r := reload(bad); r.Applied || len(r.Problems) == 0 {
		t.Fatalf("a configuration with a 5-character PSK was not refused: %+v", r)
	}
	if a.Config().Connections[0].Tunnels[0].PreSharedKey == "short" {
		t.Errorf("the refused configuration was taken")
	}

	// DPD of vpn-t1: renegotiated; b-t1 keeps its SA.
	spiB, _ := activeIn("b-t1")
	next := cfg(conn("vpn", "192.0.2.1", "192.0.2.2", config.StartupStart, 0), conn("b", "192.0.2.1", "192.0.2.3", config.StartupStart, 1))
	next.Connections[0].Tunnels[0].DPD.Interval = config.Duration(5 * time.Second)
	if r := reload(next); !r.Applied || fmt.Sprint(r.Changed) != "[vpn-t1]" || fmt.Sprint(r.Unchanged) != "[vpn-t2 b-t1 b-t2]" {
		t.Fatalf("changing DPD: %+v", r)
	}
	wait("vpn-t1 renegotiated", func() bool { s, ok := activeIn("vpn-t1"); return ok && s != spi1 })
	if s, _ := activeIn("b-t1"); s != spiB {
		t.Errorf("b-t1 renegotiated (%08x → %08x) by a reload that changed vpn-t1 only", spiB, s)
	}

	// Remove connection b.
	if r := reload(cfg(conn("vpn", "192.0.2.1", "192.0.2.2", config.StartupStart, 0))); !r.Applied || fmt.Sprint(r.Removed) != "[b-t1 b-t2]" {
		t.Fatalf("removing a connection: %+v", r)
	}
	if _, ok := a.Status().Tunnel("b-t1"); ok {
		t.Errorf("b-t1 still in the status")
	}
	tabs = snapshot(t, a)
	if tabs.Tunnels[b1.ID] != (maps.Tunnel{}) {
		t.Errorf("b-t1's tunnel entry (id %d) left in the map: %+v", b1.ID, tabs.Tunnels[b1.ID])
	}
	for spi, in := range tabs.Inbound {
		if in.TunnelId == b1.ID {
			t.Errorf("b-t1's inbound SA %08x left in the map", spi)
		}
	}
	wantRoute("198.19.1.0/24", 0)
}

func snapshot(t *testing.T, d *Daemon) *maps.Tables {
	t.Helper()
	r, err := maps.NewReader(d.objs)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tabs, err := r.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return tabs
}
