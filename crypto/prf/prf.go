// Package prf holds the IKE pseudo-random functions, named by their IANA
// IKEv2 Transform Type 2 IDs (RFC 7296 §3.3.2), the prf+ expansion
// (RFC 7296 §2.13) and the key schedules built on them: IKEv2 (RFC 7296
// §§2.14, 2.15, 2.17, 2.18) in ikev2.go and IKEv1 (RFC 2409 §5,
// Appendix B) in ikev1.go.
//
// Only the HMAC PRFs are implemented: with them prf's key may have any
// length, so no key truncation rules apply (RFC 7296 §2.14 has some for
// AES-XCBC-PRF-128, which AWS does not use).
package prf

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
)

// ID is an IKEv2 Transform Type 2 (pseudo-random function) ID.
type ID uint16

// PRF transform IDs. The HMAC SHA ones are implemented here; the others
// are named so that a peer's offer can be logged.
const (
	PRF_HMAC_MD5      ID = 1 // RFC 2104
	PRF_HMAC_SHA1     ID = 2 // RFC 2104
	PRF_AES128_XCBC   ID = 4 // RFC 4434
	PRF_HMAC_SHA2_256 ID = 5 // RFC 4868
	PRF_HMAC_SHA2_384 ID = 6 // RFC 4868
	PRF_HMAC_SHA2_512 ID = 7 // RFC 4868
	PRF_AES128_CMAC   ID = 8 // RFC 4615
)

// names are strongSwan's proposal keywords, so that logs compare with a
// swanctl.conf; every package that names a PRF uses this table.
var names = map[ID]string{
	PRF_HMAC_MD5: "prfmd5", PRF_HMAC_SHA1: "prfsha1", PRF_AES128_XCBC: "prfaesxcbc",
	PRF_HMAC_SHA2_256: "prfsha256", PRF_HMAC_SHA2_384: "prfsha384", PRF_HMAC_SHA2_512: "prfsha512",
	PRF_AES128_CMAC: "prfaescmac",
}

// Keyword returns strongSwan's proposal keyword for id ("prfsha256") and
// whether id is a known PRF.
func Keyword(id ID) (string, bool) {
	s, ok := names[id]
	return s, ok
}

// String is id's Keyword, or "prf<N>" for an unknown ID.
func (id ID) String() string {
	if s, ok := names[id]; ok {
		return s
	}
	return fmt.Sprintf("prf%d", uint16(id))
}

var (
	// ErrUnsupported: the PRF ID is not one this package implements.
	ErrUnsupported = errors.New("prf: unsupported PRF")
	// ErrTooLong: more output was asked of prf+ than RFC 7296 §2.13
	// defines (255 blocks).
	ErrTooLong = errors.New("prf: prf+ output longer than 255 PRF blocks")
)

// PRF is one pseudo-random function. It holds no key and is safe for
// concurrent use.
type PRF struct {
	id      ID
	newHash func() hash.Hash
	size    int
}

var prfs = [...]PRF{
	{PRF_HMAC_SHA1, sha1.New, sha1.Size},
	{PRF_HMAC_SHA2_256, sha256.New, sha256.Size},
	{PRF_HMAC_SHA2_384, sha512.New384, sha512.Size384},
	{PRF_HMAC_SHA2_512, sha512.New, sha512.Size},
}

// Lookup returns the PRF with IKEv2 transform ID id.
func Lookup(id ID) (*PRF, error) {
	for i := range prfs {
		if prfs[i].id == id {
			return &prfs[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %d (implemented: PRF_HMAC_SHA1=2, PRF_HMAC_SHA2_256=5, _384=6, _512=7)", ErrUnsupported, id)
}

// IDs lists the implemented PRF IDs.
func IDs() []ID {
	ids := make([]ID, len(prfs))
	for i := range prfs {
		ids[i] = prfs[i].id
	}
	return ids
}

func (p *PRF) ID() ID { return p.id }

// String is strongSwan's proposal keyword ("prfsha256").
func (p *PRF) String() string { return p.id.String() }

// Size is the output length in bytes, which is also the preferred key
// length: the length of SK_d, SK_pi and SK_pr (RFC 7296 §2.14).
func (p *PRF) Size() int { return p.size }

// Sum returns prf(key, data[0] | data[1] | ...).
func (p *PRF) Sum(key []byte, data ...[]byte) []byte {
	h := hmac.New(p.newHash, key)
	for _, d := range data {
		h.Write(d)
	}
	return h.Sum(make([]byte, 0, p.size))
}

// Plus returns the first n bytes of prf+(key, seed[0] | seed[1] | ...)
// (RFC 7296 §2.13):
//
//	prf+(K, S) = T1 | T2 | T3 | ...
//	T1 = prf(K, S | 0x01),  Tn = prf(K, Tn-1 | S | n)
//
// The counter is one octet, so at most 255·Size() bytes exist; asking for
// more returns ErrTooLong.
func (p *PRF) Plus(key []byte, n int, seed ...[]byte) ([]byte, error) {
	if n < 0 || n > 255*p.size {
		return nil, fmt.Errorf("%w: %s gives at most %d bytes, %d asked", ErrTooLong, p, 255*p.size, n)
	}
	out := make([]byte, 0, (n+p.size-1)/p.size*p.size)
	h := hmac.New(p.newHash, key)
	var t []byte
	for i := 1; len(out) < n; i++ {
		h.Reset()
		h.Write(t)
		for _, s := range seed {
			h.Write(s)
		}
		h.Write([]byte{byte(i)})
		out = h.Sum(out)
		t = out[len(out)-p.size:]
	}
	return out[:n], nil
}
