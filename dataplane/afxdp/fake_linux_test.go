package afxdp

import (
	"testing"
)

// fakeKernel plays the kernel's side of a Socket's four rings on plain
// memory, so the per-packet cost of the Go side can be measured and its
// allocations counted without a device.
type fakeKernel struct {
	fill, comp, rx, tx fakeRing
	s                  *Socket
}

func newFakeSocket(u *UMEM, size uint32) *fakeKernel {
	k := &fakeKernel{}
	q := &queueRings{
		fill: addrRing{newProducerIndex(&k.fill.prod, &k.fill.cons, &k.fill.flags, 2*size), make([]uint64, 2*size)},
		comp: addrRing{newConsumerIndex(&k.comp.prod, &k.comp.cons, &k.comp.flags, size), make([]uint64, size)},
	}
	k.s = &Socket{
		u: u, q: q, needWakeup: true, // flags stay 0: no syscalls
		rx: descRing{newConsumerIndex(&k.rx.prod, &k.rx.cons, &k.rx.flags, size), make([]Desc, size)},
		tx: descRing{newProducerIndex(&k.tx.prod, &k.tx.cons, &k.tx.flags, size), make([]Desc, size)},
	}
	return k
}

// receive moves up to n frames from the fill ring to the RX ring, as copy
// mode does: data at headroom + 256, 60 bytes.
func (k *fakeKernel) receive(n int) int {
	s := k.s
	i := 0
	for ; i < n && k.fill.cons != k.fill.prod && k.rx.prod-k.rx.cons < s.rx.size; i++ {
		addr := s.q.fill.entries[k.fill.cons&s.q.fill.mask]
		k.fill.cons++
		s.rx.entries[k.rx.prod&s.rx.mask] = s.u.DescAt(addr, 60)
		k.rx.prod++
	}
	return i
}

// transmit moves every TX descriptor to the completion ring.
func (k *fakeKernel) transmit() {
	s := k.s
	for k.tx.cons != k.tx.prod && k.comp.prod-k.comp.cons < s.q.comp.size {
		s.q.comp.entries[k.comp.prod&s.q.comp.mask] = s.tx.entries[k.tx.cons&s.tx.mask].Addr
		k.tx.cons++
		k.comp.prod++
	}
}

func TestFakeSocketForwardNoAlloc(t *testing.T) {
	u := testUMEM(t, 1024, 2048, DefaultHeadroom)
	k := newFakeSocket(u, 256)
	s := k.s
	s.Refill()
	descs := make([]Desc, 64)
	total := 0
	allocs := testing.AllocsPerRun(200, func() {
		k.receive(64)
		n := s.Receive(descs)
		total += n
		if s.Transmit(descs[:n]) != n {
			t.Fatal("Transmit refused descriptors with room in the ring")
		}
		k.transmit()
		s.Complete()
		s.Refill()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch on the receive/transmit/complete/refill path", allocs)
	}
	if total < 200*64 {
		t.Errorf("forwarded %d frames in 200 batches of 64", total)
	}
	// Every frame is accounted for: free, in the fill ring, nowhere else.
	if inFill := int(k.fill.prod - k.fill.cons); u.FreeFrames()+inFill != u.Frames() {
		t.Errorf("%d free + %d in the fill ring != %d frames", u.FreeFrames(), inFill, u.Frames())
	}
	if st, _ := s.Stats(); st.DoubleFree != 0 || st.TxInvalid != 0 || st.RxPackets != uint64(total) || st.Completed != uint64(total) {
		t.Errorf("stats %+v after %d frames", st, total)
	}
}

// BenchmarkFakeSocket measures the Go side of the rings per frame, with the
// kernel's copying taken out: what a zero-copy NIC would leave.
func BenchmarkFakeSocket(b *testing.B) {
	for _, fwd := range []bool{false, true} {
		name := "drop"
		if fwd {
			name = "forward"
		}
		b.Run(name, func(b *testing.B) {
			u := testUMEM(b, 4096, 2048, DefaultHeadroom)
			k := newFakeSocket(u, 1024)
			s := k.s
			s.Refill()
			descs := make([]Desc, 64)
			frames := 0
			b.ResetTimer()
			for frames < b.N {
				k.receive(64)
				n := s.Receive(descs)
				frames += n
				if fwd {
					s.Transmit(descs[:n])
					k.transmit()
					s.Complete()
				} else {
					for _, d := range descs[:n] {
						u.Free(d.Addr)
					}
				}
				s.Refill()
			}
		})
	}
}
