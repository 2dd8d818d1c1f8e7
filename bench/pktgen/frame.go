package pktgen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// Sizes of what a frame is made of. Size, as in RFC 2544, counts the
// Ethernet frame with its 4-byte FCS, which the kernel adds and the
// generator therefore leaves out.
const (
	fcsLen     = 4
	ethLen     = 14
	ipv4Len    = 20
	udpLen     = 8
	MinSize    = 64
	MaxSize    = 1518
	headersLen = ethLen + ipv4Len + udpLen
)

// Bench is the address block frames may use: RFC 2544 §C.2.2 benchmarking
// addresses, which the project also uses for its inside networks.
var Bench = netip.MustParsePrefix("198.18.0.0/15")

// Frame describes one UDP/IPv4 frame of the generator.
type Frame struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.AddrPort
	// Size is the Ethernet frame size with FCS (64..1518); the IP packet
	// is Size-18 bytes.
	Size int
	// Seq, if not zero, is written as the first 8 bytes of the payload.
	Seq uint64
	// NoDF leaves the IPv4 Don't Fragment bit clear, so a gateway
	// fragments a packet over its tunnel MTU (RFC 4459) rather than
	// refusing it: IMIX's 1518-byte frames through an AWS tunnel.
	NoDF bool
}

// Build returns the frame's bytes (without FCS), with valid IPv4 and UDP
// checksums.
func (f Frame) Build() ([]byte, error) {
	if f.Size < MinSize || f.Size > MaxSize {
		return nil, fmt.Errorf("pktgen: frame size %d out of range %d..%d (Ethernet frame with FCS)", f.Size, MinSize, MaxSize)
	}
	for _, a := range []netip.Addr{f.Src.Addr(), f.Dst.Addr()} {
		if !a.Is4() || !Bench.Contains(a) {
			return nil, fmt.Errorf("pktgen: address %v is not in %v: the generator sends only benchmarking addresses", a, Bench)
		}
	}
	if len(f.SrcMAC) != 6 || len(f.DstMAC) != 6 {
		return nil, fmt.Errorf("pktgen: source and destination MAC addresses are required (got %q, %q)", f.SrcMAC, f.DstMAC)
	}
	b := make([]byte, f.Size-fcsLen)
	copy(b[0:6], f.DstMAC)
	copy(b[6:12], f.SrcMAC)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[ethLen : ethLen+ipv4Len]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)-ethLen))
	if !f.NoDF {
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF: nothing here should need fragmenting
	}
	ip[8], ip[9] = 64, 17
	s, d := f.Src.Addr().As4(), f.Dst.Addr().As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(0, ip)))
	udp := b[ethLen+ipv4Len:]
	binary.BigEndian.PutUint16(udp[0:], f.Src.Port())
	binary.BigEndian.PutUint16(udp[2:], f.Dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	payload := udp[udpLen:]
	for i := range payload {
		payload[i] = byte(i)
	}
	if f.Seq != 0 && len(payload) >= 8 {
		binary.BigEndian.PutUint64(payload, f.Seq)
	}
	// RFC 768: checksum over the pseudo-header and the datagram.
	c := sum(0, ip[12:20])
	c += 17 + uint32(len(udp))
	c = sum(c, udp)
	ck := ^fold(c)
	if ck == 0 {
		ck = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], ck)
	return b, nil
}

func sum(s uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
