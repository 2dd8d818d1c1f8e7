package afxdp

import "sync/atomic"

// Desc is one RX or TX descriptor, laid out as the kernel's struct xdp_desc:
// Addr is the offset of the packet's first byte in the UMEM.
type Desc struct {
	Addr    uint64
	Len     uint32
	Options uint32
}

// ringNeedWakeup mirrors XDP_RING_NEED_WAKEUP so this file stays portable and
// testable without the kernel.
const ringNeedWakeup = 1

// ringIndex is the index arithmetic shared by the four ring types. Producer
// and consumer are free-running 32-bit counters: the slot is counter & mask,
// and differences are taken modulo 2^32, so wrap-around needs no special case.
// Each side caches the other side's counter and reads it (an atomic load,
// acquire) only when the cache says there is not enough room or data; its own
// counter is published with an atomic store (release) after the entries are
// written or read. Go's sync/atomic operations are sequentially consistent,
// which is stronger than the acquire/release pairs the kernel expects.
type ringIndex struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	mask     uint32
	size     uint32
	// cachedProd is this side's next producer position (producer rings) or
	// the last producer value seen (consumer rings).
	cachedProd uint32
	// cachedCons is the last consumer value seen plus size (producer rings,
	// so free = cachedCons - cachedProd), or this side's next consumer
	// position (consumer rings).
	cachedCons uint32
}

func newProducerIndex(prod, cons, flags *uint32, size uint32) ringIndex {
	return ringIndex{producer: prod, consumer: cons, flags: flags, mask: size - 1, size: size,
		cachedProd: atomic.LoadUint32(prod), cachedCons: atomic.LoadUint32(cons) + size}
}

func newConsumerIndex(prod, cons, flags *uint32, size uint32) ringIndex {
	return ringIndex{producer: prod, consumer: cons, flags: flags, mask: size - 1, size: size,
		cachedProd: atomic.LoadUint32(prod), cachedCons: atomic.LoadUint32(cons)}
}

// free returns the free slots of a producer ring, refreshing the consumer
// counter only when fewer than n are known to be free.
func (r *ringIndex) free(n uint32) uint32 {
	f := r.cachedCons - r.cachedProd
	if f >= n {
		return f
	}
	r.cachedCons = atomic.LoadUint32(r.consumer) + r.size
	return r.cachedCons - r.cachedProd
}

// reserve claims up to n slots of a producer ring and returns the first
// counter value and how many were claimed. Nothing is visible to the kernel
// until submit.
func (r *ringIndex) reserve(n uint32) (idx, got uint32) {
	got = min(r.free(n), n)
	idx = r.cachedProd
	r.cachedProd += got
	return idx, got
}

// unreserve gives back the last n reserved, not yet submitted slots.
func (r *ringIndex) unreserve(n uint32) { r.cachedProd -= n }

// submit publishes every reserved slot to the consumer.
func (r *ringIndex) submit() { atomic.StoreUint32(r.producer, r.cachedProd) }

// pending returns how many submitted entries of a producer ring the consumer
// has not taken yet.
func (r *ringIndex) pending() uint32 { return r.cachedProd - atomic.LoadUint32(r.consumer) }

// available returns up to n entries ready in a consumer ring, refreshing the
// producer counter only when fewer than n are known to be ready.
func (r *ringIndex) available(n uint32) uint32 {
	e := r.cachedProd - r.cachedCons
	if e < n {
		r.cachedProd = atomic.LoadUint32(r.producer)
		e = r.cachedProd - r.cachedCons
	}
	return min(e, n)
}

// peek claims up to n ready entries of a consumer ring; release hands their
// slots back to the producer once they have been read.
func (r *ringIndex) peek(n uint32) (idx, got uint32) {
	got = r.available(n)
	idx = r.cachedCons
	r.cachedCons += got
	return idx, got
}

func (r *ringIndex) release() { atomic.StoreUint32(r.consumer, r.cachedCons) }

// needsWakeup reports the kernel's request for a syscall kick
// (XDP_USE_NEED_WAKEUP).
func (r *ringIndex) needsWakeup() bool {
	return r.flags != nil && atomic.LoadUint32(r.flags)&ringNeedWakeup != 0
}

// addrRing is a fill or completion ring: entries are UMEM addresses.
type addrRing struct {
	ringIndex
	entries []uint64
}

// descRing is an RX or TX ring: entries are descriptors.
type descRing struct {
	ringIndex
	entries []Desc
}
