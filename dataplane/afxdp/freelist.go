package afxdp

// freeList is a stack of free frame addresses. The fill ring's consumer index
// is published by the kernel after the RX producer index (DESIGN §4), so the
// rings cannot tell which frames are free: the worker keeps its own list.
// A bitmap catches a frame freed twice, which would otherwise put one frame
// in two places at once and corrupt packets silently.
type freeList struct {
	stack      []uint64
	inList     []uint64 // one bit per frame
	frameShift uint
	doubleFree uint64
}

func newFreeList(frames int, frameShift uint) freeList {
	return freeList{
		stack:      make([]uint64, 0, frames),
		inList:     make([]uint64, (frames+63)/64),
		frameShift: frameShift,
	}
}

func (f *freeList) len() int { return len(f.stack) }

// has reports whether the frame holding addr is in the list.
func (f *freeList) has(addr uint64) bool {
	i := addr >> f.frameShift
	return i < uint64(cap(f.stack)) && f.inList[i/64]&(1<<(i%64)) != 0
}

// push adds the frame holding addr (any address inside it) and reports
// whether it was accepted; a frame already in the list is refused and
// counted.
func (f *freeList) push(addr uint64) bool {
	i := addr >> f.frameShift
	w, b := i/64, uint64(1)<<(i%64)
	if i >= uint64(cap(f.stack)) || f.inList[w]&b != 0 {
		f.doubleFree++
		return false
	}
	f.inList[w] |= b
	f.stack = append(f.stack, i<<f.frameShift)
	return true
}

func (f *freeList) pop() (uint64, bool) {
	n := len(f.stack)
	if n == 0 {
		return 0, false
	}
	addr := f.stack[n-1]
	f.stack = f.stack[:n-1]
	i := addr >> f.frameShift
	f.inList[i/64] &^= uint64(1) << (i % 64)
	return addr, true
}
