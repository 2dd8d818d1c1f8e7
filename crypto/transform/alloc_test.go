//go:build !race

// The race detector makes sync.Pool drop items on purpose, so the
// allocation count is only meaningful without -race.

package transform

import "testing"

func TestNoAllocs(t *testing.T) {
	for _, s := range implemented(t) {
		c := mustNew(t, s)
		for _, esn := range []bool{false, true} {
			for _, n := range []int{64, 1400} {
				pkt, _ := testPacket(c, 1, 5, n)
				seq := uint64(5)
				if a := testing.AllocsPerRun(200, func() { seq++; c.Seal(pkt, seq, esn) }); a != 0 {
					t.Errorf("%v esn=%v %d bytes: Seal allocates %.1f times", s, esn, n, a)
				}
				c.Seal(pkt, seq, esn)
				sealed := append([]byte(nil), pkt...)
				if a := testing.AllocsPerRun(200, func() {
					copy(pkt, sealed)
					if err := c.Open(pkt, seq, esn); err != nil {
						t.Fatal(err)
					}
				}); a != 0 {
					t.Errorf("%v esn=%v %d bytes: Open allocates %.1f times", s, esn, n, a)
				}
				// The failure path must not allocate either (forged floods).
				if a := testing.AllocsPerRun(200, func() {
					copy(pkt, sealed)
					pkt[len(pkt)-1] ^= 1
					if err := c.Open(pkt, seq, esn); err != ErrAuth {
						t.Fatal(err)
					}
				}); a != 0 {
					t.Errorf("%v esn=%v %d bytes: failing Open allocates %.1f times", s, esn, n, a)
				}
			}
		}
	}
}

func TestScratchNoAllocs(t *testing.T) {
	sc := new(Scratch)
	for _, s := range implemented(t) {
		x, ok := mustNew(t, s).(ScratchCipher)
		if !ok {
			continue
		}
		for _, esn := range []bool{false, true} {
			pkt, _ := testPacket(x, 1, 5, 1400)
			seq := uint64(5)
			if a := testing.AllocsPerRun(200, func() { seq++; x.SealWith(sc, pkt, seq, esn) }); a != 0 {
				t.Errorf("%v esn=%v: SealWith allocates %.1f times", s, esn, a)
			}
			sealed := append([]byte(nil), pkt...)
			if a := testing.AllocsPerRun(200, func() {
				copy(pkt, sealed)
				if err := x.OpenWith(sc, pkt, seq, esn); err != nil {
					t.Fatal(err)
				}
			}); a != 0 {
				t.Errorf("%v esn=%v: OpenWith allocates %.1f times", s, esn, a)
			}
		}
	}
}
