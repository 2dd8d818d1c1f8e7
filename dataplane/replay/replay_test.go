package replay

import (
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
