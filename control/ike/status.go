package ike

import (
	"fmt"
	"net/netip"
	"time"
)

// TunnelStatus is a tunnel's state for cgwctl.
type TunnelStatus struct {
	Name     string
	State    string // "up", "connecting", "down"; "restarting", "stopped" (Loop.Status)
	Peer     netip.AddrPort
	Encap    bool
	IKE      *IKEStatus
	Children []ChildStatus
}

// IKEStatus describes the current IKE SA.
type IKEStatus struct {
	SPIi, SPIr   SPI
	Initiator    bool
	Proposal     string
	Age          time.Duration
	LifetimeLeft time.Duration
	RekeyIn      time.Duration
}

// ChildStatus describes one Child SA pair.
type ChildStatus struct {
	InSPI, OutSPI uint32
	Suite         string
	Active        bool // carries outbound traffic
	Deleting      bool
	Age           time.Duration
	LifetimeLeft  time.Duration
	RekeyIn       time.Duration
}

// NotFoundError: no tunnel has the name a command gave.
type NotFoundError struct{ Tunnel string }

func (e *NotFoundError) Error() string { return "tunnel " + e.Tunnel + ": not found" }

// NotFound marks the error for the status API (404).
func (e *NotFoundError) NotFound() bool { return true }

// BusyError: a command cannot start now because of the tunnel's state
// (an SA already being rekeyed or deleted, a negotiation under way);
// Error says which SA and since when. Retrying later may succeed.
type BusyError struct{ Msg string }

func (e *BusyError) Error() string { return e.Msg }

// Conflict marks the error for the status API (409).
func (e *BusyError) Conflict() bool { return true }

// Ago formats how long ago start was, to a tenth of a second.
func Ago(now, start time.Time) string {
	return fmt.Sprintf("%.1fs", now.Sub(start).Seconds())
}
