package ikev1

import (
	"github.com/cgw-project/cgw/control/ike"
)

// The types both engines share, from control/ike, under the names this
// package's code and tests use.
type (
	Event         = ike.Event
	EventType     = ike.EventType
	ChildSA       = ike.ChildSA
	IKESAInfo     = ike.IKESAInfo
	TunnelOptions = ike.TunnelOptions
	TunnelStatus  = ike.TunnelStatus
	IKEStatus     = ike.IKEStatus
	ChildStatus   = ike.ChildStatus
	Timing        = ike.Timing
	Clock         = ike.Clock
	Timer         = ike.Timer
	BusyError     = ike.BusyError
	NotFoundError = ike.NotFoundError
)

const (
	TunnelUp          = ike.TunnelUp
	TunnelDown        = ike.TunnelDown
	ChildSAInstalled  = ike.ChildSAInstalled
	OutboundSwitch    = ike.OutboundSwitch
	ChildSARetired    = ike.ChildSARetired
	IKERekeyed        = ike.IKERekeyed
	NegotiationFailed = ike.NegotiationFailed
	Retransmit        = ike.Retransmit
	DPDTimeout        = ike.DPDTimeout
)
