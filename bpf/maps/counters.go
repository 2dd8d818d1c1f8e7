package maps

import "sync/atomic"

// Helpers for the dataplane's per-batch counter updates, on the pointer
// from Counters. Each is a few atomic instructions on shared memory: no
// syscall, no allocation.

// ReserveSeq reserves n consecutive outbound sequence numbers and returns
// the first. The first packet of an SA gets 1 (RFC 4303 §3.3.3). The
// caller checks the result against the SA's limit (2^32-1 without ESN)
// and stops using the SA rather than wrap.
func ReserveSeq(c *SACounters, n uint64) uint64 {
	return atomic.AddUint64(&c.Seq, n) - n + 1
}

// RaiseSeq records an authenticated inbound sequence number if it is the
// highest seen (concurrent workers may finish out of order).
func RaiseSeq(c *SACounters, seq uint64) {
	for {
		cur := atomic.LoadUint64(&c.Seq)
		if seq <= cur || atomic.CompareAndSwapUint64(&c.Seq, cur, seq) {
			return
		}
	}
}

// Account adds a batch's good packets and bytes and stamps the time
// (CLOCK_MONOTONIC ns, the clock of bpf_ktime_get_ns) control's DPD and
// idle checks read.
func Account(c *SACounters, packets, bytes, nowNs uint64) {
	atomic.AddUint64(&c.Packets, packets)
	atomic.AddUint64(&c.Bytes, bytes)
	atomic.StoreUint64(&c.LastNs, nowNs)
}
