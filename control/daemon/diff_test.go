package daemon

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
)

// TestDiffConfigs: which tunnels a reload renegotiates for which edits.
func TestDiffConfigs(t *testing.T) {
	second := func(c *config.Config) {
		n := testConfig().Connections[0]
		n.Name = "b"
		for i := range n.Tunnels {
			n.Tunnels[i].Name = "b-t" + string(rune('1'+i))
			n.Tunnels[i].AWSOutside = netip.AddrFrom4([4]byte{203, 0, 113, byte(11 + i)})
			n.Tunnels[i].InsideCIDR = netip.PrefixFrom(netip.AddrFrom4([4]byte{169, 254, byte(20 + i), 0}), 30)
		}
		c.Connections = append(c.Connections, n)
	}
	lo := engines{listen: netip.MustParseAddr("127.0.0.1")}
	cases := []struct {
		name                          string
		edit                          func(*config.Config)
		e                             engines
		added, removed, changed, kept []string
		refused, note                 string
	}{
		{name: "nothing", edit: func(*config.Config) {}, kept: []string{"vpn-t1", "vpn-t2"}},
		{name: "DPD of one tunnel", edit: func(c *config.Config) {
			c.Connections[0].Tunnels[1].DPD.Interval = config.Duration(5 * time.Second)
		}, changed: []string{"vpn-t2"}, kept: []string{"vpn-t1"}},
		{name: "PSK of one tunnel", edit: func(c *config.Config) {
			c.Connections[0].Tunnels[0].PreSharedKey = "another.psk_0123"
		}, changed: []string{"vpn-t1"}, kept: []string{"vpn-t2"}},
		{name: "a connection added and a DPD changed", edit: func(c *config.Config) {
			second(c)
			c.Connections[0].Tunnels[1].DPD.Retries = 5
		}, added: []string{"b-t1", "b-t2"}, changed: []string{"vpn-t2"}, kept: []string{"vpn-t1"}},
		{name: "static routes only", edit: func(c *config.Config) {
			c.Connections[0].Static = append(c.Connections[0].Static, "198.19.1.0/24")
		}, kept: []string{"vpn-t1", "vpn-t2"}},
		{name: "connection removed", edit: func(c *config.Config) {
			c.Connections = c.Connections[:0]
			second(c)
		}, added: []string{"b-t1", "b-t2"}, removed: []string{"vpn-t1", "vpn-t2"}},
		{name: "tunnel moved to another connection", edit: func(c *config.Config) {
			second(c)
			c.Connections[1].Tunnels[1] = c.Connections[0].Tunnels[1]
			c.Connections[0].Tunnels = c.Connections[0].Tunnels[:1]
		}, added: []string{"b-t1", "vpn-t2"}, removed: []string{"vpn-t2"}, kept: []string{"vpn-t1"}},
		{name: "outside interface", edit: func(c *config.Config) {
			c.Gateway.Outside.Name = "eth9"
		}, kept: []string{"vpn-t1", "vpn-t2"}, refused: "gateway.outside changed"},
		{name: "dataplane settings", edit: func(c *config.Config) {
			c.Gateway.Dataplane.BatchSize = 32
		}, kept: []string{"vpn-t1", "vpn-t2"}, note: "restart cgw-dataplane"},
		{name: "first IKEv1 tunnel", edit: func(c *config.Config) {
			c.Connections[0].Tunnels[0].IKEVersion = 1
		}, changed: []string{"vpn-t1"}, kept: []string{"vpn-t2"}, refused: "ike_version 1 needs a restart"},
		{name: "IKEv1 tunnel with an IKEv1 engine", e: engines{ikev1: true, listen: lo.listen}, edit: func(c *config.Config) {
			c.Connections[0].Tunnels[0].IKEVersion = 1
		}, changed: []string{"vpn-t1"}, kept: []string{"vpn-t2"}},
		{name: "another local outside address", edit: func(c *config.Config) {
			second(c)
			c.Connections[1].Tunnels[0].LocalOutside = netip.MustParseAddr("127.0.0.2")
		}, added: []string{"b-t1", "b-t2"}, kept: []string{"vpn-t1", "vpn-t2"}, refused: "listen on 127.0.0.1 only"},
		{name: "another local outside address, sockets on every address", e: engines{listen: netip.IPv4Unspecified()}, edit: func(c *config.Config) {
			second(c)
			c.Connections[1].Tunnels[0].LocalOutside = netip.MustParseAddr("127.0.0.2")
		}, added: []string{"b-t1", "b-t2"}, kept: []string{"vpn-t1", "vpn-t2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old, next := testConfig(), testConfig()
			tc.edit(next)
			next.ApplyDefaults()
			e := tc.e
			if !e.listen.IsValid() {
				e = lo
			}
			p := diffConfigs(old, next, e)
			for _, c := range []struct {
				what      string
				got, want []string
			}{{"added", p.added, tc.added}, {"removed", p.removed, tc.removed}, {"changed", p.changed, tc.changed}, {"kept", p.kept, tc.kept}} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
				}
			}
			refused := strings.Join(p.refused, "; ")
			if (tc.refused == "") != (refused == "") || !strings.Contains(refused, tc.refused) {
				t.Errorf("refused %q, want %q", refused, tc.refused)
			}
			if notes := strings.Join(p.notes, "; "); !strings.Contains(notes, tc.note) || (tc.note == "") != (notes == "") {
				t.Errorf("notes %q, want %q", notes, tc.note)
			}
		})
	}
}
