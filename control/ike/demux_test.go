package ike_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev1"
	"github.com/cgw-project/cgw/control/ikev2"
)

// TestSplitVersions runs an IKEv1 and an IKEv2 tunnel between the same two
// socket pairs, each engine on its half of SplitVersions.
func TestSplitVersions(t *testing.T) {
	type side struct {
		v1 *ikev1.Manager
		v2 *ikev2.Manager
		p5 uint16
		p4 uint16
		up chan string
	}
	mk := func() *side {
		c500, c4500 := listen(t), listen(t)
		a500, b500 := ike.SplitVersions(c500, false)
		a4500, b4500 := ike.SplitVersions(c4500, true)
		s := &side{p5: port(c500), p4: port(c4500), up: make(chan string, 8)}
		ev := func(e ike.Event) {
			if e.Type == ike.TunnelUp {
				s.up <- e.Tunnel
			}
		}
		var err error
		if s.v1, err = ikev1.New(ikev1.Options{Conn500: a500, Conn4500: a4500, Events: ev, Tick: 20 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		if s.v2, err = ikev2.New(ikev2.Options{Conn500: b500, Conn4500: b4500, Events: ev}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			s.v1.Close(ctx)
			s.v2.Close(ctx)
		})
		return s
	}
	a, b := mk(), mk()
	c1 := testTunnel("v1")
	c2 := testTunnel("v2")
	c2.IKEVersion = 2
	c2.Phase1, c2.Phase2 = config.DefaultAlgorithms(2)
	c2.Phase1.Lifetime, c2.Phase2.Lifetime = config.Duration(time.Hour), config.Duration(30*time.Minute)
	resp1, resp2 := c1, c2
	resp1.StartupAction, resp2.StartupAction = config.StartupAdd, config.StartupAdd
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	err := b.v1.AddTunnel(resp1, ike.TunnelOptions{PeerPort: a.p5, PeerNATPort: a.p4})
	must(err)
	err = b.v2.AddTunnel(resp2, ike.TunnelOptions{PeerPort: a.p5, PeerNATPort: a.p4})
	must(err)
	err = a.v1.AddTunnel(c1, ike.TunnelOptions{PeerPort: b.p5, PeerNATPort: b.p4})
	must(err)
	err = a.v2.AddTunnel(c2, ike.TunnelOptions{PeerPort: b.p5, PeerNATPort: b.p4})
	must(err)
	for _, s := range []*side{a, b} {
		got := map[string]bool{}
		deadline := time.After(20 * time.Second)
		for len(got) < 2 {
			select {
			case n := <-s.up:
				got[n] = true
			case <-deadline:
				t.Fatalf("tunnels up: %v, want v1 and v2", got)
			}
		}
	}
}

const testPSK = "demux.test.psk"

func testTunnel(name string) config.Tunnel {
	p1, p2 := config.DefaultAlgorithms(1)
	p1.Lifetime = config.Duration(time.Hour)
	p2.Lifetime = config.Duration(30 * time.Minute)
	return config.Tunnel{Name: name, AWSOutside: netip.MustParseAddr("127.0.0.1"), LocalOutside: netip.MustParseAddr("127.0.0.1"),
		PreSharedKey: testPSK, IKEVersion: 1, Phase1: p1, Phase2: p2, RekeyMargin: config.Duration(time.Minute),
		ReplayWindow: 1024, DPD: config.DPD{Interval: config.Duration(time.Minute), Retries: 3, Action: config.DPDClear},
		NATTraversal: config.NATAuto, StartupAction: config.StartupStart}
}

func listen(t *testing.T) net.PacketConn {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func port(c net.PacketConn) uint16 { return uint16(c.LocalAddr().(*net.UDPAddr).Port) }
