package message

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// KE is the Key Exchange payload (§3.4).
type KE struct {
	Group DHGroup
	Data  []byte // the public value, in the group's encoding
}

func (*KE) Type() PayloadType { return PayloadKE }

func (p *KE) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, uint16(p.Group))
	b = append(b, 0, 0)
	return append(b, p.Data...), nil
}

func (p *KE) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxf("KE payload body of %d bytes, needs at least 4", len(b))
	}
	p.Group = DHGroup(binary.BigEndian.Uint16(b))
	p.Data = orNil(b[4:])
	return nil
}

// IDType is an Identification payload's ID Type (§3.5).
type IDType uint8

// ID types (§3.5).
const (
	ID_IPV4_ADDR   IDType = 1
	ID_FQDN        IDType = 2
	ID_RFC822_ADDR IDType = 3
	ID_IPV6_ADDR   IDType = 5
	ID_DER_ASN1_DN IDType = 9
	ID_DER_ASN1_GN IDType = 10
	ID_KEY_ID      IDType = 11
)

func (t IDType) String() string {
	switch t {
	case ID_IPV4_ADDR:
		return "ID_IPV4_ADDR"
	case ID_FQDN:
		return "ID_FQDN"
	case ID_RFC822_ADDR:
		return "ID_RFC822_ADDR"
	case ID_IPV6_ADDR:
		return "ID_IPV6_ADDR"
	case ID_DER_ASN1_DN:
		return "ID_DER_ASN1_DN"
	case ID_DER_ASN1_GN:
		return "ID_DER_ASN1_GN"
	case ID_KEY_ID:
		return "ID_KEY_ID"
	}
	return fmt.Sprintf("ID_%d", uint8(t))
}

// ID is the Identification payload, IDi or IDr (§3.5).
type ID struct {
	Responder bool // IDr; IDi when false
	IDType    IDType
	Data      []byte
}

// IDAddr makes an ID_IPV4_ADDR or ID_IPV6_ADDR identity (the AWS
// convention: each side is identified by its outside address).
func IDAddr(a netip.Addr) ID {
	if a.Is4() || a.Is4In6() {
		v := a.Unmap().As4()
		return ID{IDType: ID_IPV4_ADDR, Data: v[:]}
	}
	v := a.As16()
	return ID{IDType: ID_IPV6_ADDR, Data: v[:]}
}

// IDFQDN makes an ID_FQDN identity.
func IDFQDN(name string) ID { return ID{IDType: ID_FQDN, Data: []byte(name)} }

func (p *ID) Type() PayloadType {
	if p.Responder {
		return PayloadIDr
	}
	return PayloadIDi
}

// Body is the payload body without the generic header: the
// RestOfInitIDPayload / RestOfRespIDPayload that AUTH signs (§2.15).
func (p *ID) Body() []byte {
	b, _ := p.appendBody(nil)
	return b
}

// Addr returns the address of an ID_IPV4_ADDR or ID_IPV6_ADDR identity.
func (p *ID) Addr() (netip.Addr, bool) {
	switch {
	case p.IDType == ID_IPV4_ADDR && len(p.Data) == 4:
		return netip.AddrFrom4([4]byte(p.Data)), true
	case p.IDType == ID_IPV6_ADDR && len(p.Data) == 16:
		return netip.AddrFrom16([16]byte(p.Data)), true
	}
	return netip.Addr{}, false
}

// String renders the identity for logs, e.g. "203.0.113.1" or
// "ID_KEY_ID:0a0b".
func (p *ID) String() string {
	if a, ok := p.Addr(); ok {
		return a.String()
	}
	switch p.IDType {
	case ID_FQDN, ID_RFC822_ADDR:
		return fmt.Sprintf("%q", p.Data)
	}
	return fmt.Sprintf("%s:%x", p.IDType, p.Data)
}

func (p *ID) appendBody(b []byte) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	b = append(b, byte(p.IDType), 0, 0, 0)
	return append(b, p.Data...), nil
}

func (p *ID) check() error {
	switch {
	case p.IDType == ID_IPV4_ADDR && len(p.Data) != 4:
		return syntaxf("ID_IPV4_ADDR identity of %d bytes, want 4", len(p.Data))
	case p.IDType == ID_IPV6_ADDR && len(p.Data) != 16:
		return syntaxf("ID_IPV6_ADDR identity of %d bytes, want 16", len(p.Data))
	}
	return nil
}

func (p *ID) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxf("%s payload body of %d bytes, needs at least 4", p.Type(), len(b))
	}
	p.IDType = IDType(b[0])
	p.Data = orNil(b[4:])
	return p.check()
}

// AuthMethod is the AUTH payload's Auth Method (§3.8).
type AuthMethod uint8

// Authentication methods (§3.8; 14 from RFC 7427).
const (
	AuthRSASig       AuthMethod = 1
	AuthSharedKeyMIC AuthMethod = 2
	AuthDSSSig       AuthMethod = 3
	AuthDigitalSig   AuthMethod = 14
)

func (m AuthMethod) String() string {
	switch m {
	case AuthRSASig:
		return "RSA signature"
	case AuthSharedKeyMIC:
		return "shared key MIC"
	case AuthDSSSig:
		return "DSS signature"
	case AuthDigitalSig:
		return "digital signature"
	}
	return fmt.Sprintf("auth method %d", uint8(m))
}

// Auth is the Authentication payload (§3.8).
type Auth struct {
	Method AuthMethod
	Data   []byte
}

func (*Auth) Type() PayloadType { return PayloadAUTH }

func (p *Auth) appendBody(b []byte) ([]byte, error) {
	b = append(b, byte(p.Method), 0, 0, 0)
	return append(b, p.Data...), nil
}

func (p *Auth) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxf("AUTH payload body of %d bytes, needs at least 4", len(b))
	}
	p.Method = AuthMethod(b[0])
	p.Data = orNil(b[4:])
	return nil
}

// Nonce lengths (§2.10, §3.9).
const (
	MinNonceLen = 16
	MaxNonceLen = 256
)

// Nonce is the Nonce payload (§3.9): 16–256 random bytes.
type Nonce struct{ Data []byte }

func (*Nonce) Type() PayloadType { return PayloadNonce }

func (p *Nonce) appendBody(b []byte) ([]byte, error) {
	if err := checkNonce(len(p.Data)); err != nil {
		return nil, err
	}
	return append(b, p.Data...), nil
}

func (p *Nonce) decodeBody(b []byte) error {
	p.Data = orNil(b)
	return checkNonce(len(b))
}

func checkNonce(n int) error {
	if n < MinNonceLen || n > MaxNonceLen {
		return syntaxf("nonce of %d bytes, must be %d–%d (§3.9)", n, MinNonceLen, MaxNonceLen)
	}
	return nil
}

// Notify is the Notify payload (§3.10).
type Notify struct {
	Protocol   ProtocolID // 0 unless the notification concerns an SA
	SPI        []byte     // empty, or the SA's SPI
	NotifyType NotifyType
	Data       []byte
}

func (*Notify) Type() PayloadType { return PayloadNotify }

func (p *Notify) appendBody(b []byte) ([]byte, error) {
	if len(p.SPI) > 255 {
		return nil, fmt.Errorf("notify SPI of %d bytes", len(p.SPI))
	}
	b = append(b, byte(p.Protocol), byte(len(p.SPI)))
	b = binary.BigEndian.AppendUint16(b, uint16(p.NotifyType))
	b = append(b, p.SPI...)
	return append(b, p.Data...), nil
}

func (p *Notify) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxf("Notify payload body of %d bytes, needs at least 4", len(b))
	}
	p.Protocol = ProtocolID(b[0])
	spiLen := int(b[1])
	p.NotifyType = NotifyType(binary.BigEndian.Uint16(b[2:4]))
	if 4+spiLen > len(b) {
		return syntaxf("Notify %s SPI size %d beyond the %d-byte body", p.NotifyType, spiLen, len(b))
	}
	if spiLen > 0 {
		p.SPI = b[4 : 4+spiLen]
	}
	p.Data = orNil(b[4+spiLen:])
	return nil
}

// InvalidKE is the INVALID_KE_PAYLOAD notification asking the initiator
// to retry with group g (§1.2, §3.10.1: the data is the 2-byte group).
func InvalidKE(g DHGroup) Notify {
	return Notify{NotifyType: INVALID_KE_PAYLOAD, Data: binary.BigEndian.AppendUint16(nil, uint16(g))}
}

// Group returns the group an INVALID_KE_PAYLOAD notification asks for.
func (p *Notify) Group() (DHGroup, bool) {
	if p.NotifyType != INVALID_KE_PAYLOAD || len(p.Data) != 2 {
		return 0, false
	}
	return DHGroup(binary.BigEndian.Uint16(p.Data)), true
}

// Delete is the Delete payload (§3.11). For an IKE SA, SPIs is empty
// (the header's SPIs name it); for ESP/AH it lists 4-byte inbound SPIs.
type Delete struct {
	Protocol ProtocolID
	SPIs     []uint32
}

func (*Delete) Type() PayloadType { return PayloadDelete }

// maxDeleteSPIs bounds a Delete payload's SPI list; the body length
// bounds it anyway (64 KiB / 4), this keeps allocation well below that.
const maxDeleteSPIs = 4096

func (p *Delete) appendBody(b []byte) ([]byte, error) {
	size := 4
	switch p.Protocol {
	case ProtoIKE:
		if len(p.SPIs) != 0 {
			return nil, fmt.Errorf("deleting an IKE SA takes no SPIs (§3.11)")
		}
		size = 0
	case ProtoAH, ProtoESP:
		if len(p.SPIs) == 0 || len(p.SPIs) > maxDeleteSPIs {
			return nil, fmt.Errorf("Delete %s with %d SPIs (want 1–%d)", p.Protocol, len(p.SPIs), maxDeleteSPIs)
		}
	default:
		return nil, fmt.Errorf("Delete for protocol %d", uint8(p.Protocol))
	}
	b = append(b, byte(p.Protocol), byte(size))
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.SPIs)))
	for _, s := range p.SPIs {
		b = binary.BigEndian.AppendUint32(b, s)
	}
	return b, nil
}

func (p *Delete) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxf("Delete payload body of %d bytes, needs at least 4", len(b))
	}
	p.Protocol = ProtocolID(b[0])
	size, n := int(b[1]), int(binary.BigEndian.Uint16(b[2:4]))
	want := 4
	if p.Protocol == ProtoIKE {
		want = 0
	}
	switch {
	case p.Protocol != ProtoIKE && p.Protocol != ProtoESP && p.Protocol != ProtoAH:
		return syntaxf("Delete for protocol %d", uint8(p.Protocol))
	case size != want:
		return syntaxf("Delete %s with SPI size %d, want %d (§3.11)", p.Protocol, size, want)
	case p.Protocol == ProtoIKE && n != 0:
		return syntaxf("Delete IKE with %d SPIs, want 0 (§3.11)", n)
	case p.Protocol != ProtoIKE && n == 0:
		return syntaxf("Delete %s without SPIs", p.Protocol)
	case len(b)-4 != n*size:
		return syntaxf("Delete %s announces %d SPIs of %d bytes but carries %d bytes", p.Protocol, n, size, len(b)-4)
	case n > maxDeleteSPIs:
		return syntaxf("Delete with %d SPIs, over %d", n, maxDeleteSPIs)
	}
	if n > 0 {
		p.SPIs = make([]uint32, n)
		for i := range p.SPIs {
			p.SPIs[i] = binary.BigEndian.Uint32(b[4+4*i:])
		}
	}
	return nil
}

// VendorID is the Vendor ID payload (§3.12).
type VendorID struct{ Data []byte }

func (*VendorID) Type() PayloadType { return PayloadVendor }

func (p *VendorID) appendBody(b []byte) ([]byte, error) { return append(b, p.Data...), nil }

func (p *VendorID) decodeBody(b []byte) error {
	p.Data = orNil(b)
	return nil
}

// Raw is a payload kept as bytes: CERT, CERTREQ and EAP, which this
// implementation (pre-shared keys only) receives but does not interpret.
type Raw struct {
	PayloadType PayloadType
	Data        []byte
}

func (p *Raw) Type() PayloadType { return p.PayloadType }

func (p *Raw) appendBody(b []byte) ([]byte, error) { return append(b, p.Data...), nil }

func (p *Raw) decodeBody(b []byte) error {
	p.Data = orNil(b)
	return nil
}

// Encrypted is the Encrypted payload (§3.14) as it is on the wire:
// NextPayload is the type of the first payload inside, Body is IV,
// ciphertext and ICV. EncodeEncrypted and DecodeEncrypted seal and open
// it; Decode returns it unopened.
type Encrypted struct {
	NextPayload PayloadType
	Body        []byte
}

func (*Encrypted) Type() PayloadType { return PayloadSK }

func (p *Encrypted) appendBody(b []byte) ([]byte, error) { return append(b, p.Body...), nil }

func (p *Encrypted) decodeBody(b []byte) error {
	p.Body = orNil(b)
	return nil
}

// CfgType is the Configuration payload's CFG Type (§3.15).
type CfgType uint8

// Configuration payload types (§3.15).
const (
	CFG_REQUEST CfgType = 1
	CFG_REPLY   CfgType = 2
	CFG_SET     CfgType = 3
	CFG_ACK     CfgType = 4
)

// CfgAttribute is one Configuration attribute (§3.15.1).
type CfgAttribute struct {
	Type  uint16 // 15 bits
	Value []byte
}

// Config is the Configuration payload (§3.15). cgw neither requests nor
// serves configuration; it parses CP so a peer's message is accepted.
type Config struct {
	CfgType    CfgType
	Attributes []CfgAttribute
}

func (*Config) Type() PayloadType { return PayloadCP }

// maxCfgAttributes bounds a CP payload's attribute list.
const maxCfgAttributes = 256

func (p *Config) appendBody(b []byte) ([]byte, error) {
	b = append(b, byte(p.CfgType), 0, 0, 0)
	for _, a := range p.Attributes {
		if a.Type > 0x7fff || len(a.Value) > 0xffff {
			return nil, fmt.Errorf("configuration attribute type %d with %d bytes out of range", a.Type, len(a.Value))
		}
		b = binary.BigEndian.AppendUint16(b, a.Type)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
		b = append(b, a.Value...)
	}
	return b, nil
}

func (p *Config) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxf("CP payload body of %d bytes, needs at least 4", len(b))
	}
	p.CfgType = CfgType(b[0])
	for b = b[4:]; len(b) > 0; {
		if len(p.Attributes) == maxCfgAttributes {
			return syntaxf("CP payload with more than %d attributes", maxCfgAttributes)
		}
		if len(b) < 4 {
			return syntaxf("CP attribute header needs 4 bytes, %d left", len(b))
		}
		t, n := binary.BigEndian.Uint16(b)&0x7fff, int(binary.BigEndian.Uint16(b[2:]))
		if 4+n > len(b) {
			return syntaxf("CP attribute %d of %d bytes, %d left", t, n, len(b)-4)
		}
		p.Attributes = append(p.Attributes, CfgAttribute{Type: t, Value: orNil(b[4 : 4+n])})
		b = b[4+n:]
	}
	return nil
}

// orNil makes an empty field nil, so decoded and constructed payloads
// compare equal.
func orNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
