package ikev2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

// Tunnel runs the IKE and Child SAs of one configured tunnel in its own
// goroutine; every field below the channels belongs to that goroutine.
type Tunnel struct {
	name string
	cfg  config.Tunnel
	opt  TunnelOptions
	m    *Manager
	log  *slog.Logger

	loop *ike.Loop[datagram]

	ikeProps, espProps, espPFS []message.Proposal
	ikeGroup, pfsGroup         uint16

	sas         []*ikeSA
	ike         *ikeSA // the current IKE SA, once established
	children    []*child
	out         *child // the child whose outbound SA carries traffic
	lc          ike.Lifecycle
	contacted   bool // INITIAL_CONTACT sent once (§2.4)
	lastInbound time.Time
	reinit      ike.Reinit
	nextKA      time.Time
	stopping    bool
	stopped     chan struct{} // closed when the shutdown Delete is answered
	// unauth limits the log lines input nobody authenticated causes.
	unauth ike.LogLimiter
	// halfOpen counts the half-open SAs in sas for the Socket's cookie
	// decision (the only field read outside the goroutine).
	halfOpen atomic.Int32
}

var errSAGone = errors.New("IKE SA deleted")

func newTunnel(m *Manager, c config.Tunnel, o TunnelOptions) (*Tunnel, error) {
	t := &Tunnel{name: c.Name, cfg: c, opt: o, m: m, log: m.log.With("tunnel", c.Name),
		stopped: make(chan struct{}), unauth: ike.LogLimiter{Burst: 5}}
	t.loop = ike.NewLoop[datagram](t.supervisor())
	t.lc = t.lifecycle()
	t.ikeProps = ikeProposals(c.Phase1)
	t.espProps = espProposals(c.Phase2, false)
	t.espPFS = espProposals(c.Phase2, true)
	if len(t.ikeProps) == 0 || len(t.espProps) == 0 {
		return nil, fmt.Errorf("tunnel %s: no usable phase 1 or phase 2 algorithms (phase1 %v, phase2 %v)", c.Name, c.Phase1, c.Phase2)
	}
	if len(c.Phase1.DHGroups) == 0 {
		return nil, fmt.Errorf("tunnel %s: phase 1 needs at least one DH group", c.Name)
	}
	t.ikeGroup = uint16(c.Phase1.DHGroups[0])
	if len(c.Phase2.DHGroups) > 0 {
		t.pfsGroup = uint16(c.Phase2.DHGroups[0])
	}
	return t, nil
}

// lifecycle is a fresh Child SA life cycle for t.
func (t *Tunnel) lifecycle() ike.Lifecycle {
	l := ike.Lifecycle{Emit: t.emit, Release: func(spis ...uint32) { t.m.spis.Release(t, spis...) }, Grace: t.m.tim.Grace, Log: t.log}
	if f := t.m.opt.InstallInbound; f != nil {
		l.InstallInbound = func(c ChildSA) error { return f(t.name, c) }
	}
	return l
}

// do runs f in the tunnel's goroutine.
func (t *Tunnel) do(f func()) bool { return t.loop.Do(f) }

// Name is the tunnel's name.
func (t *Tunnel) Name() string { return t.name }

func (t *Tunnel) now() time.Time { return t.m.clock.Now() }

func (t *Tunnel) emit(e Event) {
	e.Tunnel = t.name
	e.Time = t.now()
	t.m.emit(e)
}

// run is the tunnel's goroutine: it sleeps until the earliest deadline
// of its timers (nextWake).
func (t *Tunnel) run() {
	s := ike.Steps[datagram]{Handle: t.handle, Tick: t.tick, Next: t.nextWake, Clock: t.m.clock}
	if t.cfg.StartupAction != config.StartupAdd {
		s.Start = t.initiate
	}
	t.loop.Run(s)
}

// upState is the tunnel's state as the status API names it.
func (t *Tunnel) upState() string {
	switch {
	case t.lc.Up():
		return "up"
	case t.connecting():
		return "connecting"
	}
	return "down"
}

// connecting reports whether an IKE SA is being negotiated.
func (t *Tunnel) connecting() bool {
	for _, sa := range t.sas {
		if sa.state != saEstablished {
			return true
		}
	}
	return false
}

// stop deletes the IKE SA, waits for the answer (briefly) and ends the
// goroutine.
func (t *Tunnel) stop(ctx context.Context) {
	ok := t.do(func() {
		t.stopping = true
		t.reinit.At = time.Time{}
		sa := t.ike
		if sa == nil {
			close(t.stopped)
			return
		}
		sa.pend, sa.queue = nil, nil // nothing else matters now
		sa.deleting = true
		finish := func() {
			select {
			case <-t.stopped:
			default:
				close(t.stopped)
			}
		}
		t.request(sa, &pending{exch: message.INFORMATIONAL,
			payloads: []message.Payload{&message.Delete{Protocol: message.ProtoIKE}},
			onResp:   func(*message.Message, []byte) { finish() },
			onFail:   func(error) { finish() }})
	})
	if ok {
		tm := time.NewTimer(t.m.tim.DeleteWait)
		select {
		case <-t.stopped:
		case <-tm.C:
		case <-ctx.Done():
		}
		tm.Stop()
		t.do(func() {
			for _, sa := range slices.Clone(t.sas) {
				sa.pend, sa.queue = nil, nil
				t.removeSA(sa, "shutdown", nil)
			}
			t.down("shutdown", nil, false)
		})
	}
	t.loop.Stop()
}

// Status returns a snapshot of the tunnel.
func (t *Tunnel) Status() TunnelStatus { return t.loop.Status(t.name, t.status) }

func (t *Tunnel) status() TunnelStatus {
	now := t.now()
	left := func(x time.Time) time.Duration {
		if x.IsZero() {
			return 0
		}
		return max(x.Sub(now), 0)
	}
	s := TunnelStatus{Name: t.name, State: t.upState()}
	if sa := t.ike; sa != nil {
		s.Peer, s.Encap = sa.peer, sa.nat
		s.IKE = &IKEStatus{SPIi: ike.SPI(sa.spiI), SPIr: ike.SPI(sa.spiR), Initiator: sa.initiator, Proposal: sa.prop.String(),
			Age: now.Sub(sa.created), LifetimeLeft: left(sa.expireAt), RekeyIn: left(sa.rekeyAt)}
	}
	for _, c := range t.children {
		s.Children = append(s.Children, ChildStatus{InSPI: c.InSPI, OutSPI: c.OutSPI, Suite: c.Suite.String(),
			Active: c == t.out, Deleting: c.deleting, Age: now.Sub(c.created), LifetimeLeft: left(c.expireAt), RekeyIn: left(c.rekeyAt)})
	}
	return s
}
