// Package replay holds the ESP inbound anti-replay window (RFC 4303 §3.4.3)
// for one SA, with 64-bit extended sequence numbers (RFC 4303 Appendix A),
// safe for concurrent use by every worker that receives the SA's packets.
//
// # Use
//
//	w, err := replay.New(1024, esn)     // once per inbound SA
//	seq, r := w.Check(seqLowFromWire)   // before the ICV: cheap, changes nothing
//	if r != replay.OK { drop(r) }       // r.String() names the drop reason
//	if !icvOK { drop }                  // the ICV also covers seq's high half when ESN is on (RFC 4303 §2.2.1)
//	if r = w.Update(seq); r != replay.OK { drop(r) } // another worker may have won the race
//
// Check infers the full sequence number and says whether the packet can be
// accepted; Update, called only once the packet authenticated, records it.
// Both are lock-free, never allocate, and may be called from any number of
// goroutines at once. At most one Update of a given sequence number ever
// returns OK (exactly one, if the number is inside the window while it is
// offered); every other one returns Replayed or TooOld. Check is advisory:
// two workers may both pass Check for the same number, and Update decides.
//
// # Window size
//
// New takes the window size in packets, 64 to 65536 (AWS offers 64–2048 and
// defaults to 1024), and rounds it up to a multiple of 64; Size reports the
// size in force. A packet is inside the window when seq > Highest()−Size().
//
// # Sequence numbers
//
// Sequence number 0 is never sent (the first packet of an SA carries 1,
// RFC 4303 §2.2) and is Invalid. Without ESN the counter must not cycle
// (RFC 4303 §3.3.3): once 0xFFFFFFFF has been received nothing newer can
// be, and the SA must be rekeyed before then. With ESN, Check infers the
// high 32 bits from the low 32 carried in the packet as RFC 4303 Appendix
// A2.2 describes, so a packet just after a wrap of the low half (…FFFF → 0)
// starts the next epoch, and a late packet of the previous epoch that is
// still inside the window is recognised as such. A packet from just left
// of the window is, per Appendix A2.2 case A, inferred into the next epoch
// and passes Check as "ahead": only its ICV, which covers the high half
// (RFC 4303 §2.2.1), rejects it. So Update must only ever be given a seq
// whose packet authenticated with that very seq. The resynchronisation of
// Appendix A3 (after more than 2^32 consecutive losses) is not done: the
// SA is rekeyed long before that.
//
// # Design (RFC 6479, made concurrent)
//
// The bitmap is a ring of 64-bit words, as RFC 6479 ("IPsec Anti-Replay
// Algorithm without Bit Shifting") describes: the window slides by
// re-initialising whole words, never by shifting the map. The ring holds at
// least one word more than the window needs, so the word of a new block can
// be reset while every sequence number still inside the window keeps its
// bit.
//
// To let workers slide the window and set bits at the same time without a
// lock, each ring word carries its own block number next to its bitmap:
// the high 32 bits are the (truncated) number of the 32-sequence-number
// block the word currently describes, the low 32 bits are the bitmap of
// that block. Every change to a word is one compare-and-swap of the whole
// word, so a bit is never set into a word that is meanwhile being reset
// for another block, and a reset never wipes a bit of the block it is
// resetting for. See Update for the argument.
package replay

import (
	"fmt"
	"math"
	"sync/atomic"
)

// Result is the verdict on one sequence number. Its zero value is not OK,
// so a forgotten assignment drops rather than accepts.
type Result uint8

const (
	// OK: the sequence number has not been seen and is inside the window
	// (or ahead of it).
	OK Result = iota + 1
	// Replayed: the sequence number was already accepted (a duplicate).
	Replayed
	// TooOld: the sequence number is left of the window, or (ESN) belongs
	// to the epoch before the first one.
	TooOld
	// Invalid: sequence number 0, which no sender uses (RFC 4303 §2.2), a
	// number beyond 32 bits when ESN is off, or an Update far beyond what
	// Check can infer.
	Invalid
)

// String names the result; it is suitable as a drop-reason label.
func (r Result) String() string {
	switch r {
	case OK:
		return "ok"
	case Replayed:
		return "replayed"
	case TooOld:
		return "too_old"
	case Invalid:
		return "invalid_seq"
	}
	return fmt.Sprintf("Result(%d)", uint8(r))
}

// Window size limits, in packets.
const (
	MinSize = 64
	MaxSize = 65536
)

const (
	blockBits  = 32 // sequence numbers per ring word (the bitmap half)
	blockShift = 5  // log2(blockBits)
	blockMask  = blockBits - 1
)

// Window is the anti-replay state of one inbound SA. Create it with New;
// the zero value is unusable.
type Window struct {
	// Read-only after New.
	ring []atomic.Uint64 // tag<<32 | bitmap, see the package comment
	mask uint64          // len(ring)-1; len(ring) is a power of two
	size uint64          // window size in packets, a multiple of 64
	esn  bool

	_ [64]byte // top is written by every in-order packet: keep it off the read-only line

	// top is the highest sequence number accepted so far (0: none yet). It
	// only ever grows.
	top atomic.Uint64

	_ [56]byte
}

// New returns the window of a new inbound SA that has received nothing.
// size is the window size in packets (64–65536), rounded up to a multiple
// of 64; esn says whether the SA uses extended (64-bit) sequence numbers.
func New(size int, esn bool) (*Window, error) {
	if size < MinSize || size > MaxSize {
		return nil, fmt.Errorf("replay window size %d is out of range: use %d–%d packets (AWS accepts 64–2048, default 1024)", size, MinSize, MaxSize)
	}
	size = (size + 63) &^ 63
	// One word more than the window spans, so resetting the word of a new
	// block never touches a block still inside the window (RFC 6479 §2);
	// a power of two so the index is a mask.
	words := 1
	for words < size/blockBits+1 {
		words <<= 1
	}
	return &Window{
		ring: make([]atomic.Uint64, words),
		mask: uint64(words - 1),
		size: uint64(size),
		esn:  esn,
	}, nil
}

// Size is the window size in force, in packets (a multiple of 64).
func (w *Window) Size() int { return int(w.size) }

// ESN says whether the window infers 64-bit extended sequence numbers.
func (w *Window) ESN() bool { return w.esn }

// Highest is the highest sequence number accepted so far, 0 if none. It is
// the value the control plane watches for sequence-number exhaustion.
func (w *Window) Highest() uint64 { return w.top.Load() }

// Check is the pre-ICV test of RFC 4303 §3.4.3. Given the low 32 bits of
// the sequence number from the packet, it returns the full sequence number
// (ESN: high bits inferred per RFC 4303 Appendix A2.2; otherwise high bits
// 0) and whether that number is acceptable: not seen and not left of the
// window. It does not change the window; Update records the packet once
// its ICV has verified. When an ESN number is inferred to lie before the
// first epoch (TooOld), the returned seq is just the low half.
func (w *Window) Check(seqLow uint32) (seq uint64, r Result) {
	top := w.top.Load()
	seq = uint64(seqLow)
	if w.esn {
		var ok bool
		if seq, ok = w.infer(seqLow, top); !ok {
			return seq, TooOld
		}
	}
	if seq == 0 {
		return 0, Invalid
	}
	if seq <= top && top-seq >= w.size {
		return seq, TooOld
	}
	blk := seq >> blockShift
	word := w.ring[blk&w.mask].Load()
	switch d := int32(uint32(blk) - uint32(word>>32)); {
	case d > 0: // the word still describes an older block: seq is unseen
		return seq, OK
	case d < 0: // the word was already reused for a newer block
		return seq, TooOld
	case word&(1<<(seq&blockMask)) != 0:
		return seq, Replayed
	}
	return seq, OK
}

// infer returns the 64-bit sequence number whose low half is seqLow, per
// RFC 4303 Appendix A2.2, given the highest number received, top (T), and
// the window size W. ok is false for a number in the epoch before the
// first (Th−1 with Th = 0) or after the last.
func (w *Window) infer(seqLow uint32, top uint64) (seq uint64, ok bool) {
	th, tl := uint32(top>>32), uint32(top)
	bl := tl - uint32(w.size) + 1 // low half of the window's bottom, modulo 2^32
	hi := th
	if tl >= uint32(w.size)-1 {
		// Case A: the window lies within one epoch.
		if seqLow < bl {
			if th == math.MaxUint32 {
				return uint64(seqLow), false
			}
			hi = th + 1
		}
	} else {
		// Case B: the window straddles the start of epoch Th.
		if seqLow >= bl {
			if th == 0 {
				return uint64(seqLow), false
			}
			hi = th - 1
		}
	}
	return uint64(hi)<<32 | uint64(seqLow), true
}

// Update records seq, a number returned by Check whose packet has passed
// its ICV, and advances the window if seq is the new highest. Of any
// number of Updates of the same seq, racing or not, at most one returns
// OK; the others get Replayed, or TooOld if the window has meanwhile moved
// past seq. It returns Invalid for 0, for a number beyond 32 bits
// without ESN, and for a number 2^32 or more beyond Highest (which Check
// never infers).
//
// Why concurrent Updates are safe. Let b = seq/32 be seq's block and p
// the ring word for b. Update sets seq's bit by a CAS on p that either
// (a) finds p tagged b and the bit clear, and sets the bit; or (b) finds
// p tagged with an older block, whose bits are no longer needed (the
// ring has a spare word, so an older block sharing p lies wholly left
// of the window once seq is accepted), and replaces the whole word with
// tag b and only seq's bit; or (c) finds p tagged b with the bit set:
// Replayed; or (d) finds p tagged with a newer block: TooOld. A word's
// tag never decreases, since only (b) and the sweep below change it and
// both only raise it. Hence once seq's bit is set it stays set for as
// long as p is tagged b, and once p is tagged newer every later Update
// of seq fails in (d): a second acceptance of seq is impossible. Two
// racing Updates of seq serialise on p's CAS and the loser re-reads the
// word, finding (c) or (d).
//
// top (the highest accepted number) is advanced afterwards with a CAS
// loop that only raises it. A reader that sees top before the advance
// treats seq as ahead of or inside the window and consults p, which
// already tells the truth; the worst a stale top can do is admit a number
// that was inside the window a moment earlier and has never been
// accepted, which is harmless. The advancer then sweeps the words of the
// blocks it skipped (at most one ring's worth), raising their tags with
// CAS and empty bitmaps; this keeps every tag within a ring's length of
// the window even when traffic skips blocks, and it is not needed for the
// at-most-once property (a racing setter and sweeper serialise on the
// word's CAS).
//
// Tags are 32-bit block numbers compared by serial-number arithmetic
// (RFC 1982 style), which is exact while the compared blocks are less
// than 2^31 blocks (2^36 sequence numbers) apart. Update admits only
// numbers from Highest−Size to Highest+2^32, and every tag is at most
// Highest+2^32 too, so that holds unless one goroutine stalls inside a
// single Update while 2^36 packets are accepted by others (more than 1.9
// hours at 10 Mpps on one SA). Misjudging a stale older tag as newer would
// only drop packets; the assumption is needed only so that a tag is
// never taken for older than it is.
func (w *Window) Update(seq uint64) Result {
	if seq == 0 || (!w.esn && seq > math.MaxUint32) {
		return Invalid
	}
	top := w.top.Load()
	if seq > top {
		if seq-top >= 1<<32 {
			return Invalid
		}
	} else if top-seq >= w.size {
		return TooOld
	}
	if r := w.mark(seq); r != OK {
		return r
	}
	for top < seq {
		if w.top.CompareAndSwap(top, seq) {
			if seq>>blockShift > top>>blockShift+1 { // blocks were skipped
				w.sweep(top, seq)
			}
			break
		}
		top = w.top.Load()
	}
	return OK
}

// mark sets seq's bit in its ring word, cases (a)–(d) of Update's
// argument; it alone decides whether seq is accepted.
func (w *Window) mark(seq uint64) Result {
	blk := seq >> blockShift
	tag := uint32(blk)
	bit := uint64(1) << (seq & blockMask)
	p := &w.ring[blk&w.mask]
	for {
		old := p.Load()
		var nw uint64
		switch d := int32(tag - uint32(old>>32)); {
		case d < 0:
			return TooOld
		case d > 0:
			nw = uint64(tag)<<32 | bit
		case old&bit != 0:
			return Replayed
		default:
			nw = old | bit
		}
		if p.CompareAndSwap(old, nw) {
			return OK
		}
	}
}

// sweep resets the words of the blocks strictly between the blocks of
// from and to (only the last len(ring)-1 of them; older ones are left of
// the window anyway) to empty bitmaps tagged with those blocks, unless a
// word already carries that block or a newer one.
func (w *Window) sweep(from, to uint64) {
	lo, hi := from>>blockShift+1, to>>blockShift
	if hi <= lo {
		return
	}
	if hi-lo > w.mask {
		lo = hi - w.mask
	}
	for b := lo; b < hi; b++ {
		p := &w.ring[b&w.mask]
		tag := uint32(b)
		for {
			old := p.Load()
			if int32(tag-uint32(old>>32)) <= 0 || p.CompareAndSwap(old, uint64(tag)<<32) {
				break
			}
		}
	}
}
