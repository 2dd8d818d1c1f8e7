package replay

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// model is the obvious reference: a set of every number accepted and the
// highest one. ESN inference is written differently from the RFC's case
// analysis in Window.infer: the inferred number is the one congruent to
// the low half modulo 2^32 in [top−W+1, top−W+1+2^32), which is what
// RFC 4303 Appendix A2.2's two cases amount to.
type model struct {
	size uint64
	esn  bool
	top  uint64
	seen map[uint64]bool
}

func newModel(size int, esn bool) *model {
	return &model{size: uint64(size), esn: esn, seen: map[uint64]bool{}}
}

// infer returns the inferred number, or ok=false if it would be negative
// (before the first epoch) or beyond 2^64−1. Tops stay far below 2^62 in
// these tests, so int64 arithmetic is exact.
func (m *model) infer(lo uint32) (uint64, bool) {
	if !m.esn {
		return uint64(lo), true
	}
	bottom := int64(m.top) - int64(m.size) + 1
	seq := bottom + int64(lo-uint32(bottom))
	if seq < 0 {
		return 0, false
	}
	return uint64(seq), true
}

func (m *model) verdict(seq uint64) Result {
	switch {
	case seq == 0 || (!m.esn && seq > math.MaxUint32):
		return Invalid
	case seq > m.top && seq-m.top >= 1<<32:
		return Invalid
	case seq <= m.top && m.top-seq >= m.size:
		return TooOld
	case m.seen[seq]:
		return Replayed
	}
	return OK
}

func (m *model) check(lo uint32) (uint64, Result) {
	seq, ok := m.infer(lo)
	if !ok {
		return 0, TooOld
	}
	return seq, m.verdict(seq)
}

func (m *model) update(seq uint64) Result {
	r := m.verdict(seq)
	if r != OK {
		return r
	}
	m.seen[seq] = true
	if seq > m.top {
		m.top = seq
	}
	if len(m.seen) > 8*int(m.size)+1024 { // forget what is left of the window
		for s := range m.seen {
			if m.top-s >= m.size && s < m.top {
				delete(m.seen, s)
			}
		}
	}
	return r
}

// compare runs one packet (low half lo) through both and fails on any
// difference. With doUpdate it then records the inferred number in both.
func compare(t testing.TB, w *Window, m *model, lo uint32, doUpdate bool, what string) {
	t.Helper()
	seq, r := w.Check(lo)
	mseq, mr := m.check(lo)
	if r != mr || (mr != TooOld && seq != mseq) || (mr == TooOld && mseq != 0 && seq != mseq) {
		t.Fatalf("%s: Check(%#x) = %#x, %v; model %#x, %v (top %#x, size %d, esn %v)", what, lo, seq, r, mseq, mr, m.top, m.size, m.esn)
	}
	if !doUpdate || mr == TooOld && mseq == 0 {
		return
	}
	if got, want := w.Update(mseq), m.update(mseq); got != want {
		t.Fatalf("%s: Update(%#x) = %v; model %v (top %#x)", what, mseq, got, want, m.top)
	}
	if w.Highest() != m.top {
		t.Fatalf("%s: Highest() = %#x; model %#x", what, w.Highest(), m.top)
	}
}

// nextTarget picks a 64-bit number near the model's top: mostly inside or
// just ahead of the window, sometimes duplicates, old ones, jumps past the
// window or the ring, and rarely jumps towards the next epoch.
func nextTarget(rng *rand.Rand, m *model, maxJump int64) uint64 {
	W := int64(m.size)
	top := int64(m.top)
	var d int64
	switch k := rng.IntN(100); {
	case k < 40:
		d = rng.Int64N(8) + 1 // in order-ish
	case k < 70:
		d = -rng.Int64N(W + 2) // reordered or just too old
	case k < 80:
		d = rng.Int64N(3*W) + W // past the window
	case k < 85:
		d = -rng.Int64N(4*W) - W // far too old
	case k < 90:
		d = rng.Int64N(maxJump) // big jump
	case k < 95:
		d = 0 // the top again
	default:
		d = rng.Int64N(64) - 32 // around the top, across a word
	}
	t := top + d
	if t < 0 {
		t = rng.Int64N(3)
	}
	return uint64(t)
}

func TestAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(4303, 6479))
	for _, size := range []int{64, 100, 128, 1024, 2048, 4096} {
		for _, esn := range []bool{false, true} {
			w := mustNew(t, size, esn)
			m := newModel(w.Size(), esn)
			maxJump := int64(1 << 31) // ESN: travel through several epochs
			if !esn {
				maxJump = 1 << 20 // stay clear of the end of the 32-bit space most of the time
			}
			for i := range 20000 {
				target := nextTarget(rng, m, maxJump)
				if !esn && target > math.MaxUint32 {
					target = math.MaxUint32 - uint64(rng.IntN(2*size))
				}
				compare(t, w, m, uint32(target), rng.IntN(10) != 0, "random")
				if i%97 == 0 { // Update without Check, as a confused caller would
					seq := target + uint64(rng.IntN(3))<<32
					if got, want := w.Update(seq), m.update(seq); got != want {
						t.Fatalf("size %d esn %v: raw Update(%#x) = %v; model %v", size, esn, seq, got, want)
					}
				}
			}
			if esn && m.top < 1<<32 {
				t.Fatalf("size %d: the random walk never left epoch 0 (top %#x); the generator is too tame", size, m.top)
			}
		}
	}
}

// FuzzAgainstModel feeds a byte-coded packet sequence to both. Input:
// byte 0 picks the size and ESN; then 5 bytes per packet: a kind byte
// and a 32-bit argument. At most 512 packets per input.
func FuzzAgainstModel(f *testing.F) {
	f.Add([]byte{0x00, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 1, 1, 0, 0, 0})
	f.Add([]byte{0x81, 3, 0xff, 0xff, 0xff, 0x7f, 3, 0xff, 0xff, 0xff, 0x7f, 0, 5, 0, 0, 0, 1, 16, 0, 0, 0})
	f.Add([]byte{0x83, 2, 0, 0, 0, 0x10, 0, 1, 0, 0, 0, 4, 0xf0, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 1 {
			return
		}
		sizes := []int{64, 100, 128, 1024, 2048, 4096}
		esn := data[0]&0x80 != 0
		w := mustNew(t, sizes[int(data[0]&0x7f)%len(sizes)], esn)
		m := newModel(w.Size(), esn)
		data = data[1:]
		for n := 0; len(data) >= 5 && n < 512; n++ {
			kind, arg := data[0], binary.LittleEndian.Uint32(data[1:5])
			data = data[5:]
			top := m.top
			var lo uint32
			switch kind % 5 {
			case 0: // ahead by arg (mod 2^16)
				lo = uint32(top) + arg&0xffff
			case 1: // behind by arg (mod 2^16)
				lo = uint32(top) - arg&0xffff
			case 2: // a jump of up to 2^31
				lo = uint32(top) + arg&0x7fff_ffff
			case 3: // any low half
				lo = arg
			case 4: // Update without Check
				seq := top + uint64(arg&0xffff) - uint64(arg>>16&0xffff)
				if got, want := w.Update(seq), m.update(seq); got != want {
					t.Fatalf("raw Update(%#x) = %v; model %v (top %#x)", seq, got, want, top)
				}
				continue
			}
			compare(t, w, m, lo, kind&0x80 == 0, "fuzz")
		}
	})
}

// TestConcurrentExactlyOnce hammers one window from many goroutines. In
// rounds of K numbers (K ≤ W/2, so no number can fall out of the window
// during its round) every goroutine offers every number of the round in
// its own order, as Check then Update; each number must be accepted by
// exactly one goroutine. Run it with -race.
func TestConcurrentExactlyOnce(t *testing.T) {
	const (
		goroutines = 8
		size       = 1024
		K          = size / 2
	)
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	for _, esn := range []bool{false, true} {
		w := mustNew(t, size, esn)
		base := uint64(0)
		if esn {
			base = 0x2_FFFF_F000 // cross the epoch wrap during the test
			walkTo(t, w, base)
		}
		n := rounds * K
		accepted := make([]atomic.Int32, n+1)
		var offers, oks, rejects atomic.Int64
		var start, done sync.WaitGroup
		for round := range rounds {
			start.Add(1)
			for g := range goroutines {
				done.Add(1)
				go func() {
					defer done.Done()
					rng := rand.New(rand.NewPCG(uint64(round), uint64(g)))
					order := rng.Perm(K)
					start.Wait()
					for _, i := range order {
						idx := round*K + i + 1
						want := base + uint64(idx)
						offers.Add(1)
						seq, r := w.Check(uint32(want))
						if r == OK {
							if seq != want {
								t.Errorf("esn %v: %#x inferred as %#x", esn, uint32(want), seq)
								return
							}
							r = w.Update(seq)
						}
						switch r {
						case OK:
							oks.Add(1)
							accepted[idx].Add(1)
						case Replayed:
							rejects.Add(1)
						default:
							t.Errorf("esn %v: %#x: %v; every number of a round is inside the window", esn, want, r)
							return
						}
					}
				}()
			}
			start.Done()
			done.Wait()
			if t.Failed() {
				return
			}
			if want := base + uint64((round+1)*K); w.Highest() != want {
				t.Fatalf("esn %v: after round %d Highest() = %#x, want %#x (the top went backwards?)", esn, round, w.Highest(), want)
			}
		}
		for idx := 1; idx <= n; idx++ {
			if c := accepted[idx].Load(); c != 1 {
				t.Fatalf("esn %v: number %#x accepted %d times, want exactly once", esn, base+uint64(idx), c)
			}
		}
		if offers.Load() != oks.Load()+rejects.Load() || oks.Load() != int64(n) {
			t.Fatalf("esn %v: %d offers, %d accepted, %d rejected; want %d accepted", esn, offers.Load(), oks.Load(), rejects.Load(), n)
		}
		if w.Highest() != base+uint64(n) {
			t.Fatalf("esn %v: Highest() = %#x, want %#x", esn, w.Highest(), base+uint64(n))
		}
	}
}

// TestConcurrentFreeRunning lets goroutines run unsynchronised over the
// same numbers, with reordering and jumps past the window, so slides race
// with sets all the time; no number may ever be accepted twice, the top
// must never be seen going backwards and must end at the highest number
// accepted. With ESN it runs across an epoch wrap, and the inferred number
// must equal the one sent before Update, standing in for the ICV (see
// TestESNEpochWrap: a stalled goroutine's packet is inferred into the next
// epoch and only the ICV rejects it).
func TestConcurrentFreeRunning(t *testing.T) {
	for _, esn := range []bool{false, true} {
		t.Run(fmt.Sprintf("esn=%v", esn), func(t *testing.T) { freeRunning(t, esn) })
	}
}

func freeRunning(t *testing.T, esn bool) {
	const (
		goroutines = 6
		size       = 64 // a small window slides (and reuses words) the most
	)
	n := 60000
	if testing.Short() {
		n = 10000
	}
	w := mustNew(t, size, esn)
	base := uint64(0)
	if esn {
		base = 0x4_FFFF_E000 // the wrap to epoch 5 comes after 0x2000 numbers
		walkTo(t, w, base)
	}
	accepted := make([]atomic.Int32, n+4*size+1)
	var maxAccepted atomic.Uint64
	maxAccepted.Store(base)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	watched := make(chan error)
	go func() { // the top must never be seen going backwards
		var last uint64
		for {
			select {
			case <-stop:
				watched <- nil
				return
			default:
			}
			h := w.Highest()
			if h < last {
				watched <- fmt.Errorf("Highest() went from %#x back to %#x", last, h)
				return
			}
			last = h
			runtime.Gosched()
		}
	}()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(7, uint64(g)))
			for i := 1; i <= n; i++ {
				s := i + rng.IntN(48) - 24 // reordered by up to 24 either way
				if rng.IntN(200) == 0 {
					s = i + size + rng.IntN(3*size) // a jump past the window
				}
				if s < 1 {
					s = 1
				}
				sent := base + uint64(s)
				seq, r := w.Check(uint32(sent))
				if r == OK && seq == sent { // the ICV stand-in
					r = w.Update(seq)
				} else if r == OK {
					r = Invalid // the ICV would fail
				}
				if r == OK {
					if accepted[s].Add(1) > 1 {
						t.Errorf("number %#x accepted twice", sent)
						return
					}
					for m := maxAccepted.Load(); sent > m && !maxAccepted.CompareAndSwap(m, sent); m = maxAccepted.Load() {
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
	if w.Highest() != maxAccepted.Load() {
		t.Fatalf("Highest() = %#x, highest accepted %#x", w.Highest(), maxAccepted.Load())
	}
	if esn && w.Highest()>>32 != 5 {
		t.Fatalf("Highest() = %#x: the run never crossed into epoch 5", w.Highest())
	}
}
