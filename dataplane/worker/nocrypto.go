package worker

import (
	"net/netip"

	"github.com/cgw-project/cgw/dataplane/tables"
)

// Config.NoCrypto, the benchmark's baseline: the stages of a gateway
// with ESP switched off, so a benchmark can set the gateway's cost
// against an AF_XDP forwarder's measured in the same run (DESIGN §4).

// routeUp is View.Route for -no-crypto: the route's tunnel if it is up,
// else its backup if that is up, whether or not it has an SA (the inside
// XDP program's own rule).
func routeUp(v *tables.View, dst netip.Addr) uint32 {
	r, ok := v.Routes.Lookup(dst)
	if !ok {
		return 0
	}
	for _, id := range [2]uint32{r.TunnelId, r.BackupTunnelId} {
		if t := v.Tunnel(id); t != nil && t.Up {
			return id
		}
	}
	return 0
}

// plainOut is -no-crypto's stand-in for esp_encap → neigh_outside: the
// inner packet goes to the outside next hop esp_encap's output would
// have (see Config.NoCrypto), counted per tunnel as sent.
func (p *Pipeline) plainOut(pkts []Packet, tx []Packet) []Packet {
	hc := hopCache{tb: p.cfg.Neighbours.Table()}
	for i := range pkts {
		pk := &pkts[i]
		how := hopTunnelRemote
		if !tunnelRemote(pk.t).IsValid() {
			how = hopIPDst
		}
		if r := p.nextHop(&hc, pk, how, p.cfg.OutsideIfindex); r != 0 {
			p.drop(pk, StageNeighOut, uint8(r))
			continue
		}
		p.c.sent(Out, pk.t.ID, 1, uint64(pk.Len))
		pushEther(pk, &hc.mac, &p.cfg.OutsideMAC)
		tx = append(tx, *pk)
	}
	p.cfg.Neighbours.Account(hc.hits, hc.misses)
	return tx
}

// forward is -no-crypto's inbound: parse, then neigh_inside for the IP
// destination, nothing else.
func (p *Pipeline) forward(pkts []Packet, tx []Packet) []Packet {
	hc := hopCache{tb: p.cfg.Neighbours.Table()}
	for i := range pkts {
		pk := &pkts[i]
		if r := parseFrame(pk, true); r != 0 {
			p.drop(pk, StageParse, uint8(r))
			continue
		}
		if r := p.nextHop(&hc, pk, hopIPDst, p.cfg.InsideIfindex); r != 0 {
			p.drop(pk, StageNeighIn, uint8(r))
			continue
		}
		p.c.Packets[In]++
		p.c.Bytes[In] += uint64(pk.Len)
		pushEther(pk, &hc.mac, &p.cfg.InsideMAC)
		tx = append(tx, *pk)
	}
	p.cfg.Neighbours.Account(hc.hits, hc.misses)
	return tx
}
