// Package tables is the workers' view of the map contract: from each
// *maps.Tables snapshot the dataplane builds a View once per generation —
// ESP SAs ready to use, tunnels with their outbound SA, a route table for
// longest-prefix match and the gateway's local addresses — and publishes it
// behind an atomic.Pointer (RCU style, DESIGN §2). A worker loads the
// pointer once per batch; a View is never modified after it is published.
//
// SA objects are cached across generations by SA index and content: an SA
// that did not change keeps its *esp.SA, its Cipher and above all its
// *replay.Window, so a route change does not reset anti-replay state, and
// an SA that is reinstalled with new keys gets fresh ones.
package tables

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/dataplane/esp"
	"github.com/cgw-project/cgw/dataplane/replay"
)

// SA is one SA as the workers use it.
type SA struct {
	Index    uint32
	Tunnel   uint32
	ESP      *esp.SA
	Counters *maps.SACounters // live, in memory shared with control: sync/atomic only
	Replay   *replay.Window   // inbound; nil when the window is off
	Local    netip.Addr       // outer addresses
	Remote   netip.Addr
	// Hard lifetime limits (0: none): the dataplane stops using an
	// outbound SA that reached one (control rekeys at the soft limit).
	HardBytes, HardPackets uint64
}

// Expired reports whether an outbound SA reached a hard lifetime limit.
// Two atomic loads: call it once per batch.
func (s *SA) Expired() bool {
	if s.HardBytes != 0 && atomic.LoadUint64(&s.Counters.Bytes) >= s.HardBytes {
		return true
	}
	return s.HardPackets != 0 && atomic.LoadUint64(&s.Counters.Packets) >= s.HardPackets
}

// Tunnel is one tunnel's parameters and its current outbound SA.
type Tunnel struct {
	ID         uint32
	Up         bool
	MTU        int          // inner MTU (1399 for AWS)
	MSS        int          // TCP MSS clamp, 0 = off
	ClearDF    bool         // fragment DF packets instead of answering "fragmentation needed"
	TunIfindex int          // slow-path TUN device
	Inside     netip.Prefix // our inside address with the /30's length (169.254.10.2/30), as an interface address
	InsideAddr netip.Addr   // our address in the inside /30: packets to it go to the slow path
	Remote     netip.Addr   // the peer's outside address from the tunnel table (invalid: unset)
	Out        *SA          // nil: the tunnel has no usable outbound SA
}

// View is one generation of the tables as the workers see them.
type View struct {
	Generation uint64
	Inbound    map[uint32]*SA // SPI → SA
	Tunnels    []*Tunnel      // tunnel id → tunnel; nil when absent
	Routes     *LPM
	Local      map[netip.Addr]maps.Local
	local      []netip.Addr // the same addresses: a few, so a scan beats the map per packet
	// Problems lists SAs and tunnels left out of the view and why (bad
	// keys, unusable parameters), for the log.
	Problems []error

	spis spiTable // Inbound again, for InboundSA
}

// InboundSA returns the inbound SA of an SPI, or nil: Inbound[spi], from
// an open-addressing table Build makes alongside the map (a few ns instead
// of a Go map lookup for a worker whose batch alternates between SAs). A
// View not made by Build falls back to the map.
func (v *View) InboundSA(spi uint32) *SA {
	if v.spis.slots == nil {
		return v.Inbound[spi]
	}
	return v.spis.get(spi)
}

// spiTable maps SPIs to SAs with linear probing in a power-of-two table at
// most half full, so a probe always ends at a match or an empty slot. SPI
// 0 marks an empty slot: it is reserved (RFC 4303 §2.1) and esp.NewSA
// refuses it.
type spiTable struct {
	slots []spiSlot
	mask  uint32
	shift uint8
}

type spiSlot struct {
	spi uint32
	sa  *SA
}

func newSPITable(m map[uint32]*SA) spiTable {
	n, bits := 8, uint8(3)
	for n < 2*len(m) {
		n, bits = n*2, bits+1
	}
	t := spiTable{slots: make([]spiSlot, n), mask: uint32(n - 1), shift: 32 - bits}
	for spi, sa := range m {
		if spi == 0 {
			continue
		}
		i := t.home(spi)
		for t.slots[i].spi != 0 {
			i = (i + 1) & t.mask
		}
		t.slots[i] = spiSlot{spi, sa}
	}
	return t
}

// home is a multiplicative (Fibonacci) hash: the top bits of spi·φ.
func (t *spiTable) home(spi uint32) uint32 { return (spi * 0x9e3779b9) >> t.shift }

func (t *spiTable) get(spi uint32) *SA {
	if spi == 0 {
		return nil
	}
	for i := t.home(spi); ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.spi == spi {
			return s.sa
		}
		if s.spi == 0 {
			return nil
		}
	}
}

// Tunnel returns the tunnel with this id, or nil.
func (v *View) Tunnel(id uint32) *Tunnel {
	if id == 0 || int(id) >= len(v.Tunnels) {
		return nil
	}
	return v.Tunnels[id]
}

// IsLocal reports whether a is an address of the gateway.
func (v *View) IsLocal(a netip.Addr) bool {
	if v.local == nil {
		_, ok := v.Local[a]
		return ok
	}
	for _, l := range v.local {
		if l == a {
			return true
		}
	}
	return false
}

// Route returns the tunnel for dst: the route's tunnel if it is up, else
// its backup if that is up, else 0 (the XDP program's rule).
func (v *View) Route(dst netip.Addr) uint32 {
	r, ok := v.Routes.Lookup(dst)
	if !ok {
		return 0
	}
	if t := v.Tunnel(r.TunnelId); t != nil && t.Up && t.Out != nil {
		return t.ID
	}
	if t := v.Tunnel(r.BackupTunnelId); t != nil && t.Up && t.Out != nil {
		return t.ID
	}
	return 0
}

// Builder turns snapshots into Views, keeping SA objects that did not
// change. One Builder per dataplane; Build is not safe for concurrent use.
type Builder struct {
	counters func(saIndex uint32) *maps.SACounters
	cache    map[uint32]cached
}

type cached struct {
	// key is the SA's parameters with State zeroed (a state change, active
	// → retiring, keeps the object) and its key bytes zeroed: keys is
	// their digest, so the cache holds no key material (keys.go).
	key  maps.SA
	keys [32]byte
	sa   *SA
}

// NewBuilder returns a Builder; counters gives the live counters of an SA
// index (maps.Reader.Counters).
func NewBuilder(counters func(saIndex uint32) *maps.SACounters) *Builder {
	return &Builder{counters: counters, cache: map[uint32]cached{}}
}

// Build makes the View of t.
func (b *Builder) Build(t *maps.Tables) *View {
	v := &View{
		Generation: t.Generation,
		Inbound:    make(map[uint32]*SA, len(t.Inbound)),
		Tunnels:    make([]*Tunnel, maps.MaxTunnels),
		Routes:     NewLPM(t.Routes),
		Local:      make(map[netip.Addr]maps.Local, len(t.LocalAddrs)),
	}
	for a, k := range t.LocalAddrs {
		v.Local[a.Unmap()] = k
	}
	if len(v.Local) <= 16 {
		v.local = make([]netip.Addr, 0, len(v.Local))
		for a := range v.Local {
			v.local = append(v.local, a)
		}
	}
	used := map[uint32]bool{}
	for spi, in := range t.Inbound {
		s, err := b.sa(t, in.SaIndex, maps.DirInbound)
		if err != nil {
			v.Problems = append(v.Problems, fmt.Errorf("inbound SPI %#08x: %w", spi, err))
			continue
		}
		if s.ESP.SPI() != spi {
			v.Problems = append(v.Problems, fmt.Errorf("inbound SPI %#08x points at SA %d whose SPI is %#08x: ignored", spi, in.SaIndex, s.ESP.SPI()))
			continue
		}
		used[in.SaIndex] = true
		v.Inbound[spi] = s
	}
	v.spis = newSPITable(v.Inbound)
	for id := 1; id < len(t.Tunnels) && id < int(maps.MaxTunnels); id++ {
		tn := t.Tunnels[id]
		var out uint32
		if id < len(t.Outbound) {
			out = t.Outbound[id]
		}
		if tn.Flags == 0 && tn.Mtu == 0 && out == 0 {
			continue // never set
		}
		vt := &Tunnel{
			ID:         uint32(id),
			Up:         tn.Flags&uint32(maps.TunnelUp) != 0,
			MTU:        int(tn.Mtu),
			MSS:        int(tn.Mss),
			ClearDF:    tn.Flags&uint32(maps.TunnelClearDF) != 0,
			TunIfindex: int(tn.TunIfindex),
		}
		if vt.MTU == 0 {
			vt.MTU = 1399
		}
		if vt.MTU < 68 {
			// RFC 791 §3.2: 68 bytes must pass unfragmented; a smaller
			// value is a slip in the tunnel table.
			v.Problems = append(v.Problems, fmt.Errorf("tunnel %d: MTU %d is below 68 (RFC 791): using 68", id, vt.MTU))
			vt.MTU = 68
		}
		if a := maps.AddrFrom16(tn.RemoteAddr); a.IsValid() && !a.IsUnspecified() {
			vt.Remote = a
		}
		if a := maps.AddrFrom16(tn.InsideAddr).Unmap(); a.IsValid() && !a.IsUnspecified() {
			vt.InsideAddr = a
			if bits := int(tn.InsidePrefixlen); bits > 0 && bits <= a.BitLen() {
				vt.Inside = netip.PrefixFrom(a, bits) // not masked: the interface address
			}
		}
		if out != 0 {
			s, err := b.sa(t, out, maps.DirOutbound)
			if err != nil {
				v.Problems = append(v.Problems, fmt.Errorf("tunnel %d: outbound SA %d: %w", id, out, err))
			} else {
				used[out] = true
				vt.Out = s
			}
		}
		v.Tunnels[id] = vt
	}
	for idx := range b.cache {
		if !used[idx] {
			delete(b.cache, idx)
		}
	}
	return v
}

// sa returns the SA object of an index, from the cache when its
// parameters did not change.
func (b *Builder) sa(t *maps.Tables, idx uint32, dir maps.SADir) (*SA, error) {
	p, ok := t.SAs[idx]
	if !ok {
		return nil, fmt.Errorf("SA index %d is referenced but not in the snapshot", idx)
	}
	if p.Direction != uint8(dir) {
		return nil, fmt.Errorf("SA %d has direction %d, want %d", idx, p.Direction, dir)
	}
	defer WipeSAKeys(&p) // a copy of the snapshot's: keys leave Go memory as soon as the ciphers hold them
	key := p
	key.State = 0
	digest := keyDigest(&key)
	WipeSAKeys(&key)
	if c, ok := b.cache[idx]; ok && c.key == key && c.keys == digest {
		return c.sa, nil
	}
	s, err := b.newSA(idx, &p)
	if err != nil {
		return nil, err
	}
	b.cache[idx] = cached{key: key, keys: digest, sa: s}
	return s, nil
}

func (b *Builder) newSA(idx uint32, p *maps.SA) (*SA, error) {
	suite, keymat, err := maps.Keys(p)
	if err != nil {
		return nil, err
	}
	c, err := newCipher(suite, keymat)
	clear(keymat) // the cipher made its own key schedule and copies
	if err != nil {
		return nil, err
	}
	ctr := b.counters(idx)
	if ctr == nil {
		return nil, fmt.Errorf("SA index %d has no counters (index out of range 1..%d)", idx, maps.MaxSAs-1)
	}
	esn := p.Flags&uint32(maps.SAFlagESN) != 0
	s := &SA{
		Index:       idx,
		Tunnel:      p.TunnelId,
		Counters:    ctr,
		Local:       maps.AddrFrom16(p.LocalAddr).Unmap(),
		Remote:      maps.AddrFrom16(p.RemoteAddr).Unmap(),
		HardBytes:   p.LifeHardBytes,
		HardPackets: p.LifeHardPackets,
	}
	cfg := esp.Config{SPI: p.Spi, Cipher: c, ESN: esn}
	if p.Direction == uint8(maps.DirOutbound) {
		cfg.Src, cfg.Dst = s.Local, s.Remote
		cfg.DF = esp.DFCopy
		// The sequence counter is the mmap'd one: it survives a restart
		// of this process, and esp.SA.ReserveSeq enforces the limit on it.
		cfg.Seq = &ctr.Seq
		if p.Flags&uint32(maps.SAFlagUDPEncap) != 0 {
			cfg.UDPEncap, cfg.SrcPort, cfg.DstPort = true, p.EncapSport, p.EncapDport
		}
	} else if p.ReplayWindow != 0 {
		size := min(max(int(p.ReplayWindow), replay.MinSize), replay.MaxSize)
		w, err := replay.New(size, esn)
		if err != nil {
			return nil, err
		}
		resumeReplay(w, atomic.LoadUint64(&ctr.Seq))
		s.Replay, cfg.Replay = w, w
	}
	s.ESP, err = esp.NewSA(cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// resumeReplay primes a new SA's window with hi, the highest sequence
// number a previous run of the dataplane authenticated under this SA
// (sa_counters.seq, raised once per batch before the batch is delivered):
// a restarted dataplane must not accept a replay of what it already
// delivered (RFC 4303 §3.4.3), and with ESN it resumes in hi's epoch.
// A few packets still in flight from before the restart are lost
// instead; that is the safe side.
func resumeReplay(w *replay.Window, hi uint64) { w.Resume(hi) }

// Tables holds the current View for the workers.
type Tables struct {
	p atomic.Pointer[View]
}

// Load returns the current View (nil before the first Store). Workers
// call it once per batch.
func (t *Tables) Load() *View { return t.p.Load() }

// Store publishes a View.
func (t *Tables) Store(v *View) { t.p.Store(v) }
