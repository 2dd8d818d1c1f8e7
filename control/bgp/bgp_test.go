package bgp

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/rib"
)

func TestFlattenASPath(t *testing.T) {
	as, n := flattenASPath([]*api.AsSegment{
		{Type: api.AsSegment_AS_CONFED_SEQUENCE, Numbers: []uint32{65001}},
		{Type: api.AsSegment_AS_SEQUENCE, Numbers: []uint32{64512, 7224}},
		{Type: api.AsSegment_AS_SET, Numbers: []uint32{1, 2, 3}},
	})
	if !slices.Equal(as, []uint32{65001, 64512, 7224, 1, 2, 3}) || n != 3 {
		t.Fatalf("got %v length %d, want length 3 (sequence 2 + set 1, confederation 0)", as, n)
	}
}

func TestDecodePath(t *testing.T) {
	nlri, _ := anypb.New(&api.IPAddressPrefix{Prefix: "198.19.0.0", PrefixLen: 24})
	origin, _ := anypb.New(&api.OriginAttribute{Origin: 1})
	path, _ := anypb.New(&api.AsPathAttribute{Segments: []*api.AsSegment{{Type: api.AsSegment_AS_SEQUENCE, Numbers: []uint32{64512, 64512}}}})
	med, _ := anypb.New(&api.MultiExitDiscAttribute{Med: 100})
	nh, _ := anypb.New(&api.NextHopAttribute{NextHop: "169.254.44.89"})
	r, ok := decodePath(&api.Path{Nlri: nlri, Pattrs: []*anypb.Any{origin, path, med, nh}})
	if !ok {
		t.Fatal("not decoded")
	}
	want := rib.BGPRoute{Prefix: netip.MustParsePrefix("198.19.0.0/24"), ASPath: []uint32{64512, 64512}, ASPathLen: 2, Origin: rib.OriginEGP, MED: 100, NextHop: netip.MustParseAddr("169.254.44.89")}
	if r.Prefix != want.Prefix || !slices.Equal(r.ASPath, want.ASPath) || r.ASPathLen != 2 || r.Origin != want.Origin || r.MED != 100 || r.NextHop != want.NextHop {
		t.Fatalf("decoded %+v, want %+v", r, want)
	}
	// No ORIGIN: treated as the least preferred.
	r, _ = decodePath(&api.Path{Nlri: nlri})
	if r.Origin != rib.OriginIncomplete {
		t.Fatalf("missing origin decoded as %v", r.Origin)
	}
	bad, _ := anypb.New(&api.IPAddressPrefix{Prefix: "198.19.0.0", PrefixLen: 33})
	if _, ok := decodePath(&api.Path{Nlri: bad}); ok {
		t.Fatal("a /33 was accepted")
	}
}

const yamlConfig = `
gateway:
  name: gw1
  outside: {interface: eth0, address: 192.0.2.10/24}
  inside: {interface: eth1, address: 198.18.0.1/24}
connections:
  - name: vpn1
    routing: bgp
    bgp: {local_asn: 65000, peer_asn: 64512, hold_time: 30s, advertise: [198.18.0.0/24, 198.18.1.7/24]}
    tunnels:
      - {aws_outside_address: 203.0.113.1, inside_cidr: 169.254.44.88/30, pre_shared_key: abcdefgh1}
      - {aws_outside_address: 203.0.113.2, inside_cidr: 169.254.45.8/30, pre_shared_key: abcdefgh2, as_path_prepend: 2}
  - name: vpn2
    routing: static
    static_routes: [198.19.9.0/24]
    tunnels:
      - {aws_outside_address: 203.0.113.3, inside_cidr: 169.254.46.8/30, pre_shared_key: abcdefgh3}
      - {aws_outside_address: 203.0.113.4, inside_cidr: 169.254.47.8/30, pre_shared_key: abcdefgh4}
`

func TestNeighborsFromConfig(t *testing.T) {
	cfg, err := config.Parse([]byte(yamlConfig))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]uint32{}
	for i, c := range cfg.Connections {
		for j, tu := range c.Tunnels {
			ids[tu.Name] = uint32(2*i + j + 1)
		}
	}
	nb, err := NeighborsFromConfig(cfg, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(nb) != 2 {
		t.Fatalf("%d neighbours, want the 2 of the BGP connection", len(nb))
	}
	n := nb[1]
	if n.Tunnel != 2 || n.Local != netip.MustParseAddr("169.254.45.10") || n.Peer != netip.MustParseAddr("169.254.45.9") ||
		n.LocalASN != 65000 || n.PeerASN != 64512 || n.HoldTime != 30*time.Second || n.Prepend != 2 ||
		!slices.Equal(n.Advertise, []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("198.18.1.0/24")}) {
		t.Fatalf("neighbour %+v", n)
	}
	delete(ids, cfg.Connections[0].Tunnels[0].Name)
	if _, err := NeighborsFromConfig(cfg, ids); err == nil || !strings.Contains(err.Error(), "no tunnel id") {
		t.Fatalf("missing id: %v", err)
	}
	cfg.Connections[0].BGP.Advertise = []string{"2001:db8::/48"}
	if _, err := NeighborsFromConfig(cfg, map[string]uint32{"vpn1-t1": 1, "vpn1-t2": 2}); err == nil || !strings.Contains(err.Error(), "IPv4") {
		t.Fatalf("IPv6 advertisement: %v", err)
	}
}

type nopSink struct{}

func (nopSink) AddRoute(netip.Prefix, maps.Route) error     { return nil }
func (nopSink) ReplaceRoute(netip.Prefix, maps.Route) error { return nil }
func (nopSink) DeleteRoute(netip.Prefix) error              { return nil }

func testNeighbors() []Neighbor {
	adv := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}
	return []Neighbor{
		{Tunnel: 1, Name: "vpn-t1", Connection: "vpn", Local: netip.MustParseAddr("169.254.44.90"), Peer: netip.MustParseAddr("169.254.44.89"), LocalASN: 65000, PeerASN: 64512, Advertise: adv},
		{Tunnel: 2, Name: "vpn-t2", Connection: "vpn", Local: netip.MustParseAddr("169.254.45.10"), Peer: netip.MustParseAddr("169.254.45.9"), LocalASN: 65000, PeerASN: 64512, Advertise: adv, Prepend: 3},
	}
}

func TestStartChecks(t *testing.T) {
	r, err := rib.New(nopSink{}, []rib.Tunnel{{ID: 1, Name: "vpn-t1", Connection: "vpn"}, {ID: 2, Name: "vpn-t2", Connection: "vpn"}, {ID: 3, Name: "st-t1", Connection: "st"}}, rib.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := netip.MustParseAddr("192.0.2.10")
	bad := func(what string, opt Options, nb []Neighbor, want string) {
		t.Helper()
		s, err := Start(r, opt, nb)
		if err == nil {
			s.Stop()
			t.Fatalf("%s: accepted", what)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: error %q, want it to mention %q", what, err, want)
		}
	}
	bad("IPv6 router id", Options{RouterID: netip.MustParseAddr("2001:db8::1"), GRPCAddress: "-"}, testNeighbors(), "router id")
	bad("no neighbours", Options{RouterID: id, GRPCAddress: "-"}, nil, "no BGP neighbours")
	nb := testNeighbors()
	nb[1].PeerASN = 65000
	bad("iBGP", Options{RouterID: id, GRPCAddress: "-"}, nb, "eBGP")
	nb = testNeighbors()
	nb[1].Peer = nb[0].Peer
	bad("same peer", Options{RouterID: id, GRPCAddress: "-"}, nb, "same AWS inside address")
	nb = testNeighbors()
	nb[1].HoldTime = time.Second
	bad("hold time", Options{RouterID: id, GRPCAddress: "-"}, nb, "hold time")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bad("gRPC port taken", Options{RouterID: id, GRPCAddress: l.Addr().String()}, testNeighbors(), "gobgp_api")
}

// TestPolicyAndTunnels starts a Speaker whose neighbours stay down (no
// namespace needed) and checks the export policy GoBGP was given.
func TestPolicyAndTunnels(t *testing.T) {
	r, err := rib.New(nopSink{}, []rib.Tunnel{{ID: 1, Name: "vpn-t1", Connection: "vpn"}, {ID: 2, Name: "vpn-t2", Connection: "vpn"}, {ID: 3, Name: "st-t1", Connection: "st"}}, rib.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(r, Options{RouterID: netip.MustParseAddr("192.0.2.10"), GRPCAddress: "-"}, testNeighbors())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	var as []*api.PolicyAssignment
	if err := s.Server().ListPolicyAssignment(t.Context(), &api.ListPolicyAssignmentRequest{Name: "global", Direction: api.PolicyDirection_EXPORT}, func(a *api.PolicyAssignment) { as = append(as, a) }); err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].DefaultAction != api.RouteAction_REJECT || len(as[0].Policies) != 1 {
		t.Fatalf("export assignment %v", as)
	}
	st := as[0].Policies[0].Statements
	if len(st) != 2 || st[0].Actions.AsPrepend != nil || st[1].Actions.AsPrepend.GetRepeat() != 3 || st[1].Actions.AsPrepend.GetAsn() != 65000 {
		t.Fatalf("export statements %v", st)
	}
	var peers []*api.Peer
	s.Server().ListPeer(t.Context(), &api.ListPeerRequest{}, func(p *api.Peer) { peers = append(peers, p) })
	if len(peers) != 2 {
		t.Fatalf("%d peers", len(peers))
	}
	for _, p := range peers {
		if p.Timers.Config.HoldTime != 30 || p.Timers.Config.KeepaliveInterval != 10 || !p.Conf.AdminDown {
			t.Fatalf("peer %v: timers %v admin down %v", p.Conf.NeighborAddress, p.Timers.Config, p.Conf.AdminDown)
		}
	}
	// A tunnel without BGP (static routing) goes through the same calls.
	if err := s.TunnelUp(3); err != nil {
		t.Fatal(err)
	}
	if err := s.TunnelDown(3); err != nil {
		t.Fatal(err)
	}
	if err := s.TunnelUp(9); err == nil {
		t.Fatal("unknown tunnel accepted")
	}
	if st, ok := s.State(1); !ok || st != "idle" {
		t.Fatalf("state %q", st)
	}
}
