package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// TestGuards: the kernel guards (control/kernelguard) a daemon keeps in
// its network namespace. A route a previous process left in the map is
// guarded at start and stays guarded past ConvergeTimeout, when the route
// itself goes, because the tunnels never came up; the static routes and
// inside /30s follow a reload; Stop leaves every guard in place, and only
// RemoveGuards takes them out.
func TestGuards(t *testing.T) {
	netnstest.Require(t)
	inst := fmt.Sprintf("gd%d", os.Getpid())
	ns := netnstest.New(t, "cgwdt-"+inst)
	ns.Run(t, "ip", "addr", "add", "192.0.2.1/32", "dev", "lo")
	t.Cleanup(func() { maps.Remove(inst) })
	maps.Remove(inst)
	cfg := func(static string, inside byte) *config.Config {
		c := testConfig()
		c.Gateway.Outside = config.Interface{Name: "wan0", Address: netip.MustParsePrefix("192.0.2.1/24")}
		c.Gateway.Inside = config.Interface{Name: "lan0", Address: netip.MustParsePrefix("198.18.0.1/24")}
		c.Connections[0].Static = []string{static}
		for i := range c.Connections[0].Tunnels {
			tu := &c.Connections[0].Tunnels[i]
			// No peer answers: the tunnels stay down.
			tu.LocalOutside, tu.AWSOutside = netip.MustParseAddr("192.0.2.1"), netip.AddrFrom4([4]byte{192, 0, 2, 8 + byte(i)})
			tu.StartupAction = config.StartupAdd
			tu.InsideCIDR = netip.PrefixFrom(netip.AddrFrom4([4]byte{169, 254, inside + byte(i), 0}), 30)
		}
		return c
	}
	objs, err := maps.Load(inst)
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	w, err := maps.NewWriter(objs)
	if err != nil {
		t.Fatal(err)
	}
	left := netip.MustParsePrefix("198.19.7.0/24") // a BGP route of the previous process
	if err := w.AddRoute(left, maps.Route{TunnelId: 1}); err != nil {
		t.Fatal(err)
	}
	w.Close()

	start := func(c *config.Config, remove bool) *Daemon {
		return startIn(t, ns, Options{Config: c, Instance: inst, GoBGPAPI: "-", CounterInterval: 50 * time.Millisecond,
			ConvergeTimeout: 300 * time.Millisecond, GuardResync: 200 * time.Millisecond, RemoveGuards: remove, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}
	stop := func(d *Daemon) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		d.Stop(ctx)
	}
	want := func(what string, ps ...string) {
		t.Helper()
		var got []string
		for _, l := range strings.Split(ns.Run(t, "ip", "route", "show", "proto", "203", "type", "unreachable"), "\n") {
			if f := strings.Fields(l); len(f) > 1 {
				got = append(got, f[1])
			}
		}
		slices.Sort(got)
		slices.Sort(ps)
		if !slices.Equal(got, ps) {
			t.Errorf("%s: guards %v, want %v", what, got, ps)
		}
	}

	d := start(cfg("198.19.0.0/24", 10), false)
	want("at start", "169.254.10.0/30", "169.254.11.0/30", "198.19.0.0/24", left.String())
	if got := fmt.Sprint(d.Status().Guards); got != "[169.254.10.0/30 169.254.11.0/30 198.19.0.0/24 198.19.7.0/24]" {
		t.Errorf("status guards %s", got)
	}
	time.Sleep(time.Second) // past ConvergeTimeout
	r, err := maps.NewReader(objs)
	if err != nil {
		t.Fatal(err)
	}
	tabs, err := r.Snapshot()
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(tabs.Routes) != 0 {
		t.Fatalf("the route left in the map was not swept at ConvergeTimeout: %v", tabs.Routes)
	}
	want("past ConvergeTimeout, tunnels down", "169.254.10.0/30", "169.254.11.0/30", "198.19.0.0/24", left.String())

	if st := d.Status(); st.GuardsAdopted != 1 || st.GuardRepairs != 0 || st.GuardErrors != 0 {
		t.Errorf("status before the flush: %d adopted, %d repairs, %d errors; want 1 (%v), 0, 0", st.GuardsAdopted, st.GuardRepairs, st.GuardErrors, left)
	}

	// A flush of the guards (as a network manager removing routes it does
	// not know would do): they are back within GuardResync, counted
	// (cgw_control_kernel_guard_repairs_total).
	ns.Run(t, "ip", "route", "flush", "proto", "203")
	time.Sleep(500 * time.Millisecond)
	want("after a flush", "169.254.10.0/30", "169.254.11.0/30", "198.19.0.0/24", left.String())
	if st := d.Status(); st.GuardRepairs != 4 || st.GuardErrors != 0 {
		t.Errorf("status after the flush: %d repairs, %d errors; want 4, 0", st.GuardRepairs, st.GuardErrors)
	}

	if res := d.ReloadConfig(cfg("198.19.9.0/24", 20)); !res.Applied || len(res.Errors) > 0 {
		t.Fatalf("reload: %+v", res)
	}
	want("after a reload", "169.254.20.0/30", "169.254.21.0/30", "198.19.9.0/24", left.String())
	stop(d)
	want("after Stop", "169.254.20.0/30", "169.254.21.0/30", "198.19.9.0/24", left.String())

	d = start(cfg("198.19.9.0/24", 20), true)
	stop(d)
	want("after Stop with RemoveGuards")
}
