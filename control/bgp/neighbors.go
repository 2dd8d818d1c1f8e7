package bgp

import (
	"context"
	"errors"
	"fmt"
	"slices"

	api "github.com/osrg/gobgp/v3/api"
)

// SetNeighbors makes the running speaker's neighbours those given (a
// configuration reload). A neighbour whose session settings are unchanged
// keeps its session; a changed one is deleted and added again (down
// until TunnelUp, which the caller calls again for tunnels that are up);
// a removed one is deleted (its session closes with a Cease, RFC 4486
// "peer de-configured") and its routes are withdrawn from the RIB. The
// export policy and the originated prefixes follow the new list.
func (s *Speaker) SetNeighbors(neighbors []Neighbor) error {
	byPeer, byID := map[string]string{}, map[uint32]string{}
	for _, n := range neighbors {
		if err := checkNeighbor(n); err != nil {
			return err
		}
		if o, dup := byPeer[n.Peer.String()]; dup {
			return fmt.Errorf("bgp: tunnels %s and %s have the same AWS inside address %v", o, n.Name, n.Peer)
		}
		if o, dup := byID[n.Tunnel]; dup {
			return fmt.Errorf("bgp: tunnels %s and %s have the same tunnel id %d", o, n.Name, n.Tunnel)
		}
		byPeer[n.Peer.String()], byID[n.Tunnel] = n.Name, n.Name
	}
	ctx := context.Background()
	s.mu.Lock()
	var old []Neighbor
	var gone []*neighbor
	for _, n := range s.byID {
		old = append(old, n.Neighbor)
		i := slices.IndexFunc(neighbors, func(m Neighbor) bool { return m.Tunnel == n.Tunnel })
		if i < 0 || !sameSession(n.Neighbor, neighbors[i]) {
			gone = append(gone, n)
			delete(s.byID, n.Tunnel)
			delete(s.byPeer, n.Peer)
		}
	}
	s.mu.Unlock()

	var errs []error
	for _, n := range gone {
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: n.Peer.String()}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: tunnel %s: removing neighbour %v: %w", n.Name, n.Peer, err))
		}
		// The tunnel may have left the RIB already.
		s.rib.WithdrawBGP(n.Tunnel)
		s.log.Info("BGP neighbour removed", "tunnel", n.Name, "neighbor", n.Peer)
	}
	if err := s.exportPolicy(ctx, neighbors); err != nil {
		errs = append(errs, err)
	}
	was, now := advertised(old), advertised(neighbors)
	for _, p := range was {
		if !slices.Contains(now, p) {
			if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: ipv4Unicast(), Path: originPath(p)}); err != nil {
				errs = append(errs, fmt.Errorf("bgp: withdrawing %v: %w", p, err))
			}
		}
	}
	for _, p := range now {
		if !slices.Contains(was, p) {
			if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{Path: originPath(p)}); err != nil {
				errs = append(errs, fmt.Errorf("bgp: originating %v: %w", p, err))
			}
		}
	}
	for _, n := range neighbors {
		s.mu.Lock()
		cur := s.byID[n.Tunnel]
		if cur != nil {
			// Same session (sameSession): only the advertised list may
			// differ. Name and Tunnel are read without the lock (event).
			cur.Advertise = n.Advertise
		} else {
			nb := &neighbor{Neighbor: n}
			s.byID[n.Tunnel], s.byPeer[n.Peer] = nb, nb
		}
		s.mu.Unlock()
		if cur != nil {
			continue
		}
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peer(n)}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: tunnel %s: adding neighbour %v: %w", n.Name, n.Peer, err))
			continue
		}
		s.log.Info("BGP neighbour added", "tunnel", n.Name, "neighbor", n.Peer)
	}
	return errors.Join(errs...)
}

// sameSession reports whether a and b configure the same BGP session (the
// advertised prefixes are policy, not session settings).
func sameSession(a, b Neighbor) bool {
	a.Advertise, b.Advertise = nil, nil
	return a.Tunnel == b.Tunnel && a.Name == b.Name && a.Connection == b.Connection && a.Local == b.Local && a.Peer == b.Peer &&
		a.LocalASN == b.LocalASN && a.PeerASN == b.PeerASN && a.HoldTime == b.HoldTime && a.Prepend == b.Prepend
}
