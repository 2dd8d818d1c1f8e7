package message

import (
	"crypto/sha1"
	"encoding/binary"
	"net/netip"
)

// NonESPMarker is what precedes an IKE message on UDP port 4500, telling
// it apart from ESP-in-UDP, whose first 4 bytes are a non-zero SPI
// (RFC 3948 §2.2, RFC 7296 §2.23).
var NonESPMarker = [4]byte{}

// AppendMarked appends the non-ESP marker and msg to dst, for sending
// an IKE message on port 4500.
func AppendMarked(dst, msg []byte) []byte {
	dst = append(dst, NonESPMarker[:]...)
	return append(dst, msg...)
}

// Datagram4500 is what a UDP-4500 datagram holds.
type Datagram4500 uint8

const (
	// Datagram4500Invalid: too short to be anything (1–3 bytes other than
	// a keepalive, or empty).
	Datagram4500Invalid Datagram4500 = iota
	// Datagram4500Keepalive: a NAT-keepalive, one 0xFF byte (RFC 3948
	// §2.3); ignore it.
	Datagram4500Keepalive
	// Datagram4500IKE: an IKE message after the non-ESP marker.
	Datagram4500IKE
	// Datagram4500ESP: ESP-in-UDP (the SPI is non-zero).
	Datagram4500ESP
)

// Classify4500 sorts a UDP-4500 payload and returns the IKE message
// without its marker for Datagram4500IKE, or b itself otherwise.
func Classify4500(b []byte) (Datagram4500, []byte) {
	switch {
	case IsNATKeepalive(b):
		return Datagram4500Keepalive, b
	case len(b) < 4:
		return Datagram4500Invalid, b
	case binary.BigEndian.Uint32(b) == 0:
		return Datagram4500IKE, b[4:]
	}
	return Datagram4500ESP, b
}

// StripMarker returns the IKE message after the non-ESP marker, and false
// if b does not start with one.
func StripMarker(b []byte) ([]byte, bool) {
	if k, ike := Classify4500(b); k == Datagram4500IKE {
		return ike, true
	}
	return nil, false
}

// IsNATKeepalive reports whether b is a NAT-keepalive: a single 0xFF
// byte (RFC 3948 §2.3).
func IsNATKeepalive(b []byte) bool { return len(b) == 1 && b[0] == 0xff }

// NATDetectionHash is the NAT_DETECTION_SOURCE_IP /
// NAT_DETECTION_DESTINATION_IP data (§2.23):
// SHA-1(SPIi | SPIr | IP address | port), the address as 4 or 16 bytes,
// the port in network order. In IKE_SA_INIT request SPIr is all zeros.
func NATDetectionHash(spii, spir []byte, ip netip.Addr, port uint16) [20]byte {
	h := sha1.New()
	h.Write(spii)
	h.Write(spir)
	h.Write(ip.Unmap().AsSlice())
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], port)
	h.Write(p[:])
	var out [20]byte
	h.Sum(out[:0])
	return out
}
