package prf

import "fmt"

// IKEv1 negotiates a hash, not a PRF: without a PRF attribute its prf is
// HMAC with that hash (RFC 2409 §4; Appendix A "Hash Algorithm" attribute,
// values from IANA's "IKE Attributes" registry).
var ikev1Hash = map[uint16]ID{
	2: PRF_HMAC_SHA1,     // SHA
	4: PRF_HMAC_SHA2_256, // SHA2-256
	5: PRF_HMAC_SHA2_384, // SHA2-384
	6: PRF_HMAC_SHA2_512, // SHA2-512
}

// LookupIKEv1Hash returns the HMAC PRF for an IKEv1 Hash Algorithm
// attribute value (2 SHA, 4 SHA2-256, 5 SHA2-384, 6 SHA2-512).
func LookupIKEv1Hash(attr uint16) (*PRF, error) {
	id, ok := ikev1Hash[attr]
	if !ok {
		return nil, fmt.Errorf("%w: IKEv1 hash algorithm %d (implemented: SHA=2, SHA2-256=4, SHA2-384=5, SHA2-512=6)", ErrUnsupported, attr)
	}
	return Lookup(id)
}

// Hash is the PRF's underlying hash of data[0] | data[1] | ...; IKEv1
// uses it for the Phase 1 IV, hash(g^xi | g^xr) (RFC 2409 Appendix B).
func (p *PRF) Hash(data ...[]byte) []byte {
	h := p.newHash()
	for _, d := range data {
		h.Write(d)
	}
	return h.Sum(make([]byte, 0, p.size))
}

// IKEv1Keys are the Phase 1 secrets of RFC 2409 §5.
type IKEv1Keys struct {
	SKEYID  []byte // authenticates HASH_I/HASH_R
	SKEYIDd []byte // derives Quick Mode keying material
	SKEYIDa []byte // authenticates ISAKMP messages (HASH(1..3), notifications)
	SKEYIDe []byte // source of the ISAKMP SA's cipher key (IKEv1EncryptionKey)
}

// IKEv1PSK derives the Phase 1 secrets for pre-shared-key authentication
// (RFC 2409 §5): IKEv1Derive of IKEv1SKEYIDPSK. Ni_b and Nr_b are the
// nonce bodies, CKY-I/CKY-R the 8-byte cookies and g^xy the dh package's
// shared secret.
func (p *PRF) IKEv1PSK(psk, niB, nrB, gxy, ckyI, ckyR []byte) IKEv1Keys {
	return p.IKEv1Derive(p.IKEv1SKEYIDPSK(psk, niB, nrB), gxy, ckyI, ckyR)
}

// IKEv1SKEYIDPSK is SKEYID = prf(pre-shared-key, Ni_b | Nr_b) (RFC 2409 §5).
func (p *PRF) IKEv1SKEYIDPSK(psk, niB, nrB []byte) []byte {
	return p.Sum(psk, niB, nrB)
}

// IKEv1Derive derives the rest of Phase 1's secrets from SKEYID, whatever
// the authentication method (RFC 2409 §5):
//
//	SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
//	SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
//	SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
func (p *PRF) IKEv1Derive(skeyid, gxy, ckyI, ckyR []byte) IKEv1Keys {
	d := p.Sum(skeyid, gxy, ckyI, ckyR, []byte{0})
	a := p.Sum(skeyid, d, gxy, ckyI, ckyR, []byte{1})
	e := p.Sum(skeyid, a, gxy, ckyI, ckyR, []byte{2})
	return IKEv1Keys{SKEYID: skeyid, SKEYIDd: d, SKEYIDa: a, SKEYIDe: e}
}

// IKEv1EncryptionKey derives an n-byte ISAKMP SA cipher key from SKEYID_e
// (RFC 2409 Appendix B): the first n bytes of SKEYID_e if it is long
// enough, else of Ka = K1 | K2 | ..., K1 = prf(SKEYID_e, 0) (one zero
// octet), Kj = prf(SKEYID_e, Kj-1).
func (p *PRF) IKEv1EncryptionKey(skeyidE []byte, n int) []byte {
	if n <= len(skeyidE) {
		return append([]byte(nil), skeyidE[:n]...)
	}
	ka := make([]byte, 0, n+p.size)
	k := []byte{0}
	for len(ka) < n {
		k = p.Sum(skeyidE, k)
		ka = append(ka, k...)
	}
	return ka[:n:n]
}

// IKEv1HashI and IKEv1HashR are Main Mode's authenticating hashes
// (RFC 2409 §5):
//
//	HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)
//	HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)
//
// SAi_b is the initiator's whole SA payload body, IDxx_b the ID payload
// body (generic header stripped); gxi/gxr the KE data sent.
func (p *PRF) IKEv1HashI(skeyid, gxi, gxr, ckyI, ckyR, saiB, idiiB []byte) []byte {
	return p.Sum(skeyid, gxi, gxr, ckyI, ckyR, saiB, idiiB)
}

// IKEv1HashR: see IKEv1HashI.
func (p *PRF) IKEv1HashR(skeyid, gxi, gxr, ckyI, ckyR, saiB, idirB []byte) []byte {
	return p.Sum(skeyid, gxr, gxi, ckyR, ckyI, saiB, idirB)
}

// IKEv1QuickKeymat returns n bytes of Quick Mode keying material for one
// SA (one direction: its own SPI) (RFC 2409 §5.5):
//
//	KEYMAT = K1 | K2 | ...
//	K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
//	Kj = prf(SKEYID_d, Kj-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
//
// gqmxy is nil without PFS; protocol is the IPsec protocol ID (3 for
// ESP); spi the 4-byte SPI of the SA, as chosen by its receiver.
func (p *PRF) IKEv1QuickKeymat(skeyidD, gqmxy []byte, protocol byte, spi, niB, nrB []byte, n int) []byte {
	out := make([]byte, 0, n+p.size)
	var k []byte
	for len(out) < n {
		k = p.Sum(skeyidD, k, gqmxy, []byte{protocol}, spi, niB, nrB)
		out = append(out, k...)
	}
	return out[:n:n]
}
