package ikev2

import (
	"context"
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
	// SyncDataplane, if set, is called on the tunnel's goroutine after
	// an outbound switch away from a pair the peer is to delete, before
	// the message on which it may drop that pair's inbound SA goes out
	// (our Delete after our rekey, our answer to its Delete after its
	// rekey). It returns nil once the dataplane sends on the new pair
	// (what the events emitted so far asked for), an error if it gives
	// up; without it, or on an error, our Delete waits Timing.Grace.
	SyncDataplane func(tunnel string) error
}

// Manager runs the IKE SAs of every tunnel over one Socket.
type Manager struct {
	opt   Options
	tim   Timing
	log   *slog.Logger
	clock Clock
	sock  *Socket

	tunnels *ike.Tunnels[*Tunnel, datagram] // by name, by peer (IKE_SA_INIT)
	spis    ike.SPIs[*Tunnel]               // our inbound ESP SPIs
	mu      sync.Mutex                      // guards outSPI
	outSPI  map[uint32]*Tunnel              // the peer's (ChildNeedsRekey takes either)
	panics  atomic.Uint64                   // tunnels restarted after a panic (Panics)
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
	m := &Manager{opt: o, tim: o.Timing.WithDefaults(), log: o.Log, clock: o.Clock, outSPI: map[uint32]*Tunnel{}}
	m.tunnels = ike.NewTunnels(ike.Hooks[*Tunnel, datagram]{Engine: "ikev2", Loop: func(t *Tunnel) *ike.Loop[datagram] { return t.loop },
		Run: (*Tunnel).run, Stop: (*Tunnel).stop, BySPI: m.tunnelBySPI})
	s, err := newSocket(o.Conn500, o.Conn4500, m.tunnels, o.Clock, o.Log, o.CookieThreshold)
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
	if err := ike.CheckTunnel(c, 2, false); err != nil {
		return err
	}
	t, err := newTunnel(m, c, o.WithDefaults())
	if err != nil {
		return err
	}
	return m.tunnels.Add(c.Name, c.AWSOutside, t)
}

// Tunnel returns a tunnel by name.
func (m *Manager) Tunnel(name string) (*Tunnel, bool) { return m.tunnels.Tunnel(name) }

// RemoveTunnel deletes the tunnel's SAs (telling the peer) and stops it.
func (m *Manager) RemoveTunnel(ctx context.Context, name string) error {
	return m.tunnels.Remove(ctx, name)
}

// ChildNeedsRekey asks for a rekey of the Child SA with inbound or
// outbound SPI spi (byte lifetime or sequence number nearly exhausted, as
// the dataplane's counters show).
func (m *Manager) ChildNeedsRekey(spi uint32) bool {
	return m.tunnels.OnSPI(spi, func(t *Tunnel) { t.rekeyChildNow(spi) })
}

// LastInbound tells DPD that ESP for inbound SPI spi was last received at
// at (from the dataplane's counters): a tunnel with recent traffic needs
// no liveness check.
func (m *Manager) LastInbound(spi uint32, at time.Time) {
	m.tunnels.OnSPI(spi, func(t *Tunnel) {
		if at.After(t.lastInbound) {
			t.lastInbound = at
		}
	})
}

// Initiate starts negotiation of a tunnel now (cgwctl, tests). A tunnel
// that is up or being negotiated answers a *BusyError.
func (m *Manager) Initiate(name string) error {
	return m.tunnels.Command(name, func(t *Tunnel) error {
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
func (m *Manager) Status() []TunnelStatus { return m.tunnels.Status((*Tunnel).Status) }

// Close deletes every tunnel's IKE SA (waiting briefly for the peer's
// answers), stops the tunnels and closes the sockets.
func (m *Manager) Close(ctx context.Context) {
	m.tunnels.Close(ctx)
	m.sock.close()
}

// tunnelBySPI finds the tunnel holding an inbound or outbound ESP SPI.
func (m *Manager) tunnelBySPI(spi uint32) (*Tunnel, bool) {
	if t, ok := m.spis.Owner(spi); ok {
		return t, true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.outSPI[spi]
	return t, ok
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
	return m.tunnels.Command(name, func(t *Tunnel) error {
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
	return m.tunnels.Command(name, func(t *Tunnel) error {
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
