package worker

import (
	"encoding/binary"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/dataplane/esp"
	"github.com/cgw-project/cgw/dataplane/frag"
	"github.com/cgw-project/cgw/dataplane/mss"
	"github.com/cgw-project/cgw/dataplane/packet"
	"github.com/cgw-project/cgw/dataplane/tables"
)

// Outbound runs a batch received on the inside device through the
// outbound stages. pkts needs spare capacity for fragments (NewBatch).
// Survivors are appended to out.Outside, ICMP errors to out.Inside.
func (p *Pipeline) Outbound(v *tables.View, pkts []Packet, out *Output) {
	p.c.batch(len(pkts))
	n := len(pkts)
	k := 0
	var last *tables.Tunnel // the tunnel the previous packet passed route with
	for i := 0; i < n; i++ {
		pk := &pkts[i]
		id := p.metadata(pk)
		if r := parseFrame(pk, true); r != 0 {
			p.drop(pk, StageParse, uint8(r))
			continue
		}
		if r := route(v, pk, id, &last, !p.cfg.NoCrypto); r != 0 {
			p.drop(pk, StageRoute, uint8(r))
			continue
		}
		if r := ttl(pk.Data()); r != 0 {
			p.drop(pk, StageTTL, uint8(r))
			continue
		}
		clamp(pk)
		if r := p.frag(pk, &pkts, out); r != frag.Fits {
			p.drop(pk, StageFrag, uint8(r))
			continue
		}
		if k != i {
			pkts[k] = *pk
		}
		k++
	}
	// Fragments (appended by frag) follow the survivors.
	k += copy(pkts[k:], pkts[n:])
	if p.cfg.NoCrypto {
		out.Outside = p.plainOut(pkts[:k], out.Outside)
	} else {
		out.Outside = p.encap(pkts[:k], out.Outside)
	}
	p.publish()
}

// metaLen is the size of the inside XDP program's metadata.
const metaLen = 8 // struct cgw_xdp_meta

// metadata is the metadata stage: the tunnel the inside XDP program
// wrote in front of the frame (bpf_xdp_adjust_meta), or 0 when there is
// none (route looks the tunnel up again). It clears the magic: the
// frame's headroom is reused and stale metadata must not name a tunnel
// later.
func (p *Pipeline) metadata(pk *Packet) uint32 {
	if pk.Off < metaLen {
		p.c.NoMetadata++
		return 0
	}
	m := pk.Buf[pk.Off-metaLen : pk.Off]
	if binary.NativeEndian.Uint32(m[4:]) != maps.MetaMagic {
		p.c.NoMetadata++
		return 0
	}
	binary.NativeEndian.PutUint32(m[4:], 0)
	return binary.NativeEndian.Uint32(m[0:])
}

// route is the route stage: the packet's tunnel is the one the metadata
// named (id), else the LPM's, and must be able to carry it (usable). last
// is the tunnel the previous packet passed with, so the rest of a run of
// one tunnel skips the checks. needSA is false for -no-crypto.
func route(v *tables.View, pk *Packet, id uint32, last **tables.Tunnel, needSA bool) Reason {
	if id == 0 {
		if needSA {
			id = v.Route(dstAddr(pk.Data()))
		} else {
			id = routeUp(v, dstAddr(pk.Data()))
		}
		if id == 0 {
			return NoRoute
		}
	}
	if t := *last; t != nil && t.ID == id {
		pk.t = t
		return 0
	}
	t := v.Tunnel(id)
	if r := usable(t, needSA); r != 0 {
		return r
	}
	*last, pk.t = t, t
	return 0
}

// usable says why a tunnel cannot carry a packet now, 0 if it can: it
// must be up and, unless -no-crypto, have an outbound SA with sequence
// numbers left (a hard lifetime limit is esp_encap's, per run).
func usable(t *tables.Tunnel, needSA bool) Reason {
	switch {
	case t == nil || !t.Up:
		return TunnelDown
	case needSA && (t.Out == nil || t.Out.ESP.MustRekey()):
		return NoSA
	}
	return 0
}

// clamp is the mss stage: it rewrites the MSS of TCP SYNs entering the
// packet's tunnel.
func clamp(pk *Packet) {
	m := pk.t.MSS
	if m == 0 {
		return
	}
	m6 := m - (packet.IPv6HeaderLen - packet.IPv4HeaderLen)
	mss.Clamp(pk.Data(), uint16(m), uint16(max(m6, 0)))
}

// fragState is a tunnel's Fragmenter and the parameters it was made for.
type fragState struct {
	f       *frag.Fragmenter
	mtu     int
	clearDF bool
}

// fragmenter returns the worker's Fragmenter for a tunnel, made again when
// the tunnel's MTU or DF policy changed.
func (p *Pipeline) fragmenter(t *tables.Tunnel) *frag.Fragmenter {
	fs := &p.frags[t.ID&(maps.MaxTunnels-1)]
	if fs.f == nil || fs.mtu != t.MTU || fs.clearDF != t.ClearDF {
		cfg := frag.Config{MTU: t.MTU, ClearDF: t.ClearDF, Gateway4: p.cfg.Gateway4}
		if t.MTU >= frag.MinMTU6 {
			cfg.Gateway6 = p.cfg.Gateway6
		}
		f, err := frag.New(cfg)
		if err != nil {
			// An MTU frag refuses; fall back to the default rather
			// than stop the tunnel.
			f, _ = frag.New(frag.Config{ClearDF: t.ClearDF, Gateway4: p.cfg.Gateway4})
		}
		*fs = fragState{f: f, mtu: t.MTU, clearDF: t.ClearDF}
	}
	return fs.f
}

// frag is the frag stage: it fits a packet to its tunnel's MTU before
// encryption (RFC 4459 §5.1). A packet that fits, or the first fragment
// of one that does not, stays in pk (frag.Fits); the other fragments are
// appended to *pkts (frames from Frames; pkts has room to grow, NewBatch)
// behind the batch's originals, which the caller's compaction never
// reaches. Otherwise the packet is dropped for the reason returned, after
// an ICMP error to its sender went to out.Inside where one is due.
func (p *Pipeline) frag(pk *Packet, pkts *[]Packet, out *Output) frag.Reason {
	if pk.Len <= pk.t.MTU {
		return frag.Fits
	}
	return p.fragment(pk, pkts, out)
}

// fragment is frag for a packet larger than its tunnel's MTU.
func (p *Pipeline) fragment(pk *Packet, pkts *[]Packet, out *Output) frag.Reason {
	t := pk.t
	// Frames for the extra fragments (or the ICMP error).
	need := min((pk.Len+t.MTU-1)/(t.MTU-60)+1, maxFragments)
	got := 0
	for got < need {
		a, ok := p.cfg.Frames.Alloc()
		if !ok {
			break
		}
		p.addrs[got] = a
		p.scratch[got] = p.cfg.Frames.Frame(a)[p.cfg.Frames.DataOffset():]
		got++
	}
	first, nf, r := p.fragmenter(t).Packet(pk.Data(), p.scratch[:got])
	used := 0
	switch r {
	case frag.Fits:
		pk.Len = first
	case frag.Fragmented:
		pk.Len = first
		for j := 0; j < nf; j++ {
			*pkts = append(*pkts, Packet{Buf: p.cfg.Frames.Frame(p.addrs[j]), Addr: p.addrs[j],
				Off: p.cfg.Frames.DataOffset(), Len: len(p.scratch[j]), t: t})
		}
		p.c.Fragments += uint64(nf)
		used = nf
		r = frag.Fits
	case frag.FragNeeded, frag.PacketTooBig:
		if len(out.Inside) == cap(out.Inside) {
			r = frag.ErrorLimited
			break
		}
		p.icmpBack(pk, r, p.addrs[0], len(p.scratch[0]), out)
		used = 1
	}
	for j := used; j < got; j++ {
		p.cfg.Frames.Free(p.addrs[j])
	}
	return r
}

// icmpBack sends the ICMP error built in frame a (n bytes of IP) back to
// the sender of pk through the inside device: the Ethernet addresses of
// the packet, swapped.
func (p *Pipeline) icmpBack(pk *Packet, r frag.Reason, a uint64, n int, out *Output) {
	fb := p.cfg.Frames.Frame(a)
	off := p.cfg.Frames.DataOffset()
	eth := fb[off-EthLen : off]
	orig := pk.Buf[pk.Off-EthLen : pk.Off]
	copy(eth[0:6], orig[6:12])
	copy(eth[6:12], p.cfg.InsideMAC[:])
	et := uint16(etherTypeIP4)
	if r == frag.PacketTooBig {
		et = etherTypeIP6
	}
	binary.BigEndian.PutUint16(eth[12:], et)
	out.Inside = append(out.Inside, Packet{Buf: fb, Addr: a, Off: off - EthLen, Len: EthLen + n})
	p.c.ICMPErrors++
}

// encap runs esp_encap and neigh_outside per run of packets of one
// tunnel: it reserves the run's sequence numbers at once (one atomic add
// on the shared counter), encapsulates each packet in place and, in the
// same pass (see the package doc), prepends the Ethernet header for the
// tunnel's remote and appends the packet to tx. A packet encrypted but
// without a resolved next hop is dropped at neigh_outside, having counted
// as sent by its SA, as when the stages ran one after the other.
func (p *Pipeline) encap(pkts []Packet, tx []Packet) []Packet {
	hc := hopCache{tb: p.cfg.Neighbours.Table()}
	for i := 0; i < len(pkts); {
		t := pkts[i].t
		j := i + 1
		for j < len(pkts) && pkts[j].t == t {
			j++
		}
		run := pkts[i:j]
		sa := t.Out
		first, rr := reserve(sa, len(run))
		var bytes uint64
		good := 0
		for x := range run {
			pk := run[x]
			if rr != esp.OK {
				p.drop(&pk, StageEncap, uint8(rr))
				continue
			}
			s, e, r := sa.ESP.EncapWith(p.csc, pk.Buf, pk.Off, pk.Len, first+uint64(x))
			if r != esp.OK {
				p.drop(&pk, StageEncap, uint8(r))
				continue
			}
			bytes += uint64(pk.Len)
			pk.Off, pk.Len = s, e-s
			good++
			if r := p.nextHop(&hc, &pk, hopTunnelRemote, p.cfg.OutsideIfindex); r != 0 {
				p.drop(&pk, StageNeighOut, uint8(r))
				continue
			}
			pushEther(&pk, &hc.mac, &p.cfg.OutsideMAC)
			tx = append(tx, pk)
		}
		if good > 0 {
			p.c.sent(Out, t.ID, uint64(good), bytes)
			maps.Account(sa.Counters, uint64(good), bytes, p.now())
		}
		i = j
	}
	p.cfg.Neighbours.Account(hc.hits, hc.misses)
	return tx
}

// reserve is esp_encap's per-run step: the first of n sequence numbers,
// or why the run is dropped — the SA reached a hard lifetime limit
// (control must rekey) or ran out of sequence numbers. A packet that
// fails later still consumed its number: gaps are allowed, reuse is not.
func reserve(sa *tables.SA, n int) (first uint64, r esp.Reason) {
	if sa.Expired() {
		return 0, esp.SAExpired
	}
	first, ok := sa.ESP.ReserveSeq(n)
	if !ok {
		return 0, esp.SeqExhausted
	}
	return first, esp.OK
}
