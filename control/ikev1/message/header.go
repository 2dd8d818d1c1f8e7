// Package message encodes and decodes IKEv1 messages: the ISAKMP header
// and payload chain (RFC 2408 §3) with the IPsec DOI's SA, ID and Notify
// contents (RFC 2407), the NAT-T numbers (RFC 3947), and the ISAKMP SA's
// AES-CBC encryption with its IV chain (RFC 2409 Appendix B, Crypter).
//
// DecodeHeader, Decode and the Parse functions check every length
// against the bytes that are really there and return errors wrapping
// ErrMalformed; they do not panic on hostile input (FuzzDecode). Decoded
// payload bodies alias the input. The exchanges are control/ikev1's.
package message

import "encoding/binary"

// ISAKMP header and payload numbers (RFC 2408 §3.1, §3.14; RFC 3947 §3).
const (
	HeaderLen = 28
	Version   = 0x10 // major 1, minor 0

	ExchIdentityProt = 2  // Main Mode (RFC 2409 §5)
	ExchInformation  = 5  // RFC 2408 §4.8
	ExchQuickMode    = 32 // RFC 2409 §5.5

	FlagEncryption = 0x01
	FlagCommit     = 0x02

	PayloadNone      = 0
	PayloadSA        = 1
	PayloadProposal  = 2
	PayloadTransform = 3
	PayloadKE        = 4
	PayloadID        = 5
	PayloadHash      = 8
	PayloadNonce     = 10
	PayloadNotify    = 11
	PayloadDelete    = 12
	PayloadVendor    = 13
	PayloadNATD      = 20 // RFC 3947 §3.2

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

// Header is the ISAKMP header (RFC 2408 §3.1).
type Header struct {
	CkyI, CkyR [8]byte
	Next       uint8
	Exchange   uint8
	Flags      uint8
	MsgID      uint32
	Length     uint32
}

// DecodeHeader decodes the first 28 bytes of b.
func DecodeHeader(b []byte) (Header, error) {
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
