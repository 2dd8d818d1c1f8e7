// Package worker is the fast path's packet engine: one worker per core
// and queue owns a UMEM shared by an inside and an outside AF_XDP socket,
// receives batches from both, runs them through the pipeline's stages and
// transmits the survivors (DESIGN §3).
//
// The pipeline reads like VPP's graph, one file per direction in packet
// order (as wireguard-go's device/send.go and receive.go): each stage is
// one function that does one thing to a packet and returns why it drops
// it, counted at that stage.
//
//	outbound.go (inside → outside): metadata → parse → route → ttl → mss → frag → esp_encap → neigh_outside → tx
//	inbound.go  (outside → inside): parse → esp_locate → spi_lookup → esp_decap → inner → local? slow_path : ttl → neigh_inside → tx
//	slowpath.go: the kernel's own packets into a tunnel (route → parse → mss → frag → esp_encap → neigh_outside)
//	             and decrypted packets for the kernel
//	nocrypto.go: Config.NoCrypto, the benchmark's baseline
//	nexthop.go:  the neighbour stages' MAC lookup and Ethernet header
//
// The stages run per packet in as few passes over the batch as the work
// allows — outbound two (metadata … frag; then esp_encap and
// neigh_outside per run of one tunnel, which reserves the run's sequence
// numbers at once), inbound one — because UMEM frames lie 4096 bytes
// apart, their header lines share L1 sets, and a pass per stage fetched
// them again for every stage. Drops, counters and the order of the
// survivors are those of the stages run one after the other.
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
	Buf  []byte
	Addr uint64 // any address inside the frame (the UMEM's frame handle)
	Off  int
	Len  int

	t  *tables.Tunnel // outbound: the tunnel route chose
	sa *tables.SA     // inbound: the SA that decrypted it (its Tunnel names the tunnel)
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
	// switched off. Outbound runs metadata, parse, route (a tunnel that
	// is up; no SA needed), ttl, mss and frag, then sends the inner
	// packet to the outside next hop of the tunnel's remote (its outbound
	// SA's, else the tunnel table's, else the packet's own destination);
	// inbound forwards with a MAC rewrite only (there is no ESP to take
	// off).
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
	// c is the worker's own tally (tally.go).
	c tally

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
	// pub is what c last published (Counters), allocated apart so that
	// the scrape's loads share no cache line with the worker's tally.
	pub *Counters
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
		pub:      new(Counters),
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

// NewBatch returns a batch buffer with room for the fragments the frag
// stage may add.
func (p *Pipeline) NewBatch() []Packet { return make([]Packet, 0, p.cfg.Batch*maxFragments) }

// Counters returns the pipeline's counters as of its last batch (read
// them atomically).
func (p *Pipeline) Counters() *Counters { return p.pub }

// publish makes the batch's counts visible to Counters' readers.
func (p *Pipeline) publish() { p.c.publish(p.pub) }

var (
	monoBase  = readMonotonic()
	monoStart = time.Now()
)

// monotonicNs is CLOCK_MONOTONIC in ns (the clock of bpf_ktime_get_ns that
// control compares sa_counters.last_ns with), from Go's monotonic clock
// without a syscall.
func monotonicNs() uint64 { return monoBase + uint64(time.Since(monoStart)) }

func (p *Pipeline) free(pk *Packet) { p.cfg.Frames.Free(pk.Addr) }

// drop counts a packet's drop at stage s for reason r (that stage's enum)
// and frees its frame.
func (p *Pipeline) drop(pk *Packet, s Stage, r uint8) {
	p.c.drop(s, r)
	p.free(pk)
}

// ------------------------------------------- stages both directions share

// parseFrame is the parse stage for a received frame: it checks the
// Ethernet header and, with parseIP, the IP header, and moves Off/Len to
// the IP packet.
func parseFrame(pk *Packet, allow6 bool) Reason {
	if pk.Len < EthLen+packet.IPv4HeaderLen {
		return ShortFrame
	}
	var ver byte
	switch et := binary.BigEndian.Uint16(pk.Buf[pk.Off+12:]); {
	case et == etherTypeIP4:
		ver = 4
	case et == etherTypeIP6 && allow6:
		ver = 6
	default:
		return NotIP
	}
	pk.Off += EthLen
	pk.Len -= EthLen
	return parseIP(pk, ver)
}

// parseIP is the parse stage for an IP packet of version ver (the
// kernel's packets have no Ethernet header): it checks that the packet
// is a whole IP packet (what the later stages read without further
// checks) and trims it to its IP length (Ethernet padding cut off).
func parseIP(pk *Packet, ver byte) Reason {
	ip := pk.Buf[pk.Off : pk.Off+pk.Len]
	switch ver {
	case 4:
		if len(ip) < packet.IPv4HeaderLen || ip[0]>>4 != 4 {
			return BadIP
		}
		hl := int(ip[0]&0x0f) * 4
		tl := int(binary.BigEndian.Uint16(ip[2:]))
		if hl < packet.IPv4HeaderLen || tl < hl || tl > len(ip) {
			return BadIP
		}
		pk.Len = tl
	case 6:
		if len(ip) < packet.IPv6HeaderLen || ip[0]>>4 != 6 {
			return BadIP
		}
		tl := packet.IPv6HeaderLen + int(binary.BigEndian.Uint16(ip[4:]))
		if tl > len(ip) {
			return BadIP
		}
		pk.Len = tl
	default:
		return BadIP
	}
	return 0
}

// ttl is the ttl stage: it decrements the TTL (IPv4, checksum updated per
// RFC 1624) or hop limit (IPv6) of a forwarded packet; a packet that
// would reach 0 is dropped (RFC 1812 §5.3.1; no ICMP time exceeded is
// sent).
func ttl(ip []byte) Reason {
	if ip[0]>>4 == 6 {
		if ip[7] <= 1 {
			return TTLExceeded
		}
		ip[7]--
		return 0
	}
	if ip[packet.IPv4OffTTL] <= 1 {
		return TTLExceeded
	}
	old := binary.BigEndian.Uint16(ip[packet.IPv4OffTTL:])
	ip[packet.IPv4OffTTL]--
	cs := binary.BigEndian.Uint16(ip[packet.IPv4OffChecksum:])
	binary.BigEndian.PutUint16(ip[packet.IPv4OffChecksum:], mss.Update(cs, old, old-0x0100))
	return 0
}

// dstAddr returns an IP packet's destination.
func dstAddr(ip []byte) netip.Addr {
	if ip[0]>>4 == 4 {
		return netip.AddrFrom4([4]byte(ip[packet.IPv4OffDst : packet.IPv4OffDst+4]))
	}
	return netip.AddrFrom16([16]byte(ip[24:40]))
}

// abort forgets what a batch interrupted by a panic left queued (the
// worker reclaims its frames).
func (p *Pipeline) abort() {
	p.slowP, p.slowMiss, p.accts = p.slowP[:0], p.slowMiss[:0], p.accts[:0]
}
