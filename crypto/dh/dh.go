// Package dh holds the IKE Diffie-Hellman groups, named by their IANA
// IKEv2 Transform Type 4 IDs (RFC 7296 §3.3.2, IANA "IKEv2 Parameters"):
// what AWS asks for (phase 1 groups 2, 14–24; PFS groups 2, 5, 14–24)
// plus Curve25519 (31).
//
// A Group makes a key pair; the Private half computes the shared secret
// g^ir from the peer's KE payload data after validating it (RFC 7296
// §2.12, §5; RFC 6989). Both the public value this package sends and the
// one it accepts are the KE payload's "Key Exchange Data" exactly, and the
// shared secret is in the form the IKE key schedule (RFC 7296 §2.14) takes:
//
//   - MODP (2, 5, 14–18, 22–24): big-endian, left-padded with zeros to the
//     length of the prime, both the public value and g^ir (RFC 7296 §2.14,
//     RFC 2409 §5).
//   - ECP (19–21): public value x || y without the 0x04 prefix; g^ir is the
//     x coordinate alone (RFC 5903 §7, errata 9).
//   - Curve25519 (31): 32-byte u coordinate both ways (RFC 8031 §2).
//
// MODP arithmetic uses math/big, whose modular exponentiation is not
// constant-time: the private exponent's timing may leak to a local
// observer measuring many exchanges. Exponents are fresh per exchange,
// which limits what one could learn; ECP and Curve25519 (crypto/ecdh) are
// constant-time and are the groups to prefer.
package dh

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// ID is an IKEv2 Transform Type 4 (key exchange method) ID.
type ID uint16

// Key exchange method IDs this package implements.
const (
	MODP1024     ID = 2  // RFC 2409 §6.2
	MODP1536     ID = 5  // RFC 3526 §2
	MODP2048     ID = 14 // RFC 3526 §3
	MODP3072     ID = 15 // RFC 3526 §4
	MODP4096     ID = 16 // RFC 3526 §5
	MODP6144     ID = 17 // RFC 3526 §6
	MODP8192     ID = 18 // RFC 3526 §7
	ECP256       ID = 19 // RFC 5903
	ECP384       ID = 20 // RFC 5903
	ECP521       ID = 21 // RFC 5903
	MODP1024S160 ID = 22 // RFC 5114 §2.1 (deprecated by RFC 8247, still listed by AWS)
	MODP2048S224 ID = 23 // RFC 5114 §2.2 (deprecated by RFC 8247, still listed by AWS)
	MODP2048S256 ID = 24 // RFC 5114 §2.3
	Curve25519   ID = 31 // RFC 8031
)

// Other IANA key exchange method IDs, named so that a peer's offer can be
// logged; not implemented.
const (
	None     ID = 0  // no key exchange (RFC 7296 §3.3.2)
	MODP768  ID = 1  // RFC 2409 §6.1
	ECP192   ID = 25 // RFC 5114
	ECP224   ID = 26 // RFC 5114
	ECP224BP ID = 27 // RFC 6954
	ECP256BP ID = 28 // RFC 6954
	ECP384BP ID = 29 // RFC 6954
	ECP512BP ID = 30 // RFC 6954
	Curve448 ID = 32 // RFC 8031
)

// names are strongSwan's proposal keywords, so that logs compare with a
// swanctl.conf; every package that names a group uses this table.
var names = map[ID]string{
	None: "none", MODP768: "modp768", MODP1024: "modp1024", MODP1536: "modp1536",
	MODP2048: "modp2048", MODP3072: "modp3072", MODP4096: "modp4096", MODP6144: "modp6144",
	MODP8192: "modp8192", ECP256: "ecp256", ECP384: "ecp384", ECP521: "ecp521",
	MODP1024S160: "modp1024s160", MODP2048S224: "modp2048s224", MODP2048S256: "modp2048s256",
	ECP192: "ecp192", ECP224: "ecp224", ECP224BP: "ecp224bp", ECP256BP: "ecp256bp",
	ECP384BP: "ecp384bp", ECP512BP: "ecp512bp", Curve25519: "curve25519", Curve448: "curve448",
}

// Keyword returns strongSwan's proposal keyword for id ("modp2048",
// "ecp256", "curve25519") and whether id is a known group.
func Keyword(id ID) (string, bool) {
	s, ok := names[id]
	return s, ok
}

var (
	// ErrUnsupported: the group ID is not one this package implements.
	ErrUnsupported = errors.New("dh: unsupported Diffie-Hellman group")
	// ErrPublic: the peer's public value is malformed or unsafe. IKE must
	// treat the exchange as failed (RFC 7296 §2.12; RFC 6989 §2).
	ErrPublic = errors.New("dh: invalid peer public value")
)

// Group is one Diffie-Hellman group. It is safe for concurrent use.
type Group interface {
	ID() ID
	String() string
	// PublicLen is the exact length of the KE payload's key exchange data.
	PublicLen() int
	// SecretLen is the length of the shared secret g^ir.
	SecretLen() int
	// Generate makes a fresh key pair and returns the private half and
	// the public value to send in the KE payload. MODP groups draw the
	// exponent from rand (pass crypto/rand.Reader); ECP and Curve25519
	// go through crypto/ecdh, which since Go 1.26 ignores rand and always
	// uses the system's generator.
	Generate(rand io.Reader) (Private, []byte, error)
}

// Private is the private half of one key pair. Use it for one exchange and
// drop it: RFC 7296 §2.12 allows reuse, but fresh keys give forward
// secrecy per SA.
type Private interface {
	// SharedSecret validates the peer's KE data and returns g^ir. Errors
	// wrap ErrPublic.
	SharedSecret(peerPublic []byte) ([]byte, error)
}

// Lookup returns the group with IKEv2 transform ID id.
func Lookup(id ID) (Group, error) {
	if g, ok := groups[id]; ok {
		return g, nil
	}
	return nil, fmt.Errorf("%w: %d (implemented: %v)", ErrUnsupported, id, IDs())
}

// IDs lists the implemented group IDs in ascending order.
func IDs() []ID {
	ids := make([]ID, 0, len(groups))
	for id := range groups {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// String is id's Keyword, or "dh<N>" for an unknown ID.
func (id ID) String() string {
	if s, ok := names[id]; ok {
		return s
	}
	return fmt.Sprintf("dh%d", uint16(id))
}

var groups = map[ID]Group{}

func register(g Group) { groups[g.ID()] = g }

func init() {
	// Exponent sizes: twice the group's estimated strength (RFC 3526 §8,
	// NIST SP 800-57), and never under 256 bits.
	register(newMODP(MODP1024, oakley2P, "02", "", 256))
	register(newMODP(MODP1536, rfc3526_1536P, "02", "", 256))
	register(newMODP(MODP2048, rfc3526_2048P, "02", "", 256))
	register(newMODP(MODP3072, rfc3526_3072P, "02", "", 256))
	register(newMODP(MODP4096, rfc3526_4096P, "02", "", 304))
	register(newMODP(MODP6144, rfc3526_6144P, "02", "", 352))
	register(newMODP(MODP8192, rfc3526_8192P, "02", "", 400))
	// RFC 5114 groups: the exponent is uniform in [1, q−1].
	register(newMODP(MODP1024S160, rfc5114_1024_160P, rfc5114_1024_160G, rfc5114_1024_160Q, 0))
	register(newMODP(MODP2048S224, rfc5114_2048_224P, rfc5114_2048_224G, rfc5114_2048_224Q, 0))
	register(newMODP(MODP2048S256, rfc5114_2048_256P, rfc5114_2048_256G, rfc5114_2048_256Q, 0))
	register(newECP(ECP256))
	register(newECP(ECP384))
	register(newECP(ECP521))
	register(newX25519())
}
