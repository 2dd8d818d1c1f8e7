package dh

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// modp is a finite-field group: a safe prime (2, 5, 14–18) or a prime with
// a prime-order subgroup of order q (22–24, RFC 5114).
type modp struct {
	id      ID
	name    string
	p, g    *big.Int
	pMinus1 *big.Int
	q       *big.Int // nil for safe-prime groups
	size    int      // bytes of p
	expBits int      // private exponent size for safe-prime groups
}

func mustHex(s string) *big.Int {
	n, ok := new(big.Int).SetString(strings.ReplaceAll(s, " ", ""), 16)
	if !ok {
		panic("dh: bad constant " + s)
	}
	return n
}

func newMODP(id ID, p, g, q string, expBits int) *modp {
	m := &modp{id: id, name: id.String(), p: mustHex(p), g: mustHex(g), expBits: expBits}
	if q != "" {
		m.q = mustHex(q)
	}
	m.pMinus1 = new(big.Int).Sub(m.p, big.NewInt(1))
	m.size = (m.p.BitLen() + 7) / 8
	return m
}

func (m *modp) ID() ID         { return m.id }
func (m *modp) String() string { return m.name }
func (m *modp) PublicLen() int { return m.size }
func (m *modp) SecretLen() int { return m.size }

type modpPrivate struct {
	m *modp
	x *big.Int
}

func (m *modp) Generate(r io.Reader) (Private, []byte, error) {
	x, err := m.exponent(r)
	if err != nil {
		return nil, nil, err
	}
	return m.keyPair(x)
}

// exponent draws the private exponent: uniform in [1, q−1] for the RFC 5114
// groups (any larger exponent is reduced mod q anyway), otherwise expBits
// random bits with the top one set, so the exponent is never small. For a
// safe prime p = 2q'+1 with q' far above 2^expBits, such exponents are
// never multiples of the large subgroup order.
func (m *modp) exponent(r io.Reader) (*big.Int, error) {
	if m.q != nil {
		qm1 := new(big.Int).Sub(m.q, big.NewInt(1))
		x, err := rand.Int(r, qm1)
		if err != nil {
			return nil, fmt.Errorf("dh: %s: reading random exponent: %w", m.name, err)
		}
		return x.Add(x, big.NewInt(1)), nil
	}
	buf := make([]byte, m.expBits/8)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("dh: %s: reading random exponent: %w", m.name, err)
	}
	buf[0] |= 0x80
	x := new(big.Int).SetBytes(buf)
	clear(buf)
	return x, nil
}

// keyPair is Generate with a given exponent (tests use the RFC's).
func (m *modp) keyPair(x *big.Int) (Private, []byte, error) {
	y := new(big.Int).Exp(m.g, x, m.p)
	return &modpPrivate{m: m, x: x}, y.FillBytes(make([]byte, m.size)), nil
}

func (k *modpPrivate) SharedSecret(peer []byte) ([]byte, error) {
	m := k.m
	// The KE data has the exact length of the prime (RFC 7296 §3.4).
	if len(peer) != m.size {
		return nil, fmt.Errorf("%w: %s public value is %d bytes, want %d", ErrPublic, m.name, len(peer), m.size)
	}
	y := new(big.Int).SetBytes(peer)
	// RFC 7296 §5 / RFC 6989 §2.1: 1 < y < p−1 rules out the values that
	// would force the secret into {0, 1, p−1}.
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(m.pMinus1) >= 0 {
		return nil, fmt.Errorf("%w: %s public value must satisfy 1 < y < p-1", ErrPublic, m.name)
	}
	// RFC 6989 §2.2: for the RFC 5114 groups, y must lie in the order-q
	// subgroup, or a small-subgroup attack recovers x mod small factors.
	if m.q != nil {
		if new(big.Int).Exp(y, m.q, m.p).Cmp(big.NewInt(1)) != 0 {
			return nil, fmt.Errorf("%w: %s public value is not in the prime-order subgroup (y^q mod p != 1, RFC 6989 §2.2)", ErrPublic, m.name)
		}
	}
	z := new(big.Int).Exp(y, k.x, m.p).FillBytes(make([]byte, m.size))
	// Cannot happen once y passed the checks above; kept as a cheap guard
	// against a degenerate secret.
	one := make([]byte, m.size)
	one[m.size-1] = 1
	if subtle.ConstantTimeCompare(z, one) == 1 {
		return nil, fmt.Errorf("%w: %s shared secret is 1", ErrPublic, m.name)
	}
	return z, nil
}
