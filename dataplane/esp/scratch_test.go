package esp

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
)

// TestWithScratch: EncapWith writes the same bytes as Encap for the same
// sequence number, and DecapESPWith takes apart what either wrote exactly
// as DecapESP does — for every suite (CBC falls back to the pool), with
// UDP and ESN, with a nil scratch too; a forged ICV is BadICV and a
// replay Replayed.
func TestWithScratch(t *testing.T) {
	sc := new(transform.Scratch)
	for _, s := range transform.Suites() {
		for _, udp := range []bool{false, true} {
			for _, esn := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/udp=%v/esn=%v", s, udp, esn), func(t *testing.T) {
					out, in := newPair(t, s, pairOpts{udp: udp, esn: esn, window: 64})
					for i, p := range [][]byte{inner4(64, 0, true, 1), inner4(1400, 0, false, 2), inner6(200, 0, 3)} {
						a, off := frame(p)
						b, _ := frame(p)
						seq, _ := out.ReserveSeq(1)
						sa, ea, ra := out.Encap(a, off, len(p), seq)
						withSC := sc
						if i == 1 {
							withSC = nil
						}
						sb, eb, rb := out.EncapWith(withSC, b, off, len(p), seq)
						if ra != OK || rb != OK || sa != sb || ea != eb {
							t.Fatalf("Encap = %d,%d,%v; EncapWith = %d,%d,%v", sa, ea, ra, sb, eb, rb)
						}
						if s.Encr == transform.ENCR_AES_GCM_16 && !bytes.Equal(a, b) {
							t.Fatal("EncapWith wrote other bytes than Encap")
						}
						es, ee, _, r := Locate(b[sb:eb])
						if r != OK {
							t.Fatal(r)
						}
						forged := append([]byte(nil), b...)
						forged[eb-1] ^= 1
						if _, _, r := in.DecapESPWith(sc, forged, sb+es, sb+ee); r != BadICV {
							t.Fatalf("DecapESPWith of a forged ICV = %v, want BadICV", r)
						}
						st, en, r := in.DecapESPWith(withSC, b, sb+es, sb+ee)
						if r != OK || !bytes.Equal(b[st:en], p) {
							t.Fatalf("DecapESPWith = %v, inner equal %v", r, r == OK && bytes.Equal(b[st:en], p))
						}
						if _, _, r := in.DecapESPWith(sc, a, sb+es, sb+ee); r != Replayed {
							t.Fatalf("DecapESPWith of a replay = %v, want Replayed", r)
						}
					}
				})
			}
		}
	}
}

// TestPadMask: the division-free padding equals padLen for every length
// and alignment an ESP cipher has, and a non-power-of-two alignment still
// takes padLen.
func TestPadMask(t *testing.T) {
	for _, align := range []int{1, 2, 4, 8, 16, 12} {
		sa := &SA{align: align, alignMask: pow2Mask(align)}
		if (align == 12) != (sa.alignMask < 0) {
			t.Fatalf("pow2Mask(%d) = %d", align, sa.alignMask)
		}
		for n := 0; n < 3000; n++ {
			if got, want := sa.pad(n), padLen(n, align); got != want {
				t.Fatalf("align %d, n %d: pad = %d, padLen = %d", align, n, got, want)
			}
		}
	}
}
