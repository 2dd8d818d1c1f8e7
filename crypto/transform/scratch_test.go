package transform

import (
	"bytes"
	"testing"
)

// TestScratchMatchesPool: SealWith/OpenWith produce and accept exactly
// what Seal/Open do, for every GCM suite, with and without ESN, and
// reject the same forgeries and short packets.
func TestScratchMatchesPool(t *testing.T) {
	sc := new(Scratch)
	gcms := 0
	for _, s := range implemented(t) {
		c := mustNew(t, s)
		x, ok := c.(ScratchCipher)
		if s.Encr != ENCR_AES_GCM_16 {
			continue // CBC keeps its pooled HMAC state; callers fall back to Seal/Open
		}
		if !ok {
			t.Fatalf("%v: GCM cipher does not implement ScratchCipher", s)
		}
		gcms++
		for _, esn := range []bool{false, true} {
			for _, n := range []int{1, 64, 1400} {
				seq := uint64(0x1_0000_0007)
				a, plain := testPacket(c, 0x1234, seq, n)
				b := append([]byte(nil), a...)
				c.Seal(a, seq, esn)
				x.SealWith(sc, b, seq, esn)
				if !bytes.Equal(a, b) {
					t.Fatalf("%v esn=%v n=%d: SealWith differs from Seal", s, esn, n)
				}
				if err := x.OpenWith(sc, b, seq, esn); err != nil {
					t.Fatalf("%v esn=%v n=%d: OpenWith of a sealed packet: %v", s, esn, n, err)
				}
				if !bytes.Equal(plainRegion(c, b), plain) {
					t.Fatalf("%v esn=%v n=%d: OpenWith gave the wrong plaintext", s, esn, n)
				}
				// Wrong high sequence bits (ESN) or a flipped ICV bit.
				f := append([]byte(nil), a...)
				if esn {
					if err := x.OpenWith(sc, f, seq+1<<32, esn); err != ErrAuth {
						t.Fatalf("%v n=%d: OpenWith with the wrong ESN high bits = %v, want ErrAuth", s, n, err)
					}
				}
				f = append(f[:0], a...)
				f[len(f)-1] ^= 1
				if err := x.OpenWith(sc, f, seq, esn); err != ErrAuth {
					t.Fatalf("%v esn=%v n=%d: OpenWith of a forged ICV = %v, want ErrAuth", s, esn, n, err)
				}
				if err := x.OpenWith(sc, a[:espHdrLen+c.IVLen()+c.ICVLen()], seq, esn); err != ErrShort {
					t.Fatalf("%v esn=%v: OpenWith of a packet without payload = %v, want ErrShort", s, esn, err)
				}
			}
		}
	}
	if gcms == 0 {
		t.Fatal("no GCM suite implemented")
	}
}
