package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/internal/netnstest"
)

func testConfig() *config.Config {
	tun := func(i int) config.Tunnel {
		p1, p2 := config.DefaultAlgorithms(2)
		return config.Tunnel{
			Name:         fmt.Sprintf("vpn-t%d", i+1),
			AWSOutside:   netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}),
			LocalOutside: netip.MustParseAddr("127.0.0.1"),
			InsideCIDR:   netip.PrefixFrom(netip.AddrFrom4([4]byte{169, 254, byte(10 + i), 0}), 30),
			PreSharedKey: "test.psk_0123456789", IKEVersion: 2, Phase1: p1, Phase2: p2,
		}
	}
	c := &config.Config{
		Gateway: config.Gateway{Name: "t",
			Outside: config.Interface{Name: "lo", Address: netip.MustParsePrefix("127.0.0.1/8")},
			Inside:  config.Interface{Name: "lo", Address: netip.MustParsePrefix("198.18.0.1/24")}},
		Connections: []config.Connection{{Name: "vpn", Routing: config.RoutingStatic, Static: []string{"198.19.0.0/24"},
			Tunnels: []config.Tunnel{tun(0), tun(1)}}},
	}
	c.ApplyDefaults()
	return c
}

func testSA(t *testing.T, spi, tunnel uint32, dir maps.SADir) maps.SA {
	s, err := transform.ParseSuite("aes128gcm16")
	if err != nil {
		t.Fatal(err)
	}
	sa := maps.SA{Spi: spi, TunnelId: tunnel, Direction: uint8(dir), State: uint8(maps.StateActive), ReplayWindow: 64}
	if err := maps.SetKeys(&sa, s, make([]byte, 20)); err != nil {
		t.Fatal(err)
	}
	return sa
}

// TestAdopt: the maps hold what a crashed control process left (SAs of a
// configured tunnel that is up, SAs of a tunnel no longer configured,
// routes). A new daemon keeps the configured tunnel forwarding on its old
// SAs, removes the unconfigured tunnel's at once, removes the routes
// routing did not select again after ConvergeTimeout, gives up on the old
// SAs of a tunnel that does not come back within it, and Stop leaves no
// SA behind.
func TestAdopt(t *testing.T) {
	netnstest.Require(t)
	instance := fmt.Sprintf("dt%d", os.Getpid())
	ns := netnstest.New(t, "cgwdt-"+instance)
	defer maps.Remove(instance)

	objs, err := maps.Load(instance)
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	w, err := maps.NewWriter(objs)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Left by "the previous process": tunnel 1 up on slots 1/2, tunnel 7
	// (not configured) on slots 3/4, tunnel 2 towards another peer than
	// configured now on slots 5/6, two routes.
	cfg := testConfig()
	t1 := cfg.Connections[0].Tunnels[0]
	must(w.SetTunnel(1, maps.Tunnel{Flags: uint32(maps.TunnelUp), Mtu: 1399,
		LocalAddr: maps.Addr16(t1.LocalOutside), RemoteAddr: maps.Addr16(t1.AWSOutside)}))
	must(w.SetTunnel(2, maps.Tunnel{Flags: uint32(maps.TunnelUp), Mtu: 1399,
		LocalAddr: maps.Addr16(t1.LocalOutside), RemoteAddr: maps.Addr16(netip.MustParseAddr("203.0.113.99"))}))
	must(w.InstallInboundSA(5, testSA(t, 0x2001, 2, maps.DirInbound)))
	must(w.InstallSA(6, testSA(t, 0x2002, 2, maps.DirOutbound)))
	must(w.SetOutboundSA(2, 6))
	must(w.InstallInboundSA(1, testSA(t, 0x1001, 1, maps.DirInbound)))
	must(w.InstallSA(2, testSA(t, 0x1002, 1, maps.DirOutbound)))
	must(w.SetOutboundSA(1, 2))
	must(w.SetTunnel(7, maps.Tunnel{Flags: uint32(maps.TunnelUp), Mtu: 1399}))
	must(w.InstallInboundSA(3, testSA(t, 0x7001, 7, maps.DirInbound)))
	must(w.InstallSA(4, testSA(t, 0x7002, 7, maps.DirOutbound)))
	must(w.SetOutboundSA(7, 4))
	must(w.AddRoute(netip.MustParsePrefix("198.19.0.0/24"), maps.Route{TunnelId: 1}))
	must(w.AddRoute(netip.MustParsePrefix("198.19.7.0/24"), maps.Route{TunnelId: 7}))
	w.Close()

	d := startIn(t, ns, Options{Config: cfg, Instance: instance, GoBGPAPI: "-",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), CounterInterval: 50 * time.Millisecond,
		ConvergeTimeout: 1500 * time.Millisecond})

	r, err := maps.NewReader(objs)
	must(err)
	defer r.Close()
	tabs, err := r.Snapshot()
	must(err)
	if _, ok := tabs.Inbound[0x7001]; ok || tabs.Outbound[7] != 0 {
		t.Errorf("the unconfigured tunnel 7 keeps SAs: inbound %v outbound %d", tabs.Inbound, tabs.Outbound[7])
	}
	if _, ok := tabs.Inbound[0x2001]; ok || tabs.Outbound[2] != 0 || tabs.Tunnels[2].Flags&uint32(maps.TunnelUp) != 0 {
		t.Errorf("tunnel 2, now towards another peer, keeps the old peer's SAs: inbound %v outbound %d flags %#x", tabs.Inbound, tabs.Outbound[2], tabs.Tunnels[2].Flags)
	}
	if _, ok := tabs.Inbound[0x1001]; !ok || tabs.Outbound[1] != 2 || tabs.Tunnels[1].Flags&uint32(maps.TunnelUp) == 0 {
		t.Errorf("tunnel 1 stopped forwarding on its old SAs: inbound %v outbound %d flags %#x", tabs.Inbound, tabs.Outbound[1], tabs.Tunnels[1].Flags)
	}
	if got := tabs.Tunnels[1].InsidePrefixlen; got != 30 || maps.AddrFrom16(tabs.Tunnels[1].InsideAddr).Unmap() != netip.MustParseAddr("169.254.10.2") {
		t.Errorf("tunnel 1's inside address not written: %v/%d", maps.AddrFrom16(tabs.Tunnels[1].InsideAddr), got)
	}
	if len(tabs.Routes) != 2 {
		t.Errorf("routes left by the previous process should stay until routing converges: %v", tabs.Routes)
	}
	st := d.Status()
	if tu, _ := st.Tunnel("vpn-t1"); !slices.Equal(tu.Stale, []uint32{1, 2}) {
		t.Errorf("status: tunnel vpn-t1 stale slots %v, want [1 2]", tu.Stale)
	}

	time.Sleep(2 * time.Second) // past ConvergeTimeout: the tunnels never came up
	tabs, err = r.Snapshot()
	must(err)
	if len(tabs.Routes) != 0 {
		t.Errorf("stale routes not removed after ConvergeTimeout: %v", tabs.Routes)
	}
	// Tunnel 1 never came back: its old SAs go and it is marked down, so
	// XDP would fail over to a backup tunnel.
	if len(tabs.Inbound) != 0 || tabs.Outbound[1] != 0 || tabs.Tunnels[1].Flags&uint32(maps.TunnelUp) != 0 {
		t.Errorf("after ConvergeTimeout tunnel 1 keeps its stale SAs: inbound %v outbound %d flags %#x", tabs.Inbound, tabs.Outbound[1], tabs.Tunnels[1].Flags)
	}
	if tu, _ := d.Status().Tunnel("vpn-t1"); len(tu.Stale) != 0 {
		t.Errorf("status still lists stale slots %v", tu.Stale)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.Stop(ctx)
	tabs, err = r.Snapshot()
	must(err)
	if len(tabs.Inbound) != 0 || len(tabs.SAs) != 0 || tabs.Outbound[1] != 0 || tabs.Tunnels[1].Flags&uint32(maps.TunnelUp) != 0 {
		t.Errorf("after Stop: inbound %v, SAs %d, outbound[1] %d, tunnel 1 flags %#x", tabs.Inbound, len(tabs.SAs), tabs.Outbound[1], tabs.Tunnels[1].Flags)
	}
}

// startIn starts a daemon whose IKE sockets live in namespace ns; its
// goroutines need no namespace of their own, only those sockets.
func startIn(t *testing.T, ns *netnstest.NS, o Options) *Daemon {
	t.Helper()
	var d *Daemon
	if err := ns.Do(func() (err error) { d, err = Start(o); return err }); err != nil {
		t.Fatal(err)
	}
	return d
}

// startQuiet starts a daemon in ns on pinned-map instance inst, counters
// every 50 ms, no GoBGP API, logging nowhere unless o.Log is set; the
// test's end stops it.
func startQuiet(t *testing.T, ns *netnstest.NS, inst string, o Options) *Daemon {
	t.Helper()
	o.Instance, o.GoBGPAPI, o.CounterInterval = inst, "-", 50*time.Millisecond
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d := startIn(t, ns, o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		d.Stop(ctx)
	})
	return d
}

// TestBackToBack: two daemons negotiate one tunnel over loopback (no
// dataplane, no NAT: plain ESP), each installs the mirror of the other's
// SA pair; when the initiator's outbound sequence counter nears its limit
// (as the dataplane would push it) the daemon rekeys the Child SA and
// replaces the SAs in the maps.
func TestBackToBack(t *testing.T) { testBackToBack(t, 2) }

// TestBackToBackIKEv1: the same with ike_version 1 (control/ikev1 on the
// sockets SplitVersions shares): Main Mode, Quick Mode, and the counter-
// triggered rekey reaches the IKEv1 engine.
func TestBackToBackIKEv1(t *testing.T) { testBackToBack(t, 1) }

func testBackToBack(t *testing.T, ikeVersion int) {
	netnstest.Require(t)
	base := fmt.Sprintf("bb%d%d", ikeVersion, os.Getpid())
	ns := netnstest.New(t, "cgwdt-"+base)
	side := func(name string, local, peer string, start string) (*Daemon, string) {
		c := testConfig()
		c.Connections[0].Tunnels = c.Connections[0].Tunnels[:1]
		tu := &c.Connections[0].Tunnels[0]
		tu.LocalOutside, tu.AWSOutside, tu.StartupAction = netip.MustParseAddr(local), netip.MustParseAddr(peer), start
		if ikeVersion == 1 {
			tu.IKEVersion, tu.Phase1 = 1, config.DefaultPhase1(1)
		}
		inst := base + name
		t.Cleanup(func() { maps.Remove(inst) })
		maps.Remove(inst)
		d := startQuiet(t, ns, inst, Options{Config: c})
		return d, inst
	}
	b, _ := side("r", "127.0.0.2", "127.0.0.1", config.StartupAdd)
	a, _ := side("i", "127.0.0.1", "127.0.0.2", config.StartupStart)

	up := func(what string, ok func(ca, cb *ChildInfo) bool) (ChildInfo, ChildInfo) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			ca, oka := active(a)
			cb, okb := active(b)
			if oka && okb && ok(&ca, &cb) {
				return ca, cb
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: initiator %+v (%v), responder %+v (%v)", what, ca, oka, cb, okb)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ca, cb := up("tunnel up on both sides", func(ca, cb *ChildInfo) bool { return ca.InSPI == cb.OutSPI && ca.OutSPI == cb.InSPI })
	if ikeVersion == 1 && (a.IKEv1() == nil || len(a.IKEv1().Status()) != 1 || len(a.IKE().Status()) != 0) {
		t.Errorf("ike_version 1 tunnel not run by the IKEv1 engine")
	}
	if ca.Encap || cb.Encap {
		t.Errorf("no NAT on loopback, yet ESP is UDP-encapsulated")
	}
	// What the initiator wrote is what the responder must read: keys of
	// one direction equal the other side's opposite direction.
	var aOut, bIn maps.SA
	if err := a.objs.SaTable.Lookup(ca.OutIndex, &aOut); err != nil {
		t.Fatal(err)
	}
	if err := b.objs.SaTable.Lookup(cb.InIndex, &bIn); err != nil {
		t.Fatal(err)
	}
	if aOut.Spi != bIn.Spi || aOut.EncKey != bIn.EncKey || aOut.Salt != bIn.Salt || aOut.Flags&uint32(maps.SAFlagUDPEncap) != 0 {
		t.Errorf("initiator's outbound SA %#x and responder's inbound SA %#x differ", aOut.Spi, bIn.Spi)
	}

	// The dataplane has used almost every sequence number of the SA.
	atomic.StoreUint64(&a.w.Counters(ca.OutIndex).Seq, seqSoftLimit)
	na, _ := up("child rekeyed after the sequence limit", func(n, m *ChildInfo) bool {
		return n.InSPI != ca.InSPI && n.InSPI == m.OutSPI && n.OutSPI == m.InSPI
	})
	if na.OutIndex == ca.OutIndex {
		t.Errorf("new child reuses slot %d", na.OutIndex)
	}
}

// ChildInfo is the active child of a daemon's only tunnel, for tests.
type ChildInfo struct {
	InSPI, OutSPI     uint32
	InIndex, OutIndex uint32
	Encap             bool
}

func active(d *Daemon) (ChildInfo, bool) {
	st := d.Status()
	if len(st.Tunnels) == 0 || st.Tunnels[0].State != "up" {
		return ChildInfo{}, false
	}
	c, ok := st.Tunnels[0].Active()
	if !ok || c.InIndex == 0 {
		return ChildInfo{}, false
	}
	return ChildInfo{c.InSPI, c.OutSPI, c.InIndex, c.OutIndex, c.Encap}, true
}
