package message

import (
	"encoding/binary"
	"net/netip"
)

// Payload is one payload's type and body (generic header stripped).
// Start and End locate the whole payload (header included) in the
// message's payload bytes, for the quick mode hashes.
type Payload struct {
	Type       uint8
	Body       []byte
	Start, End int
}

// ParsePayloads walks a payload chain starting with type first. Bytes
// after the last payload (CBC padding) are ignored; the returned end is
// where the chain stopped.
func ParsePayloads(first uint8, b []byte) ([]Payload, int, error) {
	var out []Payload
	next, off := first, 0
	for next != PayloadNone {
		if len(b)-off < 4 {
			return nil, 0, malformed("payload %d truncated", next)
		}
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		if l < 4 || l > len(b)-off {
			return nil, 0, malformed("payload %d length %d, %d bytes left", next, l, len(b)-off)
		}
		if len(out) >= 256 {
			return nil, 0, malformed("more than 256 payloads")
		}
		out = append(out, Payload{Type: next, Body: b[off+4 : off+l], Start: off, End: off + l})
		next = b[off]
		off += l
	}
	return out, off, nil
}

// EncodePayloads chains ps (generic headers written here).
func EncodePayloads(ps []Payload) []byte {
	n := 0
	for _, p := range ps {
		n += 4 + len(p.Body)
	}
	b := make([]byte, 0, n)
	for i, p := range ps {
		next := uint8(PayloadNone)
		if i+1 < len(ps) {
			next = ps[i+1].Type
		}
		b = append(b, next, 0, 0, 0)
		binary.BigEndian.PutUint16(b[len(b)-2:], uint16(4+len(p.Body)))
		b = append(b, p.Body...)
	}
	return b
}

// Find returns the first payload of type t.
func Find(ps []Payload, t uint8) *Payload {
	for i := range ps {
		if ps[i].Type == t {
			return &ps[i]
		}
	}
	return nil
}

var (
	// VIDDPD is RFC 3706 §4's vendor ID (major 1, minor 0).
	VIDDPD = []byte{0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00}
	// VIDNATT is MD5("RFC 3947") (RFC 3947 §2).
	VIDNATT = []byte{0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f}
)

// Delete is a Delete payload (RFC 2408 §3.15).
type Delete struct {
	Protocol uint8
	SPIs     [][]byte
}

// ParseDelete decodes a Delete payload body.
func ParseDelete(b []byte) (Delete, error) {
	if len(b) < 8 {
		return Delete{}, malformed("delete truncated")
	}
	d := Delete{Protocol: b[4]}
	sz, n := int(b[5]), int(binary.BigEndian.Uint16(b[6:]))
	if sz == 0 || len(b)-8 != sz*n {
		return Delete{}, malformed("delete: %d SPIs of %d bytes in %d", n, sz, len(b)-8)
	}
	for i := 0; i < n; i++ {
		d.SPIs = append(d.SPIs, b[8+i*sz:8+(i+1)*sz])
	}
	return d, nil
}

// Encode returns the Delete payload body.
func (d Delete) Encode() []byte {
	b := binary.BigEndian.AppendUint32(nil, DOIIPsec)
	sz := 0
	if len(d.SPIs) > 0 {
		sz = len(d.SPIs[0])
	}
	b = append(b, d.Protocol, uint8(sz))
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.SPIs)))
	for _, s := range d.SPIs {
		b = append(b, s...)
	}
	return b
}

// ID is an Identification payload in the IPsec DOI (RFC 2407 §4.6.2).
type ID struct {
	Type     uint8
	Protocol uint8
	Port     uint16
	Data     []byte
}

// ParseID decodes an ID payload body.
func ParseID(b []byte) (ID, error) {
	if len(b) < 4 {
		return ID{}, malformed("ID truncated")
	}
	return ID{Type: b[0], Protocol: b[1], Port: binary.BigEndian.Uint16(b[2:]), Data: b[4:]}, nil
}

// Encode returns the ID payload body.
func (id ID) Encode() []byte {
	b := []byte{id.Type, id.Protocol, 0, 0}
	binary.BigEndian.PutUint16(b[2:], id.Port)
	return append(b, id.Data...)
}

// AddrID is ID_IPV4_ADDR for a.
func AddrID(a netip.Addr) ID {
	s := a.As4()
	return ID{Type: IDIPv4Addr, Data: s[:]}
}

// SubnetID is ID_IPV4_ADDR_SUBNET for p.
func SubnetID(p netip.Prefix) ID {
	a := p.Masked().Addr().As4()
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], ^uint32(0)<<(32-p.Bits())&0xffffffff)
	if p.Bits() == 0 {
		m = [4]byte{}
	}
	return ID{Type: IDIPv4Subnet, Data: append(a[:], m[:]...)}
}

// Prefix returns the prefix an ID_IPV4_ADDR(_SUBNET) names.
func (id ID) Prefix() (netip.Prefix, error) {
	switch {
	case id.Type == IDIPv4Addr && len(id.Data) == 4:
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(id.Data)), 32), nil
	case id.Type == IDIPv4Subnet && len(id.Data) == 8:
		m := binary.BigEndian.Uint32(id.Data[4:])
		bits := 0
		for m&0x80000000 != 0 {
			bits++
			m <<= 1
		}
		if m != 0 {
			return netip.Prefix{}, malformed("non-contiguous netmask in ID")
		}
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(id.Data[:4])), bits).Masked(), nil
	}
	return netip.Prefix{}, malformed("ID type %d with %d bytes is not an IPv4 address or subnet", id.Type, len(id.Data))
}
