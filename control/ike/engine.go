package ike

import (
	"context"
	"time"

	"github.com/cgw-project/cgw/config"
)

// Engine is what cgw-control asks of an IKE engine (*ikev2.Manager and
// *ikev1.Manager both are one; each engine's tests check it).
type Engine interface {
	// AddTunnel starts running a tunnel of the engine's IKE version.
	AddTunnel(c config.Tunnel, o TunnelOptions) error
	// RemoveTunnel deletes the tunnel's SAs (telling the peer) and stops it.
	RemoveTunnel(ctx context.Context, name string) error
	// ChildNeedsRekey asks for a rekey of the Child SA with inbound or
	// outbound SPI spi (byte or sequence limits from the dataplane's
	// counters); false when no tunnel of this engine has it.
	ChildNeedsRekey(spi uint32) bool
	// LastInbound tells DPD when ESP for inbound SPI spi last arrived.
	LastInbound(spi uint32, at time.Time)
	// Initiate, RekeyChild and RekeyIKE are operators' commands; they
	// answer *NotFoundError or *BusyError when they cannot start.
	Initiate(name string) error
	RekeyChild(name string) error
	RekeyIKE(name string) error
	// Status returns a snapshot of every tunnel.
	Status() []TunnelStatus
	// Close deletes every SA (telling the peers), stops the tunnels and
	// closes the sockets.
	Close(ctx context.Context)
}
