package replay

import (
	"math"
	"testing"
)

// TestResume: after Resume(hi), every number up to hi is refused (inside
// the window Replayed, below it TooOld) and the ones above are accepted
// once, with and without ESN, at the start, mid-word and past 2^32 (where
// the ESN epoch must be inferred from hi: a window that started empty
// would put the low half in epoch 0). Update of the very number is
// refused whatever Check inferred.
func TestResume(t *testing.T) {
	for _, tc := range []struct {
		esn bool
		hi  uint64
	}{
		{false, 1}, {false, 31}, {false, 32}, {false, 5000}, {false, math.MaxUint32 - 3},
		{true, 5000}, {true, 1<<32 + 7}, {true, 3<<32 + 1000}, {true, 1<<32 - 2},
	} {
		w, err := New(1024, tc.esn)
		if err != nil {
			t.Fatal(err)
		}
		w.Resume(tc.hi)
		if w.Highest() != tc.hi {
			t.Fatalf("esn=%v hi=%d: Highest %d after Resume", tc.esn, tc.hi, w.Highest())
		}
		for d := uint64(0); d < 2000 && d < tc.hi; d++ {
			seq := tc.hi - d
			got, r := w.Check(uint32(seq))
			want := Replayed
			if d >= uint64(w.Size()) {
				want = TooOld
			}
			// Left of the window, ESN infers the next epoch (Appendix
			// A2.2 case A): the ICV, over the high half, refuses it.
			nextEpoch := tc.esn && want == TooOld && r == OK && got != seq
			if !nextEpoch && (r != want || (r == Replayed && got != seq)) {
				t.Fatalf("esn=%v hi=%d: Check(%d) = %d, %v; want %v", tc.esn, tc.hi, seq, got, r, want)
			}
			if u := w.Update(seq); u == OK {
				t.Fatalf("esn=%v hi=%d: Update(%d) accepted after Resume", tc.esn, tc.hi, seq)
			}
		}
		for seq := tc.hi + 1; seq < tc.hi+70 && (tc.esn || seq <= math.MaxUint32); seq++ {
			got, r := w.Check(uint32(seq))
			if r != OK || got != seq {
				t.Fatalf("esn=%v hi=%d: Check(%d) = %d, %v; want it accepted", tc.esn, tc.hi, seq, got, r)
			}
			if u := w.Update(seq); u != OK {
				t.Fatalf("esn=%v hi=%d: Update(%d) = %v", tc.esn, tc.hi, seq, u)
			}
			if u := w.Update(seq); u != Replayed {
				t.Fatalf("esn=%v hi=%d: second Update(%d) = %v", tc.esn, tc.hi, seq, u)
			}
		}
	}
	// A window in use is left alone.
	w, _ := New(64, false)
	w.Update(10)
	w.Resume(1000)
	if w.Highest() != 10 {
		t.Fatalf("Resume changed a window in use: Highest %d", w.Highest())
	}
}
