package frag

import (
	"encoding/binary"

	"github.com/cgw-project/cgw/dataplane/packet"
)

// Packet runs the stage on one inner packet pkt (starting at its IP
// header; bytes past its IP length are ignored). out are free buffers
// (frames past their headroom) for extra fragments or an ICMP error, each
// at least MTU bytes long (576 for an ICMP error, 1280 for ICMPv6). By
// reason:
//
//   - Fits: send pkt[:first] (first is the IP length, so link padding is
//     trimmed); n = 0.
//   - Fragmented: send pkt[:first], then out[0:n] (resliced to their
//     lengths), in that order.
//   - FragNeeded, PacketTooBig: drop pkt; out[0] (resliced, n = 1) is the
//     ICMP error to send back towards the packet's source.
//   - anything else: drop pkt; first = n = 0.
func (f *Fragmenter) Packet(pkt []byte, out [][]byte) (first, n int, r Reason) {
	return f.packet(pkt, out, true)
}

// packet is Packet; errOK false means no ICMP error may be sent now (the
// batch's error slots are used up).
func (f *Fragmenter) packet(pkt []byte, out [][]byte, errOK bool) (first, n int, r Reason) {
	switch packet.Version(pkt) {
	case 4:
		return f.packet4(pkt, out, errOK)
	case 6:
		return f.packet6(pkt, out, errOK)
	}
	return 0, 0, NotIP
}

func (f *Fragmenter) packet4(pkt []byte, out [][]byte, errOK bool) (first, n int, r Reason) {
	hl, tl, ok := header4(pkt)
	if !ok {
		return 0, 0, Malformed
	}
	if tl <= f.mtu {
		return tl, 0, Fits
	}
	keepDF := uint16(packet.IPv4FlagDF)
	if binary.BigEndian.Uint16(pkt[packet.IPv4OffFlagsFrag:])&packet.IPv4FlagDF != 0 {
		if !f.clearDF {
			if r = f.fragNeeded(pkt, hl, tl, out, errOK); r == FragNeeded {
				return 0, 1, r
			}
			return 0, 0, r
		}
		keepDF = 0
	}
	first, n, err := split(pkt, f.mtu, out, keepDF)
	switch err {
	case nil:
	case ErrShortFrame:
		return 0, 0, NoFrames
	default:
		return 0, 0, Malformed
	}
	if keepDF == 0 {
		f.DFCleared++
	}
	return first, n, Fragmented
}

func (f *Fragmenter) fragNeeded(pkt []byte, hl, tl int, out [][]byte, errOK bool) Reason {
	if !f.has4 || !mayAnswer4(pkt, hl, tl) {
		return TooBigSilent
	}
	if !errOK {
		return ErrorLimited
	}
	if len(out) == 0 {
		return NoFrames
	}
	f.icmpID++
	k := FragNeeded4(out[0], pkt, f.gw4, f.mtu, f.icmpID)
	if k == 0 {
		return NoFrames
	}
	out[0] = out[0][:k]
	return FragNeeded
}

func (f *Fragmenter) packet6(pkt []byte, out [][]byte, errOK bool) (first, n int, r Reason) {
	if len(pkt) < packet.IPv6HeaderLen {
		return 0, 0, Malformed
	}
	end := packet.IPv6HeaderLen + int(binary.BigEndian.Uint16(pkt[4:]))
	if end > len(pkt) {
		return 0, 0, Malformed
	}
	if end <= f.mtu {
		return end, 0, Fits
	}
	// RFC 8200 §5: routers do not fragment IPv6.
	if !f.has6 || !mayAnswer6(pkt, end) {
		return 0, 0, TooBigSilent
	}
	if !errOK {
		return 0, 0, ErrorLimited
	}
	if len(out) == 0 {
		return 0, 0, NoFrames
	}
	k := PacketTooBig6(out[0], pkt, end, f.gw6, f.mtu)
	if k == 0 {
		return 0, 0, NoFrames
	}
	out[0] = out[0][:k]
	return 0, 1, PacketTooBig
}

// Batch runs the stage over a batch of inner packets pkts (each starting
// at its IP header). Packets for the tunnel are written to tunnel from
// index 0, in order: a packet that fits (trimmed to its IP length), or the
// first fragment (still in its own frame) followed by its other fragments.
// ICMP errors, to be sent back towards the senders, are written to errs.
// Frames for extra fragments and errors are taken from free in order:
// free[:used] are consumed, each now referenced by exactly one output
// slice. res[i] gets packet i's Reason; when it is neither Fits nor
// Fragmented no output refers to pkts[i]'s frame, which the caller
// recycles. len(errs) caps ICMP errors per batch, the stage's rate limit
// (RFC 1812 §4.3.2.8); packets over it count as ErrorLimited. A packet
// whose output does not fit tunnel or free is dropped as NoFrames.
func (f *Fragmenter) Batch(pkts [][]byte, res []Reason, free [][]byte, tunnel, errs [][]byte) (nt, ne, used int) {
	for i, p := range pkts {
		if nt == len(tunnel) {
			res[i] = NoFrames
			f.Counts[NoFrames]++
			continue
		}
		// Extra fragments may use the free frames and tunnel slots left
		// after this packet's first fragment; an error uses one free frame
		// and one errs slot.
		out := free[used:]
		if k := len(tunnel) - nt - 1; len(out) > k {
			out = out[:k]
		}
		first, n, r := f.packet(p, out, ne < len(errs))
		res[i] = r
		f.Counts[r]++
		switch r {
		case Fits:
			tunnel[nt] = p[:first]
			nt++
		case Fragmented:
			tunnel[nt] = p[:first]
			nt++
			nt += copy(tunnel[nt:], out[:n])
			used += n
		case FragNeeded, PacketTooBig:
			errs[ne] = out[0]
			ne++
			used++
		}
	}
	return nt, ne, used
}
