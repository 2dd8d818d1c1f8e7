package adversary

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
)

// The messages here are laid out by hand from the RFCs, not with the
// project's encoders: a probe must not share the bugs of what it attacks.

// IKEv2 numbers (RFC 7296 §3).
const (
	ExchIKESAInit     = 34
	ExchIKEAuth       = 35
	ExchCreateChildSA = 36
	ExchInformational = 37

	FlagInitiator = 0x08
	FlagResponse  = 0x20

	payloadSA     = 33
	payloadKE     = 34
	payloadNonce  = 40
	payloadNotify = 41
	payloadSK     = 46

	NotifyCookie = 16390
)

// IKEv2Header is the fixed IKE header (§3.1).
type IKEv2Header struct {
	SPIi, SPIr [8]byte
	Next       uint8
	Exchange   uint8
	Flags      uint8
	MessageID  uint32
}

func (h IKEv2Header) append(b []byte, length int) []byte {
	b = append(b, h.SPIi[:]...)
	b = append(b, h.SPIr[:]...)
	b = append(b, h.Next, 0x20, h.Exchange, h.Flags)
	b = binary.BigEndian.AppendUint32(b, h.MessageID)
	return binary.BigEndian.AppendUint32(b, uint32(length))
}

// payload is one generic payload (§3.2) before chaining.
type payload struct {
	typ      uint8
	critical bool
	body     []byte
}

// chain encodes payloads after the header, each naming the next.
func chain(h IKEv2Header, ps []payload) []byte {
	n := 28
	for _, p := range ps {
		n += 4 + len(p.body)
	}
	if len(ps) > 0 {
		h.Next = ps[0].typ
	}
	b := h.append(make([]byte, 0, n), n)
	for i, p := range ps {
		next := uint8(0)
		if i+1 < len(ps) {
			next = ps[i+1].typ
		}
		flags := uint8(0)
		if p.critical {
			flags = 0x80
		}
		b = append(b, next, flags)
		b = binary.BigEndian.AppendUint16(b, uint16(4+len(p.body)))
		b = append(b, p.body...)
	}
	return b
}

// IKEv2Proposal: AES-CBC-128, HMAC-SHA2-256 as PRF and integrity, and one
// MODP/ECP group: the lab's phase 1 (bench/lab DefaultConfig).
func ikev2SA(group uint16) []byte {
	tr := func(last bool, typ uint8, id uint16, attrs ...byte) []byte {
		more := uint8(3)
		if last {
			more = 0
		}
		b := []byte{more, 0, 0, 0, typ, 0}
		b = binary.BigEndian.AppendUint16(b, id)
		b = append(b, attrs...)
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		return b
	}
	var trs []byte
	trs = append(trs, tr(false, 1, 12, 0x80, 0x0e, 0x00, 0x80)...) // ENCR_AES_CBC, key length 128
	trs = append(trs, tr(false, 2, 5)...)                          // PRF_HMAC_SHA2_256
	trs = append(trs, tr(false, 3, 12)...)                         // AUTH_HMAC_SHA2_256_128
	trs = append(trs, tr(true, 4, group)...)                       // D-H group
	prop := []byte{0, 0, 0, 0, 1, 1, 0, 4}                         // last, #1, IKE, no SPI, 4 transforms
	prop = append(prop, trs...)
	binary.BigEndian.PutUint16(prop[2:], uint16(len(prop)))
	return prop
}

// modp2048Len is the KE data length of group 14.
const modp2048Len = 256

// SAInit is an IKE_SA_INIT request as a strongSwan initiator would send
// it for the lab's phase 1 (group 14), with a COOKIE notify first when
// cookie is not nil (§2.6).
func SAInit(spii [8]byte, nonce, ke, cookie []byte) []byte {
	var ps []payload
	if cookie != nil {
		ps = append(ps, payload{typ: payloadNotify, body: notifyBody(NotifyCookie, cookie)})
	}
	keBody := binary.BigEndian.AppendUint16(nil, 14)
	keBody = append(keBody, 0, 0)
	keBody = append(keBody, ke...)
	ps = append(ps, payload{typ: payloadSA, body: ikev2SA(14)}, payload{typ: payloadKE, body: keBody}, payload{typ: payloadNonce, body: nonce})
	return chain(IKEv2Header{SPIi: spii, Exchange: ExchIKESAInit, Flags: FlagInitiator}, ps)
}

// RandomKE is a group 14 public value: any 256 bytes below p (p starts
// with 64 one bits) and above 1 pass a peer's range check (RFC 6989).
func RandomKE() []byte {
	b := RandomBytes(modp2048Len)
	b[0] = 0x7f
	return b
}

func notifyBody(typ uint16, data []byte) []byte {
	b := []byte{0, 0} // protocol none, no SPI
	b = binary.BigEndian.AppendUint16(b, typ)
	return append(b, data...)
}

// RandomBytes returns n random bytes.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// RandomSPI returns a random non-zero IKE SPI.
func RandomSPI() [8]byte {
	var s [8]byte
	rand.Read(s[:])
	s[0] |= 1
	return s
}

// ZeroSecretCookie forges a COOKIE the way a responder would make one
// with version byte ver and an all-zero 32-byte secret:
// ver | HMAC-SHA256(secret, Ni | IPi | SPIi)[:16] (cgw's layout of §2.6's
// "<VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)"). A responder
// whose previous-secret slot starts zeroed accepts it.
func ZeroSecretCookie(ver byte, ni []byte, ip netip.Addr, spii [8]byte) []byte {
	var secret [32]byte
	mac := hmac.New(sha256.New, secret[:])
	mac.Write(ni)
	mac.Write(ip.AsSlice())
	mac.Write(spii[:])
	return append([]byte{ver}, mac.Sum(nil)[:16]...)
}

// IKEv2Reply is what a Tap saw the gateway send: the IKE header fields
// and whether the message carries a COOKIE notify or a KE payload.
type IKEv2Reply struct {
	SPIi, SPIr [8]byte
	Exchange   uint8
	Flags      uint8
	MessageID  uint32
	Cookie     []byte
	HasKE      bool
}

// ParseIKEv2 reads an IKEv2 message's header and its cleartext payload
// types (not inside SK); ok is false for anything else.
func ParseIKEv2(b []byte) (r IKEv2Reply, ok bool) {
	if len(b) < 28 || b[17] != 0x20 {
		return r, false
	}
	copy(r.SPIi[:], b[0:8])
	copy(r.SPIr[:], b[8:16])
	r.Exchange, r.Flags = b[18], b[19]
	r.MessageID = binary.BigEndian.Uint32(b[20:])
	next, p := b[16], b[28:]
	for next != 0 && len(p) >= 4 {
		l := int(binary.BigEndian.Uint16(p[2:]))
		if l < 4 || l > len(p) {
			break
		}
		switch next {
		case payloadKE:
			r.HasKE = true
		case payloadNotify:
			if l >= 8 && binary.BigEndian.Uint16(p[6:]) == NotifyCookie {
				r.Cookie = append([]byte(nil), p[8+int(p[5]):l]...)
			}
		case payloadSK:
			return r, true
		}
		next, p = p[0], p[l:]
	}
	return r, true
}

// MalformedSK lists requests on an established IKE SA (SPIs spii/spir,
// flags as the peer sends them, message ID mid) that fail before or at
// the integrity check: each must be dropped without an answer and
// without moving the SA's message IDs (RFC 7296 §2.21, §3.14).
func MalformedSK(spii, spir [8]byte, flags uint8, mid uint32) map[string][]byte {
	h := IKEv2Header{SPIi: spii, SPIr: spir, Flags: flags, MessageID: mid}
	// AES-CBC: 16-byte IV, ≥16 bytes of ciphertext, 16-byte ICV (SHA2-256-128).
	sk := func(body []byte) payload { return payload{typ: payloadSK, body: body} }
	garbage := RandomBytes(16 + 32 + 16)
	out := map[string][]byte{}
	for _, ex := range []uint8{ExchInformational, ExchCreateChildSA} {
		name := map[uint8]string{ExchInformational: "informational", ExchCreateChildSA: "create-child-sa"}[ex]
		h.Exchange = ex
		// A well-formed SK whose ICV does not verify.
		m := sk(garbage)
		m.body = append([]byte(nil), m.body...)
		m.body[0] = 41 // inner first payload: Notify
		out[name+"/bad-icv"] = chain(h, []payload{m})
		// An SK too short for IV, pad length and ICV (a syntax error before the ICV).
		out[name+"/short-sk"] = chain(h, []payload{sk(RandomBytes(8))})
		// Padding claims more than the plaintext holds; only a key holder
		// could make the ICV match, so this too fails at the ICV.
		pad := append(RandomBytes(16+16), bytesOf(0xff, 16)...)
		out[name+"/bad-padding"] = chain(h, []payload{sk(append(pad, RandomBytes(16)...))})
		// A broken payload chain before SK: an unknown critical payload.
		out[name+"/critical-unknown"] = chain(h, []payload{{typ: 200, critical: true, body: []byte{1, 2, 3, 4}}, sk(garbage)})
		// The header's length disagrees with the datagram.
		b := chain(h, []payload{sk(garbage)})
		binary.BigEndian.PutUint32(b[24:], uint32(len(b)+40))
		out[name+"/bad-length"] = b
		// SK's length runs past the message.
		b = chain(h, []payload{sk(garbage)})
		binary.BigEndian.PutUint16(b[30:], uint16(len(b)))
		out[name+"/sk-overrun"] = b
	}
	return out
}

func bytesOf(v byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = v
	}
	return b
}

// NonESP prefixes an IKE message with the non-ESP marker for port 4500
// (RFC 3948 §2.2).
func NonESP(ike []byte) []byte { return append([]byte{0, 0, 0, 0}, ike...) }

// MainMode1 is an IKEv1 Main Mode message 1 (RFC 2409 §5, RFC 2408 §3):
// a fresh initiator cookie, a zero responder cookie, an SA payload
// offering the lab's phase 1 (AES-CBC-128, SHA2-256, PSK, group 14,
// 28 800 s) and the NAT-T and DPD vendor IDs AWS and strongSwan send.
func MainMode1(ckyI [8]byte) []byte {
	attr := func(typ, v uint16) []byte {
		return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0x8000|typ), v)
	}
	var attrs []byte
	for _, a := range [][2]uint16{{1, 7}, {14, 128}, {2, 4}, {3, 1}, {4, 14}, {11, 1}, {12, 28800}} {
		attrs = append(attrs, attr(a[0], a[1])...)
	}
	trans := append([]byte{0, 0, 0, 0, 1, 1, 0, 0}, attrs...) // last, #1, KEY_IKE
	binary.BigEndian.PutUint16(trans[2:], uint16(len(trans)))
	prop := append([]byte{0, 0, 0, 0, 1, 1, 0, 1}, trans...) // last, #1, PROTO_ISAKMP, no SPI, 1 transform
	binary.BigEndian.PutUint16(prop[2:], uint16(len(prop)))
	sa := append([]byte{0, 0, 0, 1, 0, 0, 0, 1}, prop...) // DOI IPsec, SIT_IDENTITY_ONLY
	vids := [][]byte{
		{0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f}, // RFC 3947
		{0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00}, // RFC 3706
	}
	const (
		pSA  = 1
		pVID = 13
	)
	body := []byte{pVID, 0, 0, 0}
	binary.BigEndian.PutUint16(body[2:], uint16(4+len(sa)))
	body = append(body, sa...)
	for i, v := range vids {
		next := uint8(pVID)
		if i == len(vids)-1 {
			next = 0
		}
		body = append(body, next, 0)
		body = binary.BigEndian.AppendUint16(body, uint16(4+len(v)))
		body = append(body, v...)
	}
	b := append([]byte(nil), ckyI[:]...)
	b = append(b, make([]byte, 8)...)       // responder cookie: zero
	b = append(b, pSA, 0x10, 2, 0)          // next SA, version 1.0, Identity Protection, no flags
	b = binary.BigEndian.AppendUint32(b, 0) // message ID
	b = binary.BigEndian.AppendUint32(b, uint32(28+len(body)))
	return append(b, body...)
}
