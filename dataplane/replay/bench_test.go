package replay

import (
	"sync"
	"sync/atomic"
	"testing"
)

// The benchmarks run the receive path's two calls, Check then Update, per
// packet. The "Mutex" variants wrap the same calls in a sync.Mutex: the
// price of a lock on every packet, measured side by side.
//
// The windows use ESN, so the parallel benchmarks stand in for the ICV:
// a worker that stalls while the others move more than a window ahead
// sees its packet inferred into the next epoch (RFC 4303 A2.2 case A),
// which the real ICV rejects because it covers the high half; here the
// inferred number is compared with the one sent instead.

func benchWindow(b *testing.B) *Window {
	w, err := New(1024, true)
	if err != nil {
		b.Fatal(err)
	}
	return w
}

func BenchmarkInOrder(b *testing.B) {
	w := benchWindow(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		seq, r := w.Check(uint32(i + 1))
		if r == OK {
			w.Update(seq)
		}
	}
}

// reorder is a fixed permutation of 0..63 applied to each run of 64
// numbers: packets arrive up to 63 places out of order.
var reorder = func() [64]uint32 {
	var p [64]uint32
	for i := range p {
		p[i] = uint32(i*37) % 64 // 37 is coprime with 64
	}
	return p
}()

func BenchmarkReordered(b *testing.B) {
	w := benchWindow(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s := uint32(i)&^63 + reorder[i&63] + 1
		seq, r := w.Check(s)
		if r == OK {
			w.Update(seq)
		}
	}
}

// BenchmarkDuplicates offers every number twice: half the packets are
// rejected by Check.
func BenchmarkDuplicates(b *testing.B) {
	w := benchWindow(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		seq, r := w.Check(uint32(i/2 + 1))
		if r == OK {
			w.Update(seq)
		}
	}
}

// BenchmarkParallel: all workers on one SA, as with one AWS tunnel, each
// taking the next number from a shared counter (so arrival is slightly
// reordered between workers, as on a real multi-queue receive).
func BenchmarkParallel(b *testing.B) {
	w := benchWindow(b)
	var next atomic.Uint32
	var rejected atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sent := next.Add(1)
			seq, r := w.Check(sent)
			if r == OK && seq == uint64(sent) { // the ICV stand-in
				r = w.Update(seq)
			}
			if r != OK {
				rejected.Add(1)
			}
		}
	})
	b.ReportMetric(float64(rejected.Load())/float64(b.N), "rejected/op")
}

// BenchmarkParallelBatch: each worker reserves a batch of 32 numbers with
// one atomic add and runs them, the shape of a real worker loop; workers
// then contend on the window only, not on a shared counter per packet.
func BenchmarkParallelBatch(b *testing.B) {
	w := benchWindow(b)
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var base, i uint32 = 0, 32
		for pb.Next() {
			if i == 32 {
				base, i = next.Add(32)-32, 0
			}
			i++
			seq, r := w.Check(base + i)
			if r == OK && seq == uint64(base+i) { // the ICV stand-in
				w.Update(seq)
			}
		}
	})
}

func BenchmarkInOrderMutex(b *testing.B) {
	w := benchWindow(b)
	var mu sync.Mutex
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		mu.Lock()
		seq, r := w.Check(uint32(i + 1))
		if r == OK {
			w.Update(seq)
		}
		mu.Unlock()
	}
}

func BenchmarkParallelMutex(b *testing.B) {
	w := benchWindow(b)
	var mu sync.Mutex
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s := next.Add(1)
			mu.Lock()
			seq, r := w.Check(s)
			if r == OK && seq == uint64(s) { // the ICV stand-in
				w.Update(seq)
			}
			mu.Unlock()
		}
	})
}
