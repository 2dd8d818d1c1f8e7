package ikev1

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ISAKMP header and payload numbers (RFC 2408 §3.1, §3.14; RFC 3947 §3).
const (
	HeaderLen = 28
	Version   = 0x10 // major 1, minor 0

	ExchIdentityProt = 2  // Main Mode (RFC 2409 §5)
	ExchInformation  = 5  // RFC 2408 §4.8
	ExchQuickMode    = 32 // RFC 2409 §5.5

	FlagEncryption = 0x01
	FlagCommit     = 0x02

	PayloadNone  = 0
	PayloadSA    = 1
	PayloadProp  = 2
	PayloadTrans = 3
	PayloadKE    = 4
	PayloadID    = 5
	PayloadHash  = 8
	PayloadNonce = 10
	PayloadN     = 11
	PayloadD     = 12
	PayloadVID   = 13
	PayloadNATD  = 20 // RFC 3947 §3.2

	DOIIPsec       = 1 // RFC 2407 §4.2
	SitIdentity    = 1
	ProtoISAKMP    = 1
	ProtoESP       = 3
	KeyIKE         = 1 // Phase 1 transform ID (RFC 2407 §4.4.2)
	IDIPv4Addr     = 1 // RFC 2407 §4.6.2.1
	IDIPv4Subnet   = 4
	ESPTransformID = 12 // ESP_AES (RFC 2407 §4.4.4, RFC 3602)
	ESPAESGCM16    = 20 // RFC 4106 §8.1
)

// Notify message types used here (RFC 2408 §3.14.1, RFC 2407 §4.6.3,
// RFC 3706 §5).
const (
	NotifyInvalidPayloadType = 1
	NotifyNoProposalChosen   = 14
	NotifyPayloadMalformed   = 16
	NotifyInvalidHash        = 23
	NotifyAuthFailed         = 24
	NotifyInitialContact     = 24578
	NotifyRUThere            = 36136
	NotifyRUThereAck         = 36137
)

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

var (
	// VIDDPD is RFC 3706 §4's vendor ID (major 1, minor 0).
	VIDDPD = []byte{0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00}
	// VIDNATT is MD5("RFC 3947") (RFC 3947 §2).
	VIDNATT = []byte{0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f}
)

// ErrMalformed: a message or payload does not parse.
var ErrMalformed = errors.New("ikev1: malformed ISAKMP message")

func malformed(f string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(f, a...))
}

// Header is the ISAKMP header (RFC 2408 §3.1).
type Header struct {
	CkyI, CkyR [8]byte
	Next       uint8
	Exchange   uint8
	Flags      uint8
	MsgID      uint32
	Length     uint32
}

// ParseHeader decodes the first 28 bytes of b.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, malformed("%d bytes, shorter than the 28-byte header", len(b))
	}
	copy(h.CkyI[:], b[0:8])
	copy(h.CkyR[:], b[8:16])
	h.Next = b[16]
	if b[17] != Version {
		return h, malformed("version %#x, not 1.0", b[17])
	}
	h.Exchange, h.Flags = b[18], b[19]
	h.MsgID = binary.BigEndian.Uint32(b[20:24])
	h.Length = binary.BigEndian.Uint32(b[24:28])
	if int(h.Length) != len(b) && !(int(h.Length) < len(b) && int(h.Length) >= HeaderLen) {
		return h, malformed("header length %d, datagram %d", h.Length, len(b))
	}
	if h.Length < HeaderLen {
		return h, malformed("header length %d", h.Length)
	}
	return h, nil
}

func (h Header) put(b []byte) {
	copy(b[0:8], h.CkyI[:])
	copy(b[8:16], h.CkyR[:])
	b[16] = h.Next
	b[17] = Version
	b[18], b[19] = h.Exchange, h.Flags
	binary.BigEndian.PutUint32(b[20:24], h.MsgID)
	binary.BigEndian.PutUint32(b[24:28], h.Length)
}

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
	props, _, err := ParsePayloads(PayloadProp, b[8:])
	if err != nil {
		return sa, err
	}
	for _, p := range props {
		if p.Type != PayloadProp {
			return sa, malformed("payload %d inside SA", p.Type)
		}
		q := p.Body
		if len(q) < 4 || len(q) < 4+int(q[2]) {
			return sa, malformed("proposal truncated")
		}
		pr := Proposal{Num: q[0], Protocol: q[1], SPI: q[4 : 4+int(q[2])]}
		nt := int(q[3])
		trs, _, err := ParsePayloads(PayloadTrans, q[4+int(q[2]):])
		if err != nil {
			return sa, err
		}
		if len(trs) != nt {
			return sa, malformed("proposal says %d transforms, has %d", nt, len(trs))
		}
		for _, t := range trs {
			if t.Type != PayloadTrans || len(t.Body) < 4 {
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
			trs = append(trs, Payload{Type: PayloadTrans, Body: appendAttrs([]byte{tn, t.ID, 0, 0}, t.Attrs)})
		}
		body = append(body, EncodePayloads(trs)...)
		props = append(props, Payload{Type: PayloadProp, Body: body})
	}
	return append(b, EncodePayloads(props)...)
}

// Notify is a Notification payload (RFC 2408 §3.14).
type Notify struct {
	Protocol uint8
	Type     uint16
	SPI      []byte
	Data     []byte
}

// ParseNotify decodes a Notification payload body.
func ParseNotify(b []byte) (Notify, error) {
	if len(b) < 8 || len(b) < 8+int(b[5]) {
		return Notify{}, malformed("notify truncated")
	}
	n := int(b[5])
	return Notify{Protocol: b[4], Type: binary.BigEndian.Uint16(b[6:]), SPI: b[8 : 8+n], Data: b[8+n:]}, nil
}

// Encode returns the Notification payload body.
func (n Notify) Encode() []byte {
	b := binary.BigEndian.AppendUint32(nil, DOIIPsec)
	b = append(b, n.Protocol, uint8(len(n.SPI)))
	b = binary.BigEndian.AppendUint16(b, n.Type)
	b = append(b, n.SPI...)
	return append(b, n.Data...)
}

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

// Message is a decoded ISAKMP message. Raw is the payload bytes after
// decryption (up to the end of the payload chain).
type Message struct {
	Header   Header
	Payloads []Payload
	Raw      []byte
}

// Encode writes the header and payloads in clear (Length set here).
func Encode(h Header, ps []Payload) []byte {
	body := EncodePayloads(ps)
	if len(ps) > 0 {
		h.Next = ps[0].Type
	}
	b := make([]byte, HeaderLen, HeaderLen+len(body))
	b = append(b, body...)
	h.Length = uint32(len(b))
	h.put(b)
	return b
}

// notifyNames are RFC 2408 §3.14.1's error types, written as IKEv2's
// (underscores), whose numbers agree for the ones both use, so metrics
// and logs name a failure the same way for both engines.
var notifyNames = [...]string{1: "INVALID_PAYLOAD_TYPE", "DOI_NOT_SUPPORTED", "SITUATION_NOT_SUPPORTED",
	"INVALID_COOKIE", "INVALID_MAJOR_VERSION", "INVALID_MINOR_VERSION", "INVALID_EXCHANGE_TYPE", "INVALID_FLAGS",
	"INVALID_MESSAGE_ID", "INVALID_PROTOCOL_ID", "INVALID_SPI", "INVALID_TRANSFORM_ID", "ATTRIBUTES_NOT_SUPPORTED",
	"NO_PROPOSAL_CHOSEN", "BAD_PROPOSAL_SYNTAX", "PAYLOAD_MALFORMED", "INVALID_KEY_INFORMATION",
	"INVALID_ID_INFORMATION", "INVALID_CERT_ENCODING", "INVALID_CERTIFICATE", "CERT_TYPE_UNSUPPORTED",
	"INVALID_CERT_AUTHORITY", "INVALID_HASH_INFORMATION", "AUTHENTICATION_FAILED", "INVALID_SIGNATURE",
	"ADDRESS_NOTIFICATION", "NOTIFY_SA_LIFETIME", "CERTIFICATE_UNAVAILABLE", "UNSUPPORTED_EXCHANGE_TYPE",
	"UNEQUAL_PAYLOAD_LENGTHS"}

// NotifyName names a notify message type.
func NotifyName(n uint16) string {
	if int(n) < len(notifyNames) && notifyNames[n] != "" {
		return notifyNames[n]
	}
	return fmt.Sprintf("NOTIFY_%d", n)
}
