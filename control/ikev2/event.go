package ikev2

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/cgw-project/cgw/control/ikev2/message"
	"github.com/cgw-project/cgw/crypto/transform"
)

// EventType says what happened.
type EventType int

const (
	// TunnelUp: the tunnel has an IKE SA and an installed Child SA pair.
	TunnelUp EventType = iota + 1
	// TunnelDown: the tunnel lost its SAs (deleted, DPD, failure, shutdown).
	TunnelDown
	// ChildSAInstalled: install Child.InSPI as an inbound SA and keep
	// Child.OutSPI ready; traffic is not yet sent on it.
	ChildSAInstalled
	// OutboundSwitch: send the tunnel's traffic with Child.OutSPI from now on.
	OutboundSwitch
	// ChildSARetired: remove Child.InSPI and Child.OutSPI.
	ChildSARetired
	// IKERekeyed: the IKE SA was replaced by a new one (SPIs in IKE).
	IKERekeyed
	// NegotiationFailed: an exchange failed; Notify holds the notify type
	// (0 for timeouts and local errors), Err the operator's message.
	NegotiationFailed
	// Retransmit: a request was sent again (Count: the retransmission's number).
	Retransmit
	// DPDTimeout: the peer did not answer liveness checks.
	DPDTimeout
)

func (t EventType) String() string {
	switch t {
	case TunnelUp:
		return "TunnelUp"
	case TunnelDown:
		return "TunnelDown"
	case ChildSAInstalled:
		return "ChildSAInstalled"
	case OutboundSwitch:
		return "OutboundSwitch"
	case ChildSARetired:
		return "ChildSARetired"
	case IKERekeyed:
		return "IKERekeyed"
	case NegotiationFailed:
		return "NegotiationFailed"
	case Retransmit:
		return "Retransmit"
	case DPDTimeout:
		return "DPDTimeout"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// ChildSA is what the dataplane needs to run one ESP SA pair.
type ChildSA struct {
	InSPI, OutSPI uint32
	Suite         transform.Suite
	// InKeymat and OutKeymat are each direction's KEYMAT slice in the
	// layout transform.New takes.
	InKeymat, OutKeymat []byte
	ESN                 bool
	// Encap: ESP-in-UDP (RFC 3948) between LocalPort and PeerPort.
	Encap               bool
	Local, Peer         netip.Addr
	LocalPort, PeerPort uint16
	ReplayWindow        int
	Lifetime            time.Duration
	// LocalTS and RemoteTS are the negotiated traffic selectors.
	LocalTS, RemoteTS []message.TrafficSelector
}

// IKESAInfo names an IKE SA in events.
type IKESAInfo struct {
	SPIi, SPIr message.SPI
	Proposal   string
}

// Event is one thing the control process acts on.
type Event struct {
	Type   EventType
	Tunnel string
	Time   time.Time
	Child  *ChildSA   // ChildSAInstalled, OutboundSwitch, ChildSARetired
	IKE    *IKESAInfo // IKERekeyed (the new SA), TunnelUp
	Notify message.NotifyType
	Count  int    // Retransmit
	Err    error  // NegotiationFailed, TunnelDown (why)
	Reason string // short reason for logs and metrics labels
}

func (e Event) String() string {
	s := fmt.Sprintf("%s %s", e.Tunnel, e.Type)
	if e.Child != nil {
		s += fmt.Sprintf(" in=%08x out=%08x %s", e.Child.InSPI, e.Child.OutSPI, e.Child.Suite)
	}
	if e.Notify != 0 {
		s += " " + e.Notify.String()
	}
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}
