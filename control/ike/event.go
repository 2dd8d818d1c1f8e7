package ike

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"

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

// SPI is an IKE SA's 8-byte SPI (IKEv2) or cookie (IKEv1).
type SPI [8]byte

func (s SPI) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether the SPI is all zeros.
func (s SPI) IsZero() bool { return s == SPI{} }

// TrafficSelector is one negotiated address range with its protocol and
// ports (0 and 0–65535 for "all", as route-based tunnels use).
type TrafficSelector struct {
	Protocol           uint8
	StartPort, EndPort uint16
	Start, End         netip.Addr
}

// SelectorFromPrefix covers every protocol and port within p.
func SelectorFromPrefix(p netip.Prefix) TrafficSelector {
	p = p.Masked()
	a := p.Addr()
	s := a.AsSlice()
	for i := p.Bits(); i < len(s)*8; i++ {
		s[i/8] |= 0x80 >> (i % 8)
	}
	end, _ := netip.AddrFromSlice(s)
	return TrafficSelector{EndPort: 0xffff, Start: a, End: end}
}

// Prefix returns the prefix the address range equals, if it is one.
func (ts TrafficSelector) Prefix() (netip.Prefix, bool) {
	if !ts.Start.IsValid() || ts.Start.BitLen() != ts.End.BitLen() {
		return netip.Prefix{}, false
	}
	for bits := 0; bits <= ts.Start.BitLen(); bits++ {
		p := netip.PrefixFrom(ts.Start, bits)
		if p.Masked().Addr() == ts.Start && SelectorFromPrefix(p).End == ts.End {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// String renders the selector like strongSwan: "0.0.0.0/0", or a range
// with "[protocol/ports]" when narrowed.
func (ts TrafficSelector) String() string {
	s := ts.Start.String() + ".." + ts.End.String()
	if p, ok := ts.Prefix(); ok {
		s = p.String()
	}
	if ts.Protocol == 0 && ts.StartPort == 0 && ts.EndPort == 0xffff {
		return s
	}
	ports := fmt.Sprintf("%d-%d", ts.StartPort, ts.EndPort)
	if ts.StartPort == ts.EndPort {
		ports = fmt.Sprint(ts.StartPort)
	}
	return fmt.Sprintf("%s[%d/%s]", s, ts.Protocol, ports)
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
	LocalTS, RemoteTS []TrafficSelector
}

// IKESAInfo names an IKE SA in events.
type IKESAInfo struct {
	SPIi, SPIr SPI
	Proposal   string
}

// Event is one thing the control process acts on.
type Event struct {
	Type   EventType
	Tunnel string
	Time   time.Time
	Child  *ChildSA   // ChildSAInstalled, OutboundSwitch, ChildSARetired
	IKE    *IKESAInfo // IKERekeyed (the new SA), TunnelUp
	// Notify is the notify message type that ended a negotiation: an
	// IKEv2 number (RFC 7296 §3.10.1) or an IKEv1 one (RFC 2408 §3.14.1),
	// whose error numbers agree; Reason carries its name.
	Notify uint16
	Count  int    // Retransmit
	Err    error  // NegotiationFailed, TunnelDown (why)
	Reason string // short reason for logs and metrics labels
}

func (e Event) String() string {
	s := fmt.Sprintf("%s %s", e.Tunnel, e.Type)
	if e.Child != nil {
		s += fmt.Sprintf(" in=%08x out=%08x %s", e.Child.InSPI, e.Child.OutSPI, e.Child.Suite)
	}
	if e.Notify != 0 && e.Reason != "" {
		s += " " + e.Reason
	} else if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}
