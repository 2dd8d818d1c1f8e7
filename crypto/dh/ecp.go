package dh

import (
	"crypto/ecdh"
	"fmt"
	"io"
)

// ecp is a NIST prime curve (RFC 5903) through crypto/ecdh, which checks
// that a peer point is on the curve and not the point at infinity
// (RFC 6989 §2.3) and computes in constant time.
type ecp struct {
	id    ID
	name  string
	curve ecdh.Curve
	coord int // bytes of one coordinate
}

func newECP(id ID) *ecp {
	e := &ecp{id: id, name: id.String()}
	switch id {
	case ECP256:
		e.curve, e.coord = ecdh.P256(), 32
	case ECP384:
		e.curve, e.coord = ecdh.P384(), 48
	case ECP521:
		e.curve, e.coord = ecdh.P521(), 66
	}
	return e
}

func (e *ecp) ID() ID         { return e.id }
func (e *ecp) String() string { return e.name }
func (e *ecp) PublicLen() int { return 2 * e.coord }
func (e *ecp) SecretLen() int { return e.coord }

type ecdhPrivate struct {
	name string
	key  *ecdh.PrivateKey
	// wire turns KE data into crypto/ecdh's encoding.
	wire func(peer []byte) ([]byte, error)
}

func (e *ecp) Generate(r io.Reader) (Private, []byte, error) {
	k, err := e.curve.GenerateKey(r)
	if err != nil {
		return nil, nil, fmt.Errorf("dh: %s: generating key: %w", e.name, err)
	}
	return e.keyPair(k)
}

func (e *ecp) keyPair(k *ecdh.PrivateKey) (Private, []byte, error) {
	// RFC 5903 §7: KE data is x || y, without SEC1's 0x04 prefix.
	pub := k.PublicKey().Bytes()[1:]
	return &ecdhPrivate{name: e.name, key: k, wire: e.sec1}, pub, nil
}

func (e *ecp) sec1(peer []byte) ([]byte, error) {
	if len(peer) != 2*e.coord {
		return nil, fmt.Errorf("%w: %s public value is %d bytes, want %d (x || y, RFC 5903 §7)", ErrPublic, e.name, len(peer), 2*e.coord)
	}
	b := make([]byte, 1+len(peer))
	b[0] = 4 // uncompressed point
	copy(b[1:], peer)
	return b, nil
}

// SharedSecret returns the x coordinate of the shared point for ECP groups
// (RFC 5903 §7) and the X25519 output for Curve25519; crypto/ecdh rejects
// off-curve points and, for X25519, an all-zero result (RFC 8031 §2.3).
func (k *ecdhPrivate) SharedSecret(peer []byte) ([]byte, error) {
	b, err := k.wire(peer)
	if err != nil {
		return nil, err
	}
	pub, err := k.key.Curve().NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrPublic, k.name, err)
	}
	z, err := k.key.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrPublic, k.name, err)
	}
	return z, nil
}

// x25519 is Curve25519 for IKEv2 (RFC 8031).
type x25519 struct{}

func newX25519() x25519 { return x25519{} }

func (x25519) ID() ID         { return Curve25519 }
func (x25519) String() string { return Curve25519.String() }
func (x25519) PublicLen() int { return 32 }
func (x25519) SecretLen() int { return 32 }

func (x x25519) Generate(r io.Reader) (Private, []byte, error) {
	k, err := ecdh.X25519().GenerateKey(r)
	if err != nil {
		return nil, nil, fmt.Errorf("dh: curve25519: generating key: %w", err)
	}
	return x.keyPair(k)
}

func (x25519) keyPair(k *ecdh.PrivateKey) (Private, []byte, error) {
	return &ecdhPrivate{name: Curve25519.String(), key: k, wire: x25519Wire}, k.PublicKey().Bytes(), nil
}

func x25519Wire(peer []byte) ([]byte, error) {
	// RFC 8031 §2: the KE data is exactly 32 octets.
	if len(peer) != 32 {
		return nil, fmt.Errorf("%w: curve25519 public value is %d bytes, want 32 (RFC 8031 §2)", ErrPublic, len(peer))
	}
	return peer, nil
}
