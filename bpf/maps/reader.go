package maps

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/cgw-project/cgw/bpf"
)

// Reader is the dataplane's side: the generation counter and SA counters
// as memory, and whole-table snapshots.
type Reader struct {
	*shared
	kick chan struct{}
}

// NewReader opens the reader side of an instance's maps.
func NewReader(o *Objects) (*Reader, error) {
	s, err := openShared(o)
	if err != nil {
		return nil, err
	}
	return &Reader{shared: s, kick: make(chan struct{}, 1)}, nil
}

// Close unmaps the shared memory; pointers from Counters become invalid.
func (r *Reader) Close() error { return r.close() }

// ReadGeneration reads the generation counter from memory, without a
// syscall. A worker compares it with its snapshot's Generation.
func (r *Reader) ReadGeneration() uint64 { return r.Generation() }

// SetApplied records that the workers now use the tables of generation
// gen (call it after the atomic.Pointer swap): Writer.WaitApplied waits
// for it. One dataplane process per instance writes it.
func (r *Reader) SetApplied(gen uint64) { atomic.StoreUint64(r.applied, gen) }

// Kick makes a running Poll check the generation now instead of at its
// next tick (a worker that met an SPI its snapshot lacks while the maps
// moved on). It never blocks; kicks while one is pending are merged, which
// is what rate-limits them.
func (r *Reader) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// RouteEntry is one route of a snapshot.
type RouteEntry struct {
	Prefix netip.Prefix
	Route
}

// Tables is a consistent copy of the tables, plain Go values a worker can
// read without locks (publish it with atomic.Pointer, never modify it).
type Tables struct {
	Generation uint64
	SAs        map[uint32]SA        // SA index -> parameters, of the SAs referenced by Inbound or Outbound
	Inbound    map[uint32]InboundSA // SPI -> SA
	Outbound   []uint32             // tunnel id -> outbound SA index (0: none)
	Tunnels    []Tunnel             // tunnel id -> state
	Routes     []RouteEntry         // IPv4 then IPv6, in trie order
	LocalAddrs map[netip.Addr]Local
}

// ErrBusy is returned by Snapshot when the tables kept changing (or a
// writer died mid-change and no new writer has opened the maps).
var ErrBusy = errors.New("maps: tables kept changing during the snapshot (or cgw-control died mid-change: restart it)")

// Snapshot dumps the tables. It retries until it gets a copy no change
// overlapped, for up to about a second.
func (r *Reader) Snapshot() (*Tables, error) {
	wait := 50 * time.Microsecond
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		g1 := r.Generation()
		if g1%2 == 1 {
			time.Sleep(wait)
			wait = min(2*wait, 20*time.Millisecond)
			continue
		}
		t, err := dump(r.objs)
		if err != nil {
			return nil, err
		}
		if r.Generation() == g1 {
			t.Generation = g1
			return t, nil
		}
	}
	return nil, ErrBusy
}

func dump(o *Objects) (*Tables, error) {
	t := &Tables{
		SAs:        map[uint32]SA{},
		Inbound:    map[uint32]InboundSA{},
		LocalAddrs: map[netip.Addr]Local{},
	}
	var err error
	if t.Tunnels, err = dumpArray[Tunnel](o.Tunnels); err != nil {
		return nil, err
	}
	if t.Outbound, err = dumpArray[uint32](o.OutboundSa); err != nil {
		return nil, err
	}
	var spi uint32
	var in InboundSA
	it := o.InboundSpi.Iterate()
	for it.Next(&spi, &in) {
		t.Inbound[spi] = in
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("maps: reading inbound SPIs: %w", err)
	}
	// Only referenced SAs: a handful of lookups instead of the whole table.
	need := func(idx uint32) error {
		if _, ok := t.SAs[idx]; ok || idx == 0 {
			return nil
		}
		var sa SA
		if err := o.SaTable.Lookup(idx, &sa); err != nil {
			return fmt.Errorf("maps: reading SA %d: %w", idx, err)
		}
		t.SAs[idx] = sa
		return nil
	}
	for _, in := range t.Inbound {
		if err := need(in.SaIndex); err != nil {
			return nil, err
		}
	}
	for _, idx := range t.Outbound {
		if err := need(idx); err != nil {
			return nil, err
		}
	}

	var la bpf.CgwLocalAddr
	var kind uint32
	it = o.LocalAddrs.Iterate()
	for it.Next(&la, &kind) {
		t.LocalAddrs[AddrFrom16(la.Addr)] = Local(kind)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("maps: reading local addresses: %w", err)
	}

	var k4 bpf.CgwRoute4Key
	var rt Route
	it = o.RoutesV4.Iterate()
	for it.Next(&k4, &rt) {
		p := netip.PrefixFrom(netip.AddrFrom4(k4.Addr), int(k4.Prefixlen))
		t.Routes = append(t.Routes, RouteEntry{p, rt})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("maps: reading IPv4 routes: %w", err)
	}
	var k6 bpf.CgwRoute6Key
	it = o.RoutesV6.Iterate()
	for it.Next(&k6, &rt) {
		p := netip.PrefixFrom(netip.AddrFrom16(k6.Addr), int(k6.Prefixlen))
		t.Routes = append(t.Routes, RouteEntry{p, rt})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("maps: reading IPv6 routes: %w", err)
	}
	return t, nil
}

// dumpArray reads a whole array map with batch lookups (a few syscalls
// instead of one per slot).
func dumpArray[T any](m *ebpf.Map) ([]T, error) {
	n := int(m.MaxEntries())
	out := make([]T, n)
	keys := make([]uint32, n)
	vals := make([]T, n)
	var cursor ebpf.MapBatchCursor
	got := 0
	for got < n {
		c, err := m.BatchLookup(&cursor, keys[got:], vals[got:], nil)
		got += c
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("maps: reading %v: %w", m, err)
		}
		if c == 0 {
			break
		}
	}
	for i := 0; i < got; i++ {
		if keys[i] < uint32(n) {
			out[keys[i]] = vals[i]
		}
	}
	return out, nil
}

// Poll publishes a new snapshot whenever the generation moves, checking
// every interval (or at once after Kick), until stop is closed. It
// publishes the current tables first. Workers load the latest from their
// atomic.Pointer; readers of an older snapshot keep it until they let go
// (RCU-style). After publish returns, Poll stores the snapshot's
// generation as applied (SetApplied), so publish must make the tables
// visible to the workers before it returns. A failed snapshot is reported
// and retried at the next tick. Stop Poll before Close.
func (r *Reader) Poll(stop <-chan struct{}, every time.Duration, publish func(*Tables), report func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, have := uint64(0), false
	for {
		if g := r.Generation(); !have || g != last {
			tb, err := r.Snapshot()
			if err != nil {
				if report != nil {
					report(err)
				}
			} else {
				last, have = tb.Generation, true
				publish(tb)
				r.SetApplied(tb.Generation)
			}
		}
		select {
		case <-stop:
			return
		case <-t.C:
		case <-r.kick:
		}
	}
}
