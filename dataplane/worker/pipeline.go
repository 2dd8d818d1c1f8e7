// Package worker is the fast path's packet engine: one worker per core
// and queue owns a UMEM shared by an inside and an outside AF_XDP socket,
// receives batches from both, runs them through the pipeline's stages and
// transmits the survivors (DESIGN §3).
//
// The pipeline reads like VPP's graph: each stage does one thing to a
// packet, counting every drop by stage and reason.
//
//	outbound (inside → outside): parse → route → ttl → mss → frag → esp_encap → neigh_outside → tx
//	inbound (outside → inside):  parse → esp_locate → spi_lookup → esp_decap → inner → local? slow_path : ttl → neigh_inside → tx
//
// With Config.NoCrypto (the benchmark's baseline) outbound skips only
// esp_encap, and inbound, which has no ESP to remove, forwards.
//
// The stages run per packet in as few passes over the batch as the work
// allows — outbound two (parse … frag; then esp_encap and neigh_outside
// per run of one tunnel, which reserves the run's sequence numbers at
// once), inbound one — because UMEM frames lie 4096 bytes apart, their
// header lines share L1 sets, and a pass per stage fetched them again for
// every stage. Drops, counters and the order of the survivors are those of
// the stages run one after the other.
//
// The Pipeline does no I/O, so tests and benchmarks run it on frames in
// plain memory; Worker (Linux) adds the sockets and the loop.
package worker

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/dataplane/esp"
	"github.com/cgw-project/cgw/dataplane/frag"
	"github.com/cgw-project/cgw/dataplane/mss"
	"github.com/cgw-project/cgw/dataplane/neigh"
	"github.com/cgw-project/cgw/dataplane/packet"
	"github.com/cgw-project/cgw/dataplane/tables"
)

// Ethernet.
const (
	EthLen       = 14
	etherTypeIP4 = 0x0800
	etherTypeIP6 = 0x86dd
)

// Packet is one frame in a batch. The packet's bytes are Buf[Off:Off+Len]:
// the Ethernet frame when received and transmitted, the IP packet between
// the stages. Buf is the whole frame, so headers are prepended into the
// headroom and the ESP trailer appended in place.
type Packet struct {
	Buf    []byte
	Addr   uint64 // any address inside the frame (the UMEM's frame handle)
	Off    int
	Len    int
	Tunnel uint32 // outbound: from XDP metadata or the route stage; inbound: the SA's tunnel

	sa *tables.SA // inbound: the SA that decrypted it
}

// Data returns the packet's bytes.
func (p *Packet) Data() []byte { return p.Buf[p.Off : p.Off+p.Len] }

// Frames is where the pipeline gets frames for fragments and ICMP errors
// and returns the frames of dropped packets: the worker's UMEM
// (afxdp.UMEM has this method set).
type Frames interface {
	Alloc() (addr uint64, ok bool)
	Frame(addr uint64) []byte
	Free(addr uint64)
	DataOffset() int
}

// Neighbours is the next-hop MAC source (neigh.Cache has this method
// set): one Table load per batch, hits and misses added once per batch.
type Neighbours interface {
	Table() *neigh.Table
	Account(hits, misses uint64)
	Resolve(ifindex int, ip netip.Addr)
}

// SlowPath hands packets to a tunnel's kernel interface (the TUN device).
// Deliver copies the packets (IP, no Ethernet header) and must not block
// for long; it returns how many were taken.
type SlowPath interface {
	Deliver(tunnel uint32, pkts [][]byte) int
}

// Config is what a Pipeline needs to know about the gateway.
type Config struct {
	Frames     Frames
	Tables     *tables.Tables
	Neighbours Neighbours
	SlowPath   SlowPath // nil: packets for the kernel are dropped (NoSlowPath)

	InsideIfindex, OutsideIfindex int
	InsideMAC, OutsideMAC         [6]byte
	// Gateway4/6 are the source of the ICMP errors sent back inside (an
	// address of the inside interface, RFC 1812 §4.3.2.4).
	Gateway4, Gateway6 netip.Addr

	// NoCrypto is the benchmark's baseline: the same stages with ESP
	// switched off. Outbound runs parse, route (a tunnel that is up; no
	// SA needed), ttl, mss and frag, then sends the inner packet to the
	// outside next hop of the tunnel's remote (its outbound SA's, else the
	// tunnel table's, else the packet's own destination); inbound
	// forwards with a MAC rewrite only (there is no ESP to take off).
	NoCrypto bool
	// Batch is the most packets per ring operation (default 64).
	Batch int

	// Generation reads the maps' generation counter as memory
	// (maps.Reader.ReadGeneration) and Refresh asks for a snapshot now
	// (maps.Reader.Kick). With them an SPI the worker's view lacks while
	// the maps have moved on (an SA just installed) is counted as
	// spi_not_applied rather than unknown_spi and triggers one early
	// snapshot per generation. Both may be nil.
	Generation func() uint64
	Refresh    func()
}

// Output is what a batch produced: frames to transmit on each socket.
// Dropped frames went back to Frames.
type Output struct {
	Outside []Packet
	Inside  []Packet
}

// Reset empties o for the next batch.
func (o *Output) Reset() { o.Outside, o.Inside = o.Outside[:0], o.Inside[:0] }

// maxFragments bounds the fragments of one packet (a 9000-byte jumbo at
// MTU 1399 makes 7).
const maxFragments = 8

// Pipeline is one worker's stages and their state. Not safe for
// concurrent use: one per worker.
type Pipeline struct {
	cfg Config
	C   Counters

	frags   []fragState // by tunnel id
	scratch [][]byte    // fragment/ICMP output buffers for one packet
	addrs   []uint64
	slow    [][]byte
	slowP   []Packet // the gateway's own packets for the slow path, in order
	// slowMiss holds decrypted packets whose next hop is unresolved; they
	// are delivered after slowP's.
	slowMiss []Packet
	accts    []acct
	now      func() uint64
	// csc is this worker's crypto scratch (GCM nonce and AAD), so the
	// cipher needs no sync.Pool round trip per packet.
	csc *transform.Scratch
	// refreshed is the maps generation Refresh was last called for.
	refreshed uint64
}

type fragState struct {
	f       *frag.Fragmenter
	mtu     int
	clearDF bool
}

// acct gathers one SA's packets and bytes of a batch for maps.Account.
type acct struct {
	sa             *tables.SA
	packets, bytes uint64
}

// New returns a Pipeline.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Frames == nil || cfg.Tables == nil || cfg.Neighbours == nil {
		return nil, fmt.Errorf("worker: Config needs Frames, Tables and Neighbours")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	p := &Pipeline{
		cfg:      cfg,
		frags:    make([]fragState, maps.MaxTunnels),
		scratch:  make([][]byte, maxFragments),
		addrs:    make([]uint64, maxFragments),
		slow:     make([][]byte, 0, cfg.Batch),
		slowP:    make([]Packet, 0, cfg.Batch),
		slowMiss: make([]Packet, 0, cfg.Batch),
		accts:    make([]acct, 0, 8),
		now:      monotonicNs,
		csc:      new(transform.Scratch),
	}
	return p, nil
}

// NewOutput returns an Output sized for this pipeline's batches.
func (p *Pipeline) NewOutput() *Output {
	return &Output{
		Outside: make([]Packet, 0, p.cfg.Batch*maxFragments+p.cfg.Batch),
		Inside:  make([]Packet, 0, p.cfg.Batch*2),
	}
}

// Counters returns the pipeline's counters (read them atomically).
func (p *Pipeline) Counters() *Counters { return &p.C }

var (
	monoBase  = readMonotonic()
	monoStart = time.Now()
)

// monotonicNs is CLOCK_MONOTONIC in ns (the clock of bpf_ktime_get_ns that
// control compares sa_counters.last_ns with), from Go's monotonic clock
// without a syscall.
func monotonicNs() uint64 { return monoBase + uint64(time.Since(monoStart)) }

func (p *Pipeline) free(pk *Packet) { p.cfg.Frames.Free(pk.Addr) }

// ---------------------------------------------------------------- stages

// parse checks the Ethernet and IP headers and moves Off/Len to the IP
// packet, trimmed to its IP length (Ethernet padding cut off).
func (p *Pipeline) parse(pkts []Packet, allow6 bool) []Packet {
	k := 0
	for i := range pkts {
		pk := &pkts[i]
		if r := parseIP(pk, allow6); r != 0 {
			p.C.drop(StageParse, uint8(r))
			p.free(pk)
			continue
		}
		if k != i {
			pkts[k] = *pk
		}
		k++
	}
	return pkts[:k]
}

func parseIP(pk *Packet, allow6 bool) Reason {
	if pk.Len < EthLen+packet.IPv4HeaderLen {
		return ShortFrame
	}
	b := pk.Buf[pk.Off : pk.Off+pk.Len]
	et := binary.BigEndian.Uint16(b[12:])
	ip := b[EthLen:]
	switch {
	case et == etherTypeIP4:
		if ip[0]>>4 != 4 {
			return BadIP
		}
		hl := int(ip[0]&0x0f) * 4
		tl := int(binary.BigEndian.Uint16(ip[2:]))
		if hl < packet.IPv4HeaderLen || tl < hl || tl > len(ip) {
			return BadIP
		}
		pk.Off += EthLen
		pk.Len = tl
	case et == etherTypeIP6 && allow6:
		if len(ip) < packet.IPv6HeaderLen || ip[0]>>4 != 6 {
			return BadIP
		}
		tl := packet.IPv6HeaderLen + int(binary.BigEndian.Uint16(ip[4:]))
		if tl > len(ip) {
			return BadIP
		}
		pk.Off += EthLen
		pk.Len = tl
	default:
		return NotIP
	}
	return 0
}

// plausibleIP reports whether b starts with a whole IPv4 or IPv6 header
// (what the later stages read without further checks).
func plausibleIP(b []byte) bool {
	switch packet.Version(b) {
	case 4:
		return len(b) >= packet.IPv4HeaderLen && int(b[0]&0x0f)*4 >= packet.IPv4HeaderLen && int(b[0]&0x0f)*4 <= len(b)
	case 6:
		return len(b) >= packet.IPv6HeaderLen
	}
	return false
}

// dstAddr returns an IP packet's destination.
func dstAddr(ip []byte) netip.Addr {
	if ip[0]>>4 == 4 {
		return netip.AddrFrom4([4]byte(ip[packet.IPv4OffDst : packet.IPv4OffDst+4]))
	}
	return netip.AddrFrom16([16]byte(ip[24:40]))
}

// routeOne finds a packet's tunnel (XDP metadata, else the LPM) and
// checks that the tunnel can send; okTunnel is the tunnel the previous
// packet passed with, so the rest of a run of one tunnel skips the checks.
func routeOne(v *tables.View, pk *Packet, okTunnel *uint32, needSA bool) Reason {
	if pk.Tunnel == 0 {
		if needSA {
			pk.Tunnel = v.Route(dstAddr(pk.Data()))
		} else {
			pk.Tunnel = routeUp(v, dstAddr(pk.Data()))
		}
		if pk.Tunnel == 0 {
			return NoRoute
		}
	}
	if pk.Tunnel != *okTunnel {
		t := v.Tunnel(pk.Tunnel)
		switch {
		case t == nil || !t.Up:
			return TunnelDown
		case needSA && (t.Out == nil || t.Out.ESP.MustRekey()):
			return NoSA
		}
		*okTunnel = pk.Tunnel
	}
	return 0
}

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

// decTTL decrements the TTL (IPv4, checksum updated per RFC 1624) or hop
// limit (IPv6) of a forwarded packet; a packet that would reach 0 is
// dropped (RFC 1812 §5.3.1; no ICMP time exceeded is sent).
func decTTL(ip []byte) bool {
	if ip[0]>>4 == 6 {
		if ip[7] <= 1 {
			return false
		}
		ip[7]--
		return true
	}
	if ip[packet.IPv4OffTTL] <= 1 {
		return false
	}
	old := binary.BigEndian.Uint16(ip[packet.IPv4OffTTL:])
	ip[packet.IPv4OffTTL]--
	cs := binary.BigEndian.Uint16(ip[packet.IPv4OffChecksum:])
	binary.BigEndian.PutUint16(ip[packet.IPv4OffChecksum:], mss.Update(cs, old, old-0x0100))
	return true
}

// clamp rewrites the MSS of TCP SYNs entering each packet's tunnel.
func (p *Pipeline) clamp(v *tables.View, pkts []Packet) {
	var t *tables.Tunnel
	for i := range pkts {
		clampOne(v, &pkts[i], &t)
	}
}

// clampOne is clamp for one packet; t caches the previous packet's tunnel.
func clampOne(v *tables.View, pk *Packet, t **tables.Tunnel) {
	if *t == nil || (*t).ID != pk.Tunnel {
		*t = v.Tunnel(pk.Tunnel)
	}
	m := (*t).MSS
	if m == 0 {
		return
	}
	m6 := m - (packet.IPv6HeaderLen - packet.IPv4HeaderLen)
	mss.Clamp(pk.Data(), uint16(m), uint16(max(m6, 0)))
}

// fragmenter returns the worker's Fragmenter for a tunnel, made again when
// the tunnel's MTU or DF policy changed.
func (p *Pipeline) fragmenter(t *tables.Tunnel) *frag.Fragmenter {
	fs := &p.frags[t.ID]
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

// size fits packets to their tunnel's MTU before encryption (RFC 4459
// §5.1): fragments are appended to the batch (frames from Frames) and
// ICMP errors go to out.Inside. pkts must have room to grow (cap).
func (p *Pipeline) size(v *tables.View, pkts []Packet, out *Output) []Packet {
	n := len(pkts)
	k := 0
	var t *tables.Tunnel
	for i := 0; i < n; i++ {
		pk := &pkts[i]
		if t == nil || t.ID != pk.Tunnel {
			t = v.Tunnel(pk.Tunnel)
		}
		if pk.Len <= t.MTU {
			if k != i {
				pkts[k] = *pk
			}
			k++
			continue
		}
		k = p.sizeSlow(t, *pk, &pkts, k, out)
	}
	// Move the fragments down behind the survivors.
	k += copy(pkts[k:], pkts[n:])
	return pkts[:k]
}

// sizeSlow handles one packet larger than the MTU: its first fragment
// kept at (*pkts)[k], the other fragments appended to *pkts, an ICMP
// error to out.Inside, or a drop. It returns the new survivor count.
func (p *Pipeline) sizeSlow(t *tables.Tunnel, pk Packet, pkts *[]Packet, k int, out *Output) int {
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
	f := p.fragmenter(t)
	first, nf, r := f.Packet(pk.Data(), p.scratch[:got])
	used := 0
	switch r {
	case frag.Fits:
		pk.Len = first
		(*pkts)[k] = pk
		k++
	case frag.Fragmented:
		pk.Len = first
		(*pkts)[k] = pk
		k++
		// The extra fragments go after the batch's originals; the
		// compaction below never reaches them (k ≤ i < n).
		for j := 0; j < nf; j++ {
			*pkts = append(*pkts, Packet{Buf: p.cfg.Frames.Frame(p.addrs[j]), Addr: p.addrs[j],
				Off: p.cfg.Frames.DataOffset(), Len: len(p.scratch[j]), Tunnel: pk.Tunnel})
		}
		p.C.Fragments += uint64(nf)
		used = nf
	case frag.FragNeeded, frag.PacketTooBig:
		p.C.drop(StageFrag, uint8(r))
		if len(out.Inside) < cap(out.Inside) {
			// Back to the sender through the inside device: the
			// Ethernet addresses of the packet, swapped.
			a := p.addrs[0]
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
			out.Inside = append(out.Inside, Packet{Buf: fb, Addr: a, Off: off - EthLen, Len: EthLen + len(p.scratch[0])})
			p.C.ICMPErrors++
			used = 1
		}
		p.free(&pk)
	default:
		p.C.drop(StageFrag, uint8(r))
		p.free(&pk)
	}
	for j := used; j < got; j++ {
		p.cfg.Frames.Free(p.addrs[j])
	}
	return k
}

// encap reserves sequence numbers once per run of packets of one tunnel
// (one atomic add on the shared counter), encapsulates in place and, in
// the same pass (see inbound), does neigh_outside: the Ethernet header for
// the tunnel's remote, and the packet appended to tx. A packet encrypted
// but without a resolved next hop is dropped at neigh_outside, having
// counted as sent by its SA, as when the stages ran one after the other.
func (p *Pipeline) encap(v *tables.View, pkts []Packet, tx []Packet) []Packet {
	hc := hopCache{tb: p.cfg.Neighbours.Table()}
	for i := 0; i < len(pkts); {
		tid := pkts[i].Tunnel
		j := i + 1
		for j < len(pkts) && pkts[j].Tunnel == tid {
			j++
		}
		run := pkts[i:j]
		sa := v.Tunnel(tid).Out
		var first uint64
		ok := false
		stage, reason := StageEncap, uint8(esp.SeqExhausted)
		if sa.Expired() {
			stage, reason = StageRoute, uint8(SAExpired)
		} else {
			first, ok = sa.ESP.ReserveSeq(len(run))
		}
		var bytes uint64
		good := 0
		for x := range run {
			pk := run[x]
			if !ok {
				p.C.drop(stage, reason)
				p.free(&pk)
				continue
			}
			s, e, r := sa.ESP.EncapWith(p.csc, pk.Buf, pk.Off, pk.Len, first+uint64(x))
			if r != esp.OK {
				p.C.drop(StageEncap, uint8(r))
				p.free(&pk)
				continue
			}
			bytes += uint64(pk.Len)
			pk.Off, pk.Len = s, e-s
			good++
			if r := p.nextHop(&hc, v, &pk, hopTunnelRemote, p.cfg.OutsideIfindex); r != 0 {
				p.C.drop(StageNeighOut, uint8(r))
				p.free(&pk)
				continue
			}
			pushEther(&pk, &hc.mac, &p.cfg.OutsideMAC)
			tx = append(tx, pk)
		}
		if good > 0 {
			p.C.TunnelPackets[Out][tid] += uint64(good)
			p.C.TunnelBytes[Out][tid] += bytes
			maps.Account(sa.Counters, uint64(good), bytes, p.now())
			p.C.Packets[Out] += uint64(good)
			p.C.Bytes[Out] += bytes
		}
		i = j
	}
	p.cfg.Neighbours.Account(hc.hits, hc.misses)
	return tx
}

// nextHopOf says what ether resolves each packet's next hop for.
type nextHopOf uint8

const (
	hopIPDst        nextHopOf = iota // the packet's IP destination
	hopTunnelRemote                  // the outer destination: its tunnel's outbound SA's remote
)

// hopCache is ether's state across the packets of a batch: the neighbour
// table loaded once, the last next hop and its MAC, hits and misses.
// A run of packets to one destination (an IPv4 address or a tunnel) is
// looked up once: the run is recognized by a 64-bit key, without building
// a netip.Addr per packet. key 0: no run yet, or an IPv6 destination,
// compared as addr.
type hopCache struct {
	tb           *neigh.Table
	key          uint64
	addr         netip.Addr
	mac          [6]byte
	hits, misses uint64
}

// nextHop finds the MAC of pk's next hop on ifindex into c.mac, or says
// why not (NoNeighbour, asking the kernel to resolve it, or
// WrongInterface).
func (p *Pipeline) nextHop(c *hopCache, v *tables.View, pk *Packet, how nextHopOf, ifindex int) Reason {
	ip := pk.Buf[pk.Off : pk.Off+pk.Len]
	var key uint64
	if how == hopTunnelRemote {
		key = 2<<32 | uint64(pk.Tunnel)
	} else if ip[0]>>4 == 4 {
		key = 1<<32 | uint64(binary.BigEndian.Uint32(ip[packet.IPv4OffDst:packet.IPv4OffDst+4]))
	}
	if key != 0 && key == c.key {
		c.hits++
		return 0
	}
	var d netip.Addr
	if how == hopTunnelRemote {
		d = tunnelRemote(v.Tunnel(pk.Tunnel))
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

// ether prepends the Ethernet header for the next hop of each packet's
// destination (outer for ESP, inner for decrypted packets) and appends
// the packet to tx. Unresolved next hops are asked of the kernel; what
// to do with their packets is miss's choice (drop, or the slow path).
func (p *Pipeline) ether(tb *neigh.Table, v *tables.View, pkts []Packet, how nextHopOf, ifindex int, src [6]byte, tx []Packet, miss func(*Packet, Reason)) []Packet {
	c := hopCache{tb: tb}
	for i := range pkts {
		pk := &pkts[i]
		if r := p.nextHop(&c, v, pk, how, ifindex); r != 0 {
			miss(pk, r)
			continue
		}
		pushEther(pk, &c.mac, &src)
		tx = append(tx, *pk)
	}
	p.cfg.Neighbours.Account(c.hits, c.misses)
	return tx
}

// Outbound runs a batch received on the inside device through the
// outbound stages. pkts needs spare capacity for fragments (NewBatch).
// Survivors are appended to out.Outside, ICMP errors to out.Inside.
func (p *Pipeline) Outbound(v *tables.View, pkts []Packet, out *Output) {
	p.C.batch(len(pkts))
	pkts = p.outboundHead(v, pkts, out)
	if p.cfg.NoCrypto {
		out.Outside = p.plainOut(v, pkts, out.Outside)
		return
	}
	out.Outside = p.encap(v, pkts, out.Outside)
}

// plainOut is -no-crypto's stand-in for esp_encap → neigh_outside: the
// inner packet goes to the outside next hop esp_encap's output would
// have (see Config.NoCrypto), counted per tunnel as sent.
func (p *Pipeline) plainOut(v *tables.View, pkts []Packet, tx []Packet) []Packet {
	hc := hopCache{tb: p.cfg.Neighbours.Table()}
	for i := range pkts {
		pk := &pkts[i]
		how := hopTunnelRemote
		if !tunnelRemote(v.Tunnel(pk.Tunnel)).IsValid() {
			how = hopIPDst
		}
		if r := p.nextHop(&hc, v, pk, how, p.cfg.OutsideIfindex); r != 0 {
			p.C.drop(StageNeighOut, uint8(r))
			p.free(pk)
			continue
		}
		p.C.TunnelPackets[Out][pk.Tunnel&(maps.MaxTunnels-1)]++
		p.C.TunnelBytes[Out][pk.Tunnel&(maps.MaxTunnels-1)] += uint64(pk.Len)
		p.C.Packets[Out]++
		p.C.Bytes[Out] += uint64(pk.Len)
		pushEther(pk, &hc.mac, &p.cfg.OutsideMAC)
		tx = append(tx, *pk)
	}
	p.cfg.Neighbours.Account(hc.hits, hc.misses)
	return tx
}

// tunnelRemote is the outer destination of a tunnel's packets: its
// outbound SA's remote, else the tunnel table's.
func tunnelRemote(t *tables.Tunnel) netip.Addr {
	if t.Out != nil {
		return t.Out.Remote
	}
	return t.Remote
}

// outboundHead runs parse → route → ttl → mss → frag on each packet in
// turn, in one pass over the batch (see inbound), each step counting its
// drops at its own stage; the survivors keep their order, and fragments
// made of them follow the survivors (as size does). pkts must have room
// to grow (cap).
func (p *Pipeline) outboundHead(v *tables.View, pkts []Packet, out *Output) []Packet {
	n := len(pkts)
	k := 0
	var okTunnel uint32
	var t *tables.Tunnel
	for i := 0; i < n; i++ {
		pk := &pkts[i]
		if r := parseIP(pk, true); r != 0 {
			p.C.drop(StageParse, uint8(r))
			p.free(pk)
			continue
		}
		if r := routeOne(v, pk, &okTunnel, !p.cfg.NoCrypto); r != 0 {
			p.C.drop(StageRoute, uint8(r))
			p.free(pk)
			continue
		}
		if !decTTL(pk.Data()) {
			p.C.drop(StageTTL, uint8(TTLExceeded))
			p.free(pk)
			continue
		}
		clampOne(v, pk, &t)
		if pk.Len > t.MTU {
			k = p.sizeSlow(t, *pk, &pkts, k, out)
			continue
		}
		if k != i {
			pkts[k] = *pk
		}
		k++
	}
	// Move the fragments down behind the survivors.
	k += copy(pkts[k:], pkts[n:])
	return pkts[:k]
}

// outboundTail is the part of the outbound pipeline the slow path's
// packets (from the gateway itself) share: size, encrypt, send.
func (p *Pipeline) outboundTail(v *tables.View, pkts []Packet, out *Output) {
	pkts = p.size(v, pkts, out)
	out.Outside = p.encap(v, pkts, out.Outside)
}

// FromKernel sends packets the kernel wrote into a tunnel's interface
// (IP packets, already copied into frames at Off) through the tunnel:
// size, encrypt, send. The TTL is not touched: they originate here.
func (p *Pipeline) FromKernel(v *tables.View, pkts []Packet, out *Output) {
	k := 0
	for i := range pkts {
		pk := &pkts[i]
		t := v.Tunnel(pk.Tunnel)
		r := Reason(0)
		switch {
		case t == nil || !t.Up:
			r = TunnelDown
		case t.Out == nil || t.Out.ESP.MustRekey():
			r = NoSA
		case !plausibleIP(pk.Data()):
			r = BadIP
		}
		if r != 0 {
			p.C.drop(StageRoute, uint8(r))
			p.free(pk)
			continue
		}
		if k != i {
			pkts[k] = *pk
		}
		k++
	}
	p.C.SlowFromKernel += uint64(k)
	p.clamp(v, pkts[:k])
	p.outboundTail(v, pkts[:k], out)
}

// Inbound runs a batch received on the outside device through the
// inbound stages; survivors are appended to out.Inside, packets for the
// gateway itself go to the slow path.
func (p *Pipeline) Inbound(v *tables.View, pkts []Packet, out *Output) {
	p.C.batch(len(pkts))
	if p.cfg.NoCrypto {
		p.forward(pkts, In, p.cfg.InsideIfindex, p.cfg.InsideMAC, &out.Inside)
		return
	}
	out.Inside = p.inbound(v, pkts, out.Inside)
	p.flushSlow()
}

// inbound runs parse → esp_locate → spi_lookup → esp_decap → inner →
// local → ttl → neigh_inside on each packet in turn, in one pass over the
// batch: the frames lie 4096 bytes apart in the UMEM, so their header
// lines share L1 sets and a pass per stage would fetch them again for
// every stage. Each step counts its drops at its own stage, as a separate
// stage would; the survivors are appended to tx in their order. Packets
// for the gateway are queued for the slow path ahead of those whose next
// hop is unresolved, as when the stages ran one after the other. Per-SA
// accounting is added once per batch.
func (p *Pipeline) inbound(v *tables.View, pkts []Packet, tx []Packet) []Packet {
	p.accts = p.accts[:0]
	var st inState
	hc := hopCache{tb: p.cfg.Neighbours.Table()}
	for i := range pkts {
		pk := &pkts[i]
		if r := parseIP(pk, false); r != 0 {
			p.C.drop(StageParse, uint8(r))
			p.free(pk)
			continue
		}
		if !p.decapOne(v, pk, &st) {
			continue
		}
		if p.localOne(v, pk, &st) {
			p.toKernel(pk, 0)
			continue
		}
		if !decTTL(pk.Data()) {
			p.C.drop(StageTTL, uint8(TTLExceeded))
			p.free(pk)
			continue
		}
		if r := p.nextHop(&hc, v, pk, hopIPDst, p.cfg.InsideIfindex); r != 0 {
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
		p.C.Packets[In] += a.packets
		p.C.Bytes[In] += a.bytes
	}
	return tx
}

// inState is what inbound carries from one packet to the next: a batch is
// mostly one SA and one tunnel.
type inState struct {
	sa      *tables.SA
	lastSPI uint32
	t       *tables.Tunnel
}

// decapOne is esp_locate → spi_lookup → esp_decap → inner for one parsed
// packet: on success the packet is the inner one, with its tunnel and SA;
// on a drop it is counted and freed and decapOne reports false.
func (p *Pipeline) decapOne(v *tables.View, pk *Packet, st *inState) bool {
	es, ee, spi, r := esp.Locate(pk.Data())
	if r != esp.OK {
		p.C.drop(StageLocate, uint8(r))
		p.free(pk)
		return false
	}
	// One map lookup per run of an SPI.
	if spi != st.lastSPI || st.sa == nil {
		st.sa, st.lastSPI = v.InboundSA(spi), spi
	}
	sa := st.sa
	if sa == nil {
		if sa = p.lateSPI(v, spi); sa == nil {
			p.free(pk)
			return false
		}
		st.sa = sa
	}
	s, e, r := sa.ESP.DecapESPWith(p.csc, pk.Buf, pk.Off+es, pk.Off+ee)
	if r != esp.OK {
		p.C.drop(StageDecap, uint8(r))
		saDrop(sa, r)
		p.free(pk)
		return false
	}
	inner := pk.Buf[s:e]
	if inner[0]>>4 == 4 && (int(inner[0]&0x0f) < 5 || !packet.IPv4HeaderValid(inner[:int(inner[0]&0x0f)*4])) {
		p.C.drop(StageInner, uint8(BadIP))
		p.free(pk)
		return false
	}
	pk.Off, pk.Len = s, e-s
	pk.Tunnel, pk.sa = sa.Tunnel, sa
	p.account(sa, uint64(pk.Len))
	return true
}

// lateSPI is spi_lookup's second chance for an SPI v lacks: XDP steers a
// new SPI as soon as control writes it, while the workers get the tables
// a moment later. A view published since v was loaded is used at once
// (LateView); otherwise, if the maps' generation moved past v's, the drop
// is counted as SPINotApplied and a snapshot is asked for, once per
// generation. Else the SPI is unknown (retired, or never ours).
func (p *Pipeline) lateSPI(v *tables.View, spi uint32) *tables.SA {
	if nv := p.cfg.Tables.Load(); nv != nil && nv != v {
		if sa := nv.InboundSA(spi); sa != nil {
			p.C.LateView++
			return sa
		}
	}
	if p.cfg.Generation != nil {
		if g := p.cfg.Generation(); g != v.Generation {
			p.C.drop(StageSPI, uint8(SPINotApplied))
			if p.cfg.Refresh != nil && g != p.refreshed {
				p.refreshed = g
				p.cfg.Refresh()
			}
			return nil
		}
	}
	p.C.drop(StageSPI, uint8(UnknownSPI))
	return nil
}

func (p *Pipeline) account(sa *tables.SA, bytes uint64) {
	p.C.TunnelPackets[In][sa.Tunnel&(maps.MaxTunnels-1)]++
	p.C.TunnelBytes[In][sa.Tunnel&(maps.MaxTunnels-1)] += bytes
	for i := range p.accts {
		if p.accts[i].sa == sa {
			p.accts[i].packets++
			p.accts[i].bytes += bytes
			return
		}
	}
	if len(p.accts) < cap(p.accts) {
		p.accts = append(p.accts, acct{sa, 1, bytes})
		return
	}
	// More SAs in one batch than slots: account this one now, in the
	// worker's totals too (inbound adds them from the slots).
	maps.Account(sa.Counters, 1, bytes, p.now())
	if sa.Replay != nil {
		maps.RaiseSeq(sa.Counters, sa.Replay.Highest())
	}
	p.C.Packets[In]++
	p.C.Bytes[In] += bytes
}

// saDrop counts a drop in the SA's shared counters, which control reads.
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

// localOne reports whether a decrypted packet is addressed to the gateway
// (its tunnel inside address or any local address): those go to the
// slow path.
func (p *Pipeline) localOne(v *tables.View, pk *Packet, st *inState) bool {
	d := dstAddr(pk.Data())
	if st.t == nil || st.t.ID != pk.Tunnel {
		st.t = v.Tunnel(pk.Tunnel)
	}
	return (st.t != nil && d == st.t.InsideAddr) || v.IsLocal(d)
}

// toKernel queues a decrypted packet for its tunnel's kernel interface
// (flushed by flushSlow); r says why, 0 for the gateway's own packets.
func (p *Pipeline) toKernel(pk *Packet, r Reason) {
	if r != 0 {
		p.C.SlowMisses++
	}
	if p.cfg.SlowPath == nil || len(p.slowP)+len(p.slowMiss) >= p.cfg.Batch {
		p.C.drop(StageSlowPath, uint8(NoSlowPath))
		p.free(pk)
		return
	}
	if r != 0 {
		p.slowMiss = append(p.slowMiss, *pk)
		return
	}
	p.slowP = append(p.slowP, *pk)
}

// flushSlow writes the queued packets to their tunnels' interfaces, one
// Deliver per run of one tunnel, and frees their frames.
func (p *Pipeline) flushSlow() {
	// The gateway's own packets first, then those whose next hop was
	// unresolved (both fit: toKernel keeps them within one batch).
	q := append(p.slowP, p.slowMiss...)
	p.slowMiss = p.slowMiss[:0]
	for i := 0; i < len(q); {
		j := i
		p.slow = p.slow[:0]
		for j < len(q) && q[j].Tunnel == q[i].Tunnel {
			p.slow = append(p.slow, q[j].Data())
			j++
		}
		n := p.cfg.SlowPath.Deliver(q[i].Tunnel, p.slow)
		p.C.SlowToKernel += uint64(n)
		for x := n; x < len(p.slow); x++ {
			p.C.drop(StageSlowPath, uint8(SlowPathFull))
		}
		i = j
	}
	for i := range q {
		p.free(&q[i])
	}
	p.slowP = q[:0]
}

// forward is the -no-crypto path: rewrite the MACs for the next hop of
// the IP destination on the other device, nothing else.
func (p *Pipeline) forward(pkts []Packet, dir, ifindex int, src [6]byte, tx *[]Packet) {
	pkts = p.parse(pkts, true)
	before := len(*tx)
	*tx = p.ether(p.cfg.Neighbours.Table(), nil, pkts, hopIPDst, ifindex, src, *tx,
		func(pk *Packet, r Reason) { p.C.drop(StageForward, uint8(r)); p.free(pk) })
	for _, pk := range (*tx)[before:] {
		p.C.Packets[dir]++
		p.C.Bytes[dir] += uint64(pk.Len - EthLen)
	}
}

// NewBatch returns a batch buffer with room for the fragments the size
// stage may add.
func (p *Pipeline) NewBatch() []Packet { return make([]Packet, 0, p.cfg.Batch*maxFragments) }
