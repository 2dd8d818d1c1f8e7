package afxdp

import (
	"math"
	"testing"
)

// fakeRing is a ring on plain memory; the test plays the kernel's side by
// moving the shared counters directly.
type fakeRing struct {
	prod, cons, flags uint32
}

func newFakeAddrRing(f *fakeRing, size uint32, producer bool) *addrRing {
	var idx ringIndex
	if producer {
		idx = newProducerIndex(&f.prod, &f.cons, &f.flags, size)
	} else {
		idx = newConsumerIndex(&f.prod, &f.cons, &f.flags, size)
	}
	return &addrRing{idx, make([]uint64, size)}
}

// Starting counters just below 2^32 makes every test cross the wrap.
var ringStarts = []uint32{0, 1, math.MaxUint32 - 5, math.MaxUint32, math.MaxUint32 - 1000}

func TestProducerRingWrap(t *testing.T) {
	const size = 8
	for _, start := range ringStarts {
		f := &fakeRing{prod: start, cons: start}
		r := newFakeAddrRing(f, size, true)
		next := uint64(0) // value the user side writes next
		seen := uint64(0) // value the "kernel" expects next
		for round := 0; round < 100; round++ {
			want := uint32(round%5 + 1)
			idx, got := r.reserve(want)
			free := size - (f.prod - f.cons)
			if got != min(want, free) {
				t.Fatalf("start %#x round %d: reserved %d of %d with %d free", start, round, got, want, free)
			}
			for i := uint32(0); i < got; i++ {
				r.entries[(idx+i)&r.mask] = next
				next++
			}
			r.submit()
			if f.prod-f.cons > size {
				t.Fatalf("start %#x round %d: producer %#x ran more than %d ahead of consumer %#x", start, round, f.prod, size, f.cons)
			}
			// The kernel consumes some, in order.
			take := uint32(round % 4)
			for i := uint32(0); i < take && f.cons != f.prod; i++ {
				if v := r.entries[f.cons&r.mask]; v != seen {
					t.Fatalf("start %#x round %d: kernel read %d, want %d", start, round, v, seen)
				}
				seen++
				f.cons++
			}
		}
		if next == 0 || seen == 0 {
			t.Fatalf("start %#x: nothing moved", start)
		}
	}
}

func TestProducerRingFullAndUnreserve(t *testing.T) {
	f := &fakeRing{prod: math.MaxUint32 - 2, cons: math.MaxUint32 - 2}
	r := newFakeAddrRing(f, 4, true)
	if _, got := r.reserve(10); got != 4 {
		t.Fatalf("reserved %d of an empty 4-slot ring, want 4", got)
	}
	r.unreserve(1)
	r.submit()
	if f.prod-f.cons != 3 {
		t.Fatalf("published %d entries after unreserving one of 4, want 3", f.prod-f.cons)
	}
	if p := r.pending(); p != 3 {
		t.Fatalf("pending %d, want 3", p)
	}
	if _, got := r.reserve(2); got != 1 {
		t.Fatalf("reserved %d with one slot free, want 1", got)
	}
	r.submit()
	if _, got := r.reserve(1); got != 0 {
		t.Fatalf("reserved %d from a full ring", got)
	}
	f.cons += 2 // the kernel frees two slots
	if _, got := r.reserve(3); got != 2 {
		t.Fatalf("reserved %d after the kernel freed 2, want 2", got)
	}
}

func TestConsumerRingWrap(t *testing.T) {
	const size = 16
	for _, start := range ringStarts {
		f := &fakeRing{prod: start, cons: start}
		r := newFakeAddrRing(f, size, false)
		produced, consumed := uint64(0), uint64(0)
		for round := 0; round < 200; round++ {
			// The kernel produces some, never overrunning the consumer.
			put := uint32(round % 7)
			for i := uint32(0); i < put && f.prod-f.cons < size; i++ {
				r.entries[f.prod&r.mask] = produced
				produced++
				f.prod++
			}
			want := uint32(round%3 + 1)
			idx, got := r.peek(want)
			if got > want {
				t.Fatalf("start %#x: peeked %d, asked %d", start, got, want)
			}
			for i := uint32(0); i < got; i++ {
				if v := r.entries[(idx+i)&r.mask]; v != consumed {
					t.Fatalf("start %#x round %d: read %d, want %d", start, round, v, consumed)
				}
				consumed++
			}
			r.release()
			if f.cons != r.cachedCons {
				t.Fatalf("start %#x: consumer %#x not published (%#x)", start, f.cons, r.cachedCons)
			}
		}
		// Drain.
		for {
			idx, got := r.peek(size)
			if got == 0 {
				break
			}
			for i := uint32(0); i < got; i++ {
				if v := r.entries[(idx+i)&r.mask]; v != consumed {
					t.Fatalf("start %#x drain: read %d, want %d", start, v, consumed)
				}
				consumed++
			}
			r.release()
		}
		if consumed != produced {
			t.Fatalf("start %#x: consumed %d of %d", start, consumed, produced)
		}
	}
}

func TestConsumerRingEmpty(t *testing.T) {
	f := &fakeRing{prod: math.MaxUint32, cons: math.MaxUint32}
	r := newFakeAddrRing(f, 4, false)
	if _, got := r.peek(4); got != 0 {
		t.Fatalf("peeked %d from an empty ring", got)
	}
	f.prod += 3 // crosses 2^32
	if n := r.available(1); n != 1 {
		t.Fatalf("available(1) = %d, want 1", n)
	}
	if _, got := r.peek(4); got != 3 {
		t.Fatalf("peeked %d, want 3", got)
	}
}

func TestNeedsWakeup(t *testing.T) {
	f := &fakeRing{}
	r := newFakeAddrRing(f, 4, true)
	if r.needsWakeup() {
		t.Fatal("needsWakeup with flags clear")
	}
	f.flags = ringNeedWakeup
	if !r.needsWakeup() {
		t.Fatal("needsWakeup false with XDP_RING_NEED_WAKEUP set")
	}
	var noFlags ringIndex
	if noFlags.needsWakeup() {
		t.Fatal("needsWakeup on a ring without a flags word")
	}
}

func TestFreeList(t *testing.T) {
	const frames, shift = 100, 11
	f := newFreeList(frames, shift)
	for i := frames - 1; i >= 0; i-- {
		if !f.push(uint64(i) << shift) {
			t.Fatalf("push of frame %d refused", i)
		}
	}
	if f.len() != frames {
		t.Fatalf("len %d, want %d", f.len(), frames)
	}
	a, ok := f.pop()
	if !ok || a != 0 {
		t.Fatalf("pop = %#x, %v; want frame 0", a, ok)
	}
	// A descriptor address inside the frame frees the frame.
	if !f.push(a + 300) {
		t.Fatal("push of an address inside a popped frame refused")
	}
	if b, _ := f.pop(); b != 0 {
		t.Fatalf("pop = %#x, want the frame base 0", b)
	}
	f.push(0)
	if f.push(5) { // same frame again
		t.Fatal("double free accepted")
	}
	if f.push(frames << shift) {
		t.Fatal("push of an address past the last frame accepted")
	}
	if f.doubleFree != 2 {
		t.Fatalf("doubleFree = %d, want 2", f.doubleFree)
	}
	for i := 0; i < frames; i++ {
		if _, ok := f.pop(); !ok {
			t.Fatalf("pop %d failed", i)
		}
	}
	if _, ok := f.pop(); ok {
		t.Fatal("pop from an empty list succeeded")
	}
}

// TestReclaim: Reclaim returns a frame that is not free and ignores one
// that is, without counting a double free (a worker recovering from a
// panic reclaims frames the pipeline may have freed already).
func TestReclaim(t *testing.T) {
	u := newUMEM(make([]byte, 4*2048), UMEMConfig{Frames: 4, FrameSize: 2048})
	a, _ := u.Alloc()
	b, _ := u.Alloc()
	u.Free(a)
	u.Reclaim(a + 100) // free already
	u.Reclaim(b + 100) // in use
	if u.FreeFrames() != 4 || u.free.doubleFree != 0 {
		t.Fatalf("free frames %d (want 4), double frees %d (want 0)", u.FreeFrames(), u.free.doubleFree)
	}
}

func TestFreeListNoAlloc(t *testing.T) {
	f := newFreeList(64, 12)
	for i := 0; i < 64; i++ {
		f.push(uint64(i) << 12)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		a, _ := f.pop()
		f.push(a)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per pop/push", allocs)
	}
}
