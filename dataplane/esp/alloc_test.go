//go:build !race

// Allocation counts are meaningless under the race detector: it makes
// sync.Pool drop items at random (the ciphers pool their scratch space).

package esp

import (
	"fmt"
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
)

// TestZeroAllocs proves Encap, Decap and the batch forms allocate nothing
// per packet, for every suite, with and without UDP and ESN, with a replay
// window on the inbound SA.
func TestZeroAllocs(t *testing.T) {
	for _, s := range transform.Suites() {
		for _, udp := range []bool{false, true} {
			for _, esn := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/udp=%v/esn=%v", s, udp, esn), func(t *testing.T) {
					out, in := newPair(t, s, pairOpts{udp: udp, esn: esn, window: 1024, dscpCopy: true})
					p := inner4(512, 0x10, true, 3)
					const batch = 8
					bufs := make([][]byte, batch)
					offs, lens := make([]int, batch), make([]int, batch)
					res := make([]Reason, batch)
					for i := range bufs {
						bufs[i], _ = frame(p)
					}
					reset := func() {
						for i := range bufs {
							copy(bufs[i][MaxHeadroom:], p)
							offs[i], lens[i] = MaxHeadroom, len(p)
						}
					}
					// Warm up pools.
					reset()
					encapBatch(out, bufs, offs, lens, res)
					decapBatch(in, bufs, offs, lens, res)

					b, off := frame(p)
					enc := testing.AllocsPerRun(200, func() {
						copy(b[off:], p)
						seq, _ := out.ReserveSeq(1)
						s, e, r := out.Encap(b, off, len(p), seq)
						if r != OK {
							t.Fatal(r)
						}
						if _, _, r := in.Decap(b, s, e-s); r != OK {
							t.Fatal(r)
						}
					})
					if enc != 0 {
						t.Errorf("Encap+Decap: %v allocs per packet, want 0", enc)
					}
					sc := new(transform.Scratch)
					with := testing.AllocsPerRun(200, func() {
						copy(b[off:], p)
						seq, _ := out.ReserveSeq(1)
						s, e, r := out.EncapWith(sc, b, off, len(p), seq)
						if r != OK {
							t.Fatal(r)
						}
						es, ee, _, _ := Locate(b[s:e])
						if _, _, r := in.DecapESPWith(sc, b, s+es, s+ee); r != OK {
							t.Fatal(r)
						}
					})
					if with != 0 {
						t.Errorf("EncapWith+DecapESPWith: %v allocs per packet, want 0", with)
					}
					batchAllocs := testing.AllocsPerRun(50, func() {
						reset()
						if n := encapBatch(out, bufs, offs, lens, res); n != batch {
							t.Fatal(res)
						}
						if n := decapBatch(in, bufs, offs, lens, res); n != batch {
							t.Fatal(res)
						}
					})
					if batchAllocs != 0 {
						t.Errorf("encapBatch+decapBatch: %v allocs per batch, want 0", batchAllocs)
					}
					// The rejection paths too.
					copy(b[off:], p)
					seq, _ := out.ReserveSeq(1)
					s, e, _ := out.Encap(b, off, len(p), seq)
					b[e-1] ^= 1
					bad := testing.AllocsPerRun(100, func() {
						if _, _, r := in.Decap(b, s, e-s); r != BadICV {
							t.Fatal(r)
						}
					})
					if bad != 0 {
						t.Errorf("Decap of a forged packet: %v allocs, want 0", bad)
					}
				})
			}
		}
	}
}
