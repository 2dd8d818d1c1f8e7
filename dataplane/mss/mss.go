// Package mss clamps the TCP maximum segment size option of SYN and
// SYN-ACK segments entering the tunnel, so that neither end sends segments
// that would have to be fragmented once ESP overhead is added (AWS's
// tcp_mss_adjustment, 1379 by default). The checksum is updated
// incrementally (RFC 1624 eqn. 3); nothing here allocates.
package mss

import (
	"encoding/binary"
	"fmt"

	"github.com/cgw-project/cgw/dataplane/packet"
)

// Defaults: 1379 is the tcp_mss_adjustment in AWS's generated
// configuration for its 1399-byte tunnel MTU. An IPv6 header is 20 bytes
// longer than an IPv4 one, so the IPv6 limit is 20 bytes lower for the
// same tunnel MTU.
const (
	DefaultMSS4 = 1379
	DefaultMSS6 = DefaultMSS4 - (packet.IPv6HeaderLen - packet.IPv4HeaderLen)

	// MinMSS is the smallest limit accepted: RFC 9293 §3.7.1 lets a host
	// assume 536 (IPv4), and RFC 8200 §5 MTU 1280 gives 1220 for IPv6,
	// but a clamp below the IPv4 default send MSS is a configuration slip.
	MinMSS = 536
)

// Result says what Clamp did with one packet. The stage never drops a
// packet: anything it cannot parse is left untouched for later stages.
type Result uint8

const (
	Clamped   Result = iota // SYN whose MSS option exceeded the limit: rewritten
	WithinMSS               // SYN whose MSS option is at or below the limit
	NoMSS                   // SYN without an MSS option: left alone, as AWS does; the peer then assumes 536 (IPv4) or 1220 (IPv6), below any limit (RFC 9293 §3.7.1)
	NotSYN                  // TCP segment without SYN: the common case
	NotTCP                  // not TCP (or TCP behind AH/ESP, which must not be altered)
	Fragment                // IPv4/IPv6 non-first fragment: no TCP header here
	Malformed               // truncated header or TCP option list that does not parse

	NumResults // number of results, for sizing counter arrays
)

var resultNames = [NumResults]string{
	Clamped:   "clamped",
	WithinMSS: "within_mss",
	NoMSS:     "syn_without_mss",
	NotSYN:    "not_syn",
	NotTCP:    "not_tcp",
	Fragment:  "non_first_fragment",
	Malformed: "malformed",
}

// String is a short snake_case name suitable as a metrics label.
func (r Result) String() string {
	if r < NumResults {
		return resultNames[r]
	}
	return "unknown"
}

// Clamper is one worker's MSS clamping stage. It is not safe for
// concurrent use: give each worker its own (the counters are plain
// integers so the hot path has no atomics).
type Clamper struct {
	limit4, limit6 uint16
	// Counts counts packets by Result.
	Counts [NumResults]uint64
}

// New returns a Clamper limiting the MSS of IPv4 SYNs to mss4 and of IPv6
// SYNs to mss6. Zero selects the default: DefaultMSS4, and for IPv6 mss4
// minus the 20 bytes by which an IPv6 header is longer.
func New(mss4, mss6 int) (*Clamper, error) {
	if mss4 == 0 {
		mss4 = DefaultMSS4
	}
	if mss6 == 0 {
		mss6 = mss4 - (packet.IPv6HeaderLen - packet.IPv4HeaderLen)
	}
	if mss4 < MinMSS || mss4 > 65535 {
		return nil, fmt.Errorf("tcp_mss %d for IPv4 is outside %d–65535 bytes (AWS recommends %d)", mss4, MinMSS, DefaultMSS4)
	}
	if mss6 < MinMSS || mss6 > 65535 {
		return nil, fmt.Errorf("tcp_mss %d for IPv6 is outside %d–65535 bytes (default: the IPv4 value minus 20)", mss6, MinMSS)
	}
	return &Clamper{limit4: uint16(mss4), limit6: uint16(mss6)}, nil
}

// Limits returns the IPv4 and IPv6 MSS limits in force.
func (c *Clamper) Limits() (mss4, mss6 int) { return int(c.limit4), int(c.limit6) }

// Batch clamps every packet of the batch in place (each pkts[i] starts at
// its IP header) and counts the results. No packet is dropped, so all of
// pkts survive; the lengths do not change.
func (c *Clamper) Batch(pkts [][]byte) {
	for _, p := range pkts {
		c.Counts[Clamp(p, c.limit4, c.limit6)]++
	}
}

// Clamp rewrites, in place, the MSS option of a TCP SYN in the IPv4 or
// IPv6 packet pkt if it exceeds limit4 (IPv4) or limit6 (IPv6), fixing the
// TCP checksum incrementally. Bytes past the IP total/payload length are
// ignored.
func Clamp(pkt []byte, limit4, limit6 uint16) Result {
	switch packet.Version(pkt) {
	case 4:
		return clamp4(pkt, limit4)
	case 6:
		return clamp6(pkt, limit6)
	}
	return Malformed
}

func clamp4(pkt []byte, limit uint16) Result {
	if len(pkt) < packet.IPv4HeaderLen {
		return Malformed
	}
	hl := int(pkt[0]&0x0f) * 4
	tl := int(binary.BigEndian.Uint16(pkt[packet.IPv4OffTotalLen:]))
	if hl < packet.IPv4HeaderLen || tl < hl || tl > len(pkt) {
		return Malformed
	}
	if pkt[packet.IPv4OffProto] != packet.ProtoTCP {
		return NotTCP
	}
	// A first fragment (offset 0, MF set) still carries the TCP header and
	// the incremental update stays right for the whole segment's checksum.
	if binary.BigEndian.Uint16(pkt[packet.IPv4OffFlagsFrag:])&packet.IPv4FragOffMask != 0 {
		return Fragment
	}
	return clampTCP(pkt[hl:tl], limit)
}

// IPv6 extension headers that may precede TCP (RFC 8200 §4).
const (
	nhHopByHop = 0
	nhRouting  = 43
	nhFragment = 44
	nhDestOpts = 60
	nhAH       = 51
)

// maxExtHeaders bounds the extension-header walk so a crafted chain of
// empty headers costs little.
const maxExtHeaders = 8

func clamp6(pkt []byte, limit uint16) Result {
	if len(pkt) < packet.IPv6HeaderLen {
		return Malformed
	}
	end := packet.IPv6HeaderLen + int(binary.BigEndian.Uint16(pkt[4:]))
	if end > len(pkt) {
		return Malformed
	}
	nh := pkt[6]
	off := packet.IPv6HeaderLen
	for range maxExtHeaders {
		switch nh {
		case packet.ProtoTCP:
			if off > end { // the last extension header claimed too much
				return Malformed
			}
			return clampTCP(pkt[off:end], limit)
		case nhHopByHop, nhRouting, nhDestOpts:
			if off+8 > end {
				return Malformed
			}
			nh = pkt[off]
			off += (int(pkt[off+1]) + 1) * 8
		case nhFragment:
			if off+8 > end {
				return Malformed
			}
			if binary.BigEndian.Uint16(pkt[off+2:])&0xfff8 != 0 {
				return Fragment
			}
			nh = pkt[off]
			off += 8
		default:
			// AH (51) authenticates the TCP header, ESP (50) hides it;
			// anything else is not TCP.
			return NotTCP
		}
	}
	return Malformed
}

// TCP option kinds (RFC 9293 §3.2).
const (
	optEOL = 0
	optNOP = 1
	optMSS = 2
)

const tcpFlagSYN = 0x02

// clampTCP clamps the MSS option of the TCP segment seg (header and data,
// as far as the IP length says).
func clampTCP(seg []byte, limit uint16) Result {
	if len(seg) < 20 {
		return Malformed
	}
	if seg[13]&tcpFlagSYN == 0 {
		return NotSYN
	}
	doff := int(seg[12]>>4) * 4
	if doff < 20 || doff > len(seg) {
		return Malformed
	}
	// Walk the option list; every index is checked against doff before it
	// is read, so a malformed list cannot read past the header.
	for i := 20; i < doff; {
		kind := seg[i]
		switch kind {
		case optEOL:
			return NoMSS
		case optNOP:
			i++
			continue
		}
		if i+1 >= doff {
			return Malformed
		}
		n := int(seg[i+1])
		if n < 2 || i+n > doff {
			return Malformed
		}
		if kind == optMSS {
			if n != 4 {
				return Malformed
			}
			old := binary.BigEndian.Uint16(seg[i+2:])
			if old <= limit {
				return WithinMSS
			}
			binary.BigEndian.PutUint16(seg[i+2:], limit)
			// The 16-bit value may sit at an odd offset of the segment
			// (e.g. after one NOP); its bytes then add into the sum
			// swapped (RFC 1071 §2(B) byte-order independence).
			m, m1 := old, limit
			if i&1 != 0 {
				m, m1 = swap16(m), swap16(m1)
			}
			hc := binary.BigEndian.Uint16(seg[16:])
			binary.BigEndian.PutUint16(seg[16:], Update(hc, m, m1))
			return Clamped
		}
		i += n
	}
	return NoMSS
}

func swap16(v uint16) uint16 { return v<<8 | v>>8 }

// Update returns the Internet checksum hc after a 16-bit word of the
// covered data changed from m to m1, by RFC 1624 eqn. 3:
// HC' = ~(~HC + ~m + m'). Unlike eqn. 2 this never turns a correct sum
// into 0xFFFF where a full recomputation would give 0x0000 (RFC 1624 §3):
// the end-around-carry sum of non-zero terms is never 0.
func Update(hc, m, m1 uint16) uint16 {
	s := uint32(^hc) + uint32(^m) + uint32(m1)
	return ^packet.Fold(s)
}
