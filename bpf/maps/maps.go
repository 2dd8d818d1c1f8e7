// Package maps reads and writes the pinned BPF maps that are the contract
// between cgw-control and cgw-dataplane (DESIGN §2).
//
// cgw-control owns a Writer: it installs SAs, switches a tunnel's outbound
// SA, sets tunnel state and changes routes, one entry at a time. The
// dataplane owns a Reader: it polls the generation counter as plain memory
// and, when it moves, takes a Snapshot of the tables into Go maps and
// slices that its workers hold behind an atomic.Pointer.
//
// Generation protocol (a seqlock): the writer makes the counter odd before
// a change and even after it. A reader that sees the same even value before
// and after dumping the tables has a copy that contains only whole changes.
//
// Per-SA counters (struct sa_counters) live in a BPF_F_MMAPABLE array that
// both processes map into memory. Workers update them with atomic adds once
// per batch; the outbound sequence number is reserved there too, so it
// survives a dataplane restart. No syscall on the packet path.
package maps

import (
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/bpf"
)

// Addr16 converts an address to the contract's 16-byte form (IPv4 as
// ::ffff:a.b.c.d). The zero Addr gives all zeroes.
func Addr16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	return a.As16()
}

// AddrFrom16 is the inverse of Addr16.
func AddrFrom16(b [16]byte) netip.Addr {
	return netip.AddrFrom16(b).Unmap()
}

// shared is the memory both sides map: the generation counter and the
// per-SA counters.
type shared struct {
	objs     *Objects
	config   []byte
	counters []byte
	gen      *uint64
	applied  *uint64 // config.applied: the generation the dataplane's workers use
}

func mmapArray(m *ebpf.Map) ([]byte, error) {
	page := os.Getpagesize()
	size := int(m.ValueSize()) * int(m.MaxEntries())
	size = (size + page - 1) / page * page
	b, err := unix.Mmap(m.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("maps: mmap of %s (created without BPF_F_MMAPABLE by an older build? remove the pinned maps): %w", m, err)
	}
	return b, nil
}

func openShared(o *Objects) (*shared, error) {
	s := &shared{objs: o}
	var err error
	if s.config, err = mmapArray(o.CgwConfig); err != nil {
		return nil, err
	}
	if s.counters, err = mmapArray(o.SaStats); err != nil {
		unix.Munmap(s.config)
		return nil, err
	}
	// Page-aligned memory: the 8-byte atomics are aligned.
	s.gen = (*uint64)(unsafe.Pointer(&s.config[0]))
	s.applied = (*uint64)(unsafe.Pointer(&s.config[unsafe.Offsetof(bpf.CgwConfig{}.Applied)]))
	return s, nil
}

func (s *shared) close() error {
	err1 := unix.Munmap(s.config)
	err2 := unix.Munmap(s.counters)
	s.config, s.counters, s.gen, s.applied = nil, nil, nil, nil
	if err1 != nil {
		return err1
	}
	return err2
}

// Generation returns the generation counter: odd while a change is being
// written.
func (s *shared) Generation() uint64 { return atomic.LoadUint64(s.gen) }

// Applied returns the generation the dataplane last published to its
// workers (0 if no dataplane ever ran on these maps).
func (s *shared) Applied() uint64 { return atomic.LoadUint64(s.applied) }

// Counters returns the live counters of an SA, in memory shared with the
// other process and the kernel: access every field with sync/atomic. nil
// for an index out of range.
func (s *shared) Counters(saIndex uint32) *SACounters {
	if saIndex == 0 || saIndex >= MaxSAs {
		return nil
	}
	off := uintptr(saIndex) * unsafe.Sizeof(SACounters{})
	return (*SACounters)(unsafe.Pointer(&s.counters[off]))
}

// ReadSACounters returns a copy of an SA's counters, each field read
// atomically.
func (s *shared) ReadSACounters(saIndex uint32) (SACounters, error) {
	c := s.Counters(saIndex)
	if c == nil {
		return SACounters{}, fmt.Errorf("maps: SA index %d out of range 1..%d", saIndex, MaxSAs-1)
	}
	return SACounters{
		Packets:       atomic.LoadUint64(&c.Packets),
		Bytes:         atomic.LoadUint64(&c.Bytes),
		LastNs:        atomic.LoadUint64(&c.LastNs),
		Seq:           atomic.LoadUint64(&c.Seq),
		DropReplay:    atomic.LoadUint64(&c.DropReplay),
		DropAuth:      atomic.LoadUint64(&c.DropAuth),
		DropPad:       atomic.LoadUint64(&c.DropPad),
		DropMalformed: atomic.LoadUint64(&c.DropMalformed),
		DropMtu:       atomic.LoadUint64(&c.DropMtu),
		DropOther:     atomic.LoadUint64(&c.DropOther),
	}, nil
}

// routeKey maps a prefix to its trie and key. IPv4 prefixes must be in
// IPv4 form: ::ffff:0:0/96-style prefixes would never match a packet.
func routeKey(o *Objects, p netip.Prefix) (*ebpf.Map, any, error) {
	if !p.IsValid() {
		return nil, nil, fmt.Errorf("maps: invalid route prefix %v", p)
	}
	p = p.Masked()
	a := p.Addr()
	switch {
	case a.Is4():
		return o.RoutesV4, bpf.CgwRoute4Key{Prefixlen: uint32(p.Bits()), Addr: a.As4()}, nil
	case a.Is4In6():
		return nil, nil, fmt.Errorf("maps: route %v: write IPv4 prefixes as a.b.c.d/n, not IPv4-mapped", p)
	default:
		return o.RoutesV6, bpf.CgwRoute6Key{Prefixlen: uint32(p.Bits()), Addr: a.As16()}, nil
	}
}
