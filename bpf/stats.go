package bpf

import "fmt"

// statNames label xdp_stats entries (e.g. as a Prometheus "reason" label).
// TestStatNames keeps this in step with enum stat in cgw_maps.h.
var statNames = [...]string{
	CgwStatOutRedirect:      "out_redirect",
	CgwStatOutDropNoSocket:  "out_drop_no_socket",
	CgwStatOutUnknownSpi:    "out_unknown_spi",
	CgwStatOutNotLocal:      "out_not_local",
	CgwStatOutIke:           "out_ike",
	CgwStatOutKeepalive:     "out_keepalive",
	CgwStatOutFragment:      "out_fragment",
	CgwStatOutShort:         "out_short",
	CgwStatOutArp:           "out_arp",
	CgwStatOutOther:         "out_other",
	CgwStatInRedirect:       "in_redirect",
	CgwStatInDropNoSocket:   "in_drop_no_socket",
	CgwStatInNoMeta:         "in_no_meta",
	CgwStatInNoRoute:        "in_no_route",
	CgwStatInDropTunnelDown: "in_drop_tunnel_down",
	CgwStatInLocal:          "in_local",
	CgwStatInNd:             "in_nd",
	CgwStatInArp:            "in_arp",
	CgwStatInShort:          "in_short",
	CgwStatInOther:          "in_other",
}

// String names a decision counter: the C enumerator's name.
func (s CgwStat) String() string {
	if int(s) < len(statNames) && statNames[s] != "" {
		return statNames[s]
	}
	return fmt.Sprintf("stat_%d", uint32(s))
}

// Stats returns the XDP decision counters summed over CPUs, indexed by
// CgwStat.
func (o *Objects) Stats() ([CgwStatNumStats]uint64, error) {
	var out [CgwStatNumStats]uint64
	var perCPU []uint64
	for i := range out {
		if err := o.XdpStats.Lookup(uint32(i), &perCPU); err != nil {
			return out, fmt.Errorf("bpf: reading xdp_stats[%d]: %w", i, err)
		}
		for _, v := range perCPU {
			out[i] += v
		}
	}
	return out, nil
}
