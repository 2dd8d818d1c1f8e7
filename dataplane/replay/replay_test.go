package replay

import (
	"math"
	"strings"
	"testing"
)

// accept runs one packet through the receive path as ESP does: Check, then
// (the ICV having verified) Update. It returns the inferred sequence
// number and the first non-OK result, or OK.
func accept(w *Window, lo uint32) (uint64, Result) {
	seq, r := w.Check(lo)
	if r != OK {
		return seq, r
	}
	return seq, w.Update(seq)
}

// walkTo moves a fresh window's top to target through the public API only,
// in jumps of at most 2^31 so that ESN inference follows each one.
func walkTo(t testing.TB, w *Window, target uint64) {
	t.Helper()
	for top := w.Highest(); top < target; top = w.Highest() {
		next := target
		if next-top > 1<<31 {
			next = top + 1<<31
		}
		seq, r := accept(w, uint32(next))
		if r != OK || seq != next {
			t.Fatalf("walking to %#x: packet %#x gave %#x, %v", target, uint32(next), seq, r)
		}
	}
}

func mustNew(t testing.TB, size int, esn bool) *Window {
	t.Helper()
	w, err := New(size, esn)
	if err != nil {
		t.Fatalf("New(%d, %v): %v", size, esn, err)
	}
	return w
}

func TestNewSizes(t *testing.T) {
	for _, bad := range []int{-1, 0, 1, 32, 63, 65537, 1 << 20} {
		w, err := New(bad, false)
		if err == nil || w != nil {
			t.Errorf("New(%d) = %v, %v; want an error", bad, w, err)
			continue
		}
		if !strings.Contains(err.Error(), "64–65536") {
			t.Errorf("New(%d) error %q does not tell the allowed range", bad, err)
		}
	}
	for _, c := range []struct{ in, want int }{
		{64, 64}, {65, 128}, {100, 128}, {128, 128}, {1000, 1024}, {1024, 1024},
		{1025, 1088}, {2048, 2048}, {4096, 4096}, {65535, 65536}, {65536, 65536},
	} {
		w := mustNew(t, c.in, false)
		if w.Size() != c.want {
			t.Errorf("New(%d).Size() = %d, want %d", c.in, w.Size(), c.want)
		}
		n := len(w.ring)
		if n&(n-1) != 0 || n*blockBits < c.want+blockBits {
			t.Errorf("New(%d): ring of %d words cannot hold the window plus a spare block", c.in, n)
		}
		if w.Highest() != 0 {
			t.Errorf("New(%d).Highest() = %d, want 0", c.in, w.Highest())
		}
	}
}

func TestResultString(t *testing.T) {
	want := map[Result]string{OK: "ok", Replayed: "replayed", TooOld: "too_old", Invalid: "invalid_seq", 0: "Result(0)"}
	for r, s := range want {
		if r.String() != s {
			t.Errorf("Result(%d).String() = %q, want %q", uint8(r), r.String(), s)
		}
	}
}

func TestInOrder(t *testing.T) {
	for _, esn := range []bool{false, true} {
		w := mustNew(t, 128, esn)
		for s := uint64(1); s <= 5*128+7; s++ {
			seq, r := w.Check(uint32(s))
			if seq != s || r != OK {
				t.Fatalf("esn=%v: Check(%d) = %d, %v; want %d, ok", esn, s, seq, r, s)
			}
			if r := w.Update(seq); r != OK {
				t.Fatalf("esn=%v: Update(%d) = %v", esn, s, r)
			}
			if w.Highest() != s {
				t.Fatalf("esn=%v: Highest() = %d after %d", esn, w.Highest(), s)
			}
			if _, r := w.Check(uint32(s)); r != Replayed {
				t.Fatalf("esn=%v: second Check(%d) = %v, want replayed", esn, s, r)
			}
			if r := w.Update(s); r != Replayed {
				t.Fatalf("esn=%v: second Update(%d) = %v, want replayed", esn, s, r)
			}
		}
	}
}

func TestZeroIsInvalid(t *testing.T) {
	for _, esn := range []bool{false, true} {
		w := mustNew(t, 64, esn)
		if _, r := w.Check(0); r != Invalid {
			t.Errorf("esn=%v: Check(0) = %v, want invalid", esn, r)
		}
		if r := w.Update(0); r != Invalid {
			t.Errorf("esn=%v: Update(0) = %v, want invalid", esn, r)
		}
		if w.Highest() != 0 {
			t.Errorf("esn=%v: Highest() = %d after rejects", esn, w.Highest())
		}
	}
}

func TestReorderedWithinWindow(t *testing.T) {
	const size = 1024
	w := mustNew(t, size, false)
	const top = 5000
	if _, r := accept(w, top); r != OK {
		t.Fatalf("first packet %d: %v", top, r)
	}
	// Every number still inside the window, newest first (worst order for
	// a shifting implementation), is accepted once.
	for s := uint32(top - 1); s > top-size; s-- {
		if _, r := accept(w, s); r != OK {
			t.Fatalf("late packet %d (top %d): %v", s, top, r)
		}
	}
	if _, r := accept(w, top-size); r != TooOld {
		t.Fatalf("packet %d just left of the window: %v, want too_old", top-size, r)
	}
	// Interleaved: odd numbers ahead first, then the even ones late.
	for s := uint32(top + 1); s < top+200; s += 2 {
		if _, r := accept(w, s); r != OK {
			t.Fatalf("packet %d: %v", s, r)
		}
	}
	for s := uint32(top + 2); s < top+200; s += 2 {
		if _, r := accept(w, s); r != OK {
			t.Fatalf("late even packet %d: %v", s, r)
		}
	}
	for s := uint32(top - 100); s < top+200; s++ {
		if _, r := accept(w, s); r != Replayed {
			t.Fatalf("duplicate %d: %v, want replayed", s, r)
		}
	}
}

// TestEdges checks each window size at both edges: the newest number and
// the oldest one still inside, then one past each.
func TestEdges(t *testing.T) {
	for _, size := range []int{64, 65, 100, 128, 1000, 1024, 1025, 2048, 4096, 65536} {
		w := mustNew(t, size, false)
		W := uint32(w.Size())
		top := 3*W + 17 // not on a word boundary
		if _, r := accept(w, top); r != OK {
			t.Fatalf("size %d: packet %d: %v", size, top, r)
		}
		for _, c := range []struct {
			seq  uint32
			want Result
		}{
			{top, Replayed},
			{top - W, TooOld}, // one left of the window
			{top - W + 1, OK}, // the oldest inside
			{top - W + 1, Replayed},
			{top - W + 2, OK},
			{1, TooOld},
			{top + 1, OK},         // the window slides by one...
			{top - W + 1, TooOld}, // ...and its old bottom drops out
			{top - W + 2, Replayed},
			{top - W + 3, OK},
		} {
			if _, r := accept(w, c.seq); r != c.want {
				t.Fatalf("size %d (in force %d): packet %d: %v, want %v", size, W, c.seq, r, c.want)
			}
		}
	}
}

// TestFarJump jumps further than the window, including by exact multiples
// of the ring's span (the same ring word, stale bits must not survive).
func TestFarJump(t *testing.T) {
	for _, size := range []int{64, 1024, 2048} {
		w := mustNew(t, size, false)
		W := uint64(w.Size())
		span := uint64(len(w.ring)) * blockBits
		top := uint64(0)
		for s := uint64(1); s <= W; s++ { // fill the whole window
			if _, r := accept(w, uint32(s)); r != OK {
				t.Fatalf("size %d: fill %d: %v", size, s, r)
			}
			top = s
		}
		for _, jump := range []uint64{W + 1, span, span - 1, span + 1, 2 * span, 10*W + 3, 3 * span} {
			old := top
			top += jump
			if _, r := accept(w, uint32(top)); r != OK {
				t.Fatalf("size %d: jump by %d to %d: %v", size, jump, top, r)
			}
			// Everything inside the new window except top is unseen, even
			// numbers whose bits were set in the same words before.
			for s := top - W + 1; s < top; s++ {
				seq, r := w.Check(uint32(s))
				if r != OK || seq != s {
					t.Fatalf("size %d, jump %d: %d inside the new window: %d, %v; want ok", size, jump, s, seq, r)
				}
			}
			for _, s := range []uint64{old, old - 1, top - W} {
				if _, r := w.Check(uint32(s)); r != TooOld {
					t.Fatalf("size %d, jump %d: old %d: %v, want too_old", size, jump, s, r)
				}
			}
			// Refill the new window so the next jump starts from a full map.
			for s := top - W + 1; s < top; s++ {
				if _, r := accept(w, uint32(s)); r != OK {
					t.Fatalf("size %d: refill %d: %v", size, s, r)
				}
			}
		}
	}
}

// TestSlideAcrossWords advances by steps around the word size and compares
// every number of the window against a reference after each step.
func TestSlideAcrossWords(t *testing.T) {
	for _, size := range []int{64, 128, 192} {
		w := mustNew(t, size, false)
		m := newModel(w.Size(), false)
		top := uint64(0)
		for i, step := range []uint64{1, 31, 32, 33, 1, 63, 64, 65, 127, 128, 129, 5, 31, 97, 64, 64, 200} {
			top += step
			if got, want := w.Update(top), m.update(top); got != want {
				t.Fatalf("size %d, step %d: Update(%d) = %v, model %v", size, i, top, got, want)
			}
			// Accept every third number of the window, then compare all.
			for s := top - min(top, uint64(w.Size())) + 1; s < top; s += 3 {
				if got, want := w.Update(s), m.update(s); got != want {
					t.Fatalf("size %d, step %d: Update(%d) = %v, model %v", size, i, s, got, want)
				}
			}
			for s := top - min(top, 2*uint64(w.Size())); s <= top+70; s++ {
				_, got := w.Check(uint32(s))
				_, want := m.check(uint32(s))
				if got != want {
					t.Fatalf("size %d, step %d (top %d): Check(%d) = %v, model %v", size, i, top, s, got, want)
				}
			}
		}
	}
}

// TestESNEpochWrap crosses the 2^32 boundaries of the low half, checking
// RFC 4303 Appendix A2.2 cases A and B and late packets of the previous
// epoch.
func TestESNEpochWrap(t *testing.T) {
	const size = 1024
	w := mustNew(t, size, true)
	walkTo(t, w, 0x2_FFFF_FC00)
	steps := []struct {
		lo      uint32
		wantSeq uint64
		want    Result
	}{
		{0xFFFF_FC01, 0x2_FFFF_FC01, OK},
		{0xFFFF_FFF0, 0x2_FFFF_FFF0, OK},
		{0xFFFF_FFFF, 0x2_FFFF_FFFF, OK},
		{0x0000_0000, 0x3_0000_0000, OK}, // low half 0 is valid in a later epoch
		{0x0000_0005, 0x3_0000_0005, OK}, // case A, Seql < Bl: Th+1
		// Now top = 0x3_0000_0005, Tl < W-1: case B. Late packets from
		// epoch 2 still inside the window are inferred with Th−1.
		{0xFFFF_FFF0, 0x2_FFFF_FFF0, Replayed},
		{0xFFFF_FFF1, 0x2_FFFF_FFF1, OK},
		{0xFFFF_FC06, 0x2_FFFF_FC06, OK},       // Bl, the bottom of the window: 0x3_00000005−1023
		{0x0000_0003, 0x3_0000_0003, OK},       // late, this epoch
		{0x0000_0000, 0x3_0000_0000, Replayed}, // duplicate of the first packet of epoch 3
		{0x0000_0006, 0x3_0000_0006, OK},
	}
	for i, s := range steps {
		seq, r := accept(w, s.lo)
		if seq != s.wantSeq || r != s.want {
			t.Fatalf("step %d: packet %#x: inferred %#x, %v; want %#x, %v (top %#x)", i, s.lo, seq, r, s.wantSeq, s.want, w.Highest())
		}
	}
	if w.Highest() != 0x3_0000_0006 {
		t.Fatalf("Highest() = %#x, want 0x300000006", w.Highest())
	}
	// One below Bl: case B infers Th, a number far ahead (a forged or
	// hopelessly late packet then fails its ICV).
	if seq, r := w.Check(0xFFFF_FC06); seq != 0x3_FFFF_FC06 || r != OK {
		t.Fatalf("0xFFFFFC06 below Bl: %#x, %v; want 0x3FFFFFC06 ok", seq, r)
	}
	if seq, r := w.Check(0xFFFF_FC07); seq != 0x2_FFFF_FC07 || r != OK {
		t.Fatalf("0xFFFFFC07 at Bl: %#x, %v; want 0x2FFFFFC07 ok", seq, r)
	}
	// Moving well into epoch 3 (case A again) pushes epoch 2 out.
	walkTo(t, w, 0x3_0000_1000)
	if seq, r := w.Check(0xFFFF_FFF2); seq != 0x3_FFFF_FFF2 || r != OK {
		t.Fatalf("after moving on, 0xFFFFFFF2 inferred %#x, %v; want 0x3FFFFFFF2 (case A, ahead), ok", seq, r)
	}
	if seq, r := w.Check(0x0000_0C01); seq != 0x3_0000_0C01 || r != OK {
		t.Fatalf("0xC01: %#x, %v; want 0x300000C01 ok", seq, r)
	}
	if seq, r := w.Check(0x0000_0C00); seq != 0x4_0000_0C00 || r != OK {
		t.Fatalf("0xC00 (one below Bl): %#x, %v; want 0x400000C00 ok", seq, r)
	}
}

// TestESNAround0x260000005 follows the shape of VPP's ESN anti-replay
// test: a window whose top is 0x260000005 (case A, high half 2).
func TestESNAround0x260000005(t *testing.T) {
	const top = 0x2_6000_0005
	for _, size := range []int{64, 1024, 2048} {
		w := mustNew(t, size, true)
		walkTo(t, w, top)
		W := uint64(w.Size())
		// One below Bl is the next epoch (checked only: accepting it
		// would move the window there).
		if seq, r := w.Check(uint32(top - W)); seq != 0x3_0000_0000|uint64(uint32(top-W)) || r != OK {
			t.Fatalf("size %d: %#x below Bl: %#x, %v; want epoch 3, ok", size, uint32(top-W), seq, r)
		}
		for _, c := range []struct {
			lo      uint32
			wantSeq uint64
			want    Result
		}{
			{0x6000_0005, top, Replayed},
			{uint32(top - W + 1), top - W + 1, OK},
			{0x6000_0004, top - 1, OK},
			{0x6000_0004, top - 1, Replayed},
			{0x6000_0006, top + 1, OK},
			{0x6000_0005, top, Replayed},
			{0x0000_0001, 0x3_0000_0001, OK}, // a jump into epoch 3 (case A, below Bl)
			{0xFFFF_FFFF, 0x2_FFFF_FFFF, OK}, // now case B: late from epoch 2
		} {
			seq, r := accept(w, c.lo)
			if seq != c.wantSeq || r != c.want {
				t.Fatalf("size %d: packet %#x: %#x, %v; want %#x, %v", size, c.lo, seq, r, c.wantSeq, c.want)
			}
		}
	}
}

// TestESNFirstEpoch: before anything is received, or while the window
// still reaches below 1, numbers from "epoch −1" are too old, not wrapped.
func TestESNFirstEpoch(t *testing.T) {
	w := mustNew(t, 1024, true)
	for _, c := range []struct {
		lo      uint32
		wantSeq uint64
		want    Result
	}{
		{0xFFFF_FFFF, 0xFFFF_FFFF, TooOld},
		{0xFFFF_FC01, 0xFFFF_FC01, TooOld},
		{0xFFFF_FC00, 0xFFFF_FC00, OK}, // below Bl: epoch 0, far ahead
		{0, 0x1_0000_0000, OK},         // case A now: below Bl means epoch 1
	} {
		seq, r := accept(w, c.lo)
		if seq != c.wantSeq || r != c.want {
			t.Fatalf("packet %#x: %#x, %v; want %#x, %v", c.lo, seq, r, c.wantSeq, c.want)
		}
	}
	w = mustNew(t, 1024, true)
	if seq, r := accept(w, 0); seq != 0 || r != Invalid {
		t.Fatalf("fresh ESN window, packet 0: %#x, %v; want 0 invalid", seq, r)
	}
}

// Test32BitBoundary: without ESN the counter ends at 0xFFFFFFFF and never
// wraps (RFC 4303 §3.3.3).
func Test32BitBoundary(t *testing.T) {
	w := mustNew(t, 1024, false)
	walkTo(t, w, 0xFFFF_FF00)
	for _, c := range []struct {
		lo   uint32
		want Result
	}{
		{0xFFFF_FFFE, OK},
		{0xFFFF_FFFF, OK},
		{0xFFFF_FFFF, Replayed},
		{0, Invalid},
		{1, TooOld}, // a sender that wrapped: its packets are old, never a new epoch
		{5, TooOld},
		{0xFFFF_FC00, OK}, // 1023 below top: the oldest inside
		{0xFFFF_FBFF, TooOld},
		{0xFFFF_FF80, OK},
	} {
		seq, r := accept(w, c.lo)
		if seq != uint64(c.lo) || r != c.want {
			t.Fatalf("packet %#x: %#x, %v; want %v", c.lo, seq, r, c.want)
		}
	}
	if r := w.Update(1 << 32); r != Invalid {
		t.Fatalf("Update(2^32) without ESN = %v, want invalid", r)
	}
	if r := w.Update(math.MaxUint64); r != Invalid {
		t.Fatalf("Update(2^64-1) without ESN = %v, want invalid", r)
	}
	if w.Highest() != 0xFFFF_FFFF {
		t.Fatalf("Highest() = %#x", w.Highest())
	}
}

// TestUpdateFarAhead: Update refuses what Check can never infer.
func TestUpdateFarAhead(t *testing.T) {
	w := mustNew(t, 64, true)
	walkTo(t, w, 1000)
	if r := w.Update(1000 + 1<<32); r != Invalid {
		t.Fatalf("Update(top+2^32) = %v, want invalid", r)
	}
	if r := w.Update(1000 + 1<<32 - 1); r != OK {
		t.Fatalf("Update(top+2^32-1) = %v, want ok", r)
	}
}

// TestWireGuardSequence is the accept/reject sequence of wireguard-go's
// replay test (itself from the Linux kernel's WireGuard selftest), mapped
// onto ESP semantics: WireGuard counters start at 0 and its filter admits
// windowSize+1 positions, ESP numbers start at 1 and the window admits
// Size() positions; so WireGuard counter n is ESP number n+1 and its
// windowSize is Size()−1. WireGuard's reject-after limit becomes the end
// of the 32-bit space (numbers ≥ 2^32 are 0 or old on the wire).
func TestWireGuardSequence(t *testing.T) {
	for _, size := range []int{64, 1024, 2048} {
		w := mustNew(t, size, false)
		ws := uint64(w.Size() - 1)
		lim := ws + 1          // T_LIM
		const reject = 1 << 32 // first ESP number that cannot be sent, as a counter: 2^32−1
		n := 0
		T := func(counter uint64, want bool) {
			t.Helper()
			n++
			seq := counter + 1
			_, r := accept(w, uint32(seq))
			if seq > math.MaxUint32 && r == OK {
				t.Fatalf("size %d, case %d: number %#x beyond 32 bits accepted", size, n, seq)
			}
			if (r == OK) != want {
				t.Fatalf("size %d, case %d: counter %d (ESP %d): %v, want accepted=%v", size, n, counter, seq, r, want)
			}
		}
		R := uint64(reject - 1) // counter of ESP number 2^32
		T(0, true)
		T(1, true)
		T(1, false)
		T(9, true)
		T(8, true)
		T(7, true)
		T(7, false)
		T(lim, true)
		T(lim-1, true)
		T(lim-1, false)
		T(lim-2, true)
		T(2, true)
		T(2, false)
		T(lim+16, true)
		T(3, false)
		T(lim+16, false)
		T(lim*4, true)
		T(lim*4-(lim-1), true)
		T(10, false)
		T(lim*4-lim, false)
		T(lim*4-(lim+1), false)
		T(lim*4-(lim-2), true)
		T(lim*4+1-lim, false)
		T(0, false)
		T(R, false)
		T(R-1, true)
		T(R, false)
		T(R-1, false)
		T(R-2, true)
		T(R+1, false)
		T(R+2, false)
		T(R-2, false)
		T(R-3, true)
		T(0, false)

		fresh := func() { w = mustNew(t, size, false); n = 0 }
		fresh()
		for i := uint64(1); i <= ws; i++ {
			T(i, true)
		}
		T(0, true)
		T(0, false)

		fresh()
		for i := uint64(2); i <= ws+1; i++ {
			T(i, true)
		}
		T(1, true)
		T(0, false)

		fresh()
		for i := ws + 1; i > 0; i-- {
			T(i, true)
		}

		fresh()
		for i := ws + 2; i > 1; i-- {
			T(i, true)
		}
		T(0, false)

		fresh()
		for i := ws; i > 0; i-- {
			T(i, true)
		}
		T(ws+1, true)
		T(0, false)

		fresh()
		for i := ws; i > 0; i-- {
			T(i, true)
		}
		T(0, true)
		T(ws+1, true)
	}
}

func TestNoAllocations(t *testing.T) {
	for _, esn := range []bool{false, true} {
		w := mustNew(t, 1024, esn)
		seq := uint32(0)
		allocs := testing.AllocsPerRun(10000, func() {
			seq += 3
			s, r := w.Check(seq)
			if r == OK {
				w.Update(s)
			}
			s, _ = w.Check(seq - 1) // a late one
			w.Update(s)
			w.Update(s) // and its duplicate
			_ = w.Highest()
		})
		if allocs != 0 {
			t.Fatalf("esn=%v: %v allocations per Check/Update, want 0", esn, allocs)
		}
	}
}

// TestSweepNeverLowersTag: a sweep running late (its advance long
// overtaken) must not reset a word that already describes a newer block,
// or the newer block's bits would be lost and a duplicate accepted.
func TestSweepNeverLowersTag(t *testing.T) {
	w := mustNew(t, 64, false) // 4 ring words of 32 numbers
	if len(w.ring) != 4 {
		t.Fatalf("ring of %d words, the test assumes 4", len(w.ring))
	}
	if r := w.Update(300); r != OK { // block 9, word 1
		t.Fatalf("Update(300) = %v", r)
	}
	before := w.ring[1].Load()
	w.sweep(0, 6*blockBits) // a stale sweep of blocks 3..5; block 5 is word 1
	if got := w.ring[1].Load(); got != before {
		t.Fatalf("stale sweep changed word 1 from %#x to %#x", before, got)
	}
	if _, r := w.Check(300); r != Replayed {
		t.Fatalf("after a stale sweep, 300 is %v, want replayed", r)
	}
	if r := w.Update(300); r != Replayed {
		t.Fatalf("after a stale sweep, Update(300) = %v, want replayed", r)
	}
}

// TestInterleavings replays, step by step, the interleavings of Update's
// argument that a scheduler rarely produces: mark (the accepting CAS) of
// a worker whose view of the top is stale, against a slide by another.
func TestInterleavings(t *testing.T) {
	w := mustNew(t, 64, false) // 4 ring words: blocks b and b+4 share a word
	span := uint64(len(w.ring)) * blockBits
	const s = 300
	if r := w.Update(s - 10); r != OK {
		t.Fatalf("Update(%d) = %v", s-10, r)
	}
	// Worker A has seen top = s−10 and is about to mark s. Worker B
	// accepts s+span (same word, newer block) and slides the window.
	if r := w.Update(s + span); r != OK {
		t.Fatalf("B: Update(%d) = %v", s+span, r)
	}
	// A's mark must not touch B's word: s is too old now.
	before := w.ring[(s/blockBits)&w.mask].Load()
	if r := w.mark(s); r != TooOld {
		t.Fatalf("A: stale mark(%d) after the slide = %v, want too_old", s, r)
	}
	if after := w.ring[(s/blockBits)&w.mask].Load(); after != before {
		t.Fatalf("A's stale mark changed the word from %#x to %#x", before, after)
	}
	if _, r := w.Check(uint32(s + span)); r != Replayed {
		t.Fatalf("B's number after A's stale mark: %v, want replayed", r)
	}

	// The other order: A marks s first (the word then holds s's block),
	// then B marks s+span: B replaces the block (s is left of B's window)
	// and a late retry of s by anyone is too old, never accepted twice.
	w = mustNew(t, 64, false)
	if r := w.mark(s); r != OK {
		t.Fatalf("A: mark(%d) = %v", s, r)
	}
	if r := w.mark(s); r != Replayed {
		t.Fatalf("A again: mark(%d) = %v, want replayed", s, r)
	}
	if r := w.Update(s + span); r != OK {
		t.Fatalf("B: Update(%d) = %v", s+span, r)
	}
	if r := w.mark(s); r != TooOld {
		t.Fatalf("retry: mark(%d) after B = %v, want too_old", s, r)
	}

	// A sweep (B's slide) and a mark of a number in a skipped block, in
	// either order, both keep the mark.
	for _, markFirst := range []bool{true, false} {
		w = mustNew(t, 64, false)
		if r := w.Update(10); r != OK {
			t.Fatal(r)
		}
		const mid = 70 // block 2, skipped by a slide from 10 to 100 (block 3)
		if markFirst {
			if r := w.mark(mid); r != OK {
				t.Fatalf("mark(%d) = %v", mid, r)
			}
			w.sweep(10, 100)
		} else {
			w.sweep(10, 100)
			if r := w.mark(mid); r != OK {
				t.Fatalf("mark(%d) after the sweep = %v", mid, r)
			}
		}
		w.top.Store(100)
		if _, r := w.Check(mid); r != Replayed {
			t.Fatalf("markFirst=%v: %d after mark and sweep: %v, want replayed", markFirst, mid, r)
		}
	}
}
