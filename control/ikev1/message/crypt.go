package message

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"

	"github.com/cgw-project/cgw/crypto/prf"
)

// Crypter encrypts an ISAKMP SA's messages with AES-CBC (RFC 2409
// Appendix B). The IV chains: each message's last ciphertext block is the
// next one's IV within an exchange; Phase 1 starts from hash(g^xi | g^xr)
// and every Quick Mode or Informational exchange from hash(last Phase 1
// block | M-ID).
type Crypter struct {
	block cipher.Block
	hash  *prf.PRF
}

// NewCrypter keys a Crypter with the ISAKMP SA's cipher key.
func NewCrypter(key []byte, h *prf.PRF) (*Crypter, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return &Crypter{block: b, hash: h}, nil
}

// Phase1IV is hash(g^xi | g^xr) truncated to the block size.
func (c *Crypter) Phase1IV(gxi, gxr []byte) []byte {
	return c.hash.Hash(gxi, gxr)[:aes.BlockSize]
}

// ExchangeIV is hash(last Phase 1 CBC block | M-ID) truncated.
func (c *Crypter) ExchangeIV(p1last []byte, msgID uint32) []byte {
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], msgID)
	return c.hash.Hash(p1last, m[:])[:aes.BlockSize]
}

// Seal builds an encrypted message: header in clear, payloads padded with
// zeros to the block size and CBC-encrypted under iv. It returns the
// packet and the next IV (its last ciphertext block).
func (c *Crypter) Seal(h Header, ps []Payload, iv []byte) (pkt, next []byte) {
	if len(ps) > 0 {
		h.Next = ps[0].Type
	}
	return c.SealEncoded(h, EncodePayloads(ps), iv)
}

// SealEncoded is Seal for a payload chain already encoded (h.Next names
// its first payload); tests use it to protect chains Encode would not
// write.
func (c *Crypter) SealEncoded(h Header, body, iv []byte) (pkt, next []byte) {
	if r := len(body) % aes.BlockSize; r != 0 {
		body = append(body, make([]byte, aes.BlockSize-r)...)
	}
	h.Flags |= FlagEncryption
	pkt = make([]byte, HeaderLen+len(body))
	h.Length = uint32(len(pkt))
	h.put(pkt)
	cipher.NewCBCEncrypter(c.block, iv).CryptBlocks(pkt[HeaderLen:], body)
	next = append([]byte(nil), pkt[len(pkt)-aes.BlockSize:]...)
	return pkt, next
}

// Open decrypts pkt (header already parsed into h) under iv and decodes
// its payloads. next is the IV that follows this message.
func (c *Crypter) Open(h Header, pkt, iv []byte) (m Message, next []byte, err error) {
	ct := pkt[HeaderLen:h.Length]
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return m, nil, malformed("encrypted body of %d bytes is not whole blocks", len(ct))
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(c.block, iv).CryptBlocks(pt, ct)
	ps, end, err := ParsePayloads(h.Next, pt)
	if err != nil {
		return m, nil, err
	}
	next = append([]byte(nil), ct[len(ct)-aes.BlockSize:]...)
	return Message{Header: h, Payloads: ps, Raw: pt[:end]}, next, nil
}
