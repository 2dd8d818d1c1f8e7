package transform

import (
	"bytes"
	"testing"
)

// FuzzOpen feeds arbitrary packets to Open. It must never panic, must
// return only its documented errors, and whatever it accepts must be
// exactly what sealing its output with the same IV gives back (an accepted
// forgery would break that).
func FuzzOpen(f *testing.F) {
	suites := []Suite{
		{ENCR_AES_GCM_16, 128, AUTH_NONE},
		{ENCR_AES_CBC, 256, AUTH_HMAC_SHA2_256_128},
		{ENCR_AES_CBC, 128, AUTH_HMAC_SHA1_96},
	}
	ciphers := make([]Cipher, len(suites))
	for i, s := range suites {
		ciphers[i] = mustNew(f, s)
		for _, n := range []int{0, 20, 100} {
			for _, esn := range []bool{false, true} {
				pkt, _ := testPacket(ciphers[i], 7, 1<<32|9, n)
				ciphers[i].Seal(pkt, 1<<32|9, esn)
				f.Add(uint8(i), pkt, esn)
			}
		}
	}
	f.Add(uint8(0), []byte{}, false)
	f.Add(uint8(1), make([]byte, 8+16+15+16), false)
	f.Fuzz(func(t *testing.T, which uint8, pkt []byte, esn bool) {
		c := ciphers[int(which)%len(ciphers)]
		in := bytes.Clone(pkt)
		const seq = 1<<32 | 9
		err := c.Open(pkt, seq, esn)
		switch err {
		case nil:
		case ErrAuth, ErrShort, ErrAlign:
			return
		default:
			t.Fatalf("%v: Open returned undocumented error %v", c.Suite(), err)
		}
		sealWithIV(c, pkt, espHdrLen, seq, esn)
		if !bytes.Equal(pkt, in) {
			t.Fatalf("%v: Open accepted %x, but sealing its plaintext gives %x", c.Suite(), in, pkt)
		}
	})
}
