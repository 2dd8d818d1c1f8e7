package ikev1

import (
	"context"
	"time"

	"github.com/cgw-project/cgw/control/ikev2"
)

// engine is what cgw-control needs of an IKE engine besides AddTunnel
// (whose *Tunnel result differs by version and is not used): both
// Managers must keep providing it.
type engine interface {
	RemoveTunnel(ctx context.Context, name string) error
	ChildNeedsRekey(spi uint32) bool
	LastInbound(spi uint32, at time.Time)
	Initiate(name string) error
	RekeyChild(name string) error
	RekeyIKE(name string) error
	Status() []ikev2.TunnelStatus
	Close(ctx context.Context)
}

var (
	_ engine = (*Manager)(nil)
	_ engine = (*ikev2.Manager)(nil)
)
