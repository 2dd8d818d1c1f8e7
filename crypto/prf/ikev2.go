package prf

import (
	"fmt"

	"github.com/cgw-project/cgw/crypto/transform"
)

// KeyLens are the lengths of an IKE SA's per-direction protection keys
// (RFC 7296 §2.14); SK_d, SK_pi and SK_pr always take the PRF's Size().
type KeyLens struct {
	Integ int // SK_ai, SK_ar: integrity key; 0 with an AEAD cipher
	Encr  int // SK_ei, SK_er: cipher key plus salt (4 bytes for AES-GCM, RFC 5282 §7.1)
}

// KeyLensFor takes the lengths from an encryption + integrity pair, which
// IKE SAs and ESP SAs name with the same transform IDs and key sizes:
// AES-CBC-128/256 → 16/32-byte SK_e plus the HMAC's full-hash-length
// SK_a (RFC 4868 §2.1.1, RFC 2404 §3); AES-GCM-16 128/256 → 16/32-byte
// key + 4-byte salt (RFC 5282 §7.1) and no SK_a. The lengths come from
// crypto/transform's table so IKE and ESP cannot disagree.
func KeyLensFor(s transform.Suite) (KeyLens, error) {
	if err := s.Valid(); err != nil {
		return KeyLens{}, err
	}
	total := s.KeymatLen()
	if s.Integ == transform.AUTH_NONE { // AEAD: key and salt, no integrity key
		return KeyLens{Encr: total}, nil
	}
	// CBC: the cipher key is the key size, the rest is the HMAC key.
	return KeyLens{Encr: s.KeyBits / 8, Integ: total - s.KeyBits/8}, nil
}

// IKESAKeys are the seven secrets of one IKE SA (RFC 7296 §2.14). The "i"
// keys protect what the original initiator sends.
type IKESAKeys struct {
	SKd, SKai, SKar, SKei, SKer, SKpi, SKpr []byte
}

// SKEYSEED = prf(Ni | Nr, g^ir) for a new IKE SA (RFC 7296 §2.14). Ni and
// Nr are the nonces without payload headers; g^ir is the dh package's
// shared secret (already padded to the modulus length).
func (p *PRF) SKEYSEED(ni, nr, gir []byte) []byte {
	key := make([]byte, 0, len(ni)+len(nr))
	key = append(append(key, ni...), nr...)
	return p.Sum(key, gir)
}

// RekeySKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) for an IKE SA
// rekeyed by CREATE_CHILD_SA (RFC 7296 §2.18). p must be the OLD IKE SA's
// PRF; the new SA's keys then come from IKESAKeys with the NEW SA's PRF,
// nonces and SPIs.
func (p *PRF) RekeySKEYSEED(oldSKd, girNew, ni, nr []byte) []byte {
	return p.Sum(oldSKd, girNew, ni, nr)
}

// IKESAKeys expands {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
// = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (RFC 7296 §2.14). SPIs are the
// 8-byte IKE SPIs as sent.
func (p *PRF) IKESAKeys(skeyseed, ni, nr, spii, spir []byte, l KeyLens) (IKESAKeys, error) {
	if l.Integ < 0 || l.Encr <= 0 {
		return IKESAKeys{}, fmt.Errorf("prf: IKE SA key lengths integ=%d encr=%d: want integ >= 0, encr > 0", l.Integ, l.Encr)
	}
	n := 3*p.size + 2*l.Integ + 2*l.Encr
	km, err := p.Plus(skeyseed, n, ni, nr, spii, spir)
	if err != nil {
		return IKESAKeys{}, err
	}
	// Three-index slices: appending to one key cannot overwrite the next.
	take := func(k int) []byte {
		b := km[:k:k]
		km = km[k:]
		return b
	}
	var k IKESAKeys
	k.SKd = take(p.size)
	k.SKai = take(l.Integ)
	k.SKar = take(l.Integ)
	k.SKei = take(l.Encr)
	k.SKer = take(l.Encr)
	k.SKpi = take(p.size)
	k.SKpr = take(p.size)
	return k, nil
}

// ChildKeymat returns n bytes of KEYMAT = prf+(SK_d, Ni | Nr), or with PFS
// prf+(SK_d, g^ir (new) | Ni | Nr) (RFC 7296 §2.17). girNew is nil
// without PFS. For the first Child SA (IKE_AUTH) the nonces are those of
// IKE_SA_INIT; otherwise the fresh ones of the CREATE_CHILD_SA.
func (p *PRF) ChildKeymat(skd, girNew, ni, nr []byte, n int) ([]byte, error) {
	return p.Plus(skd, n, girNew, ni, nr)
}

// ChildSAKeys splits KEYMAT for an ESP SA pair with suite s (RFC 7296
// §2.17): all of the initiator→responder SA's keys come first, then the
// responder→initiator SA's; within each, the encryption key (with GCM's
// salt) before the integrity key, the layout transform.New takes.
func (p *PRF) ChildSAKeys(skd, girNew, ni, nr []byte, s transform.Suite) (iToR, rToI []byte, err error) {
	if err := s.Valid(); err != nil {
		return nil, nil, err
	}
	n := s.KeymatLen()
	km, err := p.ChildKeymat(skd, girNew, ni, nr, 2*n)
	if err != nil {
		return nil, nil, err
	}
	return km[:n:n], km[n:], nil
}

// keyPad is RFC 7296 §2.15's constant: 17 ASCII octets, no terminator.
var keyPad = []byte("Key Pad for IKEv2")

// PSKAuth is the AUTH payload data for shared-key authentication
// (RFC 7296 §2.15): prf(prf(Shared Secret, "Key Pad for IKEv2"),
// <SignedOctets>). signedOctets is what AuthOctets builds. Compare a
// received AUTH with hmac.Equal.
func (p *PRF) PSKAuth(psk, signedOctets []byte) []byte {
	return p.Sum(p.Sum(psk, keyPad), signedOctets)
}

// AuthOctets builds the signed octets of RFC 7296 §2.15 for one side:
//
//	InitiatorSignedOctets = RealMessage1 | NonceRData | prf(SK_pi, RestOfInitIDPayload)
//	ResponderSignedOctets = RealMessage2 | NonceIData | prf(SK_pr, RestOfRespIDPayload)
//
// message is that side's whole IKE_SA_INIT message as sent (IKE header
// included), peerNonce the other side's nonce data, skp that side's SK_p,
// and idBody the ID payload from the ID Type octet on (its generic
// payload header stripped).
func (p *PRF) AuthOctets(message, peerNonce, skp, idBody []byte) []byte {
	out := make([]byte, 0, len(message)+len(peerNonce)+p.size)
	out = append(append(out, message...), peerNonce...)
	return append(out, p.Sum(skp, idBody)...)
}
