package mss

import (
	"encoding/binary"
	"math/rand/v2"
)

// refSum is a deliberately plain RFC 1071 sum, word by word, independent
// of dataplane/packet, to check the incremental update against.
func refSum(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return s
}

// tcpOffsets returns where the TCP segment of a test packet starts and ends.
func tcpOffsets(pkt []byte) (start, end int) {
	if pkt[0]>>4 == 4 {
		return int(pkt[0]&0xf) * 4, int(binary.BigEndian.Uint16(pkt[2:]))
	}
	end = 40 + int(binary.BigEndian.Uint16(pkt[4:]))
	nh, off := pkt[6], 40
	for nh != 6 {
		switch nh {
		case 44:
			nh, off = pkt[off], off+8
		default:
			nh, off = pkt[off], off+(int(pkt[off+1])+1)*8
		}
	}
	return off, end
}

// fullTCPChecksum recomputes the TCP checksum of a test packet from
// scratch (pseudo-header of RFC 9293 §3.1 / RFC 8200 §8.1).
func fullTCPChecksum(pkt []byte) uint16 {
	start, end := tcpOffsets(pkt)
	seg := make([]byte, end-start)
	copy(seg, pkt[start:end])
	seg[16], seg[17] = 0, 0
	var s uint32
	if pkt[0]>>4 == 4 {
		s = refSum(pkt[12:20], 0)
	} else {
		s = refSum(pkt[8:40], 0)
	}
	s += 6 + uint32(len(seg))
	return ^uint16(refSum(seg, s))
}

func setTCPChecksum(pkt []byte) {
	start, _ := tcpOffsets(pkt)
	binary.BigEndian.PutUint16(pkt[start+16:], fullTCPChecksum(pkt))
}

// synSpec describes a test SYN.
type synSpec struct {
	v6       bool
	ipOpts   []byte // IPv4 options, length a multiple of 4
	ext      []byte // IPv6 extension headers (already chained to TCP, first next-header in ext6First)
	extFirst byte
	flags    byte
	tcpOpts  []byte // padded to a multiple of 4 by the builder with EOL
	payload  []byte
	fragOff  uint16 // IPv4 fragment offset (8-byte units)
}

func buildSYN(s synSpec) []byte {
	opts := append([]byte(nil), s.tcpOpts...)
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	tcp := make([]byte, 20+len(opts)+len(s.payload))
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 443)
	binary.BigEndian.PutUint32(tcp[4:], 0x01020304)
	tcp[12] = byte((20+len(opts))/4) << 4
	tcp[13] = s.flags
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	copy(tcp[20:], opts)
	copy(tcp[20+len(opts):], s.payload)
	var pkt []byte
	if !s.v6 {
		hl := 20 + len(s.ipOpts)
		pkt = make([]byte, hl+len(tcp))
		pkt[0] = 0x40 | byte(hl/4)
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		binary.BigEndian.PutUint16(pkt[4:], 0x1234)
		binary.BigEndian.PutUint16(pkt[6:], 0x4000|s.fragOff)
		pkt[8], pkt[9] = 64, 6
		copy(pkt[12:], []byte{198, 18, 0, 10})
		copy(pkt[16:], []byte{198, 19, 0, 20})
		copy(pkt[20:], s.ipOpts)
		copy(pkt[hl:], tcp)
		binary.BigEndian.PutUint16(pkt[10:], ^uint16(refSum(pkt[:hl], 0)))
	} else {
		pkt = make([]byte, 40+len(s.ext)+len(tcp))
		pkt[0] = 0x60
		binary.BigEndian.PutUint16(pkt[4:], uint16(len(pkt)-40))
		pkt[6], pkt[7] = 6, 64
		if len(s.ext) > 0 {
			pkt[6] = s.extFirst
		}
		copy(pkt[8:], []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a})
		copy(pkt[24:], []byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x14})
		copy(pkt[40:], s.ext)
		copy(pkt[40+len(s.ext):], tcp)
	}
	if s.fragOff == 0 {
		setTCPChecksum(pkt)
	}
	return pkt
}

func mssOpt(v uint16) []byte { return []byte{2, 4, byte(v >> 8), byte(v)} }

// randomOpts returns a random but well-formed TCP option list holding the
// MSS option (value mss) at a random position, sometimes at an odd offset.
func randomOpts(r *rand.Rand, mss uint16) []byte {
	others := [][]byte{
		{1},                             // NOP
		{3, 3, 7},                       // window scale
		{4, 2},                          // SACK permitted
		{8, 10, 1, 2, 3, 4, 0, 0, 0, 0}, // timestamps
		{1, 1},                          // two NOPs
		{30, 4, 0xaa, 0xbb},             // unknown kind, skipped by length
	}
	var o []byte
	placed := false
	for len(o) < 28 {
		if !placed && (r.IntN(3) == 0 || len(o) > 20) {
			o = append(o, mssOpt(mss)...)
			placed = true
			continue
		}
		x := others[r.IntN(len(others))]
		if len(o)+len(x) > 36 {
			break
		}
		o = append(o, x...)
		if r.IntN(4) == 0 {
			break
		}
	}
	if !placed {
		o = append(o, mssOpt(mss)...)
	}
	return o
}

// randomMSS favours values around the limits and the extremes.
func randomMSS(r *rand.Rand, limit uint16) uint16 {
	switch r.IntN(6) {
	case 0:
		return limit
	case 1:
		return limit + 1
	case 2:
		return 0xffff
	case 3:
		return uint16(r.IntN(int(limit)))
	}
	return uint16(r.IntN(65536))
}

// ipv6Ext returns a hop-by-hop (PadN) + destination-options header chain
// ending in TCP, and the first next-header value.
func ipv6Ext(withFrag bool, fragOff uint16) ([]byte, byte) {
	hbh := []byte{60, 0, 1, 4, 0, 0, 0, 0} // next: dest opts, len 0, PadN(4)
	dst := []byte{6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if withFrag {
		dst[0] = 44
		frag := []byte{6, 0, byte(fragOff >> 5), byte(fragOff<<3) | 1, 0, 0, 0, 9}
		return append(append(hbh, dst...), frag...), 0
	}
	return append(hbh, dst...), 0
}
