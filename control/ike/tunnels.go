package ike

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/cgw-project/cgw/config"
)

// Tunnels is an engine's tunnels (T is its *Tunnel, D its datagram) and
// what its Manager does with them that does not depend on the protocol:
// add, route a new exchange by the peer's address, find one by name or
// ESP SPI, run an operator's command on it, snapshot, remove and stop.
type Tunnels[T comparable, D any] struct {
	h Hooks[T, D]

	mu     sync.Mutex
	byName map[string]T
	byPeer map[netip.Addr]T // aws_outside_address: a new exchange's tunnel
	closed bool
}

// Hooks are the engine's parts of Tunnels.
type Hooks[T comparable, D any] struct {
	// Engine names the engine in errors ("ikev1").
	Engine string
	// Loop is a tunnel's goroutine, Run runs it (Add starts it).
	Loop func(T) *Loop[D]
	Run  func(T)
	// Stop deletes a tunnel's SAs (telling the peer, within ctx) and ends
	// its goroutine.
	Stop func(T, context.Context)
	// BySPI finds the tunnel holding an ESP SPI.
	BySPI func(spi uint32) (T, bool)
}

// NewTunnels makes an engine's registry of tunnels.
func NewTunnels[T comparable, D any](h Hooks[T, D]) *Tunnels[T, D] {
	return &Tunnels[T, D]{h: h, byName: map[string]T{}, byPeer: map[netip.Addr]T{}}
}

// CheckTunnel says why an engine of IKE version (1 or 2; a tunnel's 0
// means 2) cannot run tunnel c, or nil. ipv4Only: the engine handles IPv4
// outside addresses only (ikev1).
func CheckTunnel(c config.Tunnel, version int, ipv4Only bool) error {
	v := c.IKEVersion
	if v == 0 {
		v = 2
	}
	switch {
	case v != version:
		return fmt.Errorf("tunnel %s: ike_version %d is not handled by the IKEv%d engine", c.Name, c.IKEVersion, version)
	case ipv4Only && (!c.AWSOutside.Is4() || !c.LocalOutside.Is4()):
		return fmt.Errorf("tunnel %s: aws_outside_address and local_outside_address must both be IPv4 addresses", c.Name)
	case !c.AWSOutside.IsValid() || !c.LocalOutside.IsValid():
		return fmt.Errorf("tunnel %s: aws_outside_address and local_outside_address must both be set", c.Name)
	case c.PreSharedKey == "":
		return fmt.Errorf("tunnel %s: pre_shared_key is empty", c.Name)
	}
	return nil
}

// Add registers t under name, routes new exchanges from peer to it and
// starts its goroutine; an error once Close was called or when the name
// is taken.
func (r *Tunnels[T, D]) Add(name string, peer netip.Addr, t T) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("%s: manager is closed", r.h.Engine)
	}
	if _, dup := r.byName[name]; dup {
		return fmt.Errorf("tunnel %s: already added", name)
	}
	r.byName[name] = t
	r.byPeer[peer] = t
	go r.h.Run(t)
	return nil
}

// Route sends new exchanges from peer to t, as Add does (tests that run
// a tunnel by hand, without registering or starting it).
func (r *Tunnels[T, D]) Route(peer netip.Addr, t T) {
	r.mu.Lock()
	r.byPeer[peer] = t
	r.mu.Unlock()
}

// ByPeer is the tunnel whose aws_outside_address is peer: the only one a
// message that starts an exchange (and so names no SA of ours) may reach.
func (r *Tunnels[T, D]) ByPeer(peer netip.Addr) (T, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.byPeer[peer]
	return t, ok
}

// Tunnel returns a tunnel by name.
func (r *Tunnels[T, D]) Tunnel(name string) (T, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.byName[name]
	return t, ok
}

// Remove unregisters the tunnel name (no new exchange reaches it from
// then on) and stops it; a *NotFoundError when there is none.
func (r *Tunnels[T, D]) Remove(ctx context.Context, name string) error {
	r.mu.Lock()
	t, ok := r.byName[name]
	if ok {
		delete(r.byName, name)
		for p, o := range r.byPeer {
			if o == t {
				delete(r.byPeer, p)
			}
		}
	}
	r.mu.Unlock()
	if !ok {
		return &NotFoundError{Tunnel: name}
	}
	r.h.Stop(t, ctx)
	return nil
}

// OnSPI runs f on the goroutine of the tunnel holding ESP SPI spi (the
// dataplane's counters: rekey, DPD); false when no tunnel of this engine
// holds it.
func (r *Tunnels[T, D]) OnSPI(spi uint32, f func(T)) bool {
	t, ok := r.h.BySPI(spi)
	if !ok {
		return false
	}
	r.h.Loop(t).Do(func() { f(t) })
	return true
}

// Command runs an operator's command f on the tunnel name's goroutine and
// returns its answer (Loop.Call); a *NotFoundError when there is none.
func (r *Tunnels[T, D]) Command(name string, f func(T) error) error {
	t, ok := r.Tunnel(name)
	if !ok {
		return &NotFoundError{Tunnel: name}
	}
	return r.h.Loop(t).Call(name, func() error { return f(t) })
}

// Status returns status(t) of every tunnel, each taken on its goroutine
// and without holding the registry, in no order.
func (r *Tunnels[T, D]) Status(status func(T) TunnelStatus) []TunnelStatus {
	r.mu.Lock()
	ts := make([]T, 0, len(r.byName))
	for _, t := range r.byName {
		ts = append(ts, t)
	}
	r.mu.Unlock()
	var out []TunnelStatus
	for _, t := range ts {
		out = append(out, status(t))
	}
	return out
}

// Close refuses further tunnels and stops every one, all at once: one
// peer that does not answer delays none of the others.
func (r *Tunnels[T, D]) Close(ctx context.Context) {
	r.mu.Lock()
	r.closed = true
	ts := r.byName
	r.byName, r.byPeer = map[string]T{}, map[netip.Addr]T{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Add(1)
		go func() { defer wg.Done(); r.h.Stop(t, ctx) }()
	}
	wg.Wait()
}
