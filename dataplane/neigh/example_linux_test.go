package neigh_test

import (
	"net/netip"

	"github.com/cgw-project/cgw/dataplane/neigh"
)

// A worker's decrypt path: one table load per batch, a lookup per packet,
// the misses handed to the kernel, the counts added once per batch.
func Example_worker() {
	c, err := neigh.New(neigh.Options{Netns: "cgw"})
	if err != nil {
		panic(err) // the error names the namespace or netlink problem
	}
	defer c.Close()

	dsts := []netip.Addr{netip.MustParseAddr("198.18.0.20"), netip.MustParseAddr("198.19.0.7")}
	t := c.Table()
	var hits, misses uint64
	for _, dst := range dsts {
		hop, mac, ok := t.MACFor(dst)
		if !ok {
			misses++
			if hop.Ifindex != 0 {
				c.Resolve(hop.Ifindex, hop.Addr) // and pass the packet to the kernel
			}
			continue
		}
		hits++
		_ = mac // write it as the Ethernet destination, send on hop.Ifindex
	}
	c.Account(hits, misses)
}
