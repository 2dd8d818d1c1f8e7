package frag

import (
	"encoding/binary"

	"github.com/cgw-project/cgw/dataplane/packet"
)

// ICMP constants (RFC 792, RFC 1191 §4, RFC 4443 §2.1, §3.2).
const (
	protoICMP   = 1
	protoICMPv6 = 58

	icmpDestUnreach = 3
	icmpFragNeeded  = 4 // code of type 3
	icmp6TooBig     = 2

	icmpHeaderLen = 8

	// RFC 1812 §4.3.2.3: an ICMP error holds as much of the original
	// datagram as fits in 576 bytes. RFC 4443 §2.4(c): as much of the
	// invoking packet as fits in the IPv6 minimum MTU, 1280.
	maxICMPLen  = 576
	maxICMP6Len = 1280

	// RFC 1812 §4.3.2.5: precedence 6 (internetwork control) for
	// destination-unreachable errors.
	icmpTOS = 0xc0
	errTTL  = 64
)

// ICMPv4 types that are error messages (RFC 1122 §3.2.2: never answer one
// with another): unreachable, source quench, redirect, time exceeded,
// parameter problem.
func icmpIsError(t byte) bool {
	switch t {
	case 3, 4, 5, 11, 12:
		return true
	}
	return false
}

// mayAnswer4 reports whether an ICMP error may be sent about the IPv4
// packet pkt with header length hl and total length tl (RFC 1122
// §3.2.2, RFC 1812 §4.3.2.7): not about an ICMP error, not about a
// non-first fragment, not to or from an address that is not one host
// (zero, loopback, multicast, class E / broadcast).
func mayAnswer4(pkt []byte, hl, tl int) bool {
	if binary.BigEndian.Uint16(pkt[packet.IPv4OffFlagsFrag:])&packet.IPv4FragOffMask != 0 {
		return false
	}
	src, dst := pkt[packet.IPv4OffSrc], pkt[packet.IPv4OffDst]
	if src == 0 || src == 127 || src >= 224 || dst >= 224 {
		return false // 0/8, 127/8, 224/4 multicast, 240/4 incl. 255.255.255.255
	}
	if pkt[packet.IPv4OffProto] == protoICMP && (tl <= hl || icmpIsError(pkt[hl])) {
		return false // an ICMP error, or ICMP whose type we cannot see
	}
	return true
}

// FragNeeded4 builds in dst an ICMP destination unreachable, code 4
// "fragmentation needed and DF set", about the IPv4 packet orig (whose
// header has been checked: IHL and total length within orig), from src to
// orig's source, announcing next-hop MTU mtu (RFC 1191 §4). It quotes as
// much of orig as fits in 576 bytes (RFC 1812 §4.3.2.3). id is the IPv4
// ID to use. It returns the error's length, or 0 if dst is too short.
func FragNeeded4(dst, orig []byte, src [4]byte, mtu int, id uint16) int {
	tl := int(binary.BigEndian.Uint16(orig[packet.IPv4OffTotalLen:]))
	q := min(tl, maxICMPLen-packet.IPv4HeaderLen-icmpHeaderLen)
	n := packet.IPv4HeaderLen + icmpHeaderLen + q
	if len(dst) < n {
		return 0
	}
	ip := dst[:packet.IPv4HeaderLen]
	ip[0], ip[packet.IPv4OffTOS] = 0x45, icmpTOS
	binary.BigEndian.PutUint16(ip[packet.IPv4OffTotalLen:], uint16(n))
	binary.BigEndian.PutUint16(ip[packet.IPv4OffID:], id)
	binary.BigEndian.PutUint16(ip[packet.IPv4OffFlagsFrag:], 0)
	ip[packet.IPv4OffTTL], ip[packet.IPv4OffProto] = errTTL, protoICMP
	copy(ip[packet.IPv4OffSrc:], src[:])
	copy(ip[packet.IPv4OffDst:], orig[packet.IPv4OffSrc:packet.IPv4OffSrc+4])
	packet.IPv4HeaderChecksum(ip)

	m := dst[packet.IPv4HeaderLen:n]
	m[0], m[1] = icmpDestUnreach, icmpFragNeeded
	m[2], m[3], m[4], m[5] = 0, 0, 0, 0 // checksum, unused
	binary.BigEndian.PutUint16(m[6:], uint16(mtu))
	copy(m[icmpHeaderLen:], orig[:q])
	binary.BigEndian.PutUint16(m[2:], packet.Checksum(m, 0))
	return n
}

// IPv6 extension headers walked to find the upper layer (RFC 8200 §4).
const (
	nhHopByHop = 0
	nhRouting  = 43
	nhFragment = 44
	nhAH       = 51
	nhDestOpts = 60
)

const maxExtHeaders = 8

// mayAnswer6 reports whether an ICMPv6 error may be sent about the IPv6
// packet pkt of length end (RFC 4443 §2.4(e)): not about an ICMPv6 error
// or redirect, not from an address that is not one node (unspecified,
// loopback, multicast). Packet Too Big is sent for a multicast
// destination (§2.4(e.2) exception). Like IPv4, not about a non-first
// fragment: the first fragment (no smaller) already drew one.
func mayAnswer6(pkt []byte, end int) bool {
	src := pkt[8:24]
	if src[0] == 0xff {
		return false
	}
	var hi, lo uint64 = binary.BigEndian.Uint64(src), binary.BigEndian.Uint64(src[8:])
	if hi == 0 && (lo == 0 || lo == 1) {
		return false
	}
	nh, off := pkt[6], packet.IPv6HeaderLen
	for range maxExtHeaders {
		switch nh {
		case protoICMPv6:
			if off >= end {
				return false // ICMPv6 whose type we cannot see
			}
			t := pkt[off]
			return t >= 128 && t != 137 // errors are types 0–127; 137 redirect
		case nhHopByHop, nhRouting, nhDestOpts:
			if off+8 > end {
				return true
			}
			nh, off = pkt[off], off+(int(pkt[off+1])+1)*8
		case nhAH:
			if off+8 > end {
				return true
			}
			nh, off = pkt[off], off+(int(pkt[off+1])+2)*4
		case nhFragment:
			if off+8 > end {
				return true
			}
			if binary.BigEndian.Uint16(pkt[off+2:])&0xfff8 != 0 {
				return false
			}
			nh, off = pkt[off], off+8
		default:
			return true
		}
	}
	return true
}

// PacketTooBig6 builds in dst an ICMPv6 Packet Too Big (RFC 4443 §3.2)
// about the IPv6 packet orig (end bytes: header plus payload length), from
// src to orig's source, announcing mtu. It quotes as much of orig as fits
// in 1280 bytes. It returns the error's length, or 0 if dst is too short.
func PacketTooBig6(dst, orig []byte, end int, src [16]byte, mtu int) int {
	q := min(end, maxICMP6Len-packet.IPv6HeaderLen-icmpHeaderLen)
	n := packet.IPv6HeaderLen + icmpHeaderLen + q
	if len(dst) < n {
		return 0
	}
	ip := dst[:packet.IPv6HeaderLen]
	binary.BigEndian.PutUint32(ip[0:], 6<<28) // traffic class and flow label 0
	binary.BigEndian.PutUint16(ip[4:], uint16(n-packet.IPv6HeaderLen))
	ip[6], ip[7] = protoICMPv6, errTTL
	copy(ip[8:24], src[:])
	copy(ip[24:40], orig[8:24])

	m := dst[packet.IPv6HeaderLen:n]
	m[0], m[1], m[2], m[3] = icmp6TooBig, 0, 0, 0
	binary.BigEndian.PutUint32(m[4:], uint32(mtu))
	copy(m[icmpHeaderLen:], orig[:q])
	// RFC 4443 §2.3 / RFC 8200 §8.1 pseudo-header: addresses,
	// upper-layer length, next header.
	s := packet.Sum(ip[8:40], uint32(len(m))+protoICMPv6)
	binary.BigEndian.PutUint16(m[2:], packet.Checksum(m, s))
	return n
}
