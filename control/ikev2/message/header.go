// Package message encodes and decodes IKEv2 messages (RFC 7296 §3): the
// IKE header, the payload chain with its typed payloads, and the
// Encrypted (SK) payload that protects everything after IKE_SA_INIT
// (§3.14; AES-GCM per RFC 5282).
//
// A Message is a Header and a list of Payloads. Encode fills every length
// and next-payload field itself; Decode validates every length against the
// bytes that are really there, caps the number of payloads, proposals,
// transforms and selectors, and never panics on hostile input (fuzzed).
// Decode copies its input once, so a decoded message never aliases the
// caller's receive buffer.
//
// Errors that call for a notification to the peer are typed: see
// NotifyFor, which maps a decode error to the Notify the state machine
// should answer with (INVALID_SYNTAX, UNSUPPORTED_CRITICAL_PAYLOAD,
// INVALID_MAJOR_VERSION), and ErrIntegrity, which must be dropped
// silently (§2.21.2).
package message

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// HeaderLen is the size of the fixed IKE header (§3.1).
const HeaderLen = 28

// MaxMessageLen caps a message: IKE runs over UDP, so nothing larger can
// arrive, and Decode refuses to work on more.
const MaxMessageLen = 65535

// Version is the only version this package speaks: major 2, minor 0
// (§3.1). It is also the Notification Data of INVALID_MAJOR_VERSION.
const Version = 0x20

// SPI is an IKE SA Security Parameter Index (§3.1), 8 bytes.
type SPI [8]byte

func (s SPI) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether the SPI is all zeros (the responder's SPI in an
// IKE_SA_INIT request).
func (s SPI) IsZero() bool { return s == SPI{} }

// ExchangeType is the IKE header's Exchange Type (§3.1).
type ExchangeType uint8

// Exchange types (§3.1).
const (
	IKE_SA_INIT     ExchangeType = 34
	IKE_AUTH        ExchangeType = 35
	CREATE_CHILD_SA ExchangeType = 36
	INFORMATIONAL   ExchangeType = 37
)

func (e ExchangeType) String() string {
	switch e {
	case IKE_SA_INIT:
		return "IKE_SA_INIT"
	case IKE_AUTH:
		return "IKE_AUTH"
	case CREATE_CHILD_SA:
		return "CREATE_CHILD_SA"
	case INFORMATIONAL:
		return "INFORMATIONAL"
	}
	return fmt.Sprintf("EXCHANGE_%d", uint8(e))
}

// Flags are the IKE header's flag bits (§3.1).
type Flags uint8

const (
	// FlagInitiator is set in every message sent by the original
	// initiator of the IKE SA (it also selects SK_ei/SK_ai, §2.14).
	FlagInitiator Flags = 0x08
	// FlagVersion: the sender could speak a higher major version.
	FlagVersion Flags = 0x10
	// FlagResponse marks a response to the request with the same
	// message ID.
	FlagResponse Flags = 0x20
)

func (f Flags) String() string {
	s := ""
	if f&FlagInitiator != 0 {
		s += "I"
	}
	if f&FlagVersion != 0 {
		s += "V"
	}
	if f&FlagResponse != 0 {
		s += "R"
	}
	if s == "" {
		return "-"
	}
	return s
}

// Header is the IKE header (§3.1). NextPayload and Length are filled by
// Encode; after Decode they hold what was on the wire.
type Header struct {
	SPIi, SPIr  SPI
	NextPayload PayloadType
	// Major and Minor are the version (§3.1); Encode writes 2.0 when
	// both are zero.
	Major, Minor uint8
	Exchange     ExchangeType
	Flags        Flags
	MessageID    uint32
	Length       uint32
}

// IsResponse reports whether the R flag is set.
func (h *Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// FromInitiator reports whether the I flag is set.
func (h *Header) FromInitiator() bool { return h.Flags&FlagInitiator != 0 }

func (h Header) String() string {
	return fmt.Sprintf("%s %s[%d] %s_%s", h.Exchange, h.Flags, h.MessageID, h.SPIi, h.SPIr)
}

func (h *Header) append(b []byte) []byte {
	b = append(b, h.SPIi[:]...)
	b = append(b, h.SPIr[:]...)
	v := h.Major<<4 | h.Minor&0x0f
	if h.Major == 0 && h.Minor == 0 {
		v = Version
	}
	b = append(b, byte(h.NextPayload), v, byte(h.Exchange), byte(h.Flags))
	b = binary.BigEndian.AppendUint32(b, h.MessageID)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// DecodeHeader parses the fixed header of b and checks the version and
// that the Length field matches len(b). It is all a caller needs to route
// a datagram to its IKE SA before decrypting it.
func DecodeHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, syntaxf("message of %d bytes is shorter than the %d-byte IKE header", len(b), HeaderLen)
	}
	copy(h.SPIi[:], b[0:8])
	copy(h.SPIr[:], b[8:16])
	h.NextPayload = PayloadType(b[16])
	h.Major, h.Minor = b[17]>>4, b[17]&0x0f
	h.Exchange = ExchangeType(b[18])
	h.Flags = Flags(b[19])
	h.MessageID = binary.BigEndian.Uint32(b[20:24])
	h.Length = binary.BigEndian.Uint32(b[24:28])
	// §2.5: a higher major version is dropped and answered with
	// INVALID_MAJOR_VERSION; the minor version is ignored.
	if h.Major != 2 {
		return h, &VersionError{Major: h.Major, Minor: h.Minor}
	}
	if len(b) > MaxMessageLen {
		return h, syntaxf("message of %d bytes exceeds %d", len(b), MaxMessageLen)
	}
	if int64(h.Length) != int64(len(b)) {
		return h, syntaxf("header length %d but the datagram holds %d bytes", h.Length, len(b))
	}
	return h, nil
}
