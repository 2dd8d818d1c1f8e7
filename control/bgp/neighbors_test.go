package bgp

import (
	"net/netip"
	"slices"
	"testing"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/cgw-project/cgw/control/rib"
)

// TestSetNeighbors: a reload adds a connection's neighbours (down until
// TunnelUp), removes another's, keeps an unchanged one as it is, and the
// export policy and originated prefixes follow.
func TestSetNeighbors(t *testing.T) {
	r, err := rib.New(nopSink{}, []rib.Tunnel{{ID: 1, Name: "vpn-t1", Connection: "vpn"}, {ID: 2, Name: "vpn-t2", Connection: "vpn"},
		{ID: 3, Name: "b-t1", Connection: "b"}}, rib.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(r, Options{RouterID: netip.MustParseAddr("192.0.2.10"), GRPCAddress: "-"}, testNeighbors())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := s.TunnelUp(1); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	kept := s.byID[1]
	s.mu.Unlock()
	nb := testNeighbors()[:1] // vpn-t2 removed
	nb = append(nb, Neighbor{Tunnel: 3, Name: "b-t1", Connection: "b", Local: netip.MustParseAddr("169.254.46.2"), Peer: netip.MustParseAddr("169.254.46.1"),
		LocalASN: 65001, PeerASN: 64512, Advertise: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}})
	if err := s.SetNeighbors(nb); err != nil {
		t.Fatal(err)
	}
	peers := map[string]*api.Peer{}
	s.Server().ListPeer(t.Context(), &api.ListPeerRequest{}, func(p *api.Peer) { peers[p.Conf.NeighborAddress] = p })
	if len(peers) != 2 || peers["169.254.45.9"] != nil {
		t.Fatalf("peers after reload: %v", peers)
	}
	// GoBGP applies EnablePeer asynchronously: ask our own state whether
	// the unchanged neighbour was deleted and added again.
	s.mu.Lock()
	same := s.byID[1] == kept && kept.enabled
	s.mu.Unlock()
	if p := peers["169.254.44.89"]; p == nil || !same {
		t.Errorf("the unchanged, enabled neighbour was reset: %v", p)
	}
	if p := peers["169.254.46.1"]; p == nil || p.State.AdminState == api.PeerState_UP || p.Conf.LocalAsn != 65001 {
		t.Errorf("the added neighbour: %v (want admin down until its tunnel is up, local AS 65001)", p)
	}
	if _, ok := s.State(2); ok {
		t.Errorf("the removed neighbour still has a state")
	}
	var as []*api.PolicyAssignment
	s.Server().ListPolicyAssignment(t.Context(), &api.ListPolicyAssignmentRequest{Name: "global", Direction: api.PolicyDirection_EXPORT}, func(a *api.PolicyAssignment) { as = append(as, a) })
	var names []string
	for _, st := range as[0].Policies[0].Statements {
		names = append(names, st.Name)
	}
	if !slices.Equal(names, []string{"cgw-export-vpn-t1", "cgw-export-b-t1"}) {
		t.Errorf("export statements %v", names)
	}
	var got []string
	s.Server().ListPath(t.Context(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: ipv4Unicast()}, func(d *api.Destination) { got = append(got, d.Prefix) })
	slices.Sort(got)
	if !slices.Equal(got, []string{"198.18.0.0/24", "198.18.1.0/24"}) {
		t.Errorf("originated %v", got)
	}
	// Removing the last neighbour of a prefix withdraws it.
	if err := s.SetNeighbors(nb[1:]); err != nil {
		t.Fatal(err)
	}
	got = nil
	s.Server().ListPath(t.Context(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: ipv4Unicast()}, func(d *api.Destination) { got = append(got, d.Prefix) })
	if !slices.Equal(got, []string{"198.18.1.0/24"}) {
		t.Errorf("originated after removing vpn: %v", got)
	}
}
