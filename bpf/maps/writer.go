package maps

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/cgw-project/cgw/bpf"
)

// Writer changes the tables. Use one per instance, in cgw-control. Every
// mutating call is applied entry by entry (never a whole-table rewrite)
// and moves the generation counter: odd before, even after.
type Writer struct {
	*shared

	mu      sync.Mutex
	depth   int // nesting of Batch and mutating calls
	updates int // map writes made; lets tests see the outbound switch is one
}

// NewWriter opens the writer side of an instance's maps.
func NewWriter(o *Objects) (*Writer, error) {
	s, err := openShared(o)
	if err != nil {
		return nil, err
	}
	// An odd generation means a writer died mid-change. The entries it
	// wrote are whole (each is one map update), so close the change.
	if g := atomic.LoadUint64(s.gen); g%2 == 1 {
		atomic.AddUint64(s.gen, 1)
	}
	return &Writer{shared: s}, nil
}

// Close unmaps the shared memory. The maps stay pinned.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gen == nil {
		return nil
	}
	return w.close()
}

func (w *Writer) begin() {
	if w.depth == 0 {
		atomic.AddUint64(w.gen, 1)
	}
	w.depth++
}

func (w *Writer) end() {
	w.depth--
	if w.depth == 0 {
		atomic.AddUint64(w.gen, 1)
	}
}

// change runs fn as one change.
func (w *Writer) change(fn func() error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gen == nil {
		return errClosed
	}
	w.begin()
	defer w.end()
	return fn()
}

// Batch runs fn, whose Writer calls readers then see as one change: the
// generation stays odd until fn returns (for a burst of BGP updates).
func (w *Writer) Batch(fn func() error) error {
	w.mu.Lock()
	if w.gen == nil {
		w.mu.Unlock()
		return errClosed
	}
	w.begin()
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		if w.gen != nil {
			w.end()
		}
		w.mu.Unlock()
	}()
	return fn()
}

var errClosed = errors.New("maps: writer used after Close")

func (w *Writer) put(m *ebpf.Map, k, v any, flags ebpf.MapUpdateFlags) error {
	w.updates++
	return m.Update(k, v, flags)
}

func (w *Writer) del(m *ebpf.Map, k any) error {
	w.updates++
	return m.Delete(k)
}

func checkIndex(saIndex uint32) error {
	if saIndex == 0 || saIndex >= MaxSAs {
		return fmt.Errorf("maps: SA index %d out of range 1..%d", saIndex, MaxSAs-1)
	}
	return nil
}

func checkTunnel(id uint32) error {
	if id == 0 || id >= MaxTunnels {
		return fmt.Errorf("maps: tunnel id %d out of range 1..%d", id, MaxTunnels-1)
	}
	return nil
}

// checkSA rejects parameters the dataplane could not use.
func checkSA(sa *SA) error {
	if sa.Direction != uint8(DirInbound) && sa.Direction != uint8(DirOutbound) {
		return fmt.Errorf("maps: SA %#x: direction %d is neither inbound (1) nor outbound (2)", sa.Spi, sa.Direction)
	}
	if sa.Spi < 256 {
		return fmt.Errorf("maps: SA SPI %#x is reserved (RFC 4303 §2.1: 1-255)", sa.Spi)
	}
	if err := checkTunnel(sa.TunnelId); err != nil {
		return fmt.Errorf("maps: SA %#x: %w", sa.Spi, err)
	}
	// The same check the dataplane's transform.New will make.
	if _, _, err := Keys(sa); err != nil {
		return err
	}
	return nil
}

// installSA writes an SA into a free slot and zeroes its counters. Nothing
// references the slot yet, so readers cannot see a half-written SA.
func (w *Writer) installSA(saIndex uint32, sa SA) error {
	if err := checkIndex(saIndex); err != nil {
		return err
	}
	if err := checkSA(&sa); err != nil {
		return err
	}
	var cur SA
	if err := w.objs.SaTable.Lookup(saIndex, &cur); err != nil {
		return fmt.Errorf("maps: reading SA slot %d: %w", saIndex, err)
	}
	if cur.State != uint8(StateUnused) {
		return fmt.Errorf("maps: SA index %d is in use (SPI %#x, state %d): RetireSA it first", saIndex, cur.Spi, cur.State)
	}
	if sa.State == uint8(StateUnused) {
		sa.State = uint8(StateInstalling)
	}
	if err := w.put(w.objs.SaStats, saIndex, SACounters{}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("maps: zeroing counters of SA %d: %w", saIndex, err)
	}
	if err := w.put(w.objs.SaTable, saIndex, sa, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("maps: writing SA %d: %w", saIndex, err)
	}
	return nil
}

// InstallSA writes an SA's parameters into a free slot of the SA table.
// An outbound SA is then put to use with SetOutboundSA.
func (w *Writer) InstallSA(saIndex uint32, sa SA) error {
	return w.change(func() error { return w.installSA(saIndex, sa) })
}

// InstallInboundSA installs an inbound SA and publishes its SPI, from which
// point the outside XDP program steers its packets to the dataplane.
func (w *Writer) InstallInboundSA(saIndex uint32, sa SA) error {
	sa.Direction = uint8(DirInbound)
	return w.change(func() error {
		var existing InboundSA
		if err := w.objs.InboundSpi.Lookup(sa.Spi, &existing); err == nil {
			return fmt.Errorf("maps: inbound SPI %#x already installed as SA %d", sa.Spi, existing.SaIndex)
		}
		if err := w.installSA(saIndex, sa); err != nil {
			return err
		}
		v := InboundSA{SaIndex: saIndex, TunnelId: sa.TunnelId}
		if err := w.put(w.objs.InboundSpi, sa.Spi, v, ebpf.UpdateNoExist); err != nil {
			w.put(w.objs.SaTable, saIndex, SA{}, ebpf.UpdateAny)
			return fmt.Errorf("maps: publishing inbound SPI %#x (table full? %d SAs max): %w", sa.Spi, MaxSAs, err)
		}
		return nil
	})
}

// SetOutboundSA points a tunnel at a new outbound SA with one 4-byte array
// update, so every packet uses either the old SA or the new one
// (make-before-break, DESIGN §2). saIndex 0 leaves the tunnel without one.
func (w *Writer) SetOutboundSA(tunnel, saIndex uint32) error {
	if err := checkTunnel(tunnel); err != nil {
		return err
	}
	return w.change(func() error {
		if saIndex != 0 {
			if err := checkIndex(saIndex); err != nil {
				return err
			}
			var sa SA
			if err := w.objs.SaTable.Lookup(saIndex, &sa); err != nil {
				return fmt.Errorf("maps: reading SA %d: %w", saIndex, err)
			}
			if sa.State == uint8(StateUnused) || sa.Direction != uint8(DirOutbound) || sa.TunnelId != tunnel {
				return fmt.Errorf("maps: SA %d is not an installed outbound SA of tunnel %d (state %d, direction %d, tunnel %d)", saIndex, tunnel, sa.State, sa.Direction, sa.TunnelId)
			}
		}
		if err := w.put(w.objs.OutboundSa, tunnel, saIndex, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("maps: switching tunnel %d to SA %d: %w", tunnel, saIndex, err)
		}
		return nil
	})
}

// SetSAState changes an installed SA's state (e.g. to retiring after a
// rekey).
func (w *Writer) SetSAState(saIndex uint32, state bpf.CgwSaState) error {
	if err := checkIndex(saIndex); err != nil {
		return err
	}
	if state == StateUnused || state > StateRetiring {
		return fmt.Errorf("maps: SA state %d: use installing, active or retiring (RetireSA frees a slot)", state)
	}
	return w.change(func() error {
		var sa SA
		if err := w.objs.SaTable.Lookup(saIndex, &sa); err != nil {
			return fmt.Errorf("maps: reading SA %d: %w", saIndex, err)
		}
		if sa.State == uint8(StateUnused) {
			return fmt.Errorf("maps: SA index %d is not installed", saIndex)
		}
		sa.State = uint8(state)
		return w.put(w.objs.SaTable, saIndex, sa, ebpf.UpdateExist)
	})
}

// RetireSA removes an SA after its grace period: its SPI stops being
// steered and the slot becomes free. The current outbound SA of a tunnel
// cannot be retired; switch the tunnel first. The counters are left for a
// last ReadSACounters; the next install zeroes them.
func (w *Writer) RetireSA(saIndex uint32) error {
	if err := checkIndex(saIndex); err != nil {
		return err
	}
	return w.change(func() error {
		var sa SA
		if err := w.objs.SaTable.Lookup(saIndex, &sa); err != nil {
			return fmt.Errorf("maps: reading SA %d: %w", saIndex, err)
		}
		if sa.State == uint8(StateUnused) {
			return fmt.Errorf("maps: SA index %d is not installed", saIndex)
		}
		var out uint32
		if err := w.objs.OutboundSa.Lookup(sa.TunnelId, &out); err == nil && out == saIndex {
			return fmt.Errorf("maps: SA %d is tunnel %d's outbound SA: SetOutboundSA to its successor first", saIndex, sa.TunnelId)
		}
		if sa.Direction == uint8(DirInbound) {
			var in InboundSA
			if err := w.objs.InboundSpi.Lookup(sa.Spi, &in); err == nil && in.SaIndex == saIndex {
				if err := w.del(w.objs.InboundSpi, sa.Spi); err != nil {
					return fmt.Errorf("maps: removing inbound SPI %#x: %w", sa.Spi, err)
				}
			}
		}
		return w.put(w.objs.SaTable, saIndex, SA{}, ebpf.UpdateAny)
	})
}

// SetTunnel writes a tunnel's state.
func (w *Writer) SetTunnel(id uint32, t Tunnel) error {
	if err := checkTunnel(id); err != nil {
		return err
	}
	return w.change(func() error {
		if err := w.put(w.objs.Tunnels, id, t, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("maps: writing tunnel %d: %w", id, err)
		}
		return nil
	})
}

// SetTunnelUp sets or clears a tunnel's up flag, leaving the rest.
func (w *Writer) SetTunnelUp(id uint32, up bool) error {
	if err := checkTunnel(id); err != nil {
		return err
	}
	return w.change(func() error {
		var t Tunnel
		if err := w.objs.Tunnels.Lookup(id, &t); err != nil {
			return fmt.Errorf("maps: reading tunnel %d: %w", id, err)
		}
		if up {
			t.Flags |= uint32(TunnelUp)
		} else {
			t.Flags &^= uint32(TunnelUp)
		}
		return w.put(w.objs.Tunnels, id, t, ebpf.UpdateAny)
	})
}

// AddLocalAddr declares an address of the gateway: outside (ESP to it is
// steered) and/or inside (never sent into a tunnel).
func (w *Writer) AddLocalAddr(a netip.Addr, kind Local) error {
	if !a.IsValid() {
		return errors.New("maps: invalid local address")
	}
	return w.change(func() error {
		k := bpf.CgwLocalAddr{Addr: Addr16(a)}
		if err := w.put(w.objs.LocalAddrs, k, uint32(kind), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("maps: adding local address %v (%d max): %w", a, bpf.CgwLimitsMaxLocalAddrs, err)
		}
		return nil
	})
}

// DeleteLocalAddr removes a local address.
func (w *Writer) DeleteLocalAddr(a netip.Addr) error {
	return w.change(func() error {
		if err := w.del(w.objs.LocalAddrs, bpf.CgwLocalAddr{Addr: Addr16(a)}); err != nil {
			return fmt.Errorf("maps: deleting local address %v: %w", a, err)
		}
		return nil
	})
}

func (w *Writer) route(p netip.Prefix, r *Route, flags ebpf.MapUpdateFlags, verb string) error {
	m, k, err := routeKey(w.objs, p)
	if err != nil {
		return err
	}
	if r != nil {
		if err := checkTunnel(r.TunnelId); err != nil {
			return fmt.Errorf("maps: route %v: %w", p, err)
		}
		if r.BackupTunnelId != 0 {
			if err := checkTunnel(r.BackupTunnelId); err != nil {
				return fmt.Errorf("maps: route %v backup: %w", p, err)
			}
		}
	}
	return w.change(func() error {
		if r == nil {
			err = w.del(m, k)
		} else {
			err = w.put(m, k, *r, flags)
		}
		if err != nil {
			return fmt.Errorf("maps: %s route %v: %w", verb, p.Masked(), err)
		}
		return nil
	})
}

// AddRoute adds a route; it is an error if the prefix has one.
func (w *Writer) AddRoute(p netip.Prefix, r Route) error {
	return w.route(p, &r, ebpf.UpdateNoExist, "adding")
}

// ReplaceRoute changes an existing route.
func (w *Writer) ReplaceRoute(p netip.Prefix, r Route) error {
	return w.route(p, &r, ebpf.UpdateExist, "replacing")
}

// DeleteRoute removes a route.
func (w *Writer) DeleteRoute(p netip.Prefix) error {
	return w.route(p, nil, 0, "deleting")
}

// Applied returns the generation the dataplane's workers use (0: no
// dataplane ever ran on these maps, or the Writer is closed).
func (w *Writer) Applied() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gen == nil {
		return 0
	}
	return w.shared.Applied()
}

// WaitApplied waits until the dataplane's workers use generation gen or a
// later one (an odd gen, read inside a Batch, means the change that ends
// it), or ctx ends. Control calls it after installing an inbound SA and
// before it lets the peer send on it (the IKE response or the Delete of
// the old SA): the outside XDP program steers the SPI as soon as it is in
// the map, but the workers decrypt with the snapshot they were last given.
// It reads shared memory; no syscall. The error, when ctx ends first, says
// how far the dataplane got (it may be down: callers then go on).
func (w *Writer) WaitApplied(ctx context.Context, gen uint64) error {
	gen += gen & 1
	wait := 100 * time.Microsecond
	for {
		w.mu.Lock()
		if w.gen == nil {
			w.mu.Unlock()
			return errClosed
		}
		a := w.shared.Applied()
		w.mu.Unlock()
		if a >= gen {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("maps: the dataplane has applied generation %d, not %d (is cgw-dataplane running on this instance?): %w", a, gen, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Millisecond)
	}
}
