package ikev2

import (
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
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

// toIKE gives negotiated selectors to the shared Child SA description.
func toIKE(ts []message.TrafficSelector) []ike.TrafficSelector {
	out := make([]ike.TrafficSelector, 0, len(ts))
	for _, s := range ts {
		out = append(out, ike.TrafficSelector{Protocol: s.IPProtocol, StartPort: s.StartPort, EndPort: s.EndPort, Start: s.Start, End: s.End})
	}
	return out
}

// fromIKE turns a Child SA's selectors back into payload selectors (a
// rekey proposes the ones the old SA negotiated).
func fromIKE(ts []ike.TrafficSelector) []message.TrafficSelector {
	out := make([]message.TrafficSelector, 0, len(ts))
	for _, s := range ts {
		typ := message.TS_IPV4_ADDR_RANGE
		if s.Start.Is6() {
			typ = message.TS_IPV6_ADDR_RANGE
		}
		out = append(out, message.TrafficSelector{TSType: typ, IPProtocol: s.Protocol, StartPort: s.StartPort, EndPort: s.EndPort, Start: s.Start, End: s.End})
	}
	return out
}
