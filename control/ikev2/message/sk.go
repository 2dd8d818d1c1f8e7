package message

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cgw-project/cgw/crypto/transform"
)

// Crypter seals and opens Encrypted payloads (§3.14) for one direction of
// an IKE SA: SK_ei/SK_ai protect what the original initiator sends,
// SK_er/SK_ar what the responder sends (§2.14).
//
// Both methods work in place on a whole message:
//
//	msg[:ivOff]                           IKE header, payloads before SK, SK generic header
//	msg[ivOff:ivOff+IVLen()]              IV
//	msg[ivOff+IVLen():len(msg)-ICVLen()]  inner payloads, padding, pad length
//	msg[len(msg)-ICVLen():]               ICV
//
// with every length field already final, since the ICV covers the header.
type Crypter interface {
	IVLen() int
	ICVLen() int
	// BlockSize is the multiple the padded plaintext must be (16 for
	// CBC, 1 for GCM, which needs no padding, RFC 5282 §3).
	BlockSize() int
	// Seal writes a fresh IV, encrypts the plaintext and writes the ICV.
	Seal(msg []byte, ivOff int) error
	// Open checks the ICV first and decrypts only an authentic message;
	// it returns ErrIntegrity on a mismatch and a syntax error when the
	// region cannot be a ciphertext (too short, not whole blocks).
	Open(msg []byte, ivOff int) error
}

// gcmSaltLen: SK_e for AES-GCM is the key followed by a 4-byte salt
// (RFC 5282 §7.1).
const gcmSaltLen = 4

// SKLengths returns how many bytes of SK_e and SK_a a negotiated IKE
// proposal needs (§2.14: the prf+ output is split in these sizes; for
// AES-GCM SK_e includes the salt and SK_a is empty, RFC 5282 §7.1).
func SKLengths(p Proposal) (encr, integ int, err error) {
	e, ok := p.Chosen(TransformENCR)
	if !ok {
		return 0, 0, fmt.Errorf("ikev2: proposal %s has no encryption transform", p)
	}
	if err := checkKeyBits(e); err != nil {
		return 0, 0, err
	}
	i, hasInteg := p.Chosen(TransformINTEG)
	switch transform.EncrID(e.ID) {
	case ENCR_AES_GCM_16:
		if hasInteg && i.ID != uint16(AUTH_NONE) {
			return 0, 0, fmt.Errorf("ikev2: proposal %s combines AES-GCM with integrity %s (RFC 5282 §8: AEAD takes none)", p, i)
		}
		return int(e.KeyLength)/8 + gcmSaltLen, 0, nil
	case ENCR_AES_CBC:
		spec, ok := transform.LookupHMAC(transform.IntegID(i.ID))
		if !hasInteg || !ok {
			return 0, 0, fmt.Errorf("ikev2: proposal %s: AES-CBC needs integrity sha1, sha256, sha384 or sha512", p)
		}
		return int(e.KeyLength) / 8, spec.KeyLen, nil
	}
	return 0, 0, fmt.Errorf("ikev2: proposal %s: encryption %s is not implemented for IKE (want aes128/192/256 or aes128/192/256gcm16)", p, e)
}

func checkKeyBits(e Transform) error {
	switch e.KeyLength {
	case 128, 192, 256:
		return nil
	}
	return fmt.Errorf("ikev2: %s needs a key length attribute of 128, 192 or 256 bits (got %d)", e, e.KeyLength)
}

// NewCrypter builds one direction's Crypter from the negotiated IKE
// proposal and that direction's SK_e and SK_a (lengths from SKLengths).
func NewCrypter(p Proposal, skE, skA []byte) (Crypter, error) {
	le, la, err := SKLengths(p)
	if err != nil {
		return nil, err
	}
	if len(skE) != le || len(skA) != la {
		return nil, fmt.Errorf("ikev2: proposal %s needs SK_e of %d and SK_a of %d bytes, got %d and %d", p, le, la, len(skE), len(skA))
	}
	e, _ := p.Chosen(TransformENCR)
	keyLen := int(e.KeyLength) / 8
	block, err := aes.NewCipher(skE[:keyLen])
	if err != nil {
		return nil, err
	}
	if transform.EncrID(e.ID) == ENCR_AES_GCM_16 {
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		c := &gcmCrypter{aead: aead}
		copy(c.salt[:], skE[keyLen:])
		// A random starting point for the IV counter: the counter alone
		// keeps IVs unique under this key (RFC 5282 §3.1 asks no more).
		var start [8]byte
		if _, err := rand.Read(start[:]); err != nil {
			return nil, err
		}
		c.counter.Store(binary.BigEndian.Uint64(start[:]))
		return c, nil
	}
	i, _ := p.Chosen(TransformINTEG)
	spec, _ := transform.LookupHMAC(transform.IntegID(i.ID))
	return &cbcCrypter{block: block, spec: spec, key: append([]byte(nil), skA...)}, nil
}

// Keys are an IKE SA's Encrypted-payload keys, one Crypter per direction.
// EncodeEncrypted and DecodeEncrypted pick the direction from the header's
// Initiator flag, which the ICV covers.
type Keys struct {
	Initiator Crypter // SK_ei, SK_ai: messages from the original initiator
	Responder Crypter // SK_er, SK_ar
}

// NewKeys builds both directions from the negotiated IKE proposal.
func NewKeys(p Proposal, skEi, skAi, skEr, skAr []byte) (*Keys, error) {
	i, err := NewCrypter(p, skEi, skAi)
	if err != nil {
		return nil, err
	}
	r, err := NewCrypter(p, skEr, skAr)
	if err != nil {
		return nil, err
	}
	return &Keys{Initiator: i, Responder: r}, nil
}

func (k *Keys) sender(h *Header) (Crypter, error) {
	if k == nil {
		return nil, errors.New("ikev2: no keys for the Encrypted payload")
	}
	c, who := k.Responder, "responder"
	if h.FromInitiator() {
		c, who = k.Initiator, "initiator"
	}
	if c == nil {
		return nil, fmt.Errorf("ikev2: no Crypter for messages from the original %s", who)
	}
	return c, nil
}

// EncodeEncrypted serialises m with all its payloads inside one Encrypted
// payload (§3.14), sealed with the direction keys selects by m's I flag.
// An empty payload list gives an empty SK payload (a liveness check,
// §1.4). Padding is zeros; §3.14 leaves its content to the sender.
func EncodeEncrypted(m *Message, keys *Keys) ([]byte, error) {
	c, err := keys.sender(&m.Header)
	if err != nil {
		return nil, err
	}
	for _, p := range m.Payloads {
		if _, ok := p.(*Encrypted); ok {
			return nil, errors.New("ikev2: EncodeEncrypted: the message already holds an Encrypted payload")
		}
	}
	first := NoNextPayload
	if len(m.Payloads) > 0 {
		first = m.Payloads[0].Type()
	}
	// Header and SK generic header, then the IV room.
	h := m.Header
	h.NextPayload = PayloadSK
	b := make([]byte, 0, 512)
	b = h.append(b)
	skOff := len(b)
	b = append(b, byte(first), 0, 0, 0)
	ivOff := len(b)
	b = append(b, make([]byte, c.IVLen())...)
	ptOff := len(b)
	b, err = appendChain(b, m.Payloads)
	if err != nil {
		return nil, err
	}
	bs := c.BlockSize()
	pad := (bs - (len(b)-ptOff+1)%bs) % bs
	b = append(b, make([]byte, pad)...)
	b = append(b, byte(pad))
	b = append(b, make([]byte, c.ICVLen())...)
	if len(b) > MaxMessageLen || len(b)-skOff > 0xffff {
		return nil, fmt.Errorf("ikev2: encrypted message is %d bytes, over the %d-byte limit", len(b), MaxMessageLen)
	}
	binary.BigEndian.PutUint16(b[skOff+2:], uint16(len(b)-skOff))
	binary.BigEndian.PutUint32(b[24:], uint32(len(b)))
	if err := c.Seal(b, ivOff); err != nil {
		return nil, err
	}
	return b, nil
}

// DecodeEncrypted parses a message whose last payload is Encrypted,
// verifies and decrypts it with the direction keys selects by the I flag,
// and returns the message with the payloads before SK (normally none)
// followed by the inner payloads. ErrIntegrity means drop silently; other
// errors are as for Decode. Only an error that Verified reports as found
// after the ICV verified (a syntax error inside an authentic message)
// deserves an answer such as INVALID_SYNTAX (§2.21.2); any other came
// from input nobody authenticated and changes nothing.
func DecodeEncrypted(raw []byte, keys *Keys) (*Message, error) {
	m, buf, err := decode(raw)
	if err != nil {
		return m, err
	}
	if len(m.Payloads) == 0 {
		return m, ErrNotEncrypted
	}
	sk, ok := m.Payloads[len(m.Payloads)-1].(*Encrypted)
	if !ok {
		return m, ErrNotEncrypted
	}
	c, err := keys.sender(&m.Header)
	if err != nil {
		return m, err
	}
	ivOff := len(buf) - len(sk.Body)
	if len(sk.Body) < c.IVLen()+1+c.ICVLen() {
		return m, syntaxf("Encrypted payload body of %d bytes cannot hold a %d-byte IV, pad length and %d-byte ICV", len(sk.Body), c.IVLen(), c.ICVLen())
	}
	if err := c.Open(buf, ivOff); err != nil {
		return m, err
	}
	pt := buf[ivOff+c.IVLen() : len(buf)-c.ICVLen()]
	padLen := int(pt[len(pt)-1])
	if padLen+1 > len(pt) {
		return m, &verifiedError{syntaxf("Encrypted payload pad length %d exceeds the %d-byte plaintext", padLen, len(pt))}
	}
	inner, err := decodeChain(pt[:len(pt)-1-padLen], sk.NextPayload, false)
	if outer := m.Payloads[:len(m.Payloads)-1]; len(outer) > 0 {
		m.Payloads = append(outer, inner...)
	} else {
		m.Payloads = inner
	}
	if err != nil {
		return m, &verifiedError{err}
	}
	return m, nil
}

type gcmCrypter struct {
	aead    cipher.AEAD
	salt    [gcmSaltLen]byte
	counter atomic.Uint64
}

func (c *gcmCrypter) IVLen() int     { return 8 }
func (c *gcmCrypter) ICVLen() int    { return 16 }
func (c *gcmCrypter) BlockSize() int { return 1 }

// Seal: nonce = salt || 8-byte IV (RFC 5282 §4), AAD = everything before
// the IV (RFC 5282 §5.1).
func (c *gcmCrypter) Seal(msg []byte, ivOff int) error {
	iv := msg[ivOff : ivOff+8]
	binary.BigEndian.PutUint64(iv, c.counter.Add(1))
	var nonce [12]byte
	copy(nonce[:], c.salt[:])
	copy(nonce[4:], iv)
	pt := msg[ivOff+8 : len(msg)-16]
	c.aead.Seal(pt[:0], nonce[:], pt, msg[:ivOff])
	return nil
}

func (c *gcmCrypter) Open(msg []byte, ivOff int) error {
	if len(msg)-ivOff < 8+16 {
		return syntaxf("AES-GCM Encrypted payload too short")
	}
	var nonce [12]byte
	copy(nonce[:], c.salt[:])
	copy(nonce[4:], msg[ivOff:ivOff+8])
	ct := msg[ivOff+8:]
	if _, err := c.aead.Open(ct[:0], nonce[:], ct, msg[:ivOff]); err != nil {
		return ErrIntegrity
	}
	return nil
}

type cbcCrypter struct {
	block cipher.Block
	spec  transform.HMAC // RFC 7296 §3.14: the ESP integrity transforms
	key   []byte
}

func (c *cbcCrypter) IVLen() int     { return aes.BlockSize }
func (c *cbcCrypter) ICVLen() int    { return c.spec.ICVLen }
func (c *cbcCrypter) BlockSize() int { return aes.BlockSize }

// Seal: a random IV (§3.14: MUST be unpredictable), CBC, then the HMAC of
// the whole message up to the ICV, truncated (§3.14).
func (c *cbcCrypter) Seal(msg []byte, ivOff int) error {
	body := ivOff + aes.BlockSize
	end := len(msg) - c.spec.ICVLen
	if end < body || (end-body)%aes.BlockSize != 0 {
		return fmt.Errorf("ikev2: CBC plaintext of %d bytes is not whole blocks", end-body)
	}
	iv := msg[ivOff:body]
	if _, err := rand.Read(iv); err != nil {
		return err
	}
	cipher.NewCBCEncrypter(c.block, iv).CryptBlocks(msg[body:end], msg[body:end])
	copy(msg[end:], c.mac(msg[:end]))
	return nil
}

func (c *cbcCrypter) Open(msg []byte, ivOff int) error {
	body := ivOff + aes.BlockSize
	end := len(msg) - c.spec.ICVLen
	if end < body+aes.BlockSize {
		return syntaxf("AES-CBC Encrypted payload too short for IV, one block and ICV")
	}
	if (end-body)%aes.BlockSize != 0 {
		return syntaxf("AES-CBC ciphertext of %d bytes is not whole 16-byte blocks", end-body)
	}
	// §2.21.2 and common sense: authenticate before decrypting.
	if subtle.ConstantTimeCompare(c.mac(msg[:end]), msg[end:]) != 1 {
		return ErrIntegrity
	}
	cipher.NewCBCDecrypter(c.block, msg[ivOff:body]).CryptBlocks(msg[body:end], msg[body:end])
	return nil
}

func (c *cbcCrypter) mac(b []byte) []byte {
	h := hmac.New(c.spec.Hash, c.key)
	h.Write(b)
	return h.Sum(nil)[:c.spec.ICVLen]
}
