package rib_test

import (
	"fmt"
	"net/netip"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/control/rib"
)

// printSink stands in for a maps.Writer and prints each change.
type printSink struct{}

func (printSink) AddRoute(p netip.Prefix, r maps.Route) error {
	fmt.Printf("add %v via %d backup %d\n", p, r.TunnelId, r.BackupTunnelId)
	return nil
}

func (printSink) ReplaceRoute(p netip.Prefix, r maps.Route) error {
	fmt.Printf("replace %v via %d backup %d\n", p, r.TunnelId, r.BackupTunnelId)
	return nil
}

func (printSink) DeleteRoute(p netip.Prefix) error {
	fmt.Printf("delete %v\n", p)
	return nil
}

func Example() {
	r, _ := rib.New(printSink{}, []rib.Tunnel{
		{ID: 1, Name: "vpn1-t1", Connection: "vpn1"},
		{ID: 2, Name: "vpn1-t2", Connection: "vpn1"},
	}, rib.Options{})
	r.SetTunnelUp(1, true)
	r.SetTunnelUp(2, true)

	vpc := netip.MustParsePrefix("198.19.0.0/24")
	// AWS announces the VPC on both tunnels, with a longer path on t1.
	r.UpdateBGP(1, []rib.BGPRoute{{Prefix: vpc, ASPath: []uint32{64512, 64512}, ASPathLen: 2}}, nil)
	r.UpdateBGP(2, []rib.BGPRoute{{Prefix: vpc, ASPath: []uint32{64512}, ASPathLen: 1}}, nil)
	ex, _ := r.Explain(vpc)
	fmt.Println("why:", ex.Reason)

	// Tunnel 2 goes down: XDP already used the backup; the RIB catches up.
	r.SetTunnelUp(2, false)
	// A static route beats BGP.
	r.SetStatic("vpn1", []netip.Prefix{vpc})
	ex, _ = r.Explain(vpc)
	fmt.Println("why:", ex.Reason)
	for _, c := range ex.Candidates {
		fmt.Println(" ", c)
	}
	// Output:
	// add 198.19.0.0/24 via 1 backup 0
	// replace 198.19.0.0/24 via 2 backup 1
	// why: shorter AS_PATH (1 < 2)
	// replace 198.19.0.0/24 via 1 backup 0
	// why: static route beats BGP
	//   static via vpn1-t1 (selected)
	//   bgp via vpn1-t1 as_path [64512 64512] origin IGP med 0
	//   static via vpn1-t2 (tunnel down)
	//   bgp via vpn1-t2 as_path [64512] origin IGP med 0 (tunnel down)
}
