package replay

import "math"

// Resume primes a window that has accepted nothing with a previous run's
// state: every sequence number up to hi, the highest one the previous run
// of the dataplane accepted (persisted before it delivered the packets),
// counts as received. Numbers inside the window then come back Replayed,
// older ones TooOld, so a packet captured before a crash and replayed
// after the restart is refused (RFC 4303 §3.4.3); packets of the previous
// run that were still in flight are lost, the safe side. With ESN the
// window infers epochs from hi as it would have, so an SA past 2^32
// resumes in its epoch. Resume must be called before the window is
// shared; on a window that has accepted something it does nothing.
func (w *Window) Resume(hi uint64) {
	if hi == 0 || (!w.esn && hi > math.MaxUint32) || w.top.Load() != 0 {
		return
	}
	lo := uint64(1)
	if hi > w.size {
		lo = hi - w.size + 1
	}
	// The blocks of [lo, hi] are at most size/32+1, each on its own ring
	// word (the ring holds at least that many).
	for b := lo >> blockShift; b <= hi>>blockShift; b++ {
		first, last := max(b<<blockShift, lo), min(b<<blockShift|blockMask, hi)
		n := last - first + 1
		bits := (uint64(1)<<n - 1) << (first & blockMask)
		if n == blockBits {
			bits = 1<<blockBits - 1
		}
		w.ring[b&w.mask].Store(uint64(uint32(b))<<32 | bits)
	}
	w.top.Store(hi)
}
