package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/control/ike"
)

// Make-before-break across the two gateways (DESIGN §2): the IKE engine
// calls installInbound (ikev2.Options.InstallInbound) before the message
// that lets the peer send on a new inbound SPI goes out. The loop, which
// owns the SA slots, installs the inbound SA at once; the engine's
// goroutine then waits until the dataplane's workers use the tables that
// hold it (maps.Writer.WaitApplied). The ChildSAInstalled event that
// follows finds the inbound SA in place and adds the outbound one.

// applyTimeout bounds the wait for the dataplane: the IKE message is
// delayed by at most this when cgw-dataplane is slow or down.
const applyTimeout = 500 * time.Millisecond

// pendingTimeout is how long an inbound SA installed ahead stays without
// its ChildSAInstalled event (the engine dropped the Child SA) before the
// loop removes it.
const pendingTimeout = time.Minute

type preReq struct {
	tunnel string
	c      ike.ChildSA
	done   chan preRes
}

type preRes struct {
	gen uint64
	err error
}

type pendingIn struct {
	idx uint32
	at  time.Time
}

// mbbState is the Daemon's make-before-break state.
type mbbState struct {
	once    sync.Once
	reqs    chan preReq
	pending map[uint32]pendingIn // by inbound SPI; loop only

	mu     sync.Mutex
	absent bool   // the last wait timed out: the dataplane is down or stuck
	seen   uint64 // its applied generation then
}

func (m *mbbState) ch() chan preReq {
	m.once.Do(func() {
		m.reqs = make(chan preReq)
		m.pending = map[uint32]pendingIn{}
	})
	return m.reqs
}

// installInbound is ikev2.Options.InstallInbound: on the tunnel's
// goroutine, it has the loop install c's inbound SA, then waits for the
// dataplane to apply it.
func (d *Daemon) installInbound(tunnel string, c ike.ChildSA) error {
	r := preReq{tunnel: tunnel, c: c, done: make(chan preRes, 1)}
	select {
	case d.mbb.ch() <- r:
	case <-d.quit:
		return errors.New("cgw-control is stopping")
	}
	res := <-r.done
	if res.err != nil {
		return res.err
	}
	d.waitApplied(res.gen) // logged; the IKE message goes out anyway
	return nil
}

// syncDataplane is ikev2.Options.SyncDataplane: on the tunnel's
// goroutine, it waits until the events that goroutine emitted before (an
// OutboundSwitch) are in the maps — the loop runs ops after the events
// queued before them — and the dataplane uses them. It waits at most
// applyTimeout for the loop (which may be busy with a reload that waits
// for this very tunnel) and applyTimeout for the dataplane.
func (d *Daemon) syncDataplane(string) error {
	gen := make(chan uint64, 1)
	tm := time.NewTimer(applyTimeout)
	defer tm.Stop()
	select {
	case d.ops <- func() { gen <- d.w.Generation() }:
	case <-d.quit:
		return errStopping
	case <-tm.C:
		return errors.New("the control loop is busy")
	}
	select {
	case g := <-gen:
		return d.waitApplied(g)
	case <-d.loopDone:
		return errStopping
	case <-tm.C:
		return errors.New("the control loop is busy")
	}
}

// preinstall runs on the loop: the inbound half of installChild.
func (d *Daemon) preinstall(r preReq) {
	d.mu.Lock()
	t := d.byName[r.tunnel]
	d.mu.Unlock()
	if t == nil {
		r.done <- preRes{err: fmt.Errorf("tunnel %s is not configured", r.tunnel)}
		return
	}
	in, err := d.saEntry(t, &r.c, maps.DirInbound)
	if err != nil {
		r.done <- preRes{err: err}
		return
	}
	idx, err := d.alloc()
	if err != nil {
		r.done <- preRes{err: err}
		return
	}
	if err := d.w.InstallInboundSA(idx, in); err != nil {
		d.used[idx] = false
		r.done <- preRes{err: err}
		return
	}
	d.mbb.ch()
	d.mbb.pending[r.c.InSPI] = pendingIn{idx: idx, at: time.Now()}
	r.done <- preRes{gen: d.w.Generation()}
}

// takePending returns the slot of an inbound SA preinstall put in place.
func (d *Daemon) takePending(spi uint32) (uint32, bool) {
	d.mbb.ch()
	p, ok := d.mbb.pending[spi]
	if ok {
		delete(d.mbb.pending, spi)
	}
	return p.idx, ok
}

// sweepPending removes inbound SAs installed ahead whose Child SA never
// came (older than age; 0: all).
func (d *Daemon) sweepPending(age time.Duration) {
	d.mbb.ch()
	for spi, p := range d.mbb.pending {
		if time.Since(p.at) < age {
			continue
		}
		if err := d.w.RetireSA(p.idx); err != nil {
			d.log.Warn("removing an inbound SA whose Child SA was abandoned", "in", fmt.Sprintf("%08x", spi), "err", err)
			continue
		}
		d.used[p.idx] = false
		delete(d.mbb.pending, spi)
	}
}

// waitApplied waits, at most applyTimeout, for the dataplane to use
// generation gen. A dataplane that never ran on these maps (applied 0),
// or that timed out before and has not moved since, is not waited for:
// with no dataplane nothing decrypts anyway, and IKE must not stall. It
// reports whether the dataplane uses gen (nil also when none ever ran:
// then nothing is sent on any SA).
func (d *Daemon) waitApplied(gen uint64) error {
	m := &d.mbb
	m.mu.Lock()
	absent, seen := m.absent, m.seen
	m.mu.Unlock()
	a := d.w.Applied()
	if a == 0 {
		return nil
	}
	if absent && a == seen {
		return errors.New("the dataplane has not taken up table changes since it last timed out")
	}
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	err := d.w.WaitApplied(ctx, gen)
	cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if !m.absent {
			d.log.Warn("the dataplane did not take up a table change in time; not waiting for it again until it moves (is cgw-dataplane running?)",
				"timeout", applyTimeout, "err", err)
		}
		m.absent, m.seen = true, d.w.Applied()
		return err
	}
	if m.absent {
		d.log.Info("the dataplane takes up table changes again")
		m.absent = false
	}
	return nil
}
