package rib

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/cgw-project/cgw/bpf/maps"
)

// A configuration reload (cgwctl reload, SIGHUP) adds and removes tunnels
// of a running RIB. A removed tunnel's slot stays as a tombstone (ID 0, no
// connection), so the other tunnels keep their tie-break rank; an added
// tunnel ranks after every existing one.

// AddTunnel adds a tunnel (down, without routes) after the existing ones.
func (r *RIB) AddTunnel(t Tunnel) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.ID == 0 || t.ID >= maps.MaxTunnels {
		return fmt.Errorf("rib: tunnel %q: id %d out of range 1..%d", t.Name, t.ID, maps.MaxTunnels-1)
	}
	if j, dup := r.byID[t.ID]; dup {
		return fmt.Errorf("rib: tunnels %q and %q share id %d", r.tunnels[j].Name, t.Name, t.ID)
	}
	r.byID[t.ID] = len(r.tunnels)
	r.tunnels = append(r.tunnels, t)
	r.up = append(r.up, false)
	return nil
}

// RemoveTunnel removes a tunnel and every path through it (static and
// BGP); the prefixes it carried are selected again from what is left. A
// connection left without tunnels loses its static routes.
func (r *RIB) RemoveTunnel(id uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ti, err := r.tunnel(id)
	if err != nil {
		return err
	}
	var touched []netip.Prefix
	for p := range r.entries {
		if r.removePath(p, func(pa path) bool { return pa.tunnel == ti }) {
			touched = append(touched, p)
		}
	}
	conn := r.tunnels[ti].Connection
	delete(r.byID, id)
	r.tunnels[ti] = Tunnel{}
	r.up[ti] = false
	if !slices.ContainsFunc(r.tunnels, func(t Tunnel) bool { return t.ID != 0 && t.Connection == conn }) {
		delete(r.static, conn)
	}
	return r.apply(touched)
}

// Tunnels returns the tunnels in tie-break order.
func (r *RIB) Tunnels() []Tunnel {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Tunnel
	for _, t := range r.tunnels {
		if t.ID != 0 {
			out = append(out, t)
		}
	}
	return out
}
