package message

import "encoding/binary"

// Phase 1 attribute types and values (RFC 2409 Appendix A).
const (
	AttrEncr      = 1
	AttrHash      = 2
	AttrAuth      = 3
	AttrGroup     = 4
	AttrLifeType  = 11
	AttrLifeDur   = 12
	AttrKeyLength = 14

	EncrAESCBC = 7
	AuthPSK    = 1
	LifeSecs   = 1
)

// Phase 2 (IPsec DOI) attribute types and values (RFC 2407 §4.5).
const (
	AttrSALifeType   = 1
	AttrSALifeDur    = 2
	AttrGroupDesc    = 3
	AttrEncapMode    = 4
	AttrAuthAlg      = 5
	AttrESPKeyLength = 6

	EncapTunnel    = 1
	EncapUDPTunnel = 3 // RFC 3947 §5.1
)

// Attr is one data attribute (RFC 2408 §3.3). TV attributes (short
// values) have AF set on the wire; Value holds any length.
type Attr struct {
	Type  uint16
	Value uint64
}

func parseAttrs(b []byte) ([]Attr, error) {
	var out []Attr
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, malformed("attribute truncated")
		}
		t := binary.BigEndian.Uint16(b)
		if t&0x8000 != 0 {
			out = append(out, Attr{Type: t & 0x7fff, Value: uint64(binary.BigEndian.Uint16(b[2:]))})
			b = b[4:]
			continue
		}
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l > len(b)-4 || l > 8 {
			return nil, malformed("attribute %d length %d", t, l)
		}
		var v uint64
		for _, c := range b[4 : 4+l] {
			v = v<<8 | uint64(c)
		}
		out = append(out, Attr{Type: t, Value: v})
		b = b[4+l:]
	}
	return out, nil
}

func appendAttrs(b []byte, as []Attr) []byte {
	for _, a := range as {
		if a.Value <= 0xffff {
			b = binary.BigEndian.AppendUint16(b, a.Type|0x8000)
			b = binary.BigEndian.AppendUint16(b, uint16(a.Value))
			continue
		}
		b = binary.BigEndian.AppendUint16(b, a.Type)
		b = binary.BigEndian.AppendUint16(b, 4)
		b = binary.BigEndian.AppendUint32(b, uint32(a.Value))
	}
	return b
}

// Transform is one Transform payload.
type Transform struct {
	Num, ID uint8
	Attrs   []Attr
}

// Get returns attribute t's value and whether it is present.
func (t Transform) Get(typ uint16) (uint64, bool) {
	for _, a := range t.Attrs {
		if a.Type == typ {
			return a.Value, true
		}
	}
	return 0, false
}

// Proposal is one Proposal payload with its transforms.
type Proposal struct {
	Num, Protocol uint8
	SPI           []byte
	Transforms    []Transform
}

// SA is an SA payload body in the IPsec DOI.
type SA struct {
	Proposals []Proposal
}

// ParseSA decodes an SA payload body (RFC 2408 §3.4–3.6).
func ParseSA(b []byte) (SA, error) {
	var sa SA
	if len(b) < 8 {
		return sa, malformed("SA payload %d bytes", len(b))
	}
	if doi := binary.BigEndian.Uint32(b); doi != DOIIPsec {
		return sa, malformed("SA DOI %d, not IPsec", doi)
	}
	if sit := binary.BigEndian.Uint32(b[4:]); sit != SitIdentity {
		return sa, malformed("SA situation %d, not identity only", sit)
	}
	props, _, err := ParsePayloads(PayloadProposal, b[8:])
	if err != nil {
		return sa, err
	}
	for _, p := range props {
		if p.Type != PayloadProposal {
			return sa, malformed("payload %d inside SA", p.Type)
		}
		q := p.Body
		if len(q) < 4 || len(q) < 4+int(q[2]) {
			return sa, malformed("proposal truncated")
		}
		pr := Proposal{Num: q[0], Protocol: q[1], SPI: q[4 : 4+int(q[2])]}
		nt := int(q[3])
		trs, _, err := ParsePayloads(PayloadTransform, q[4+int(q[2]):])
		if err != nil {
			return sa, err
		}
		if len(trs) != nt {
			return sa, malformed("proposal says %d transforms, has %d", nt, len(trs))
		}
		for _, t := range trs {
			if t.Type != PayloadTransform || len(t.Body) < 4 {
				return sa, malformed("bad transform")
			}
			as, err := parseAttrs(t.Body[4:])
			if err != nil {
				return sa, err
			}
			pr.Transforms = append(pr.Transforms, Transform{Num: t.Body[0], ID: t.Body[1], Attrs: as})
		}
		sa.Proposals = append(sa.Proposals, pr)
	}
	if len(sa.Proposals) == 0 {
		return sa, malformed("SA without proposals")
	}
	return sa, nil
}

// Encode returns the SA payload body.
func (sa SA) Encode() []byte {
	b := binary.BigEndian.AppendUint32(nil, DOIIPsec)
	b = binary.BigEndian.AppendUint32(b, SitIdentity)
	var props []Payload
	for i, p := range sa.Proposals {
		num := p.Num
		if num == 0 {
			num = uint8(i + 1)
		}
		body := []byte{num, p.Protocol, uint8(len(p.SPI)), uint8(len(p.Transforms))}
		body = append(body, p.SPI...)
		var trs []Payload
		for j, t := range p.Transforms {
			tn := t.Num
			if tn == 0 {
				tn = uint8(j + 1)
			}
			trs = append(trs, Payload{Type: PayloadTransform, Body: appendAttrs([]byte{tn, t.ID, 0, 0}, t.Attrs)})
		}
		body = append(body, EncodePayloads(trs)...)
		props = append(props, Payload{Type: PayloadProposal, Body: body})
	}
	return append(b, EncodePayloads(props)...)
}
