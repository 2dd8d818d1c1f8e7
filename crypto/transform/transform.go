// Package transform holds the ESP transforms, named by their IANA IKEv2
// transform IDs (RFC 7296 §3.3.2, IANA "IKEv2 Parameters") so the control
// plane and the dataplane speak of them the same way.
//
// Every transform is used through one AEAD-like interface, Cipher, that
// seals and opens an ESP payload in place in a frame buffer.
//
// Lengths (key, salt, IV, ICV, block) live in one table per transform
// (suite.go); New splits KEYMAT by it. Per-packet state that cannot be
// shared between workers (GCM nonce and ESN AAD, HMAC state, CBC chaining
// value) comes from a per-Cipher sync.Pool: a Cipher is safe for
// concurrent use, and once warm neither Seal nor Open allocates. A caller
// with state of its own (a dataplane worker) can hand the GCM ciphers its
// Scratch instead (ScratchCipher: SealWith, OpenWith) and skip the pool.
//
// Sequence numbers make the IVs: GCM sends the 64-bit sequence number as
// its explicit IV (unique per key, RFC 4106 §3.1); CBC sends
// AES_k'(0^64 || seq) under a random per-Cipher key k' (unpredictable,
// RFC 3602 §2.3), one block encryption instead of a random-number call.
package transform

import "errors"

// EncrID is an IKEv2 Transform Type 1 (encryption algorithm) ID.
type EncrID uint16

// IntegID is an IKEv2 Transform Type 3 (integrity algorithm) ID.
type IntegID uint16

// Encryption transform IDs used by AWS.
const (
	ENCR_AES_CBC    EncrID = 12 // RFC 3602
	ENCR_AES_GCM_16 EncrID = 20 // RFC 4106, 16-byte ICV
)

// Integrity transform IDs used by AWS.
const (
	AUTH_NONE              IntegID = 0
	AUTH_HMAC_SHA1_96      IntegID = 2  // RFC 2404
	AUTH_HMAC_SHA2_256_128 IntegID = 12 // RFC 4868
	AUTH_HMAC_SHA2_384_192 IntegID = 13 // RFC 4868
	AUTH_HMAC_SHA2_512_256 IntegID = 14 // RFC 4868
)

// Suite names one ESP transform set: an encryption algorithm with its key
// size and, for non-AEAD ciphers, an integrity algorithm (AUTH_NONE for
// GCM).
type Suite struct {
	Encr    EncrID
	KeyBits int // 128 or 256
	Integ   IntegID
}

// Cipher seals and opens one SA's ESP payloads in place.
//
// The byte layout both methods work on is the ESP packet as it is on the
// wire (RFC 4303 §2), starting at the SPI:
//
//	pkt[0:8]                   SPI, sequence number (low 32 bits)
//	pkt[8:8+IVLen()]           IV
//	pkt[8+IVLen():len-ICVLen()] payload, padding, pad length, next header
//	pkt[len-ICVLen():]          ICV
//
// seq is the full 64-bit sequence number; when esn is true its high 32
// bits are authenticated but not sent (RFC 4303 §2.2.1, Appendix A; for
// GCM as RFC 4106 §5 AAD). Neither method allocates. A Cipher is safe for
// concurrent use by several workers.
type Cipher interface {
	Suite() Suite
	IVLen() int  // bytes of IV on the wire
	ICVLen() int // bytes of ICV on the wire
	// BlockSize is the alignment the padded plaintext (payload through
	// next header) must have: the cipher block, or 4 for GCM.
	BlockSize() int
	// Seal fills the IV, encrypts the plaintext region and writes the ICV.
	// len(pkt) includes the ICV room at the end.
	Seal(pkt []byte, seq uint64, esn bool)
	// Open verifies the ICV and, only if it is valid, decrypts the
	// plaintext region in place. It returns ErrAuth on a bad ICV and
	// ErrShort when pkt cannot hold header, IV, one block and ICV.
	Open(pkt []byte, seq uint64, esn bool) error
}

// Errors returned by Open and New. Open's errors are sentinels so the
// dataplane can count drops by reason without allocating.
var (
	// ErrAuth: the ICV does not match (forged, corrupted, or wrong key or
	// sequence number, including the unsent ESN high bits).
	ErrAuth = errors.New("transform: ESP integrity check failed")
	// ErrShort: the packet cannot hold ESP header, IV, one block and ICV.
	ErrShort = errors.New("transform: ESP packet too short")
	// ErrAlign: the CBC ciphertext is not a whole number of blocks
	// (RFC 3602 §3); such a packet is invalid whatever its ICV.
	ErrAlign = errors.New("transform: ESP ciphertext is not a multiple of the cipher block size")
	// ErrKeymat: New was given KEYMAT of the wrong length for the suite.
	ErrKeymat = errors.New("transform: wrong KEYMAT length")
	// ErrSuite: the suite is not one this package implements.
	ErrSuite = errors.New("transform: unsupported ESP transform")
)

// Scratch is one caller's memory for the per-packet values a Cipher needs
// besides the packet (the GCM nonce and ESN AAD). A dataplane worker owns
// one and passes it to SealWith and OpenWith, which saves the sync.Pool
// round trip Seal and Open make for each packet. Allocate it once (a
// Scratch on the stack would escape and cost an allocation per call); it
// is not safe for concurrent use.
type Scratch struct {
	gcm gcmScratch
}

// ScratchCipher is a Cipher that can also work with the caller's Scratch.
// SealWith and OpenWith do exactly what Seal and Open do. The GCM
// transforms implement it; callers test for it once per SA with a type
// assertion and fall back to Seal and Open.
type ScratchCipher interface {
	Cipher
	SealWith(sc *Scratch, pkt []byte, seq uint64, esn bool)
	OpenWith(sc *Scratch, pkt []byte, seq uint64, esn bool) error
}
