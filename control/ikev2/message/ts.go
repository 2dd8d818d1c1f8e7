package message

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// TSType is a Traffic Selector Type (§3.13.1).
type TSType uint8

// Traffic selector types (§3.13.1).
const (
	TS_IPV4_ADDR_RANGE TSType = 7
	TS_IPV6_ADDR_RANGE TSType = 8
)

// TrafficSelector is one traffic selector (§3.13.1): an address range, an
// IP protocol (0 = any) and a port range.
type TrafficSelector struct {
	TSType     TSType
	IPProtocol uint8
	StartPort  uint16
	EndPort    uint16
	Start, End netip.Addr
	// Raw holds the body of a selector of another type (ports onward),
	// which is kept but never matches.
	Raw []byte
}

// TSFromPrefix is the selector for every protocol and port within p, e.g.
// 0.0.0.0/0 for AWS's route-based tunnels.
func TSFromPrefix(p netip.Prefix) TrafficSelector {
	p = p.Masked()
	a := p.Addr()
	ts := TrafficSelector{TSType: TS_IPV4_ADDR_RANGE, EndPort: 0xffff, Start: a}
	if a.Is6() {
		ts.TSType = TS_IPV6_ADDR_RANGE
	}
	// End: set every host bit.
	s := a.AsSlice()
	for i := p.Bits(); i < len(s)*8; i++ {
		s[i/8] |= 0x80 >> (i % 8)
	}
	ts.End, _ = netip.AddrFromSlice(s)
	return ts
}

// ParseTS parses a prefix such as "0.0.0.0/0" or "2001:db8::/32" into a
// selector for every protocol and port.
func ParseTS(s string) (TrafficSelector, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return TrafficSelector{}, fmt.Errorf("traffic selector %q: want a prefix like 0.0.0.0/0: %w", s, err)
	}
	if p.Addr().Is4In6() {
		return TrafficSelector{}, fmt.Errorf("traffic selector %q: write IPv4 prefixes without the ::ffff: prefix", s)
	}
	return TSFromPrefix(p), nil
}

// Prefix returns the prefix the address range equals, if it is one.
func (ts TrafficSelector) Prefix() (netip.Prefix, bool) {
	if !ts.Start.IsValid() || ts.Start.BitLen() != ts.End.BitLen() {
		return netip.Prefix{}, false
	}
	for bits := 0; bits <= ts.Start.BitLen(); bits++ {
		p := netip.PrefixFrom(ts.Start, bits)
		if p.Masked().Addr() != ts.Start {
			continue
		}
		if TSFromPrefix(p).End == ts.End {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// AllTraffic reports whether the selector covers every protocol and port
// (the part of a route-based selector besides its addresses).
func (ts TrafficSelector) AllTraffic() bool {
	return ts.IPProtocol == 0 && ts.StartPort == 0 && ts.EndPort == 0xffff
}

// String renders the selector like strongSwan: "0.0.0.0/0",
// "192.0.2.1..192.0.2.9[tcp/80]" style with protocol/ports when narrowed.
func (ts TrafficSelector) String() string {
	if ts.TSType != TS_IPV4_ADDR_RANGE && ts.TSType != TS_IPV6_ADDR_RANGE {
		return fmt.Sprintf("TS_TYPE_%d", uint8(ts.TSType))
	}
	var s string
	if p, ok := ts.Prefix(); ok {
		s = p.String()
	} else {
		s = ts.Start.String() + ".." + ts.End.String()
	}
	if ts.AllTraffic() {
		return s
	}
	ports := fmt.Sprintf("%d-%d", ts.StartPort, ts.EndPort)
	if ts.StartPort == ts.EndPort {
		ports = fmt.Sprint(ts.StartPort)
	} else if ts.StartPort == 0 && ts.EndPort == 0xffff {
		ports = ""
	}
	return fmt.Sprintf("%s[%d/%s]", s, ts.IPProtocol, ports)
}

// TrafficSelectors is the TSi or TSr payload (§3.13).
type TrafficSelectors struct {
	Responder bool // TSr; TSi when false
	Selectors []TrafficSelector
}

func (p *TrafficSelectors) Type() PayloadType {
	if p.Responder {
		return PayloadTSr
	}
	return PayloadTSi
}

func (p *TrafficSelectors) String() string {
	s := make([]string, len(p.Selectors))
	for i, ts := range p.Selectors {
		s[i] = ts.String()
	}
	return strings.Join(s, " ")
}

// maxSelectors caps a TS payload's selectors: AWS sends one, a
// policy-based peer a handful; the count byte would allow 255.
const maxSelectors = 64

func (p *TrafficSelectors) appendBody(b []byte) ([]byte, error) {
	if len(p.Selectors) == 0 || len(p.Selectors) > maxSelectors {
		return nil, fmt.Errorf("%s with %d selectors (want 1–%d)", p.Type(), len(p.Selectors), maxSelectors)
	}
	b = append(b, byte(len(p.Selectors)), 0, 0, 0)
	for _, ts := range p.Selectors {
		var body []byte
		switch ts.TSType {
		case TS_IPV4_ADDR_RANGE, TS_IPV6_ADDR_RANGE:
			n := 4
			if ts.TSType == TS_IPV6_ADDR_RANGE {
				n = 16
			}
			if ts.Start.BitLen() != n*8 || ts.End.BitLen() != n*8 {
				return nil, fmt.Errorf("%s selector with addresses %s and %s of the wrong family", p.Type(), ts.Start, ts.End)
			}
			body = binary.BigEndian.AppendUint16(nil, ts.StartPort)
			body = binary.BigEndian.AppendUint16(body, ts.EndPort)
			body = append(body, ts.Start.AsSlice()...)
			body = append(body, ts.End.AsSlice()...)
		default:
			body = ts.Raw
		}
		if 4+len(body) > 0xffff {
			return nil, fmt.Errorf("selector too long")
		}
		b = append(b, byte(ts.TSType), ts.IPProtocol)
		b = binary.BigEndian.AppendUint16(b, uint16(4+len(body)))
		b = append(b, body...)
	}
	return b, nil
}

func (p *TrafficSelectors) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxf("%s payload body of %d bytes, needs at least 4", p.Type(), len(b))
	}
	n := int(b[0])
	if n == 0 || n > maxSelectors {
		return syntaxf("%s payload with %d selectors (want 1–%d)", p.Type(), n, maxSelectors)
	}
	b = b[4:]
	p.Selectors = make([]TrafficSelector, 0, min(n, len(b)/4))
	for i := 0; i < n; i++ {
		if len(b) < 4 {
			return syntaxf("%s selector %d header needs 4 bytes, %d left", p.Type(), i+1, len(b))
		}
		ts := TrafficSelector{TSType: TSType(b[0]), IPProtocol: b[1]}
		l := int(binary.BigEndian.Uint16(b[2:4]))
		if l < 4 || l > len(b) {
			return syntaxf("%s selector %d length %d outside [4, %d]", p.Type(), i+1, l, len(b))
		}
		body := b[4:l]
		b = b[l:]
		switch ts.TSType {
		case TS_IPV4_ADDR_RANGE, TS_IPV6_ADDR_RANGE:
			a := 4
			if ts.TSType == TS_IPV6_ADDR_RANGE {
				a = 16
			}
			if len(body) != 4+2*a {
				return syntaxf("%s selector %d of type %d has length %d, want %d (§3.13.1)", p.Type(), i+1, ts.TSType, l, 8+2*a)
			}
			ts.StartPort = binary.BigEndian.Uint16(body)
			ts.EndPort = binary.BigEndian.Uint16(body[2:])
			ts.Start, _ = netip.AddrFromSlice(body[4 : 4+a])
			ts.End, _ = netip.AddrFromSlice(body[4+a:])
		default:
			ts.Raw = orNil(body)
		}
		p.Selectors = append(p.Selectors, ts)
	}
	if len(b) != 0 {
		return syntaxf("%s payload: %d bytes after its %d selectors", p.Type(), len(b), n)
	}
	return nil
}
