package transform

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
)

// ivSetter is implemented by crypto/cipher's CBC modes: re-arming one
// BlockMode with a new IV costs a copy, where NewCBCEncrypter allocates.
type ivSetter interface{ SetIV([]byte) }

// cbcScratch is one caller's working state. HMAC state and the CBC chaining
// value are per call by nature, so several workers cannot share one; a
// sync.Pool hands each its own without allocating once warm. The HMAC is
// crypto/hmac, which after its first Reset restores the precomputed
// ipad/opad hash states (FIPS 198-1 §6) by unmarshalling them in place: no
// allocation, and two compression functions saved per packet.
type cbcScratch struct {
	mac    hash.Hash
	enc    cipher.BlockMode
	dec    cipher.BlockMode
	encIV  ivSetter // enc and dec, asserted once
	decIV  ivSetter
	sum    [64]byte // HMAC output before truncation
	seqHi  [4]byte
	zeroIV [aes.BlockSize]byte
}

type cbcCipher struct {
	suite  Suite
	spec   *encrSpec    // IV and block lengths come from the table
	block  cipher.Block // encryption key (RFC 3602)
	ivGen  cipher.Block // IV key, random per Cipher, never on the wire
	icvLen int          // from the integrity table
	pool   sync.Pool    // *cbcScratch
}

func newCBC(s Suite, e *encrSpec, g *integSpec, keymat []byte) (*cbcCipher, error) {
	block, err := aes.NewCipher(keymat[:e.keyLen])
	if err != nil {
		return nil, err
	}
	// The IV key is random rather than the data key (NIST SP 800-38A
	// App. C encrypts the nonce under the data key): a separate key keeps
	// the IVs unrelated to any ciphertext block, so no argument about
	// collisions between the two is needed; and nothing outside this
	// Cipher ever needs it, so it comes from crypto/rand, once per SA.
	var ivKey [16]byte
	if _, err := rand.Read(ivKey[:]); err != nil {
		return nil, fmt.Errorf("transform %s: generating the CBC IV key: %w", s, err)
	}
	ivGen, err := aes.NewCipher(ivKey[:])
	if err != nil {
		return nil, err
	}
	if e.ivLen != block.BlockSize() || e.blockSize != block.BlockSize() {
		return nil, fmt.Errorf("transform %s: table gives IV %d and block %d; RFC 3602 needs %d", s, e.ivLen, e.blockSize, block.BlockSize())
	}
	authKey := append([]byte(nil), keymat[e.keyLen:e.keyLen+g.KeyLen]...)
	c := &cbcCipher{suite: s, spec: e, block: block, ivGen: ivGen, icvLen: g.ICVLen}
	c.pool.New = func() any {
		sc := &cbcScratch{mac: hmac.New(g.Hash, authKey)}
		sc.mac.Reset() // precompute the ipad/opad states now
		sc.enc = cipher.NewCBCEncrypter(block, sc.zeroIV[:])
		sc.dec = cipher.NewCBCDecrypter(block, sc.zeroIV[:])
		sc.encIV, _ = sc.enc.(ivSetter)
		sc.decIV, _ = sc.dec.(ivSetter)
		return sc
	}
	// Fail here, not on the first packet, if crypto/cipher ever stops
	// offering SetIV.
	sc := c.pool.Get().(*cbcScratch)
	if sc.encIV == nil || sc.decIV == nil {
		return nil, fmt.Errorf("transform %s: crypto/cipher CBC mode has no SetIV; cannot run without allocating", s)
	}
	c.pool.Put(sc)
	return c, nil
}

func (c *cbcCipher) Suite() Suite   { return c.suite }
func (c *cbcCipher) IVLen() int     { return c.spec.ivLen }
func (c *cbcCipher) ICVLen() int    { return c.icvLen }
func (c *cbcCipher) BlockSize() int { return c.spec.blockSize }

// Seal draws the IV as AES_ivkey(0^64 || seq). RFC 3602 §2.3 wants an IV
// the attacker cannot predict before seeing it; AES under a secret random
// key is a pseudorandom permutation, and its input, the sequence number,
// never repeats under one SA, so every IV is a fresh pseudorandom value
// uncorrelated with earlier ciphertext. It costs one block encryption,
// no syscall and no shared RNG state (NIST SP 800-38A Appendix C, first
// method, with a separate key).
func (c *cbcCipher) Seal(pkt []byte, seq uint64, esn bool) {
	iv := pkt[espHdrLen : espHdrLen+c.spec.ivLen]
	clear(iv[:len(iv)-8])
	binary.BigEndian.PutUint64(iv[len(iv)-8:], seq)
	c.ivGen.Encrypt(iv, iv)
	c.seal(pkt, espHdrLen, seq, esn)
}

// seal encrypts with the IV already in place after a hdrLen-byte header
// and writes the ICV (Seal's body; known-answer tests call it directly).
func (c *cbcCipher) seal(pkt []byte, hdrLen int, seq uint64, esn bool) {
	body := hdrLen + c.spec.ivLen
	end := len(pkt) - c.icvLen
	sc := c.pool.Get().(*cbcScratch)
	sc.encIV.SetIV(pkt[hdrLen:body])
	sc.enc.CryptBlocks(pkt[body:end], pkt[body:end])
	c.icv(sc, pkt[:end], seq, esn)
	copy(pkt[end:], sc.sum[:c.icvLen])
	c.pool.Put(sc)
}

// Open authenticates first and decrypts only a packet whose ICV matches,
// comparing in constant time (RFC 4303 §3.4.4.1).
func (c *cbcCipher) Open(pkt []byte, seq uint64, esn bool) error {
	return c.open(pkt, espHdrLen, seq, esn)
}

func (c *cbcCipher) open(pkt []byte, hdrLen int, seq uint64, esn bool) error {
	body := hdrLen + c.spec.ivLen
	end := len(pkt) - c.icvLen
	if end < body+c.spec.blockSize {
		return ErrShort
	}
	if (end-body)%c.spec.blockSize != 0 {
		return ErrAlign
	}
	sc := c.pool.Get().(*cbcScratch)
	c.icv(sc, pkt[:end], seq, esn)
	if subtle.ConstantTimeCompare(sc.sum[:c.icvLen], pkt[end:]) != 1 {
		c.pool.Put(sc)
		return ErrAuth
	}
	sc.decIV.SetIV(pkt[hdrLen:body])
	sc.dec.CryptBlocks(pkt[body:end], pkt[body:end])
	c.pool.Put(sc)
	return nil
}

// icv computes the untruncated HMAC over header, IV and ciphertext, and
// with ESN the high 32 bits of the sequence number appended after them
// (RFC 4303 §2.2.1, Appendix A3), into sc.sum.
func (c *cbcCipher) icv(sc *cbcScratch, authed []byte, seq uint64, esn bool) {
	sc.mac.Reset()
	sc.mac.Write(authed)
	if esn {
		binary.BigEndian.PutUint32(sc.seqHi[:], uint32(seq>>32))
		sc.mac.Write(sc.seqHi[:])
	}
	sc.mac.Sum(sc.sum[:0])
}
