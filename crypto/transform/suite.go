package transform

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"
)

// encrSpec is one row of the encryption table: every length the code uses
// for an encryption transform comes from here.
type encrSpec struct {
	id        EncrID
	keyBits   int
	keyLen    int // cipher key bytes in KEYMAT
	saltLen   int // bytes of KEYMAT after the key (RFC 4106 §8.1)
	ivLen     int // IV bytes on the wire
	blockSize int // alignment of payload..next header
	icvLen    int // ICV bytes of an AEAD; 0 when an integ transform supplies it
}

var encrTable = [...]encrSpec{
	// RFC 4106 §3.1, §8.1: KEYMAT = key || 4-byte salt, 8-byte explicit
	// IV, 16-byte ICV; RFC 4303 §2.4 still asks for 4-byte alignment.
	{ENCR_AES_GCM_16, 128, 16, 4, 8, 4, 16},
	{ENCR_AES_GCM_16, 256, 32, 4, 8, 4, 16},
	// RFC 3602 §2.3, §3: IV and block are both 16 bytes.
	{ENCR_AES_CBC, 128, 16, 0, 16, 16, 0},
	{ENCR_AES_CBC, 256, 32, 0, 16, 16, 0},
}

// name is strongSwan's proposal keyword for the row.
func (e *encrSpec) name() string { n, _ := EncrKeyword(e.id, e.keyBits); return n }

// HMAC describes an HMAC integrity transform: the key is the full hash
// output, the ICV the output truncated (RFC 2404 §2, §3; RFC 4868
// §2.1.1). IKE's Encrypted payload uses the same transforms (RFC 7296
// §3.14).
type HMAC struct {
	Hash   func() hash.Hash
	KeyLen int
	ICVLen int
}

// integSpec is one row of the integrity table.
type integSpec struct {
	id IntegID
	HMAC
}

var integTable = [...]integSpec{
	{AUTH_HMAC_SHA1_96, HMAC{sha1.New, 20, 12}},
	{AUTH_HMAC_SHA2_256_128, HMAC{sha256.New, 32, 16}},
	{AUTH_HMAC_SHA2_384_192, HMAC{sha512.New384, 48, 24}},
	{AUTH_HMAC_SHA2_512_256, HMAC{sha512.New, 64, 32}},
}

// LookupHMAC returns integrity transform id if this package implements it.
func LookupHMAC(id IntegID) (HMAC, bool) {
	if g := (Suite{Integ: id}).integ(); g != nil {
		return g.HMAC, true
	}
	return HMAC{}, false
}

// name is strongSwan's proposal keyword for the row.
func (g *integSpec) name() string { n, _ := IntegKeyword(g.id); return n }

// AEAD reports whether the suite's cipher is an implemented AEAD (GCM),
// which takes no integrity transform (RFC 4106 §4).
func (s Suite) AEAD() bool { e := s.encr(); return e != nil && e.icvLen > 0 }

func (s Suite) encr() *encrSpec {
	for i := range encrTable {
		if e := &encrTable[i]; e.id == s.Encr && e.keyBits == s.KeyBits {
			return e
		}
	}
	return nil
}

func (s Suite) integ() *integSpec {
	for i := range integTable {
		if g := &integTable[i]; g.id == s.Integ {
			return g
		}
	}
	return nil
}

// Suites lists every suite this package implements, GCM first.
func Suites() []Suite {
	var out []Suite
	for _, e := range encrTable {
		if e.icvLen > 0 {
			out = append(out, Suite{e.id, e.keyBits, AUTH_NONE})
			continue
		}
		for _, g := range integTable {
			out = append(out, Suite{e.id, e.keyBits, g.id})
		}
	}
	return out
}

// Valid reports whether the suite is implemented, and if not, why.
func (s Suite) Valid() error {
	e := s.encr()
	if e == nil {
		return fmt.Errorf("%w: encryption %d with %d-bit key (want ENCR_AES_CBC=12 or ENCR_AES_GCM_16=20 with 128 or 256 bits)",
			ErrSuite, s.Encr, s.KeyBits)
	}
	if e.icvLen > 0 {
		if s.Integ != AUTH_NONE {
			return fmt.Errorf("%w: %s is an AEAD and takes no integrity transform (got %d; RFC 4106 §4)", ErrSuite, e.name(), s.Integ)
		}
		return nil
	}
	if s.integ() == nil {
		return fmt.Errorf("%w: %s needs an integrity transform: HMAC_SHA1_96=2, HMAC_SHA2_256_128=12, _384_192=13 or _512_256=14 (got %d)",
			ErrSuite, e.name(), s.Integ)
	}
	return nil
}

// String is strongSwan's proposal keyword for the suite, e.g.
// "aes128gcm16" or "aes256-sha256".
func (s Suite) String() string {
	e := s.encr()
	if e == nil {
		return fmt.Sprintf("encr%d-%dbit-integ%d", s.Encr, s.KeyBits, s.Integ)
	}
	if e.icvLen > 0 || s.Integ == AUTH_NONE {
		return e.name()
	}
	if g := s.integ(); g != nil {
		return e.name() + "-" + g.name()
	}
	return fmt.Sprintf("%s-integ%d", e.name(), s.Integ)
}

// KeymatLen is how many bytes of KEYMAT one direction of the SA takes
// (RFC 7296 §2.17: encryption key, then integrity key; for GCM the salt
// follows the key, RFC 4106 §8.1). It is 0 for an invalid suite.
func (s Suite) KeymatLen() int {
	if s.Valid() != nil {
		return 0
	}
	e := s.encr()
	n := e.keyLen + e.saltLen
	if g := s.integ(); e.icvLen == 0 && g != nil {
		n += g.KeyLen
	}
	return n
}

// New returns the Cipher for one direction of an SA. keymat is that
// direction's KEYMAT slice exactly as prf+ produced it (RFC 7296 §2.17);
// New copies what it needs.
func New(s Suite, keymat []byte) (Cipher, error) {
	if err := s.Valid(); err != nil {
		return nil, err
	}
	e := s.encr()
	if len(keymat) != s.KeymatLen() {
		var want string
		if e.icvLen > 0 {
			want = fmt.Sprintf("%d-byte key + %d-byte salt, RFC 4106 §8.1", e.keyLen, e.saltLen)
		} else {
			want = fmt.Sprintf("%d-byte encryption key + %d-byte integrity key, RFC 7296 §2.17", e.keyLen, s.integ().KeyLen)
		}
		return nil, fmt.Errorf("%w: %s needs %d bytes (%s), got %d", ErrKeymat, s, s.KeymatLen(), want, len(keymat))
	}
	// Explicit branches so a failure returns a nil interface, not a
	// typed nil pointer.
	if e.icvLen > 0 {
		c, err := newGCM(s, e, keymat)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	c, err := newCBC(s, e, s.integ(), keymat)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// IVLen, ICVLen and BlockSize give a suite's wire lengths without building
// a Cipher (for MTU and headroom sums); they equal the Cipher's methods
// and are 0 for an invalid suite.
func (s Suite) IVLen() int {
	if s.Valid() != nil {
		return 0
	}
	return s.encr().ivLen
}

// ICVLen: see IVLen.
func (s Suite) ICVLen() int {
	if s.Valid() != nil {
		return 0
	}
	if e := s.encr(); e.icvLen > 0 {
		return e.icvLen
	}
	return s.integ().ICVLen
}

// BlockSize: see IVLen.
func (s Suite) BlockSize() int {
	if s.Valid() != nil {
		return 0
	}
	return s.encr().blockSize
}

// ParseSuite reads a suite from its String form, e.g. "aes256gcm16" or
// "aes128-sha256" (strongSwan's ESP proposal keywords).
func ParseSuite(name string) (Suite, error) {
	for _, s := range Suites() {
		if s.String() == name {
			return s, nil
		}
	}
	var names []string
	for _, s := range Suites() {
		names = append(names, s.String())
	}
	return Suite{}, fmt.Errorf("%w: %q (want one of %s)", ErrSuite, name, strings.Join(names, ", "))
}
