package worker

import (
	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/dataplane/esp"
	"github.com/cgw-project/cgw/dataplane/packet"
	"github.com/cgw-project/cgw/dataplane/tables"
)

// Inbound runs a batch received on the outside device through the
// inbound stages; survivors are appended to out.Inside, packets for the
// gateway itself go to the slow path.
func (p *Pipeline) Inbound(v *tables.View, pkts []Packet, out *Output) {
	p.c.batch(len(pkts))
	if p.cfg.NoCrypto {
		out.Inside = p.forward(pkts, out.Inside)
	} else {
		out.Inside = p.inbound(v, pkts, out.Inside)
		p.flushSlow()
	}
	p.publish()
}

// inbound runs parse → esp_locate → spi_lookup → esp_decap → inner →
// local → ttl → neigh_inside on each packet in turn, in one pass over the
// batch (see the package doc); the survivors are appended to tx in their
// order. Packets for the gateway are queued for the slow path ahead of
// those whose next hop is unresolved, as when the stages ran one after
// the other. Per-SA accounting is added once per batch.
func (p *Pipeline) inbound(v *tables.View, pkts []Packet, tx []Packet) []Packet {
	p.accts = p.accts[:0]
	var st spiCache
	hc := hopCache{tb: p.cfg.Neighbours.Table()}
	for i := range pkts {
		pk := &pkts[i]
		if r := parseFrame(pk, false); r != 0 {
			p.drop(pk, StageParse, uint8(r))
			continue
		}
		es, ee, spi, r := esp.Locate(pk.Data())
		if r != esp.OK {
			p.drop(pk, StageLocate, uint8(r))
			continue
		}
		if r := p.lookupSPI(v, pk, spi, &st); r != 0 {
			p.drop(pk, StageSPI, uint8(r))
			continue
		}
		// esp_decap: anti-replay, ICV, decryption, padding.
		s, e, r := pk.sa.ESP.DecapESPWith(p.csc, pk.Buf, pk.Off+es, pk.Off+ee)
		if r != esp.OK {
			saDrop(pk.sa, r)
			p.drop(pk, StageDecap, uint8(r))
			continue
		}
		pk.Off, pk.Len = s, e-s
		if r := inner(pk.Data()); r != 0 {
			p.drop(pk, StageInner, uint8(r))
			continue
		}
		p.account(&st, uint64(pk.Len))
		if local(v, pk, st.t) {
			p.toKernel(pk, 0)
			continue
		}
		if r := ttl(pk.Data()); r != 0 {
			p.drop(pk, StageTTL, uint8(r))
			continue
		}
		if r := p.nextHop(&hc, pk, hopIPDst, p.cfg.InsideIfindex); r != 0 {
			p.toKernel(pk, r)
			continue
		}
		pushEther(pk, &hc.mac, &p.cfg.InsideMAC)
		tx = append(tx, *pk)
	}
	p.cfg.Neighbours.Account(hc.hits, hc.misses)
	now := p.now()
	for _, a := range p.accts {
		maps.Account(a.sa.Counters, a.packets, a.bytes, now)
		if a.sa.Replay != nil {
			maps.RaiseSeq(a.sa.Counters, a.sa.Replay.Highest())
		}
		p.c.sent(In, a.sa.Tunnel, a.packets, a.bytes)
	}
	return tx
}

// spiCache is what spi_lookup carries from one packet to the next: a
// batch is mostly one SA and one tunnel.
type spiCache struct {
	spi uint32
	sa  *tables.SA
	t   *tables.Tunnel
	a   *acct // sa's slot in Pipeline.accts, once it has one
}

// lookupSPI is the spi_lookup stage: the SA of the packet's SPI (and in
// c its tunnel), one table lookup per run of an SPI.
func (p *Pipeline) lookupSPI(v *tables.View, pk *Packet, spi uint32, c *spiCache) Reason {
	if spi != c.spi || c.sa == nil {
		if r := p.newSPI(v, spi, c); r != 0 {
			return r
		}
	}
	pk.sa = c.sa
	return 0
}

// newSPI is lookupSPI for the first packet of a run of an SPI.
func (p *Pipeline) newSPI(v *tables.View, spi uint32, c *spiCache) Reason {
	sa := v.InboundSA(spi)
	if sa == nil {
		var r Reason
		if sa, r = p.lateSPI(v, spi); sa == nil {
			return r
		}
	}
	*c = spiCache{spi: spi, sa: sa, t: v.Tunnel(sa.Tunnel)}
	return 0
}

// lateSPI is spi_lookup's second chance for an SPI v lacks: XDP steers a
// new SPI as soon as control writes it, while the workers get the tables
// a moment later. A view published since v was loaded is used at once
// (LateView); otherwise, if the maps' generation moved past v's, the drop
// is SPINotApplied and a snapshot is asked for, once per generation.
// Else the SPI is unknown (retired, or never ours).
func (p *Pipeline) lateSPI(v *tables.View, spi uint32) (*tables.SA, Reason) {
	if nv := p.cfg.Tables.Load(); nv != nil && nv != v {
		if sa := nv.InboundSA(spi); sa != nil {
			p.c.LateView++
			return sa, 0
		}
	}
	if p.cfg.Generation != nil {
		if g := p.cfg.Generation(); g != v.Generation {
			if p.cfg.Refresh != nil && g != p.refreshed {
				p.refreshed = g
				p.cfg.Refresh()
			}
			return nil, SPINotApplied
		}
	}
	return nil, UnknownSPI
}

// saDrop counts a decap drop in the SA's shared counters, which control
// reads.
func saDrop(sa *tables.SA, r esp.Reason) {
	c := sa.Counters
	var f *uint64
	switch r {
	case esp.Replayed, esp.TooOld, esp.BadSeq:
		f = &c.DropReplay
	case esp.BadICV:
		f = &c.DropAuth
	case esp.BadPadding:
		f = &c.DropPad
	case esp.BadInner, esp.BadNextHeader:
		f = &c.DropMalformed
	case esp.Dummy:
		return
	default:
		f = &c.DropOther
	}
	atomicAdd(f, 1)
}

// inner is the inner stage: a decrypted IPv4 packet's header must be
// whole and its checksum right (esp_decap checked the lengths).
func inner(ip []byte) Reason {
	if ip[0]>>4 == 4 && (int(ip[0]&0x0f) < 5 || !packet.IPv4HeaderValid(ip[:int(ip[0]&0x0f)*4])) {
		return BadIP
	}
	return 0
}

// acct gathers one SA's packets and bytes of a batch for maps.Account.
type acct struct {
	sa             *tables.SA
	packets, bytes uint64
}

// account counts a decrypted packet of c's SA. Its packets and bytes
// are gathered in a slot per SA and added to the shared counters, the
// worker's totals and its tunnel's once per batch (inbound).
func (p *Pipeline) account(c *spiCache, bytes uint64) {
	a := c.a
	if a == nil {
		if a = p.slot(c.sa); a == nil {
			p.accountNow(c.sa, bytes)
			return
		}
		c.a = a
	}
	a.packets++
	a.bytes += bytes
}

// slot returns sa's slot in this batch's accts, nil when all are taken
// by other SAs.
func (p *Pipeline) slot(sa *tables.SA) *acct {
	for i := range p.accts {
		if p.accts[i].sa == sa {
			return &p.accts[i]
		}
	}
	if len(p.accts) == cap(p.accts) {
		return nil
	}
	p.accts = append(p.accts, acct{sa: sa})
	return &p.accts[len(p.accts)-1]
}

// accountNow is account for a packet whose SA found no slot (more SAs in
// one batch than slots): its counters are added at once.
func (p *Pipeline) accountNow(sa *tables.SA, bytes uint64) {
	maps.Account(sa.Counters, 1, bytes, p.now())
	if sa.Replay != nil {
		maps.RaiseSeq(sa.Counters, sa.Replay.Highest())
	}
	p.c.sent(In, sa.Tunnel, 1, bytes)
}

// local reports whether a decrypted packet is addressed to the gateway
// (the inside address of its tunnel t, or any local address): those go
// to the slow path.
func local(v *tables.View, pk *Packet, t *tables.Tunnel) bool {
	d := dstAddr(pk.Data())
	return (t != nil && d == t.InsideAddr) || v.IsLocal(d)
}
