package replay

import (
	"math"
	"testing"
)

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
