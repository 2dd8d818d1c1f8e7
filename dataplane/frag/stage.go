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
	switch packet.Version(pkt) {
	case 4:
		return f.packet4(pkt, out)
	case 6:
		return f.packet6(pkt, out)
	}
	return 0, 0, NotIP
}

func (f *Fragmenter) packet4(pkt []byte, out [][]byte) (first, n int, r Reason) {
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
			if r = f.fragNeeded(pkt, hl, tl, out); r == FragNeeded {
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

func (f *Fragmenter) fragNeeded(pkt []byte, hl, tl int, out [][]byte) Reason {
	if !f.has4 || !mayAnswer4(pkt, hl, tl) {
		return TooBigSilent
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

func (f *Fragmenter) packet6(pkt []byte, out [][]byte) (first, n int, r Reason) {
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
