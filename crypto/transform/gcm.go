package transform

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"sync"
)

// espHdrLen is SPI + low 32 bits of the sequence number (RFC 4303 §2).
const espHdrLen = 8

// gcmScratch holds what the AEAD call needs besides the packet: the nonce
// (salt || IV, RFC 4106 §4) and, with ESN, the 12-byte AAD (RFC 4106 §5).
// They cannot live on the stack: a slice passed through the cipher.AEAD
// interface escapes, which would cost one allocation per packet. A
// sync.Pool gives each concurrent caller its own, without allocating once
// warm, at the price of a Get/Put pair (a few ns, per-P, no lock).
type gcmScratch struct {
	nonce [12]byte
	aad   [12]byte
}

type gcmCipher struct {
	suite Suite
	aead  cipher.AEAD
	salt  [4]byte
	pool  sync.Pool // *gcmScratch
}

func newGCM(s Suite, e *encrSpec, keymat []byte) (*gcmCipher, error) {
	block, err := aes.NewCipher(keymat[:e.keyLen])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block) // 12-byte nonce, 16-byte tag
	if err != nil {
		return nil, err
	}
	c := &gcmCipher{suite: s, aead: aead}
	copy(c.salt[:], keymat[e.keyLen:])
	c.pool.New = func() any { return new(gcmScratch) }
	return c, nil
}

func (c *gcmCipher) Suite() Suite   { return c.suite }
func (c *gcmCipher) IVLen() int     { return 8 }
func (c *gcmCipher) ICVLen() int    { return 16 }
func (c *gcmCipher) BlockSize() int { return 4 }

// Seal uses the 64-bit sequence number as the explicit IV: RFC 4106 §3.1
// asks only that an IV never repeat under a key, and the sequence number
// never does (the SA is rekeyed before it wraps, RFC 4303 §3.3.3).
func (c *gcmCipher) Seal(pkt []byte, seq uint64, esn bool) {
	binary.BigEndian.PutUint64(pkt[espHdrLen:], seq)
	c.seal(pkt, seq, esn)
}

// sealWithIV seals with the IV already in pkt[8:16] (known-answer tests).
func (c *gcmCipher) seal(pkt []byte, seq uint64, esn bool) {
	sc := c.pool.Get().(*gcmScratch)
	const body = espHdrLen + 8
	copy(sc.nonce[4:], pkt[espHdrLen:body])
	copy(sc.nonce[:4], c.salt[:])
	c.aead.Seal(pkt[body:body], sc.nonce[:], pkt[body:len(pkt)-16], c.aad(sc, pkt, seq, esn))
	c.pool.Put(sc)
}

// Open decrypts in place. On ErrAuth the payload region has been zeroed by
// crypto/cipher (it never hands back unauthenticated plaintext).
func (c *gcmCipher) Open(pkt []byte, seq uint64, esn bool) error {
	const body = espHdrLen + 8
	if len(pkt) < body+4+16 {
		return ErrShort
	}
	sc := c.pool.Get().(*gcmScratch)
	copy(sc.nonce[:4], c.salt[:])
	copy(sc.nonce[4:], pkt[espHdrLen:body])
	_, err := c.aead.Open(pkt[body:body], sc.nonce[:], pkt[body:], c.aad(sc, pkt, seq, esn))
	c.pool.Put(sc)
	if err != nil {
		return ErrAuth
	}
	return nil
}

// aad is SPI || seq-lo as on the wire, or SPI || seq-hi || seq-lo with ESN
// (RFC 4106 §5). The low 32 bits are taken from the packet, which the
// caller has filled with uint32(seq).
func (c *gcmCipher) aad(sc *gcmScratch, pkt []byte, seq uint64, esn bool) []byte {
	if !esn {
		return pkt[:espHdrLen]
	}
	copy(sc.aad[:4], pkt[:4])
	binary.BigEndian.PutUint32(sc.aad[4:], uint32(seq>>32))
	copy(sc.aad[8:], pkt[4:espHdrLen])
	return sc.aad[:]
}
