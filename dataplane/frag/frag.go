// Package frag fits inner packets to the tunnel MTU before encryption
// (RFC 4459 §5.1: fragment the inner packet, never the ESP packet). An
// IPv4 packet larger than the MTU is split into fragments (RFC 791 §3.2);
// one that forbids fragmentation (DF) gets an ICMP "fragmentation needed"
// back (RFC 1191 §4) unless the clear-DF policy is on; an IPv6 packet is
// never fragmented in transit and gets an ICMPv6 "Packet Too Big" (RFC
// 4443 §3.2, RFC 8200 §5). Nothing here allocates.
package frag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cgw-project/cgw/dataplane/packet"
)

// DefaultMTU is AWS's tunnel MTU: the largest inner packet that fits.
const DefaultMTU = 1399

// Limits on the tunnel MTU. RFC 791 §3.2: every IPv4 module must pass 68
// bytes unfragmented (a 60-byte header plus 8 bytes of data). RFC 8200 §5:
// an IPv6 link MTU is at least 1280.
const (
	MinMTU4 = 68
	MinMTU6 = 1280
	MaxMTU  = 65535
)

// Reason says what became of one packet. Every drop has its own reason so
// the worker can count drops per reason (VPP-style node counters). The
// order is part of the API: r <= Fragmented means the packet goes on into
// the tunnel; every later reason drops it (FragNeeded and PacketTooBig
// after building an ICMP error).
type Reason uint8

const (
	Fits         Reason = iota // no larger than the MTU: passed on untouched
	Fragmented                 // IPv4 split into fragments that fit
	FragNeeded                 // IPv4 with DF: dropped, ICMP type 3 code 4 built for the sender
	PacketTooBig               // IPv6: dropped, ICMPv6 type 2 built for the sender
	TooBigSilent               // too big and no ICMP error allowed (RFC 1122 §3.2.2, RFC 4443 §2.4(e)): dropped
	ErrorLimited               // too big, ICMP error built but the caller had no room left to send it this batch (RFC 1812 §4.3.2.8 rate limit): dropped
	NoFrames                   // not enough free frames, frame room or output slots: dropped
	Malformed                  // too big and its header does not parse (length, IHL, options): dropped
	NotIP                      // neither IPv4 nor IPv6: dropped

	NumReasons // number of reasons, for sizing counter arrays
)

var reasonNames = [NumReasons]string{
	Fits:         "fits",
	Fragmented:   "fragmented",
	FragNeeded:   "icmp_frag_needed",
	PacketTooBig: "icmp6_packet_too_big",
	TooBigSilent: "too_big_no_icmp",
	ErrorLimited: "icmp_rate_limited",
	NoFrames:     "no_frames",
	Malformed:    "malformed",
	NotIP:        "not_ip",
}

// String is a short snake_case name suitable as a metrics label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Config is one tunnel's size policy.
type Config struct {
	// MTU is the tunnel MTU: the largest inner packet sent into the
	// tunnel (0: DefaultMTU).
	MTU int
	// ClearDF fragments IPv4 packets that have DF set instead of
	// answering "fragmentation needed" (AWS's clear_df_bit).
	ClearDF bool
	// Gateway4 and Gateway6 are the source addresses of the ICMP errors
	// (RFC 1812 §4.3.2.4: an address of the interface the packet came
	// in on). A missing one means no ICMP errors of that family: the
	// packet is dropped as TooBigSilent.
	Gateway4, Gateway6 netip.Addr
}

// Fragmenter is one worker's fragmentation stage. It is not safe for
// concurrent use: give each worker its own.
type Fragmenter struct {
	mtu     int
	clearDF bool
	gw4     [4]byte
	gw6     [16]byte
	has4    bool
	has6    bool
	icmpID  uint16 // IPv4 ID of the ICMP errors this worker sends
	// DFCleared counts packets whose DF bit was cleared to fragment them.
	DFCleared uint64
}

// New checks cfg and returns a Fragmenter.
func New(cfg Config) (*Fragmenter, error) {
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < MinMTU4 || cfg.MTU > MaxMTU {
		return nil, fmt.Errorf("tunnel mtu %d is outside %d–%d bytes (AWS uses %d)", cfg.MTU, MinMTU4, MaxMTU, DefaultMTU)
	}
	f := &Fragmenter{mtu: cfg.MTU, clearDF: cfg.ClearDF}
	if a := cfg.Gateway4; a.IsValid() {
		if !a.Is4() {
			return nil, fmt.Errorf("gateway IPv4 address for ICMP errors: %v is not an IPv4 address", a)
		}
		f.gw4, f.has4 = a.As4(), true
	}
	if a := cfg.Gateway6; a.IsValid() {
		if !a.Is6() || a.Is4In6() {
			return nil, fmt.Errorf("gateway IPv6 address for ICMPv6 errors: %v is not an IPv6 address", a)
		}
		if cfg.MTU < MinMTU6 {
			// RFC 8200 §5: IPv6 needs 1280; an ICMPv6 Packet Too Big
			// below that is not honoured and IPv6 is not fragmented in
			// transit, so packets of 1280 bytes would vanish.
			return nil, fmt.Errorf("tunnel mtu %d is below the IPv6 minimum link MTU %d (RFC 8200 §5): raise mtu to at least %d or carry no IPv6 (leave the IPv6 gateway address unset)", cfg.MTU, MinMTU6, MinMTU6)
		}
		f.gw6, f.has6 = a.As16(), true
	}
	return f, nil
}

// MTU returns the tunnel MTU in force.
func (f *Fragmenter) MTU() int { return f.mtu }

// ErrShortFrame is returned by Split when the caller's frames cannot
// hold the fragments; the packet is left as it was.
var ErrShortFrame = errors.New("frag: not enough output frames or frame room for the fragments")

// ErrHeader is returned by Split for an IPv4 header that cannot be
// fragmented: bad IHL or total length, or an option list that does not
// parse.
var ErrHeader = errors.New("frag: malformed IPv4 header")

// ErrMTU is returned by Split when mtu leaves no room for 8 bytes of data
// after the header (RFC 791 §3.2 requires 68).
var ErrMTU = errors.New("frag: mtu too small for this packet's header")

// Need returns how many fragments Split makes of the IPv4 packet pkt at
// mtu (1 if it fits), or 0 if it cannot be split. A worker uses it to take
// enough free frames before calling Split.
func Need(pkt []byte, mtu int) int {
	p, err := planSplit(pkt, mtu)
	if err != nil {
		return 0
	}
	return 1 + p.n
}

// plan is how an IPv4 packet is cut: header lengths of the first and the
// later fragments, data bytes per fragment and the number of later
// fragments.
type plan struct {
	hl, tl, hl2         int
	firstData, restData int
	n                   int
}

func planSplit(pkt []byte, mtu int) (p plan, err error) {
	var ok bool
	if p.hl, p.tl, ok = header4(pkt); !ok {
		return p, ErrHeader
	}
	if p.tl <= mtu {
		return p, nil
	}
	ol2, ok := copiedOptionsLen(pkt[packet.IPv4HeaderLen:p.hl])
	if !ok {
		return p, ErrHeader
	}
	p.hl2 = packet.IPv4HeaderLen + ol2
	// Fragment data lengths are multiples of 8 except the last.
	p.firstData = (mtu - p.hl) &^ 7
	p.restData = (mtu - p.hl2) &^ 7
	if p.firstData <= 0 || p.restData <= 0 {
		return p, ErrMTU
	}
	remain := p.tl - p.hl - p.firstData
	p.n = (remain + p.restData - 1) / p.restData
	// A fragment that is not the last must carry a multiple of 8 bytes
	// (RFC 791 §3.2), else its last piece could not; and the last piece's
	// offset must fit the 13-bit field. Only bogus fragments fail these.
	ff := binary.BigEndian.Uint16(pkt[packet.IPv4OffFlagsFrag:])
	if ff&packet.IPv4FlagMF != 0 && (p.tl-p.hl)%8 != 0 {
		return p, ErrHeader
	}
	if int(ff&packet.IPv4FragOffMask)+(p.firstData+(p.n-1)*p.restData)/8 > packet.IPv4FragOffMask {
		return p, ErrHeader
	}
	return p, nil
}

// header4 checks the IPv4 header of pkt and returns its length and the
// packet's total length.
func header4(pkt []byte) (hl, tl int, ok bool) {
	if len(pkt) < packet.IPv4HeaderLen || pkt[0]>>4 != 4 {
		return 0, 0, false
	}
	hl = int(pkt[0]&0x0f) * 4
	tl = int(binary.BigEndian.Uint16(pkt[packet.IPv4OffTotalLen:]))
	if hl < packet.IPv4HeaderLen || tl < hl || tl > len(pkt) {
		return 0, 0, false
	}
	return hl, tl, true
}

// IPv4 option types without a length byte (RFC 791 §3.1).
const (
	optEOL     = 0
	optNOP     = 1
	optCopyBit = 0x80 // "copied" flag: the option goes into every fragment
)

// copiedOptionsLen returns the length, padded to a multiple of 4, of the
// options that have the copied flag (the options of a non-first
// fragment), and whether the option list parses.
func copiedOptionsLen(opts []byte) (int, bool) {
	n := 0
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == optEOL {
			break
		}
		if t == optNOP {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return 0, false
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return 0, false
		}
		if t&optCopyBit != 0 {
			n += l
		}
		i += l
	}
	return (n + 3) &^ 3, true
}

// writeCopiedOptions writes the copied options of opts into dst (which is
// exactly the padded length from copiedOptionsLen), padding with EOL.
func writeCopiedOptions(dst, opts []byte) {
	w := 0
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == optEOL {
			break
		}
		if t == optNOP {
			i++
			continue
		}
		l := int(opts[i+1])
		if t&optCopyBit != 0 {
			w += copy(dst[w:], opts[i:i+l])
		}
		i += l
	}
	clear(dst[w:])
}

// Split fragments the IPv4 packet pkt (starting at its IP header) so that
// every fragment is at most mtu bytes (RFC 791 §3.2). The first fragment
// stays in place: it is pkt[:first]. The others are written to out[0:n],
// each at the start of its buffer, and out[i] is resliced to the
// fragment's length; each out[i] needs len ≥ mtu. Split does not look at
// DF (the caller decides; see Fragmenter.Packet) but keeps it as it is.
// A packet that already fits returns first = its total length, n = 0. A
// packet that is itself a fragment is re-fragmented: offsets continue from
// its own, and its MF is kept on its last piece. On error nothing is
// modified.
func Split(pkt []byte, mtu int, out [][]byte) (first, n int, err error) {
	return split(pkt, mtu, out, packet.IPv4FlagDF)
}

// split is Split keeping the DF bit only if keepDF has it, so clearing DF
// (clear_df policy) costs no second header checksum and leaves the packet
// untouched on error.
func split(pkt []byte, mtu int, out [][]byte, keepDF uint16) (first, n int, err error) {
	p, err := planSplit(pkt, mtu)
	if err != nil {
		return 0, 0, err
	}
	if p.n == 0 {
		return p.tl, 0, nil
	}
	hl, tl, hl2, firstData, restData := p.hl, p.tl, p.hl2, p.firstData, p.restData
	n = p.n
	opts := pkt[packet.IPv4HeaderLen:hl]
	ff := binary.BigEndian.Uint16(pkt[packet.IPv4OffFlagsFrag:])
	origOff := int(ff & packet.IPv4FragOffMask) // 8-byte units
	origMF := ff & packet.IPv4FlagMF
	keep := ff & keepDF
	remain := tl - hl - firstData
	if n > len(out) {
		return 0, 0, ErrShortFrame
	}
	for i := range n {
		if len(out[i]) < min(mtu, hl2+remain-i*restData) {
			return 0, 0, ErrShortFrame
		}
	}

	// Later fragments first: they read data the first fragment keeps.
	data := pkt[hl+firstData : tl]
	off := origOff + firstData/8
	for i := range n {
		d := data[:min(restData, len(data))]
		data = data[len(d):]
		frag := out[i][:hl2+len(d)]
		copy(frag, pkt[:packet.IPv4HeaderLen])
		frag[0] = 0x40 | byte(hl2/4)
		writeCopiedOptions(frag[packet.IPv4HeaderLen:hl2], opts)
		copy(frag[hl2:], d)
		binary.BigEndian.PutUint16(frag[packet.IPv4OffTotalLen:], uint16(len(frag)))
		mf := origMF
		if len(data) > 0 {
			mf = packet.IPv4FlagMF
		}
		binary.BigEndian.PutUint16(frag[packet.IPv4OffFlagsFrag:], keep|mf|uint16(off))
		packet.IPv4HeaderChecksum(frag[:hl2])
		out[i] = frag
		off += len(d) / 8
	}

	first = hl + firstData
	binary.BigEndian.PutUint16(pkt[packet.IPv4OffTotalLen:], uint16(first))
	binary.BigEndian.PutUint16(pkt[packet.IPv4OffFlagsFrag:], keep|packet.IPv4FlagMF|uint16(origOff))
	packet.IPv4HeaderChecksum(pkt[:hl])
	return first, n, nil
}
