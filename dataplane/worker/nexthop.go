package worker

import (
	"encoding/binary"
	"net/netip"

	"github.com/cgw-project/cgw/dataplane/neigh"
	"github.com/cgw-project/cgw/dataplane/packet"
	"github.com/cgw-project/cgw/dataplane/tables"
)

// nextHopOf says what nextHop resolves a packet's next hop for.
type nextHopOf uint8

const (
	hopIPDst        nextHopOf = iota // the packet's IP destination
	hopTunnelRemote                  // the outer destination: its tunnel's remote (tunnelRemote)
)

// hopCache is the neighbour stages' state across the packets of a batch:
// the neighbour table loaded once, the last next hop and its MAC, hits
// and misses. A run of packets to one destination (an IPv4 address or a
// tunnel) is looked up once: the run is recognized by a 64-bit key,
// without building a netip.Addr per packet. key 0: no run yet, or an IPv6
// destination, compared as addr.
type hopCache struct {
	tb           *neigh.Table
	key          uint64
	addr         netip.Addr
	mac          [6]byte
	hits, misses uint64
}

// nextHop is the neigh_outside and neigh_inside stages: it finds the MAC
// of pk's next hop on ifindex into c.mac, or says why not (NoNeighbour,
// asking the kernel to resolve it, or WrongInterface).
func (p *Pipeline) nextHop(c *hopCache, pk *Packet, how nextHopOf, ifindex int) Reason {
	ip := pk.Buf[pk.Off : pk.Off+pk.Len]
	var key uint64
	if how == hopTunnelRemote {
		key = 2<<32 | uint64(pk.t.ID)
	} else if ip[0]>>4 == 4 {
		key = 1<<32 | uint64(binary.BigEndian.Uint32(ip[packet.IPv4OffDst:packet.IPv4OffDst+4]))
	}
	if key != 0 && key == c.key {
		c.hits++
		return 0
	}
	var d netip.Addr
	if how == hopTunnelRemote {
		d = tunnelRemote(pk.t)
	} else {
		d = dstAddr(ip)
	}
	if key == 0 && c.key == 0 && c.addr.IsValid() && d == c.addr {
		c.hits++
		return 0
	}
	hop, mac, ok := c.tb.MACFor(d)
	r := Reason(0)
	switch {
	case !ok:
		r = NoNeighbour
		if hop.Addr.IsValid() {
			p.cfg.Neighbours.Resolve(hop.Ifindex, hop.Addr)
		}
	case hop.Ifindex != ifindex:
		r = WrongInterface
	}
	if r != 0 {
		c.misses++
		c.key, c.addr = 0, netip.Addr{}
		return r
	}
	c.hits++
	c.key, c.addr, c.mac = key, d, mac
	return 0
}

// tunnelRemote is the outer destination of a tunnel's packets: its
// outbound SA's remote, else the tunnel table's.
func tunnelRemote(t *tables.Tunnel) netip.Addr {
	if t.Out != nil {
		return t.Out.Remote
	}
	return t.Remote
}

// pushEther prepends the Ethernet header to a packet whose next hop is mac.
func pushEther(pk *Packet, mac, src *[6]byte) {
	et := uint16(etherTypeIP4)
	if pk.Buf[pk.Off]>>4 == 6 {
		et = etherTypeIP6
	}
	pk.Off -= EthLen
	pk.Len += EthLen
	h := pk.Buf[pk.Off : pk.Off+EthLen]
	copy(h[0:6], mac[:])
	copy(h[6:12], src[:])
	binary.BigEndian.PutUint16(h[12:], et)
}
