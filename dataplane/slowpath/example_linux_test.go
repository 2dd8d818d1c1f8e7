package slowpath_test

import (
	"errors"
	"net/netip"
	"os"

	"github.com/cgw-project/cgw/dataplane/slowpath"
)

// The dataplane keeps one TUN per tunnel and a reader per TUN that hands
// the host's own packets (BGP, pings) to the encrypt path.
func Example_reader() {
	m := slowpath.NewManager("cgw")
	defer m.Close()
	added, err := m.Reconcile([]slowpath.Config{
		{Name: "cgw-vpn1-t1", Addrs: []netip.Prefix{netip.MustParsePrefix("169.254.44.90/30")}},
		{Name: "cgw-vpn1-t2", Addrs: []netip.Prefix{netip.MustParsePrefix("169.254.45.2/30")}},
	})
	if err != nil {
		panic(err) // names each interface that could not be made
	}
	const headroom = 64 // outer IPv4 + UDP + ESP header + IV, prepended in place
	for _, d := range added {
		go func() {
			bufs := make([][]byte, d.BatchSize())
			for i := range bufs {
				bufs[i] = make([]byte, headroom+slowpath.MTU)
			}
			sizes := make([]int, len(bufs))
			for {
				n, err := d.Read(bufs, sizes, headroom)
				if errors.Is(err, os.ErrClosed) {
					return // removed by Reconcile or Close
				}
				_ = bufs[:n] // encrypt bufs[i][headroom:headroom+sizes[i]] for d's tunnel
			}
		}()
	}
}
