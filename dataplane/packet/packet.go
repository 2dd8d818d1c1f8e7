// Package packet holds small helpers for IPv4, IPv6 and UDP headers that
// every fast-path stage shares: field offsets, protocol numbers and the
// Internet checksum. Nothing here allocates.
package packet

import "encoding/binary"

// Header sizes.
const (
	IPv4HeaderLen = 20 // without options
	IPv6HeaderLen = 40
	UDPHeaderLen  = 8
)

// IP protocol / next-header numbers (IANA "Assigned Internet Protocol
// Numbers").
const (
	ProtoIPv4   = 4  // IP-in-IP, RFC 2003; ESP tunnel mode inner IPv4
	ProtoTCP    = 6  //
	ProtoUDP    = 17 //
	ProtoIPv6   = 41 // RFC 2473; ESP tunnel mode inner IPv6
	ProtoESP    = 50 // RFC 4303
	ProtoNoNext = 59 // IPv6 No Next Header; ESP dummy packet, RFC 4303 §2.6
)

// IPv4 header fields used by more than one stage (RFC 791 §3.1).
const (
	IPv4FlagDF       = 0x4000 // in the 16-bit flags/fragment-offset word
	IPv4FlagMF       = 0x2000
	IPv4FragOffMask  = 0x1fff
	IPv4OffTOS       = 1
	IPv4OffTotalLen  = 2
	IPv4OffID        = 4
	IPv4OffFlagsFrag = 6
	IPv4OffTTL       = 8
	IPv4OffProto     = 9
	IPv4OffChecksum  = 10
	IPv4OffSrc       = 12
	IPv4OffDst       = 16
)

// Version returns the IP version nibble of the packet starting at b[0], or
// 0 when b is empty.
func Version(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	return int(b[0] >> 4)
}

// Checksum returns the Internet checksum (RFC 1071) of b, folded and
// complemented, ready to be stored. initial is a partial sum to start from
// (a pseudo-header sum, or 0).
func Checksum(b []byte, initial uint32) uint16 {
	return ^Fold(Sum(b, initial))
}

// Sum adds b to the one's-complement running sum s without folding, so a
// checksum can be built over several pieces (pseudo-header, header,
// payload). An odd trailing byte is padded with zero (RFC 1071 §4.1).
func Sum(b []byte, s uint32) uint32 {
	acc := uint64(s)
	for len(b) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	// Fold 64 → 32 bits; the 16-bit fold happens in Fold.
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	return uint32(acc)
}

// Fold folds a 32-bit running sum to 16 bits (not complemented).
func Fold(s uint32) uint16 {
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// IPv4HeaderChecksum computes the header checksum of the IPv4 header h
// (h[10:12] must be zero or is ignored) and stores it.
func IPv4HeaderChecksum(h []byte) {
	h[IPv4OffChecksum], h[IPv4OffChecksum+1] = 0, 0
	if len(h) == IPv4HeaderLen {
		binary.BigEndian.PutUint16(h[IPv4OffChecksum:], ^Fold(sum20(h)))
		return
	}
	binary.BigEndian.PutUint16(h[IPv4OffChecksum:], Checksum(h, 0))
}

// IPv4HeaderValid reports whether the IPv4 header h (all IHL*4 bytes) has
// a correct checksum.
func IPv4HeaderValid(h []byte) bool {
	if len(h) == IPv4HeaderLen {
		return Fold(sum20(h)) == 0xffff
	}
	return Fold(Sum(h, 0)) == 0xffff
}

// sum20 is Sum(h[:20], 0) unrolled: the option-less IPv4 header that
// every packet has is checked on every decapsulation (outer and inner) and
// written on every encapsulation.
func sum20(h []byte) uint32 {
	_ = h[19]
	acc := uint64(binary.BigEndian.Uint32(h[0:])) + uint64(binary.BigEndian.Uint32(h[4:])) +
		uint64(binary.BigEndian.Uint32(h[8:])) + uint64(binary.BigEndian.Uint32(h[12:])) +
		uint64(binary.BigEndian.Uint32(h[16:]))
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	return uint32(acc)
}
