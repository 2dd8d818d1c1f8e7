// Package esp is the ESP engine of the fast path: RFC 4303 tunnel mode,
// optionally inside UDP (RFC 3948), over IPv4 outer headers, built and
// taken apart in place in the frame buffer with no allocation.
//
// Encapsulation takes the inner packet where it lies in the frame and
// writes the outer IPv4 header, the optional UDP header, the ESP header and
// IV into the headroom in front of it, and padding, pad length, next header
// and ICV into the tailroom behind it (wireguard-go's offset idea): the
// inner packet is never moved. Decapsulation verifies and decrypts in place
// and returns where the inner packet lies.
//
// Entry points, per packet; a worker reserves a batch's sequence numbers
// at once:
//
//	first, ok := out.ReserveSeq(n)     // n sequence numbers, one atomic add
//	out.Encap(buf, off, n, first+i)    // inner → outer; frames need MaxHeadroom/MaxTailroom
//	esp.Locate(pkt)                    // outer IPv4 [+UDP] → ESP bounds and SPI, for the SA lookup
//	in.DecapESP(buf, espStart, espEnd) // ESP → inner, after the lookup
//	in.Decap(buf, off, n)              // outer → inner when the SA is already known
//
// A worker that owns a transform.Scratch passes it to EncapWith and
// DecapESPWith (per packet), which spares the GCM cipher a sync.Pool round
// trip per packet; the results are identical.
//
// Every packet gets a Reason; every drop has its own, for per-reason
// counters.
//
// An SA is one direction. Several workers may share one SA: outbound
// sequence numbers are reserved per batch with one atomic operation, the
// Cipher is safe for concurrent use, and the inbound replay window is.
package esp

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/dataplane/packet"
	"github.com/cgw-project/cgw/dataplane/replay"
)

// Sizes of the fixed headers this package writes.
const (
	espHdrLen   = 8 // SPI + sequence number low 32 bits (RFC 4303 §2)
	trailerLen  = 2 // pad length + next header (RFC 4303 §2.4, §2.6)
	outerIPv4   = packet.IPv4HeaderLen
	udpHdrLen   = packet.UDPHeaderLen
	maxIVLen    = 16 // AES-CBC (RFC 3602 §3); GCM sends 8 (RFC 4106 §3.1)
	maxICVLen   = 32 // HMAC-SHA2-512-256 (RFC 4868 §2.1.1)
	maxBlock    = 16 // AES block; padding adds at most maxBlock-1 bytes
	maxPadBytes = maxBlock - 1
)

// MaxHeadroom is the most any suite needs in front of the inner packet:
// outer IPv4 + UDP + ESP header + IV. MaxTailroom is the most it needs
// behind it: padding + pad length + next header + ICV. Frames reserved
// with these fit every suite; SA.Headroom and SA.Tailroom give one SA's
// exact needs. TestOverheadCoversEverySuite checks them against the
// transform table.
const (
	MaxHeadroom = outerIPv4 + udpHdrLen + espHdrLen + maxIVLen // 52
	MaxTailroom = maxPadBytes + trailerLen + maxICVLen         // 49
	MaxOverhead = MaxHeadroom + MaxTailroom
)

// DFPolicy says how the outer IPv4 header's DF bit is set (RFC 4301
// §8.1, AWS's clear_df_bit).
type DFPolicy uint8

const (
	// DFCopy copies DF from an inner IPv4 header; an inner IPv6 packet
	// gets DF set, as IPv6 is never fragmented on the path (RFC 8200 §4.5).
	DFCopy DFPolicy = iota
	DFSet
	DFClear
)

// DefaultTTL is the outer TTL when Config.TTL is 0.
const DefaultTTL = 64

// Config describes one direction of an SA.
type Config struct {
	SPI    uint32           // as a number; sent big-endian; never 0 (RFC 4303 §2.1)
	Cipher transform.Cipher // from transform.New
	ESN    bool             // 64-bit extended sequence numbers (RFC 4303 §2.2.1)

	// Outer header (outbound).
	Src, Dst netip.Addr // IPv4 tunnel endpoints
	DF       DFPolicy
	TTL      uint8 // 0 means DefaultTTL
	DSCPCopy bool  // copy DSCP from the inner header, else use DSCP
	DSCP     uint8 // 0..63

	// UDP encapsulation (RFC 3948), normally both ports 4500. The UDP
	// checksum is sent as 0, which RFC 3948 §2.1 allows over IPv4.
	UDPEncap         bool
	SrcPort, DstPort uint16

	// SoftLimit: once an outbound sequence number ≥ SoftLimit has been
	// reserved, RekeySoon reports true so the control plane rekeys before
	// the hard stop. 0 means 15/16 of the sequence space.
	SoftLimit uint64

	// Seq is where the outbound sequence counter lives (the last number
	// reserved): cgw-dataplane passes &sa_counters.seq of the SA in the
	// mmap'd sa_stats map (bpf/maps), so a restarted dataplane
	// continues the sequence instead of reusing nonces under the same key.
	// nil keeps the counter inside the SA (tests). Either way ReserveSeq
	// is the one place that enforces the limit (RFC 4303 §3.3.3).
	Seq *uint64

	// Replay is the inbound anti-replay window (dataplane/replay), made
	// with the same ESN setting; nil disables replay protection, which
	// RFC 4303 §3.4.3 lets a receiver choose (tests, dummy SAs).
	Replay *replay.Window
}

// SA is one direction of an ESP security association.
type SA struct {
	// Hot, read-only after NewSA.
	spi      uint32
	cipher   transform.Cipher
	scratch  transform.ScratchCipher // cipher, when it takes a caller's scratch; else nil
	esn      bool
	udp      bool
	df       DFPolicy
	dscpCopy bool
	tos      uint8 // fixed DSCP<<2 when !dscpCopy
	ttl      uint8
	ivLen    int
	icvLen   int
	align    int // padded plaintext alignment: max(BlockSize, 4), RFC 4303 §2.4
	blockChk int // ciphertext must be a multiple of this on receive (1 for GCM)
	// alignMask and blockMask are align-1 and blockChk-1 when those are
	// powers of two (every ESP cipher's are), so the per-packet length
	// arithmetic needs no division; -1 otherwise.
	alignMask int
	blockMask int
	hdrLen    int // outer IPv4 [+ UDP] + ESP header + IV
	src, dst  [4]byte
	sport     uint16
	dport     uint16
	replay    *replay.Window
	limit     uint64 // highest sequence number that may be sent
	soft      uint64

	_ [64]byte // keep the hot counter off the read-only fields' cache line

	// seq points at the last sequence number reserved (Config.Seq, or
	// own); the first packet gets 1 (RFC 4303 §3.3.3). Accessed only with
	// sync/atomic: it may be memory shared with another process.
	own       uint64
	seq       seqCounter
	mustRekey atomic.Bool
	rekeySoon atomic.Bool
}

// ErrConfig is wrapped by every NewSA error.
var ErrConfig = errors.New("esp: invalid SA configuration")

// NewSA checks cfg and builds the SA.
func NewSA(cfg Config) (*SA, error) {
	if cfg.SPI == 0 {
		return nil, fmt.Errorf("%w: SPI 0 is reserved (RFC 4303 §2.1); use the SPI negotiated by IKE", ErrConfig)
	}
	if cfg.Cipher == nil {
		return nil, fmt.Errorf("%w: SPI %#08x has no cipher; build one with transform.New(suite, keymat)", ErrConfig, cfg.SPI)
	}
	if cfg.DF > DFClear {
		return nil, fmt.Errorf("%w: SPI %#08x: DF policy %d unknown (want DFCopy, DFSet or DFClear)", ErrConfig, cfg.SPI, cfg.DF)
	}
	if cfg.Replay != nil && cfg.Replay.ESN() != cfg.ESN {
		return nil, fmt.Errorf("%w: SPI %#08x: replay window made with esn=%v but the SA has esn=%v; build it with replay.New(size, %v)",
			ErrConfig, cfg.SPI, cfg.Replay.ESN(), cfg.ESN, cfg.ESN)
	}
	if cfg.DSCP > 63 {
		return nil, fmt.Errorf("%w: SPI %#08x: DSCP %d out of range 0..63", ErrConfig, cfg.SPI, cfg.DSCP)
	}
	sa := &SA{
		spi:      cfg.SPI,
		cipher:   cfg.Cipher,
		esn:      cfg.ESN,
		udp:      cfg.UDPEncap,
		df:       cfg.DF,
		dscpCopy: cfg.DSCPCopy,
		tos:      cfg.DSCP << 2,
		ttl:      cfg.TTL,
		ivLen:    cfg.Cipher.IVLen(),
		icvLen:   cfg.Cipher.ICVLen(),
		replay:   cfg.Replay,
		sport:    cfg.SrcPort,
		dport:    cfg.DstPort,
	}
	sa.scratch, _ = cfg.Cipher.(transform.ScratchCipher)
	sa.seq = seqCounter{cfg.Seq}
	if cfg.Seq == nil {
		sa.seq.p = &sa.own
	}
	if sa.ttl == 0 {
		sa.ttl = DefaultTTL
	}
	bs := cfg.Cipher.BlockSize()
	if bs <= 0 || bs > maxBlock || sa.ivLen > maxIVLen || sa.icvLen > maxICVLen || sa.icvLen <= 0 {
		return nil, fmt.Errorf("%w: SPI %#08x: cipher %v has block %d, IV %d, ICV %d bytes; this package handles block ≤ %d, IV ≤ %d, 0 < ICV ≤ %d",
			ErrConfig, cfg.SPI, cfg.Cipher.Suite(), bs, sa.ivLen, sa.icvLen, maxBlock, maxIVLen, maxICVLen)
	}
	sa.align = max(bs, 4)
	sa.blockChk = 1
	if bs > 4 {
		// A block cipher cannot decrypt a partial block. For GCM the 4-byte
		// alignment is the sender's duty (RFC 4303 §2.4); accepting what
		// authenticates is kinder to peers that skip it.
		sa.blockChk = bs
	}
	sa.alignMask, sa.blockMask = pow2Mask(sa.align), pow2Mask(sa.blockChk)
	if cfg.Src.IsValid() || cfg.Dst.IsValid() {
		if !cfg.Src.Is4() || !cfg.Dst.Is4() {
			return nil, fmt.Errorf("%w: SPI %#08x: outer addresses must both be IPv4 (got src %v, dst %v)", ErrConfig, cfg.SPI, cfg.Src, cfg.Dst)
		}
		sa.src, sa.dst = cfg.Src.As4(), cfg.Dst.As4()
	}
	if cfg.UDPEncap && (cfg.SrcPort == 0 || cfg.DstPort == 0) {
		return nil, fmt.Errorf("%w: SPI %#08x: UDP encapsulation needs both ports (normally 4500/4500, RFC 3948 §2.1), got %d/%d",
			ErrConfig, cfg.SPI, cfg.SrcPort, cfg.DstPort)
	}
	sa.hdrLen = outerIPv4 + espHdrLen + sa.ivLen
	if sa.udp {
		sa.hdrLen += udpHdrLen
	}
	sa.limit = 1<<32 - 1
	if sa.esn {
		sa.limit = 1<<64 - 1
	}
	sa.soft = cfg.SoftLimit
	if sa.soft == 0 {
		sa.soft = sa.limit - sa.limit/16
	}
	if sa.soft > sa.limit {
		return nil, fmt.Errorf("%w: SPI %#08x: soft limit %d beyond the last sequence number %d", ErrConfig, cfg.SPI, cfg.SoftLimit, sa.limit)
	}
	return sa, nil
}

// SPI returns the SA's SPI.
func (sa *SA) SPI() uint32 { return sa.spi }

// Cipher returns the SA's cipher.
func (sa *SA) Cipher() transform.Cipher { return sa.cipher }

// ESN reports whether the SA uses extended sequence numbers.
func (sa *SA) ESN() bool { return sa.esn }

// Headroom is how many bytes Encap writes in front of the inner packet.
func (sa *SA) Headroom() int { return sa.hdrLen }

// Tailroom is the most Encap writes behind the inner packet.
func (sa *SA) Tailroom() int { return sa.align - 1 + trailerLen + sa.icvLen }

// Overhead is how many bytes an inner packet of n bytes grows by.
func (sa *SA) Overhead(n int) int {
	return sa.hdrLen + sa.pad(n) + trailerLen + sa.icvLen
}

// MustRekey reports that the SA ran out of sequence numbers: it sends
// nothing more (RFC 4303 §3.3.3).
func (sa *SA) MustRekey() bool { return sa.mustRekey.Load() }

// RekeySoon reports that the soft limit has been reached.
func (sa *SA) RekeySoon() bool { return sa.rekeySoon.Load() }

// LastSeq is the highest sequence number reserved so far (0: none), for
// the per-SA counters the control plane reads. Past the hard limit it may
// exceed the last number actually sent.
func (sa *SA) LastSeq() uint64 { return sa.seq.Load() }

// ReserveSeq reserves n consecutive outbound sequence numbers and returns
// the first. It refuses (ok false) and marks the SA MustRekey when they
// would run past 2^32−1, or 2^64−1 with ESN: a number is never reused
// (RFC 4303 §3.3.3). Safe for concurrent use; one atomic add per call in
// 32-bit mode.
func (sa *SA) ReserveSeq(n int) (first uint64, ok bool) {
	if n <= 0 || sa.mustRekey.Load() {
		return 0, false
	}
	var last uint64
	if !sa.esn {
		// The 64-bit counter cannot wrap in practice (2^64 additions), so
		// an add past 2^32−1 stays past it: concurrent callers all see
		// the refusal and no number below the limit is handed out twice.
		last = sa.seq.Add(uint64(n))
		if last > sa.limit {
			sa.mustRekey.Store(true)
			return 0, false
		}
	} else {
		// With ESN the counter itself would wrap at 2^64−1 and a plain add
		// could hand a racing caller number 1 again: compare-and-swap,
		// which costs the same single atomic when uncontended.
		for {
			cur := sa.seq.Load()
			if uint64(n) > sa.limit-cur {
				sa.mustRekey.Store(true)
				return 0, false
			}
			if sa.seq.CompareAndSwap(cur, cur+uint64(n)) {
				last = cur + uint64(n)
				break
			}
		}
	}
	if last >= sa.soft && !sa.rekeySoon.Load() {
		sa.rekeySoon.Store(true)
	}
	return last - uint64(n) + 1, true
}

// pow2Mask is n-1 when n is a power of two, else -1.
func pow2Mask(n int) int {
	if n > 0 && n&(n-1) == 0 {
		return n - 1
	}
	return -1
}

// pad is padLen(n, sa.align) without a division when align is a power of
// two.
func (sa *SA) pad(n int) int {
	if m := sa.alignMask; m >= 0 {
		return -(n + trailerLen) & m
	}
	return padLen(n, sa.align)
}

// padLen is the RFC 4303 §2.4 padding for n payload bytes: payload, pad
// and the 2-byte trailer end on an align boundary.
func padLen(n, align int) int {
	return (align - (n+trailerLen)%align) % align
}

// seqCounter is the outbound counter wherever it lives (Config.Seq), with
// the atomic.Uint64 method set.
type seqCounter struct{ p *uint64 }

func (c seqCounter) Load() uint64                    { return atomic.LoadUint64(c.p) }
func (c seqCounter) Store(v uint64)                  { atomic.StoreUint64(c.p, v) }
func (c seqCounter) Add(d uint64) uint64             { return atomic.AddUint64(c.p, d) }
func (c seqCounter) CompareAndSwap(o, n uint64) bool { return atomic.CompareAndSwapUint64(c.p, o, n) }
