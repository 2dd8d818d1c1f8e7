package ikev1

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev1/message"
)

// Options configure a Manager; the fields mean what the IKEv2 engine's do.
type Options struct {
	Conn500, Conn4500 net.PacketConn
	Events            func(Event)
	// InstallInbound is called with a new SA pair before the Quick Mode
	// message that lets the peer use its InSPI goes out (our message 2 as
	// responder, message 3 as initiator).
	InstallInbound func(tunnel string, c ChildSA) error
	Log            *slog.Logger
	Clock          Clock
	Timing         Timing
	// Tick is how often tunnels check their timers (default 100 ms).
	Tick time.Duration
}

// Manager runs the ISAKMP SAs of every IKEv1 tunnel over one pair of
// sockets.
type Manager struct {
	opt   Options
	tim   Timing
	log   *slog.Logger
	clock Clock

	tunnels *ike.Tunnels[*Tunnel, datagram] // by name, by peer (Main Mode 1)
	mu      sync.Mutex                      // guards byCky
	byCky   map[[8]byte]*Tunnel             // initiator cookies of live ISAKMP SAs
	spis    ike.SPIs[*Tunnel]               // inbound ESP SPIs of every tunnel's SA pairs
	udp     *ike.UDP
	// unauthLog limits the logs of input dropped before authentication.
	unauthLog ike.LogLimiter
	panics    atomic.Uint64 // tunnels restarted after a panic (Panics)
}

// New starts a Manager reading both sockets.
func New(o Options) (*Manager, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Clock == nil {
		o.Clock = ike.RealClock{}
	}
	if o.Tick <= 0 {
		o.Tick = 100 * time.Millisecond
	}
	tim := o.Timing.WithDefaults()
	m := &Manager{opt: o, tim: tim, log: o.Log, clock: o.Clock, byCky: map[[8]byte]*Tunnel{}}
	m.tunnels = ike.NewTunnels(ike.Hooks[*Tunnel, datagram]{Engine: "ikev1", Loop: func(t *Tunnel) *ike.Loop[datagram] { return t.loop },
		Run: (*Tunnel).run, Stop: (*Tunnel).stop, BySPI: m.spis.Owner})
	// The read buffer is reused: the tunnel's goroutine gets a copy.
	u, err := ike.NewUDP(o.Conn500, o.Conn4500, func(b []byte, from netip.AddrPort, nat bool) { m.Deliver(bytes.Clone(b), from, nat) })
	if err != nil {
		return nil, fmt.Errorf("ikev1: %w", err)
	}
	m.udp = u
	return m, nil
}

// Deliver hands one received datagram to its tunnel (tests, fuzzing).
// On port 4500 the non-ESP marker (RFC 3948 §2.2) is expected; ESP and
// keepalives are ignored.
func (m *Manager) Deliver(b []byte, from netip.AddrPort, nat bool) {
	if nat {
		if len(b) < 4+message.HeaderLen || b[0]|b[1]|b[2]|b[3] != 0 {
			return
		}
		b = b[4:]
	}
	h, err := message.DecodeHeader(b)
	if err != nil {
		if line, ok := m.unauth(); ok {
			line.Write("dropped datagram", "from", from, "err", err)
		}
		return
	}
	m.mu.Lock()
	t := m.byCky[h.CkyI]
	m.mu.Unlock()
	if t == nil && h.Exchange == message.ExchIdentityProt && h.CkyR == ([8]byte{}) {
		t, _ = m.tunnels.ByPeer(from.Addr())
	}
	if t == nil {
		if line, ok := m.unauth(); ok {
			line.Write("no tunnel for datagram", "from", from)
		}
		return
	}
	t.loop.Post(datagram{b: b[:h.Length], h: h, from: from, nat: nat})
}

func (m *Manager) send(b []byte, to netip.AddrPort, nat bool) {
	if err := m.udp.Send(b, to, nat); err != nil {
		m.log.Debug("send failed", "to", to, "err", err)
	}
}

func (m *Manager) localPort(nat bool) uint16 { return m.udp.LocalPort(nat) }

func (m *Manager) emit(e Event) {
	if m.opt.Events != nil {
		m.opt.Events(e)
	}
}

// AddTunnel starts running tunnel c (ike_version 1). With startup action
// "start" it initiates at once; otherwise it waits for the peer.
func (m *Manager) AddTunnel(c config.Tunnel, o TunnelOptions) error {
	if err := ike.CheckTunnel(c, 1, true); err != nil {
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

// ChildNeedsRekey asks for a new Quick Mode for the SA pair with inbound
// or outbound SPI spi.
func (m *Manager) ChildNeedsRekey(spi uint32) bool {
	return m.tunnels.OnSPI(spi, func(t *Tunnel) { t.rekeyChildSPI(spi) })
}

// LastInbound tells DPD that ESP for inbound SPI spi was last received at
// at.
func (m *Manager) LastInbound(spi uint32, at time.Time) {
	m.tunnels.OnSPI(spi, func(t *Tunnel) {
		if at.After(t.lastInbound) {
			t.lastInbound = at
		}
	})
}

// Initiate starts negotiation of a tunnel now; a *BusyError if it has an
// ISAKMP SA or one is being negotiated.
func (m *Manager) Initiate(name string) error {
	return m.tunnels.Command(name, func(t *Tunnel) error {
		if t.p1 != nil {
			if t.p1.state != mmDone {
				return &BusyError{Msg: fmt.Sprintf("tunnel %s: a Main Mode is already under way (started %s ago)", t.name, ike.Ago(t.now(), t.p1.created))}
			}
			return &BusyError{Msg: fmt.Sprintf("tunnel %s: already has an ISAKMP SA (%x); rekey it instead", t.name, t.p1.ckyI)}
		}
		t.initiate()
		return nil
	})
}

// RekeyChild starts a new Quick Mode for the tunnel now (cgwctl, tests);
// a *BusyError says why it cannot.
func (m *Manager) RekeyChild(name string) error {
	return m.tunnels.Command(name, func(t *Tunnel) error {
		switch {
		case t.out == nil:
			return &BusyError{Msg: fmt.Sprintf("tunnel %s: no active SA pair to rekey", t.name)}
		case t.out.rekeying:
			return &BusyError{Msg: fmt.Sprintf("tunnel %s: SA pair %08x is already being rekeyed", t.name, t.out.sa.InSPI)}
		case t.p1 == nil || t.p1.state != mmDone:
			return &BusyError{Msg: fmt.Sprintf("tunnel %s: no established ISAKMP SA to run Quick Mode on (a Main Mode may be under way)", t.name)}
		}
		t.rekeyChild(t.out)
		return nil
	})
}

// RekeyIKE replaces the tunnel's ISAKMP SA with a new Main Mode now; a
// *BusyError when there is none established.
func (m *Manager) RekeyIKE(name string) error {
	return m.tunnels.Command(name, func(t *Tunnel) error {
		if t.p1 == nil || t.p1.state != mmDone {
			return &BusyError{Msg: fmt.Sprintf("tunnel %s: no established ISAKMP SA to rekey", t.name)}
		}
		t.rekeyIKE()
		return nil
	})
}

// Status returns a snapshot of every tunnel.
func (m *Manager) Status() []TunnelStatus { return m.tunnels.Status((*Tunnel).Status) }

// Close deletes every tunnel's SAs (telling the peer), stops the tunnels
// and closes the sockets.
func (m *Manager) Close(ctx context.Context) {
	m.tunnels.Close(ctx)
	m.udp.Close()
}
