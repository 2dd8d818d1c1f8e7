package transform

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"encoding/binary"
	"testing"
)

// TestCBCAgainstReference recomputes each sealed packet with crypto/cipher
// and crypto/hmac composed the textbook way (RFC 4303 §2, §3.3.2; RFC 3602;
// ESN high bits appended to the ICV input, RFC 4303 §2.2.1).
func TestCBCAgainstReference(t *testing.T) {
	for _, s := range Suites() {
		if s.Encr != ENCR_AES_CBC {
			continue
		}
		c := mustNew(t, s)
		e, g := s.encr(), s.integ()
		km := testKeymat(s)
		block, _ := aes.NewCipher(km[:e.keyLen])
		for _, esn := range []bool{false, true} {
			seq := uint64(0xabcdef01_23456789)
			pkt, plain := testPacket(c, 0x11223344, seq, 77)
			c.Seal(pkt, seq, esn)

			iv := pkt[8:24]
			want := make([]byte, len(plain))
			cipher.NewCBCEncrypter(block, iv).CryptBlocks(want, plain)
			end := len(pkt) - g.ICVLen
			if !bytes.Equal(pkt[24:end], want) {
				t.Fatalf("%v esn=%v: ciphertext differs from crypto/cipher CBC", s, esn)
			}
			mac := hmac.New(g.Hash, km[e.keyLen:])
			mac.Write(pkt[:end])
			if esn {
				mac.Write(binary.BigEndian.AppendUint32(nil, uint32(seq>>32)))
			}
			if sum := mac.Sum(nil)[:g.ICVLen]; !bytes.Equal(pkt[end:], sum) {
				t.Fatalf("%v esn=%v: ICV %x, want %x", s, esn, pkt[end:], sum)
			}
		}
	}
}

func TestCBCAlign(t *testing.T) {
	c := mustNew(t, Suite{ENCR_AES_CBC, 128, AUTH_HMAC_SHA2_256_128})
	pkt, _ := testPacket(c, 1, 1, 30)
	c.Seal(pkt, 1, false)
	bad := append(pkt[:8+16+16+3:8+16+16+3], pkt[len(pkt)-16:]...)
	if err := c.Open(bad, 1, false); err != ErrAlign {
		t.Errorf("ciphertext of 19 bytes: Open = %v, want ErrAlign", err)
	}
}

// TestCBCIVUnpredictable: the IV is a keyed permutation of seq, so two
// Ciphers with the same KEYMAT give unrelated IVs, and IVs of consecutive
// sequence numbers share no structure an observer could extrapolate.
func TestCBCIVUnpredictable(t *testing.T) {
	s := Suite{ENCR_AES_CBC, 256, AUTH_HMAC_SHA1_96}
	a, b := mustNew(t, s), mustNew(t, s)
	p1, _ := testPacket(a, 1, 1, 16)
	p2, _ := testPacket(b, 1, 1, 16)
	a.Seal(p1, 1, false)
	b.Seal(p2, 1, false)
	if bytes.Equal(p1[8:24], p2[8:24]) {
		t.Error("two Ciphers drew the same IV for seq 1: the IV key is not secret per Cipher")
	}
	p3, _ := testPacket(a, 1, 2, 16)
	a.Seal(p3, 2, false)
	same := 0
	for i := 8; i < 24; i++ {
		if p1[i] == p3[i] {
			same++
		}
	}
	if same > 4 {
		t.Errorf("IVs of seq 1 and 2 share %d of 16 bytes: %x %x", same, p1[8:24], p3[8:24])
	}
}
