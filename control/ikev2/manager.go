package ikev2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
)

// Options configure a Manager.
type Options struct {
	// Conn500 and Conn4500 are the UDP sockets for IKE (port 500) and
	// NAT-T (port 4500). Tests pass loopback sockets on any ports.
	Conn500, Conn4500 net.PacketConn
	// Events receives every event, from the tunnels' goroutines; it must
	// not block for long. May be nil.
	Events func(Event)
	// InstallInbound, if set, is called on the tunnel's goroutine with a
	// new Child SA before the message that lets the peer send on its
	// InSPI goes out (our IKE_AUTH or CREATE_CHILD_SA response, or, as
	// rekey initiator, the Delete of the old SA) and before the outbound
	// switch to it. It returns once the inbound SA is in use by the
	// dataplane, or gives up; an error is logged and changes nothing (the
	// ChildSAInstalled event follows as always, in the same order).
	InstallInbound func(tunnel string, c ChildSA) error
	Log            *slog.Logger
	Clock          Clock
	Timing         Timing
	// CookieThreshold is how many half-open SAs are tolerated before
	// IKE_SA_INIT must carry a COOKIE (§2.6); 0 means 32, negative
	// means always (tests).
	CookieThreshold int
	// MaxHalfOpen caps half-open SAs; IKE_SA_INIT requests beyond it are
	// dropped unanswered. 0 means 1024.
	MaxHalfOpen int
}

// Manager runs the IKE SAs of every tunnel over one Socket.
type Manager struct {
	opt   Options
	tim   Timing
	log   *slog.Logger
	clock Clock
	sock  *Socket

	mu      sync.Mutex
	tunnels map[string]*Tunnel
	spis    ike.SPIs[*Tunnel]  // our inbound ESP SPIs
	outSPI  map[uint32]*Tunnel // the peer's (ChildNeedsRekey takes either)
	closed  bool
	panics  atomic.Uint64 // tunnels restarted after a panic (Panics)
}

// New starts a Manager on the given sockets.
func New(o Options) (*Manager, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Clock == nil {
		o.Clock = ike.RealClock{}
	}
	if o.CookieThreshold == 0 {
		o.CookieThreshold = 32
	}
	if o.MaxHalfOpen <= 0 {
		o.MaxHalfOpen = 1024
	}
	m := &Manager{opt: o, tim: o.Timing.WithDefaults(), log: o.Log, clock: o.Clock,
		tunnels: map[string]*Tunnel{}, outSPI: map[uint32]*Tunnel{}}
	s, err := newSocket(o.Conn500, o.Conn4500, o.Clock, o.Log, o.CookieThreshold)
	if err != nil {
		return nil, err
	}
	s.maxHalfOpen = o.MaxHalfOpen
	m.sock = s
	return m, nil
}

// Socket returns the shared UDP layer (for Deliver in fuzzing).
func (m *Manager) Socket() *Socket { return m.sock }

// AddTunnel starts running tunnel c. With startup action "start" it
// initiates at once; otherwise it waits for the peer.
func (m *Manager) AddTunnel(c config.Tunnel, o TunnelOptions) error {
	if c.IKEVersion != 0 && c.IKEVersion != 2 {
		return fmt.Errorf("tunnel %s: ike_version %d is not handled by the IKEv2 engine", c.Name, c.IKEVersion)
	}
	if !c.AWSOutside.IsValid() || !c.LocalOutside.IsValid() {
		return fmt.Errorf("tunnel %s: aws_outside_address and local_outside_address must both be set", c.Name)
	}
	if c.PreSharedKey == "" {
		return fmt.Errorf("tunnel %s: pre_shared_key is empty", c.Name)
	}
	t, err := newTunnel(m, c, o.WithDefaults())
	if err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("ikev2: manager is closed")
	}
	if _, dup := m.tunnels[c.Name]; dup {
		m.mu.Unlock()
		return fmt.Errorf("tunnel %s: already added", c.Name)
	}
	m.tunnels[c.Name] = t
	m.mu.Unlock()
	m.sock.mu.Lock()
	m.sock.byPeer[c.AWSOutside] = t
	m.sock.mu.Unlock()
	go t.run()
	return nil
}

// Tunnel returns a tunnel by name.
func (m *Manager) Tunnel(name string) (*Tunnel, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tunnels[name]
	return t, ok
}

// RemoveTunnel deletes the tunnel's SAs (telling the peer) and stops it.
func (m *Manager) RemoveTunnel(ctx context.Context, name string) error {
	m.mu.Lock()
	t, ok := m.tunnels[name]
	delete(m.tunnels, name)
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("tunnel %s: not found", name)
	}
	t.stop(ctx)
	m.sock.mu.Lock()
	if m.sock.byPeer[t.cfg.AWSOutside] == t {
		delete(m.sock.byPeer, t.cfg.AWSOutside)
	}
	m.sock.mu.Unlock()
	return nil
}

// ChildNeedsRekey asks for a rekey of the Child SA with inbound or
// outbound SPI spi (byte lifetime or sequence number nearly exhausted, as
// the dataplane's counters show).
func (m *Manager) ChildNeedsRekey(spi uint32) bool {
	t := m.tunnelBySPI(spi)
	if t == nil {
		return false
	}
	t.do(func() { t.rekeyChildNow(spi) })
	return true
}

// LastInbound tells DPD that ESP for inbound SPI spi was last received at
// at (from the dataplane's counters): a tunnel with recent traffic needs
// no liveness check.
func (m *Manager) LastInbound(spi uint32, at time.Time) {
	if t := m.tunnelBySPI(spi); t != nil {
		t.do(func() {
			if at.After(t.lastInbound) {
				t.lastInbound = at
			}
		})
	}
}

// Initiate starts negotiation of a tunnel now (cgwctl, tests). A tunnel
// that is up or being negotiated answers a *BusyError.
func (m *Manager) Initiate(name string) error {
	return m.command(name, func(t *Tunnel) error {
		for _, sa := range t.sas {
			if sa.state != saEstablished {
				return &BusyError{Msg: fmt.Sprintf("tunnel %s: an IKE SA is already being negotiated (started %s ago)", t.name, ike.Ago(t.now(), sa.started))}
			}
		}
		if t.ike != nil {
			return &BusyError{Msg: fmt.Sprintf("tunnel %s: already up (IKE SA %s); rekey it instead", t.name, t.ike.ourSPI())}
		}
		t.initiate()
		return nil
	})
}

// Status returns a snapshot of every tunnel.
func (m *Manager) Status() []TunnelStatus {
	m.mu.Lock()
	ts := make([]*Tunnel, 0, len(m.tunnels))
	for _, t := range m.tunnels {
		ts = append(ts, t)
	}
	m.mu.Unlock()
	var out []TunnelStatus
	for _, t := range ts {
		out = append(out, t.Status())
	}
	return out
}

// Close deletes every tunnel's IKE SA (waiting briefly for the peer's
// answers), stops the tunnels and closes the sockets.
func (m *Manager) Close(ctx context.Context) {
	m.mu.Lock()
	m.closed = true
	ts := m.tunnels
	m.tunnels = map[string]*Tunnel{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Add(1)
		go func() { defer wg.Done(); t.stop(ctx) }()
	}
	wg.Wait()
	m.sock.close()
}

func (m *Manager) tunnelBySPI(spi uint32) *Tunnel {
	if t, ok := m.spis.Owner(spi); ok {
		return t
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.outSPI[spi]
}

func (m *Manager) emit(e Event) {
	if m.opt.Events != nil {
		m.opt.Events(e)
	}
}

// RekeyChild rekeys the tunnel's active Child SA now (cgwctl, tests). When
// it cannot start (the SA is already being rekeyed or deleted, the
// tunnel is not up) it answers a *BusyError saying why.
func (m *Manager) RekeyChild(name string) error {
	return m.command(name, func(t *Tunnel) error {
		if t.out == nil {
			return &BusyError{Msg: fmt.Sprintf("tunnel %s: no active Child SA to rekey (tunnel is %s)", t.name, t.upState())}
		}
		if why := t.childRekeyBusy(t.out); why != "" {
			return &BusyError{Msg: fmt.Sprintf("tunnel %s: %s", t.name, why)}
		}
		t.rekeyChild(t.out)
		return nil
	})
}

// RekeyIKE rekeys the tunnel's IKE SA now (cgwctl, tests); a *BusyError
// when it cannot start, as RekeyChild.
func (m *Manager) RekeyIKE(name string) error {
	return m.command(name, func(t *Tunnel) error {
		if t.ike == nil || t.ike.state != saEstablished {
			return &BusyError{Msg: fmt.Sprintf("tunnel %s: no established IKE SA to rekey (tunnel is %s)", t.name, t.upState())}
		}
		if why := t.ikeRekeyBusy(t.ike); why != "" {
			return &BusyError{Msg: fmt.Sprintf("tunnel %s: %s", t.name, why)}
		}
		t.rekeyIKE(t.ike)
		return nil
	})
}

// command runs f on the tunnel's goroutine and returns its answer: an
// operator's command learns whether it started.
func (m *Manager) command(name string, f func(t *Tunnel) error) error {
	t, ok := m.Tunnel(name)
	if !ok {
		return &NotFoundError{Tunnel: name}
	}
	res := make(chan error, 1)
	stopped := fmt.Errorf("tunnel %s: stopped (cgw-control is shutting down or the tunnel was removed)", name)
	if !t.do(func() {
		err := fmt.Errorf("tunnel %s: the command failed with an internal error; the tunnel was restarted", name)
		defer func() { res <- err }() // also when f panics (safely recovers)
		err = f(t)
	}) {
		return stopped
	}
	select {
	case err := <-res:
		return err
	case <-t.done:
		return stopped
	}
}
