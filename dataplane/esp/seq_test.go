package esp

import (
	"sync"
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
)

func TestReserveSeqFirstIsOne(t *testing.T) {
	out, _ := newPair(t, transform.Suites()[0], pairOpts{})
	if f, ok := out.ReserveSeq(3); !ok || f != 1 {
		t.Fatalf("ReserveSeq(3) = %d, %v; want 1, true", f, ok)
	}
	if f, ok := out.ReserveSeq(1); !ok || f != 4 {
		t.Fatalf("ReserveSeq(1) = %d, %v; want 4, true", f, ok)
	}
	if _, ok := out.ReserveSeq(0); ok {
		t.Fatal("ReserveSeq(0) succeeded")
	}
}

func TestReserveSeqWrapStop(t *testing.T) {
	for _, esn := range []bool{false, true} {
		out, _ := newPair(t, transform.Suites()[0], pairOpts{esn: esn, softLimit: 0})
		limit := uint64(1<<32 - 1)
		if esn {
			limit = 1<<64 - 1
		}
		out.seq.Store(limit - 10)
		if f, ok := out.ReserveSeq(8); !ok || f != limit-9 {
			t.Fatalf("esn=%v: ReserveSeq(8) = %d, %v; want %d", esn, f, ok, limit-9)
		}
		if !out.RekeySoon() {
			t.Errorf("esn=%v: RekeySoon false near the limit", esn)
		}
		if out.MustRekey() {
			t.Fatalf("esn=%v: MustRekey before exhaustion", esn)
		}
		// 2 numbers left (limit-1, limit); asking for 3 must refuse.
		if _, ok := out.ReserveSeq(3); ok {
			t.Fatalf("esn=%v: ReserveSeq(3) past the limit succeeded", esn)
		}
		if !out.MustRekey() {
			t.Fatalf("esn=%v: MustRekey not set after refusal", esn)
		}
		// Once refused, always refused, even for what would still fit.
		if _, ok := out.ReserveSeq(1); ok {
			t.Fatalf("esn=%v: ReserveSeq(1) after MustRekey succeeded", esn)
		}
		// encapBatch reports SeqExhausted for the whole batch.
		p := inner4(64, 0, false, 0)
		b, off := frame(p)
		res := make([]Reason, 1)
		if n := encapBatch(out, [][]byte{b}, []int{off}, []int{len(p)}, res); n != 0 || res[0] != SeqExhausted {
			t.Fatalf("esn=%v: encapBatch after exhaustion = %d, %v", esn, n, res[0])
		}
	}
}

// TestReserveSeqExactLastNumber: the very last number is usable.
func TestReserveSeqExactLastNumber(t *testing.T) {
	for _, esn := range []bool{false, true} {
		out, _ := newPair(t, transform.Suites()[0], pairOpts{esn: esn})
		limit := uint64(1<<32 - 1)
		if esn {
			limit = 1<<64 - 1
		}
		out.seq.Store(limit - 1)
		if f, ok := out.ReserveSeq(1); !ok || f != limit {
			t.Fatalf("esn=%v: last number: %d, %v", esn, f, ok)
		}
		if _, ok := out.ReserveSeq(1); ok || !out.MustRekey() {
			t.Fatalf("esn=%v: past the last number not refused", esn)
		}
	}
}

func TestSoftLimit(t *testing.T) {
	out, _ := newPair(t, transform.Suites()[0], pairOpts{softLimit: 100})
	if _, ok := out.ReserveSeq(99); !ok || out.RekeySoon() {
		t.Fatalf("RekeySoon %v below the soft limit", out.RekeySoon())
	}
	if _, ok := out.ReserveSeq(1); !ok || !out.RekeySoon() {
		t.Fatal("RekeySoon not raised at the soft limit")
	}
	if out.MustRekey() {
		t.Fatal("MustRekey at the soft limit")
	}
}

// TestReserveSeqConcurrent: workers sharing an SA near the 32-bit and the
// 64-bit limit get disjoint numbers, none past the limit, and together
// use up every number (the refused batch aside).
func TestReserveSeqConcurrent(t *testing.T) {
	for _, esn := range []bool{false, true} {
		out, _ := newPair(t, transform.Suites()[0], pairOpts{esn: esn})
		limit := uint64(1<<32 - 1)
		if esn {
			limit = 1<<64 - 1
		}
		const start = 100000
		out.seq.Store(limit - start)
		const workers, batch = 4, 7
		got := make([][]uint64, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					f, ok := out.ReserveSeq(batch)
					if !ok {
						return
					}
					got[w] = append(got[w], f)
				}
			}()
		}
		wg.Wait()
		seen := map[uint64]bool{}
		for _, fs := range got {
			for _, f := range fs {
				for s := f; s < f+batch; s++ {
					if s > limit || s <= limit-start {
						t.Fatalf("esn=%v: number %d outside (%d, %d]", esn, s, limit-start, limit)
					}
					if seen[s] {
						t.Fatalf("esn=%v: number %d handed out twice", esn, s)
					}
					seen[s] = true
				}
			}
		}
		if len(seen) < start-batch*workers {
			t.Fatalf("esn=%v: only %d of %d numbers used", esn, len(seen), start)
		}
		if !out.MustRekey() {
			t.Fatalf("esn=%v: MustRekey not set", esn)
		}
	}
}

// TestExternalSeq: with Config.Seq the counter lives outside the SA (the
// mmap'd sa_counters.seq in cgw-dataplane): a second SA built on the same
// counter, as after a dataplane restart, continues the sequence, and the
// limit is enforced on the shared value.
func TestExternalSeq(t *testing.T) {
	s := transform.Suites()[0]
	c, err := transform.New(s, keymatFor(s, 1))
	if err != nil {
		t.Fatal(err)
	}
	var ctr uint64
	a, err := NewSA(Config{SPI: 0x100, Cipher: c, Seq: &ctr})
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := a.ReserveSeq(5); !ok || f != 1 || ctr != 5 {
		t.Fatalf("ReserveSeq(5) = %d, %v, counter %d; want 1, true, 5", f, ok, ctr)
	}
	b, err := NewSA(Config{SPI: 0x100, Cipher: c, Seq: &ctr})
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := b.ReserveSeq(1); !ok || f != 6 {
		t.Fatalf("restarted SA: ReserveSeq(1) = %d, %v; want 6, true", f, ok)
	}
	ctr = 1<<32 - 2
	if _, ok := b.ReserveSeq(2); ok || !b.MustRekey() {
		t.Fatalf("ReserveSeq past 2^32-1 on the shared counter succeeded (MustRekey %v)", b.MustRekey())
	}
}
