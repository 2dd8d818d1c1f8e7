package replay

import (
	"math"
	"testing"
)

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
