package message

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// PayloadType is a Next Payload value (§3.2).
type PayloadType uint8

// Payload types (§3.2).
const (
	NoNextPayload  PayloadType = 0
	PayloadSA      PayloadType = 33
	PayloadKE      PayloadType = 34
	PayloadIDi     PayloadType = 35
	PayloadIDr     PayloadType = 36
	PayloadCERT    PayloadType = 37
	PayloadCERTREQ PayloadType = 38
	PayloadAUTH    PayloadType = 39
	PayloadNonce   PayloadType = 40
	PayloadNotify  PayloadType = 41
	PayloadDelete  PayloadType = 42
	PayloadVendor  PayloadType = 43
	PayloadTSi     PayloadType = 44
	PayloadTSr     PayloadType = 45
	PayloadSK      PayloadType = 46
	PayloadCP      PayloadType = 47
	PayloadEAP     PayloadType = 48
)

var payloadNames = map[PayloadType]string{
	NoNextPayload: "none", PayloadSA: "SA", PayloadKE: "KE", PayloadIDi: "IDi", PayloadIDr: "IDr",
	PayloadCERT: "CERT", PayloadCERTREQ: "CERTREQ", PayloadAUTH: "AUTH", PayloadNonce: "No",
	PayloadNotify: "N", PayloadDelete: "D", PayloadVendor: "V", PayloadTSi: "TSi", PayloadTSr: "TSr",
	PayloadSK: "SK", PayloadCP: "CP", PayloadEAP: "EAP",
}

func (t PayloadType) String() string {
	if s, ok := payloadNames[t]; ok {
		return s
	}
	return fmt.Sprintf("PAYLOAD_%d", uint8(t))
}

// genericHeaderLen is the generic payload header (§3.2).
const genericHeaderLen = 4

// maxPayloads caps the payloads of one message (or of one SK payload's
// inner chain). Real messages carry a dozen at most; strongSwan's
// IKE_SA_INIT with vendor IDs and notifies stays under 20.
const maxPayloads = 64

// Payload is one typed payload. The concrete types are *SA, *KE, *ID,
// *Auth, *Nonce, *Notify, *Delete, *VendorID, *TrafficSelectors, *Config,
// *Raw (CERT, CERTREQ, EAP) and *Encrypted.
type Payload interface {
	// Type is the payload's type code (IDi or IDr, TSi or TSr according
	// to the struct's Responder field).
	Type() PayloadType
	// appendBody appends the payload's body (after the generic header).
	appendBody(b []byte) ([]byte, error)
	// decodeBody parses a body; b is owned by the message (not aliased
	// to the caller's buffer).
	decodeBody(b []byte) error
}

// Message is one IKE message.
type Message struct {
	Header
	Payloads []Payload
}

// Encode serialises m, filling the header's NextPayload and Length and
// every payload's generic header. An *Encrypted payload, if present, must
// be last and carries its body as given (see EncodeEncrypted for sealing).
func Encode(m *Message) ([]byte, error) {
	h := m.Header
	h.NextPayload = NoNextPayload
	if len(m.Payloads) > 0 {
		h.NextPayload = m.Payloads[0].Type()
	}
	b := h.append(make([]byte, 0, 512))
	b, err := appendChain(b, m.Payloads)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessageLen {
		return nil, fmt.Errorf("ikev2: encoded message is %d bytes, over the %d-byte limit", len(b), MaxMessageLen)
	}
	binary.BigEndian.PutUint32(b[24:], uint32(len(b)))
	return b, nil
}

// appendChain appends payloads with their generic headers.
func appendChain(b []byte, ps []Payload) ([]byte, error) {
	for i, p := range ps {
		next := NoNextPayload
		if i+1 < len(ps) {
			next = ps[i+1].Type()
		}
		if e, ok := p.(*Encrypted); ok {
			if i != len(ps)-1 {
				return nil, fmt.Errorf("ikev2: the Encrypted payload must be the last payload (§3.14)")
			}
			next = e.NextPayload
		}
		off := len(b)
		// Critical bit clear: every type here is defined by RFC 7296,
		// for which §3.2 says it MUST be zero.
		b = append(b, byte(next), 0, 0, 0)
		var err error
		if b, err = p.appendBody(b); err != nil {
			return nil, fmt.Errorf("ikev2: encoding %s payload: %w", p.Type(), err)
		}
		n := len(b) - off
		if n > 0xffff {
			return nil, fmt.Errorf("ikev2: %s payload is %d bytes, over the 65535-byte limit", p.Type(), n)
		}
		binary.BigEndian.PutUint16(b[off+2:], uint16(n))
	}
	return b, nil
}

// Decode parses an IKE message (without the non-ESP marker). When the
// header itself is readable, the returned message is non-nil even on error
// and holds the header, so the caller can answer (see NotifyFor). An
// Encrypted payload is returned undecrypted as *Encrypted; use
// DecodeEncrypted to open it.
func Decode(raw []byte) (*Message, error) {
	m, _, err := decode(raw)
	return m, err
}

// decode is Decode that also returns its private copy of raw, which the
// payloads alias (DecodeEncrypted decrypts in it).
func decode(raw []byte) (*Message, []byte, error) {
	h, err := DecodeHeader(raw)
	if err != nil {
		if len(raw) < HeaderLen {
			return nil, nil, err
		}
		return &Message{Header: h}, nil, err
	}
	m := &Message{Header: h}
	// One copy: payloads alias it, never the caller's buffer.
	buf := bytes.Clone(raw)
	m.Payloads, err = decodeChain(buf[HeaderLen:], h.NextPayload, true)
	return m, buf, err
}

// decodeChain parses a payload chain that must fill b exactly. outer
// allows an Encrypted payload, which ends the chain.
func decodeChain(b []byte, next PayloadType, outer bool) ([]Payload, error) {
	var ps []Payload
	for next != NoNextPayload {
		if len(ps) == maxPayloads {
			return ps, syntaxf("more than %d payloads", maxPayloads)
		}
		if len(b) < genericHeaderLen {
			return ps, syntaxf("%s payload header needs %d bytes, %d left", next, genericHeaderLen, len(b))
		}
		typ := next
		next = PayloadType(b[0])
		critical := b[1]&0x80 != 0
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n < genericHeaderLen || n > len(b) {
			return ps, syntaxf("%s payload length %d outside [%d, %d]", typ, n, genericHeaderLen, len(b))
		}
		body := b[genericHeaderLen:n:n]
		b = b[n:]
		p := newPayload(typ)
		if p == nil {
			if critical {
				return ps, &CriticalPayloadError{Type: typ}
			}
			continue // §2.5: skip unknown non-critical payloads
		}
		if typ == PayloadSK {
			if !outer {
				return ps, syntaxf("Encrypted payload inside an Encrypted payload")
			}
			if len(b) != 0 {
				return ps, syntaxf("%d bytes after the Encrypted payload, which must be last (§3.14)", len(b))
			}
			p.(*Encrypted).NextPayload = next
			next = NoNextPayload
		}
		if err := p.decodeBody(body); err != nil {
			return ps, err
		}
		ps = append(ps, p)
	}
	if len(b) != 0 {
		return ps, syntaxf("%d bytes after the last payload", len(b))
	}
	return ps, nil
}

func newPayload(t PayloadType) Payload {
	switch t {
	case PayloadSA:
		return new(SA)
	case PayloadKE:
		return new(KE)
	case PayloadIDi:
		return new(ID)
	case PayloadIDr:
		return &ID{Responder: true}
	case PayloadAUTH:
		return new(Auth)
	case PayloadNonce:
		return new(Nonce)
	case PayloadNotify:
		return new(Notify)
	case PayloadDelete:
		return new(Delete)
	case PayloadVendor:
		return new(VendorID)
	case PayloadTSi:
		return new(TrafficSelectors)
	case PayloadTSr:
		return &TrafficSelectors{Responder: true}
	case PayloadCP:
		return new(Config)
	case PayloadCERT, PayloadCERTREQ, PayloadEAP:
		return &Raw{PayloadType: t}
	case PayloadSK:
		return new(Encrypted)
	}
	return nil
}

// Reply returns the header of the response to a request with header h
// (§3.1): same SPIs, exchange and message ID, the R flag set, and the I
// flag set exactly when the request's was clear (the request's sender is
// the other party). Fill SPIr when answering IKE_SA_INIT.
func (h *Header) Reply() Header {
	return Header{
		SPIi: h.SPIi, SPIr: h.SPIr, Exchange: h.Exchange, MessageID: h.MessageID,
		Flags: FlagResponse | (h.Flags&FlagInitiator ^ FlagInitiator),
	}
}

// ErrorReply is the response to the request with header h carrying one
// notification: the unprotected answer to an IKE_SA_INIT (INVALID_KE_PAYLOAD,
// NO_PROPOSAL_CHOSEN, COOKIE) or, encoded with EncodeEncrypted, to a
// protected request (§2.21).
func (h *Header) ErrorReply(n Notify) *Message {
	return &Message{Header: h.Reply(), Payloads: []Payload{&n}}
}

// Find returns the first payload of type T in m, or nil.
func Find[T Payload](m *Message) T {
	for _, p := range m.Payloads {
		if v, ok := p.(T); ok {
			return v
		}
	}
	var zero T
	return zero
}

// Notifies returns every Notify payload of m.
func (m *Message) Notifies() []*Notify {
	var out []*Notify
	for _, p := range m.Payloads {
		if n, ok := p.(*Notify); ok {
			out = append(out, n)
		}
	}
	return out
}

// Notify returns the first Notify payload of type t, or nil.
func (m *Message) Notify(t NotifyType) *Notify {
	for _, p := range m.Payloads {
		if n, ok := p.(*Notify); ok && n.NotifyType == t {
			return n
		}
	}
	return nil
}

// String summarises the message like strongSwan's logs:
// "IKE_SA_INIT I[0] SA KE No N(NAT_DETECTION_SOURCE_IP)".
func (m *Message) String() string {
	var sb bytes.Buffer
	fmt.Fprintf(&sb, "%s %s[%d]", m.Exchange, m.Flags, m.MessageID)
	for _, p := range m.Payloads {
		sb.WriteByte(' ')
		if n, ok := p.(*Notify); ok {
			fmt.Fprintf(&sb, "N(%s)", n.NotifyType)
			continue
		}
		sb.WriteString(p.Type().String())
	}
	return sb.String()
}
