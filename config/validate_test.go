package config

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// minimalYAML is the smallest configuration that passes: everything else
// is AWS's defaults.
const minimalYAML = `
gateway:
  outside: {interface: eth0, address: 192.0.2.10/24}
  inside: {interface: eth1, address: 198.18.0.1/24}
connections:
  - name: vpn-1
    bgp: {advertise: [198.18.0.0/24]}
    tunnels:
      - aws_outside_address: 203.0.113.1
        inside_cidr: 169.254.44.88/30
        pre_shared_key: Kx7.mQ2_pL9vRt4wYb3n
      - aws_outside_address: 203.0.113.2
        inside_cidr: 169.254.45.140/30
        pre_shared_key: Zr4_hT8.wQ1eNc6uJa2s
`

func minimal(t *testing.T) *Config {
	t.Helper()
	c, err := Parse([]byte(minimalYAML))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMinimalDefaults(t *testing.T) {
	c := minimal(t)
	if ps := c.Validate(); len(ps) != 0 {
		t.Fatalf("default config has problems:\n%v", Problems(ps))
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	g := c.Gateway
	if g.Name != "cgw" || g.Dataplane.BatchSize != 64 || g.Observability.StatusSocket != "/run/cgw/cgw/control.sock" ||
		g.Observability.ControlMetrics != "127.0.0.1:9471" || g.Observability.DataplaneMetrics != "127.0.0.1:9472" ||
		g.Observability.GoBGPAPI != "off" {
		t.Errorf("gateway defaults: %+v", g)
	}
	cn := c.Connections[0]
	if cn.Routing != RoutingBGP || cn.BGP.LocalASN != 65000 || cn.BGP.PeerASN != 64512 || cn.BGP.HoldTime != secs(30) {
		t.Errorf("bgp defaults: %q %+v", cn.Routing, cn.BGP)
	}
	for j, tu := range cn.Tunnels {
		want := Tunnel{
			Name: TunnelName("vpn-1", j), AWSOutside: tu.AWSOutside, LocalOutside: netip.MustParseAddr("192.0.2.10"),
			InsideCIDR: tu.InsideCIDR, PreSharedKey: tu.PreSharedKey, IKEVersion: 2,
			// RFC 8247/8221: strong algorithms AWS accepts, strongest first.
			Phase1: Phase{
				Encryption: []string{"AES256-GCM-16", "AES128-GCM-16"},
				Integrity:  []string{"SHA2-384", "SHA2-256"},
				DHGroups:   []int{20, 19, 14},
				Lifetime:   secs(28800),
			},
			Phase2: Phase{
				Encryption: []string{"AES256-GCM-16", "AES128-GCM-16"},
				DHGroups:   []int{20, 19, 14},
				Lifetime:   secs(3600),
			},
			RekeyMargin: secs(270), RekeyFuzz: 100, ReplayWindow: 1024,
			DPD:          DPD{Interval: secs(10), Retries: 3, Action: "clear"},
			NATTraversal: "auto", MTU: 1399, TCPMSS: 1379, ClearDF: false, StartupAction: "start",
		}
		if !equalTunnel(tu, want) {
			t.Errorf("tunnel %d defaults:\n got %+v\nwant %+v", j, tu, want)
		}
	}
}

func equalTunnel(a, b Tunnel) bool {
	ya, _ := Marshal(&Config{Connections: []Connection{{Tunnels: []Tunnel{a}}}})
	yb, _ := Marshal(&Config{Connections: []Connection{{Tunnels: []Tunnel{b}}}})
	return string(ya) == string(yb)
}

func TestIKEv1DefaultsHaveNoGCM(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(minimalYAML, "pre_shared_key: Kx7.mQ2_pL9vRt4wYb3n", "pre_shared_key: Kx7.mQ2_pL9vRt4wYb3n\n        ike_version: 1", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Connections[0].Tunnels[0].Phase1.Encryption; strings.Join(got, ",") != "AES256,AES128" {
		t.Errorf("IKEv1 phase 1 default encryption %v", got)
	}
	if ps := c.Validate(); len(ps) != 0 {
		t.Errorf("problems: %v", Problems(ps))
	}
}

func TestCanonicalisesNames(t *testing.T) {
	y := strings.Replace(minimalYAML, "pre_shared_key: Kx7.mQ2_pL9vRt4wYb3n",
		"pre_shared_key: Kx7.mQ2_pL9vRt4wYb3n\n        phase1: {encryption: [aes256, Aes128-gcm-16], integrity: [sha2-512]}\n        phase2: {encryption: [aes128]}", 1)
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	tu := c.Connections[0].Tunnels[0]
	if got := strings.Join(tu.Phase1.Encryption, ","); got != "AES256,AES128-GCM-16" {
		t.Errorf("phase1 encryption %s", got)
	}
	if got := strings.Join(tu.Phase1.Integrity, ","); got != "SHA2-512" {
		t.Errorf("phase1 integrity %s", got)
	}
	if got := strings.Join(tu.Phase2.Integrity, ","); got != "SHA2-384,SHA2-256" {
		t.Errorf("phase2 integrity defaults for CBC: %s", got)
	}
	if ps := c.Validate(); len(ps) != 0 {
		t.Errorf("problems: %v", Problems(ps))
	}
	// GCM-only phase 2 needs no integrity and gets none.
	y = strings.Replace(minimalYAML, "pre_shared_key: Kx7.mQ2_pL9vRt4wYb3n",
		"pre_shared_key: Kx7.mQ2_pL9vRt4wYb3n\n        phase2: {encryption: [AES256-GCM-16]}", 1)
	if c, err = Parse([]byte(y)); err != nil {
		t.Fatal(err)
	}
	if got := c.Connections[0].Tunnels[0].Phase2.Integrity; len(got) != 0 {
		t.Errorf("GCM-only phase 2 integrity %v, want none", got)
	}
	if ps := c.Validate(); len(ps) != 0 {
		t.Errorf("problems: %v", Problems(ps))
	}
}

func tun(c *Config, j int) *Tunnel { return &c.Connections[0].Tunnels[j] }

func TestValidateRules(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(c *Config)
		path   string // Problem.Path
		msg    string // in Problem.Msg
	}{
		// Gateway.
		{"gateway name", func(c *Config) { c.Gateway.Name = "a/b" }, "gateway.name", "gateway name"},
		{"gateway name empty", func(c *Config) { c.Gateway.Name = "" }, "gateway.name", "gateway name"},
		{"outside interface", func(c *Config) { c.Gateway.Outside.Name = "" }, "gateway.outside.interface", "name the outside NIC"},
		{"inside interface", func(c *Config) { c.Gateway.Inside.Name = "" }, "gateway.inside.interface", "name the inside NIC"},
		{"interface name", func(c *Config) { c.Gateway.Inside.Name = "a-very-long-interface-name" }, "gateway.inside.interface", "Linux interface name"},
		{"same interface", func(c *Config) { c.Gateway.Inside.Name = "eth0" }, "gateway.inside.interface", "different NICs"},
		{"outside address", func(c *Config) { c.Gateway.Outside.Address = netip.Prefix{} }, "gateway.outside.address", "prefix length"},
		{"inside address", func(c *Config) { c.Gateway.Inside.Address = netip.MustParsePrefix("0.0.0.0/0") }, "gateway.inside.address", "unicast"},
		{"next hop", func(c *Config) { c.Gateway.Outside.NextHop = netip.MustParseAddr("224.0.0.1") }, "gateway.outside.next_hop", "unicast"},
		{"next hop family", func(c *Config) { c.Gateway.Outside.NextHop = netip.MustParseAddr("2001:db8::1") }, "gateway.outside.next_hop", "address family"},
		{"cpu", func(c *Config) { c.Gateway.Dataplane.CPUs = []int{-1} }, "gateway.dataplane.cpus[0]", "CPU numbers"},
		{"cpu twice", func(c *Config) { c.Gateway.Dataplane.CPUs = []int{1, 1} }, "gateway.dataplane.cpus[1]", "twice"},
		{"batch", func(c *Config) { c.Gateway.Dataplane.BatchSize = 5000 }, "gateway.dataplane.batch_size", "batch_size"},
		{"ring not a power of two", func(c *Config) { c.Gateway.Dataplane.RingSize = 3000 }, "gateway.dataplane.ring_size", "power of two"},
		{"ring too large", func(c *Config) { c.Gateway.Dataplane.RingSize = 32768 }, "gateway.dataplane.ring_size", "256 to 16384"},
		{"metrics", func(c *Config) { c.Gateway.Observability.ControlMetrics = "localhost" }, "gateway.observability.control_metrics", "host:port"},
		{"metrics port", func(c *Config) { c.Gateway.Observability.GoBGPAPI = "127.0.0.1:99999" }, "gateway.observability.gobgp_api", "port"},
		{"gobgp api exposed", func(c *Config) { c.Gateway.Observability.GoBGPAPI = "0.0.0.0:50051" }, "gateway.observability.gobgp_api", "mutual TLS"},
		{"gobgp api half TLS", func(c *Config) {
			c.Gateway.Observability.GoBGPAPI = "192.0.2.10:50051"
			c.Gateway.Observability.GoBGPAPITLS = &TLSFiles{Cert: "/etc/cgw/c.pem", Key: "/etc/cgw/k.pem"}
		}, "gateway.observability.gobgp_api", "client_ca"},
		{"metrics same", func(c *Config) { c.Gateway.Observability.DataplaneMetrics = c.Gateway.Observability.ControlMetrics }, "gateway.observability.dataplane_metrics", "different"},
		{"socket", func(c *Config) { c.Gateway.Observability.StatusSocket = "control.sock" }, "gateway.observability.status_socket", "absolute"},
		// Connections.
		{"no connections", func(c *Config) { c.Connections = nil }, "connections", "at least one"},
		{"connection name", func(c *Config) { c.Connections[0].Name = "" }, "connections[0].name", "give the connection a name"},
		{"connection name chars", func(c *Config) { c.Connections[0].Name = "vpn 1" }, "connections[0].name", "letters, digits"},
		{"connection name dup", func(c *Config) {
			d := c.Connections[0]
			d.Tunnels = nil
			c.Connections = append(c.Connections, d)
		}, "connections[1].name", "unique"},
		{"routing", func(c *Config) { c.Connections[0].Routing = "ospf" }, "connections[0].routing", `"bgp" or "static"`},
		{"bgp without block", func(c *Config) { c.Connections[0].BGP = nil }, "connections[0].bgp", "add a bgp block"},
		{"bgp with static", func(c *Config) { c.Connections[0].Static = []string{"10.0.0.0/16"} }, "connections[0].static_routes", "only for routing: static"},
		{"static with bgp", func(c *Config) {
			c.Connections[0].Routing = RoutingStatic
			c.Connections[0].Static = []string{"10.0.0.0/16"}
		}, "connections[0].bgp", "remove the bgp block"},
		{"static without routes", func(c *Config) { c.Connections[0].Routing = RoutingStatic; c.Connections[0].BGP = nil }, "connections[0].static_routes", "list the VPC prefixes"},
		{"static route bad", func(c *Config) {
			c.Connections[0].Routing = RoutingStatic
			c.Connections[0].BGP = nil
			c.Connections[0].Static = []string{"10.0.0.0/33"}
		}, "connections[0].static_routes[0]", "prefix"},
		{"local asn 0", func(c *Config) { c.Connections[0].BGP.LocalASN = 0 }, "connections[0].bgp.local_asn", "23456"},
		{"local asn 23456", func(c *Config) { c.Connections[0].BGP.LocalASN = 23456 }, "connections[0].bgp.local_asn", "AS_TRANS"},
		{"peer asn public", func(c *Config) { c.Connections[0].BGP.PeerASN = 3356 }, "connections[0].bgp.peer_asn", "Amazon side"},
		{"peer asn 65535", func(c *Config) { c.Connections[0].BGP.PeerASN = 65535 }, "connections[0].bgp.peer_asn", "Amazon side"},
		{"peer asn 4294967295", func(c *Config) { c.Connections[0].BGP.PeerASN = 4294967295 }, "connections[0].bgp.peer_asn", "Amazon side"},
		{"asn equal", func(c *Config) { c.Connections[0].BGP.LocalASN = 64512 }, "connections[0].bgp.local_asn", "eBGP"},
		{"hold time", func(c *Config) { c.Connections[0].BGP.HoldTime = secs(2) }, "connections[0].bgp.hold_time", "3s–65535s"},
		{"advertise count", func(c *Config) {
			var a []string
			for i := 0; i <= 100; i++ {
				a = append(a, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16).String())
			}
			c.Connections[0].BGP.Advertise = a
		}, "connections[0].bgp.advertise", "at most 100"},
		{"advertise invalid", func(c *Config) { c.Connections[0].BGP.Advertise = []string{"10.0.0.1"} }, "connections[0].bgp.advertise[0]", "IPv4 or IPv6 prefix"},
		{"advertise host bits", func(c *Config) { c.Connections[0].BGP.Advertise = []string{"2001:db8::1/32"} }, "connections[0].bgp.advertise[0]", "write 2001:db8::/32"},
		{"advertise dup", func(c *Config) { c.Connections[0].BGP.Advertise = []string{"10.0.0.0/8", "10.0.0.0/8"} }, "connections[0].bgp.advertise[1]", "already listed"},
		{"one tunnel", func(c *Config) { c.Connections[0].Tunnels = c.Connections[0].Tunnels[:1] }, "connections[0].tunnels", "exactly 2 tunnels"},
		// Tunnels.
		{"tunnel name dup", func(c *Config) { tun(c, 1).Name = tun(c, 0).Name }, "connections[0].tunnels[1].name", "unique"},
		{"aws outside missing", func(c *Config) { tun(c, 0).AWSOutside = netip.Addr{} }, "connections[0].tunnels[0].aws_outside_address", "public address"},
		{"aws outside multicast", func(c *Config) { tun(c, 0).AWSOutside = netip.MustParseAddr("239.1.1.1") }, "connections[0].tunnels[0].aws_outside_address", "unicast"},
		{"aws outside dup", func(c *Config) { tun(c, 1).AWSOutside = tun(c, 0).AWSOutside }, "connections[0].tunnels[1].aws_outside_address", "also used by connections[0].tunnels[0]"},
		{"local outside family", func(c *Config) { tun(c, 0).LocalOutside = netip.MustParseAddr("2001:db8::10") }, "connections[0].tunnels[0].local_outside_address", "address family"},
		{"local outside unspecified", func(c *Config) { tun(c, 0).LocalOutside = netip.MustParseAddr("0.0.0.0") }, "connections[0].tunnels[0].local_outside_address", "unicast"},
		{"local outside missing", func(c *Config) { tun(c, 0).LocalOutside = netip.Addr{} }, "connections[0].tunnels[0].local_outside_address", "set local_outside_address"},
		{"inside missing", func(c *Config) { tun(c, 0).InsideCIDR = netip.Prefix{} }, "connections[0].tunnels[0].inside_cidr", "set inside_cidr"},
		{"inside /29", func(c *Config) { tun(c, 0).InsideCIDR = netip.MustParsePrefix("169.254.44.88/29") }, "connections[0].tunnels[0].inside_cidr", "a /30"},
		{"inside not link-local", func(c *Config) { tun(c, 0).InsideCIDR = netip.MustParsePrefix("10.0.0.0/30") }, "connections[0].tunnels[0].inside_cidr", "within 169.254.0.0/16"},
		{"inside unaligned", func(c *Config) { tun(c, 0).InsideCIDR = netip.MustParsePrefix("169.254.44.90/30") }, "connections[0].tunnels[0].inside_cidr", "write 169.254.44.88/30"},
		{"inside reserved 0", func(c *Config) { tun(c, 0).InsideCIDR = netip.MustParsePrefix("169.254.0.0/30") }, "connections[0].tunnels[0].inside_cidr", "reserved"},
		{"inside reserved 5", func(c *Config) { tun(c, 0).InsideCIDR = netip.MustParsePrefix("169.254.5.252/30") }, "connections[0].tunnels[0].inside_cidr", "reserved"},
		{"inside reserved 169", func(c *Config) { tun(c, 0).InsideCIDR = netip.MustParsePrefix("169.254.169.252/30") }, "connections[0].tunnels[0].inside_cidr", "reserved"},
		{"inside dup", func(c *Config) { tun(c, 1).InsideCIDR = tun(c, 0).InsideCIDR }, "connections[0].tunnels[1].inside_cidr", "own /30"},
		{"psk short", func(c *Config) { tun(c, 1).PreSharedKey = "abcde" }, "connections[0].tunnels[1].pre_shared_key", "tunnel vpn-1-t2: pre_shared_key must be 8–64 characters of letters, digits, '.' or '_'"},
		{"psk long", func(c *Config) { tun(c, 0).PreSharedKey = strings.Repeat("a", 65) }, "connections[0].tunnels[0].pre_shared_key", "8–64"},
		{"psk chars", func(c *Config) { tun(c, 0).PreSharedKey = "abcdefgh-ij" }, "connections[0].tunnels[0].pre_shared_key", "8–64"},
		{"psk zero", func(c *Config) { tun(c, 0).PreSharedKey = "0bcdefghij" }, "connections[0].tunnels[0].pre_shared_key", "not starting with '0'"},
		{"ike version", func(c *Config) { tun(c, 0).IKEVersion = 3 }, "connections[0].tunnels[0].ike_version", "1 or 2"},
		{"ikev1 gcm", func(c *Config) { tun(c, 0).IKEVersion = 1 }, "connections[0].tunnels[0].phase1.encryption", "IKEv1 has no AES-GCM"},
		{"p1 encryption empty", func(c *Config) { tun(c, 0).Phase1.Encryption = nil }, "connections[0].tunnels[0].phase1.encryption", "at least one encryption"},
		{"p1 encryption unknown", func(c *Config) { tun(c, 0).Phase1.Encryption = []string{"AES128", "3DES"} }, "connections[0].tunnels[0].phase1.encryption[1]", "unknown encryption"},
		{"p2 bytes small", func(c *Config) { tun(c, 0).Phase2.LifetimeBytes = 1<<20 - 1 }, "connections[0].tunnels[0].phase2.lifetime_bytes", "at least 1048576 (1 MiB)"},
		{"p2 bytes tiny", func(c *Config) { tun(c, 1).Phase2.LifetimeBytes = 1 }, "connections[0].tunnels[1].phase2.lifetime_bytes", "0 (no byte limit, as AWS)"},
		{"p1 bytes", func(c *Config) { tun(c, 0).Phase1.LifetimeBytes = 1 << 30 }, "connections[0].tunnels[0].phase1.lifetime_bytes", "phase1 has no byte lifetime"},
		{"p2 encryption unknown", func(c *Config) { tun(c, 0).Phase2.Encryption = []string{"chacha20"} }, "connections[0].tunnels[0].phase2.encryption[0]", "unknown encryption"},
		{"p1 integrity unknown", func(c *Config) { tun(c, 0).Phase1.Integrity = []string{"MD5"} }, "connections[0].tunnels[0].phase1.integrity[0]", "unknown integrity"},
		{"p1 integrity empty with gcm", func(c *Config) {
			tun(c, 0).Phase1.Encryption = []string{AES128GCM}
			tun(c, 0).Phase1.Integrity = nil
		}, "connections[0].tunnels[0].phase1.integrity", "PRF"},
		{"p2 integrity empty with cbc", func(c *Config) { tun(c, 0).Phase2.Encryption, tun(c, 0).Phase2.Integrity = []string{AES256}, nil }, "connections[0].tunnels[0].phase2.integrity", "needs at least one integrity"},
		{"p1 dh 5", func(c *Config) { tun(c, 0).Phase1.DHGroups = []int{14, 5} }, "connections[0].tunnels[0].phase1.dh_groups[1]", "2, 14–24"},
		{"p1 dh 1", func(c *Config) { tun(c, 0).Phase1.DHGroups = []int{1} }, "connections[0].tunnels[0].phase1.dh_groups[0]", "2, 14–24"},
		{"p2 dh 25", func(c *Config) { tun(c, 0).Phase2.DHGroups = []int{25} }, "connections[0].tunnels[0].phase2.dh_groups[0]", "2, 5, 14–24"},
		{"p2 dh empty", func(c *Config) { tun(c, 0).Phase2.DHGroups = nil }, "connections[0].tunnels[0].phase2.dh_groups", "PFS"},
		{"p1 lifetime long", func(c *Config) { tun(c, 0).Phase1.Lifetime = secs(28801) }, "connections[0].tunnels[0].phase1.lifetime", "900s–28800s"},
		{"p1 lifetime short", func(c *Config) { tun(c, 0).Phase1.Lifetime = secs(899) }, "connections[0].tunnels[0].phase1.lifetime", "900s–28800s"},
		{"p1 lifetime fraction", func(c *Config) { tun(c, 0).Phase1.Lifetime = Duration(time.Hour + time.Millisecond) }, "connections[0].tunnels[0].phase1.lifetime", "whole seconds"},
		{"p2 lifetime long", func(c *Config) { tun(c, 0).Phase2.Lifetime = secs(3601) }, "connections[0].tunnels[0].phase2.lifetime", "900s–3600s"},
		{"p2 lifetime short", func(c *Config) { tun(c, 0).Phase2.Lifetime = secs(600) }, "connections[0].tunnels[0].phase2.lifetime", "900s–3600s"},
		{"p2 not shorter", func(c *Config) { tun(c, 0).Phase1.Lifetime = secs(1800); tun(c, 0).Phase2.Lifetime = secs(1800) }, "connections[0].tunnels[0].phase2.lifetime", "shorter than phase1"},
		{"margin short", func(c *Config) { tun(c, 0).RekeyMargin = secs(59) }, "connections[0].tunnels[0].rekey_margin", "60s to half"},
		{"margin long", func(c *Config) { tun(c, 0).RekeyMargin = secs(1801) }, "connections[0].tunnels[0].rekey_margin", "(30m0s)"},
		{"fuzz", func(c *Config) { tun(c, 0).RekeyFuzz = 101 }, "connections[0].tunnels[0].rekey_fuzz_percent", "0–100"},
		{"fuzz negative", func(c *Config) { tun(c, 0).RekeyFuzz = -1 }, "connections[0].tunnels[0].rekey_fuzz_percent", "0–100"},
		{"replay small", func(c *Config) { tun(c, 0).ReplayWindow = 32 }, "connections[0].tunnels[0].replay_window", "64–2048"},
		{"replay big", func(c *Config) { tun(c, 0).ReplayWindow = 4096 }, "connections[0].tunnels[0].replay_window", "64–2048"},
		{"dpd interval", func(c *Config) { tun(c, 0).DPD.Interval = Duration(500 * time.Millisecond) }, "connections[0].tunnels[0].dpd.interval", "1s–1h"},
		{"dpd interval long", func(c *Config) { tun(c, 0).DPD.Interval = secs(3601) }, "connections[0].tunnels[0].dpd.interval", "1s–1h"},
		{"dpd retries", func(c *Config) { tun(c, 0).DPD.Retries = -1 }, "connections[0].tunnels[0].dpd.retries", "1–100"},
		{"dpd action", func(c *Config) { tun(c, 0).DPD.Action = "hold" }, "connections[0].tunnels[0].dpd.action", "clear, restart or none"},
		{"nat", func(c *Config) { tun(c, 0).NATTraversal = "yes" }, "connections[0].tunnels[0].nat_traversal", "auto, force or off"},
		{"startup", func(c *Config) { tun(c, 0).StartupAction = "route" }, "connections[0].tunnels[0].startup_action", "start (initiate) or add"},
		{"mtu big", func(c *Config) { tun(c, 0).MTU = 1500 }, "connections[0].tunnels[0].mtu", "576–1446"},
		{"mtu small", func(c *Config) { tun(c, 0).MTU = 500 }, "connections[0].tunnels[0].mtu", "576–1446"},
		{"mss big", func(c *Config) { tun(c, 0).TCPMSS = 1460 }, "connections[0].tunnels[0].tcp_mss", "536–1406"},
		{"mss small", func(c *Config) { tun(c, 0).TCPMSS = 100 }, "connections[0].tunnels[0].tcp_mss", "536–1406"},
		{"prepend", func(c *Config) { tun(c, 0).ASPathPrepend = 11 }, "connections[0].tunnels[0].as_path_prepend", "0–10"},
		{"prepend static", func(c *Config) {
			c.Connections[0].Routing = RoutingStatic
			c.Connections[0].BGP = nil
			c.Connections[0].Static = []string{"10.0.0.0/16"}
			tun(c, 0).ASPathPrepend = 1
		}, "connections[0].tunnels[0].as_path_prepend", "needs routing: bgp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := minimal(t)
			tc.mutate(c)
			ps := c.Validate()
			for _, p := range ps {
				if p.Path == tc.path && strings.Contains(p.Msg, tc.msg) {
					if len(ps) > 2 {
						t.Errorf("one bad value gave %d problems:\n%v", len(ps), Problems(ps))
					}
					return
				}
			}
			t.Fatalf("want a problem at %s containing %q, got:\n%v", tc.path, tc.msg, Problems(ps))
		})
	}
}

// The good values at the edges of every range pass.
func TestValidateBoundsAccepted(t *testing.T) {
	c := minimal(t)
	t0, t1 := tun(c, 0), tun(c, 1)
	t0.PreSharedKey = "a.b_c123"
	t1.PreSharedKey = strings.Repeat("Z", 64)
	t0.Phase1.Lifetime, t0.Phase2.Lifetime = secs(900+1), secs(900)
	t0.RekeyMargin, t0.RekeyFuzz = secs(60), 0
	t1.Phase2.Lifetime, t1.RekeyMargin, t1.RekeyFuzz = secs(3600), secs(1800), 100
	t0.ReplayWindow, t1.ReplayWindow = 64, 2048
	t0.DPD = DPD{Interval: secs(1), Retries: 1, Action: DPDRestart}
	t1.DPD = DPD{Interval: secs(3600), Retries: 100, Action: DPDNone}
	t0.NATTraversal, t1.NATTraversal = NATForce, NATOff
	t0.MTU, t0.TCPMSS, t1.MTU, t1.TCPMSS = 576, 536, 1446, 1406
	t0.StartupAction, t0.ASPathPrepend, t1.ASPathPrepend = StartupAdd, 10, 0
	t0.IKEVersion, t0.Phase1.Encryption = 1, []string{"aes128", "AES256"}
	t0.InsideCIDR = netip.MustParsePrefix("169.254.6.0/30")
	t1.InsideCIDR = netip.MustParsePrefix("169.254.255.252/30")
	t0.Phase2.Encryption, t0.Phase2.Integrity = []string{AES256GCM}, nil
	t1.Phase1.DHGroups, t1.Phase2.DHGroups = []int{2, 24}, []int{5}
	t0.Phase2.LifetimeBytes, t1.Phase2.LifetimeBytes = 1<<20, 1<<63
	b := c.Connections[0].BGP
	b.LocalASN, b.PeerASN, b.HoldTime = 4294967295, 4294967294, secs(3)
	b.Advertise = []string{"2001:db8::/32", "0.0.0.0/0"}
	c.Gateway.Dataplane.CPUs = []int{0, 1}
	if ps := c.Validate(); len(ps) != 0 {
		t.Fatalf("edge values rejected:\n%v", Problems(ps))
	}
	for _, asn := range []uint32{64512, 65534, 4200000000, 7224, 9059, 10124, 17493} {
		b.PeerASN = asn
		if ps := c.Validate(); len(ps) != 0 {
			t.Errorf("peer ASN %d rejected: %v", asn, Problems(ps))
		}
	}
	b.PeerASN, b.LocalASN = 64512, 3356 // public customer ASN is fine
	if ps := c.Validate(); len(ps) != 0 {
		t.Errorf("public local ASN rejected: %v", Problems(ps))
	}
}

func TestPSKNeverPrinted(t *testing.T) {
	c := minimal(t)
	secret := "0SecretKeyDoNotPrint"
	tun(c, 0).PreSharedKey = secret
	tun(c, 1).PreSharedKey = "Secret-Key-Do-Not-Print"
	err := c.Check()
	if err == nil {
		t.Fatal("bad PSKs accepted")
	}
	s := err.Error()
	for _, k := range []string{secret, "Secret-Key", "SecretKey"} {
		if strings.Contains(s, k) {
			t.Errorf("problem text shows the key: %s", s)
		}
	}
	if !strings.Contains(s, `(got a key (not shown))`) || !strings.Contains(s, "configuration has 2 problems:") {
		t.Errorf("problem text: %s", s)
	}
	var ps Problems
	if !asProblems(err, &ps) || len(ps) != 2 {
		t.Errorf("Check error is not Problems: %T", err)
	}
}

func asProblems(err error, ps *Problems) bool {
	p, ok := err.(Problems)
	*ps = p
	return ok
}

func TestProblemString(t *testing.T) {
	p := Problem{Path: "connections[0].tunnels[1].pre_shared_key", Got: RedactPSK("abcde"),
		Msg: "tunnel vpn-1-t2: pre_shared_key must be 8–64 characters of letters, digits, '.' or '_'"}
	want := `connections[0].tunnels[1].pre_shared_key: tunnel vpn-1-t2: pre_shared_key must be 8–64 characters of letters, digits, '.' or '_' (got a key (not shown))`
	if p.String() != want {
		t.Errorf("\n got %s\nwant %s", p, want)
	}
	if RedactPSK("") != "nothing" {
		t.Errorf("empty: %s", RedactPSK(""))
	}
	if got := (Problems{p}).Error(); !strings.HasPrefix(got, "configuration has 1 problem:\n  connections[0]") {
		t.Errorf("one problem: %s", got)
	}
}

// Several connections (CloudHub) share one namespace of tunnel names,
// inside CIDRs and AWS endpoints.
func TestValidateAcrossConnections(t *testing.T) {
	c := minimal(t)
	d := c.Connections[0]
	d.Name = "vpn-2"
	d.BGP = &BGP{LocalASN: 65001, PeerASN: 64512, HoldTime: secs(30)}
	d.Tunnels = append([]Tunnel(nil), d.Tunnels...)
	d.Tunnels[0].Name, d.Tunnels[1].Name = "vpn-2-t1", "vpn-2-t2"
	d.Tunnels[0].AWSOutside = netip.MustParseAddr("203.0.113.3")
	d.Tunnels[1].InsideCIDR = netip.MustParsePrefix("169.254.46.0/30")
	c.Connections = append(c.Connections, d)
	ps := c.Validate()
	want := map[string]bool{
		"connections[1].tunnels[0].inside_cidr":         true,
		"connections[1].tunnels[1].aws_outside_address": true,
	}
	if len(ps) != len(want) {
		t.Fatalf("got %v", Problems(ps))
	}
	for _, p := range ps {
		if !want[p.Path] || !strings.Contains(p.Msg, "connections[0].tunnels[") {
			t.Errorf("unexpected %v", p)
		}
	}
}

func TestTunnelLookup(t *testing.T) {
	c := minimal(t)
	cn, tu, ok := c.Tunnel("vpn-1-t2")
	if !ok || cn != &c.Connections[0] || tu != &c.Connections[0].Tunnels[1] {
		t.Fatalf("Tunnel(vpn-1-t2) = %v %v %v", cn, tu, ok)
	}
	if _, _, ok := c.Tunnel("vpn-1-t3"); ok {
		t.Error("found a tunnel that does not exist")
	}
}

// gateway.testing lowers only the lifetime/margin minimums and admits
// group 31; without it the same values are refused, and each hatch that
// is on is a warning.
func TestTestingEscapeHatches(t *testing.T) {
	c := minimal(t)
	t0 := tun(c, 0)
	t0.Phase1.Lifetime, t0.Phase2.Lifetime, t0.RekeyMargin, t0.RekeyFuzz = secs(60), secs(30), secs(5), 50
	t0.Phase1.DHGroups, t0.Phase2.DHGroups = []int{31}, []int{31}
	paths := func() string {
		var ps []string
		for _, p := range c.Validate() {
			ps = append(ps, p.Path)
		}
		return strings.Join(ps, " ")
	}
	want := "connections[0].tunnels[0].phase1.dh_groups[0] connections[0].tunnels[0].phase1.lifetime " +
		"connections[0].tunnels[0].phase2.dh_groups[0] connections[0].tunnels[0].phase2.lifetime connections[0].tunnels[0].rekey_margin"
	if got := paths(); got != want {
		t.Errorf("without gateway.testing: problems at %s, want %s", got, want)
	}
	if ps := c.Validate(); !strings.Contains(Problems(ps).Error(), "only in a lab, with gateway.testing.non_aws_dh_groups") {
		t.Errorf("group 31's problem does not name the lab setting: %v", Problems(ps))
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings without gateway.testing: %v", w)
	}
	c.Gateway.Testing = Testing{ShortLifetimes: true, NonAWSGroups: true}
	if ps := c.Validate(); len(ps) != 0 {
		t.Fatalf("lab lifetimes and group 31 refused with gateway.testing: %v", Problems(ps))
	}
	w := c.Warnings()
	if len(w) != 2 || w[0].Path != "gateway.testing.short_lifetimes" || w[1].Path != "gateway.testing.non_aws_dh_groups" || !strings.Contains(w[0].Msg, "FOR LABS AND TESTS ONLY") {
		t.Errorf("warnings = %v", w)
	}
	// Every other rule stays: below the lab minimums, margin over half
	// the lifetime, phase 2 not shorter than phase 1.
	t0.Phase1.Lifetime, t0.Phase2.Lifetime, t0.RekeyMargin = secs(9), secs(9), secs(1)
	want = "connections[0].tunnels[0].phase1.lifetime connections[0].tunnels[0].phase2.lifetime connections[0].tunnels[0].phase2.lifetime connections[0].tunnels[0].rekey_margin"
	if got := paths(); got != want {
		t.Errorf("under the lab minimums: problems at %s, want %s", got, want)
	}
	t0.Phase1.Lifetime, t0.Phase2.Lifetime, t0.RekeyMargin = secs(60), secs(30), secs(16)
	if got := paths(); got != "connections[0].tunnels[0].rekey_margin" {
		t.Errorf("margin over half the lifetime: problems at %s", got)
	}
	// The section round-trips and is absent when off.
	b, err := Marshal(c)
	if err != nil || !strings.Contains(string(b), "short_lifetimes: true") {
		t.Errorf("marshalled config lacks gateway.testing: %v\n%s", err, b)
	}
	c.Gateway.Testing = Testing{}
	if b, _ := Marshal(c); strings.Contains(string(b), "testing") {
		t.Errorf("gateway.testing written while off:\n%s", b)
	}
}

// TestPSKNeverShown: what loading and validating a configuration with a
// bad pre-shared key prints (cgw-control logs it, cgwctl shows it) is the
// same whatever the key: nothing of its length or first character leaks.
func TestPSKNeverShown(t *testing.T) {
	var first string
	for _, k := range []string{"Qx", "0Kx7.mQ2_pL9vRt4wYb3n", "Kx7-mQ2", strings.Repeat("Z", 65), "9abc def"} {
		path := filepath.Join(t.TempDir(), "cgw.yaml")
		y := strings.Replace(minimalYAML, "Kx7.mQ2_pL9vRt4wYb3n", strconv.Quote(k), 1)
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			t.Fatalf("key %q: %v", k, err)
		}
		var out strings.Builder
		log := slog.New(slog.NewTextHandler(&out, nil))
		if err := c.Check(); err != nil {
			log.Error(err.Error())
		} else {
			t.Fatalf("key %q accepted", k)
		}
		for _, w := range c.Warnings() {
			log.Warn(w.Msg, "setting", w.Path, "got", w.Got)
		}
		got := strings.SplitN(out.String(), " level=", 2)[1] // drop the time
		for _, leak := range []string{k, strconv.Itoa(len(k)) + " char", strconv.Quote(k[:1]), "characters starting with"} {
			if strings.Contains(got, leak) {
				t.Errorf("key %q: output shows %q:\n%s", k, leak, got)
			}
		}
		if first == "" {
			first = got
		} else if got != first {
			t.Errorf("output depends on the key:\n%s\nvs\n%s", first, got)
		}
	}
}
