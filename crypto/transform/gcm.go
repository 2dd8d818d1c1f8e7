package transform

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
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

var _ ScratchCipher = (*gcmCipher)(nil)

type gcmCipher struct {
	suite Suite
	spec  *encrSpec // all lengths come from the table
	aead  cipher.AEAD
	salt  [4]byte
	pool  sync.Pool // *gcmScratch
}

func newGCM(s Suite, e *encrSpec, keymat []byte) (*gcmCipher, error) {
	block, err := aes.NewCipher(keymat[:e.keyLen])
	if err != nil {
		return nil, err
	}
	if e.saltLen+e.ivLen != 12 || e.saltLen != len(gcmCipher{}.salt) {
		return nil, fmt.Errorf("transform %s: table gives a %d+%d-byte nonce; RFC 4106 §4 needs 4+8", s, e.saltLen, e.ivLen)
	}
	aead, err := cipher.NewGCMWithTagSize(block, e.icvLen)
	if err != nil {
		return nil, err
	}
	c := &gcmCipher{suite: s, spec: e, aead: aead}
	copy(c.salt[:], keymat[e.keyLen:])
	c.pool.New = func() any { return new(gcmScratch) }
	return c, nil
}

func (c *gcmCipher) Suite() Suite   { return c.suite }
func (c *gcmCipher) IVLen() int     { return c.spec.ivLen }
func (c *gcmCipher) ICVLen() int    { return c.spec.icvLen }
func (c *gcmCipher) BlockSize() int { return c.spec.blockSize }

// Seal uses the 64-bit sequence number as the explicit IV: RFC 4106 §3.1
// asks only that an IV never repeat under a key, and the sequence number
// never does (the SA is rekeyed before it wraps, RFC 4303 §3.3.3).
func (c *gcmCipher) Seal(pkt []byte, seq uint64, esn bool) {
	binary.BigEndian.PutUint64(pkt[espHdrLen:], seq)
	c.seal(pkt, seq, esn)
}

// seal is Seal with the IV already in place (known-answer tests call it
// with the vectors' IVs). pkt must hold header, IV and ICV room.
func (c *gcmCipher) seal(pkt []byte, seq uint64, esn bool) {
	sc := c.pool.Get().(*gcmScratch)
	c.sealWith(sc, pkt, seq, esn)
	c.pool.Put(sc)
}

func (c *gcmCipher) sealWith(sc *gcmScratch, pkt []byte, seq uint64, esn bool) {
	body := espHdrLen + c.spec.ivLen
	c.nonce(sc, pkt)
	c.aead.Seal(pkt[body:body], sc.nonce[:], pkt[body:len(pkt)-c.spec.icvLen], c.aad(sc, pkt, seq, esn))
}

// SealWith is Seal with the caller's scratch instead of the pool's.
func (c *gcmCipher) SealWith(sc *Scratch, pkt []byte, seq uint64, esn bool) {
	binary.BigEndian.PutUint64(pkt[espHdrLen:], seq)
	c.sealWith(&sc.gcm, pkt, seq, esn)
}

// nonce is salt || IV (RFC 4106 §4); the IV is in the packet.
func (c *gcmCipher) nonce(sc *gcmScratch, pkt []byte) {
	_ = pkt[espHdrLen+8-1]
	*(*[4]byte)(sc.nonce[0:4]) = c.salt
	*(*[8]byte)(sc.nonce[4:12]) = [8]byte(pkt[espHdrLen : espHdrLen+8])
}

// Open decrypts in place. On ErrAuth the payload region has been zeroed by
// crypto/cipher (it never hands back unauthenticated plaintext).
func (c *gcmCipher) Open(pkt []byte, seq uint64, esn bool) error {
	body := espHdrLen + c.spec.ivLen
	if len(pkt) < body+c.spec.blockSize+c.spec.icvLen {
		return ErrShort
	}
	sc := c.pool.Get().(*gcmScratch)
	err := c.openWith(sc, pkt, seq, esn)
	c.pool.Put(sc)
	return err
}

// OpenWith is Open with the caller's scratch instead of the pool's.
func (c *gcmCipher) OpenWith(sc *Scratch, pkt []byte, seq uint64, esn bool) error {
	if len(pkt) < espHdrLen+c.spec.ivLen+c.spec.blockSize+c.spec.icvLen {
		return ErrShort
	}
	return c.openWith(&sc.gcm, pkt, seq, esn)
}

// openWith is Open once the length is checked.
func (c *gcmCipher) openWith(sc *gcmScratch, pkt []byte, seq uint64, esn bool) error {
	body := espHdrLen + c.spec.ivLen
	c.nonce(sc, pkt)
	if _, err := c.aead.Open(pkt[body:body], sc.nonce[:], pkt[body:], c.aad(sc, pkt, seq, esn)); err != nil {
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
