package esp

import (
	"encoding/binary"

	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/dataplane/packet"
)

// padBytes is the RFC 4303 §2.4 default padding 1, 2, 3, …
var padBytes = [maxBlock]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

// Encap encapsulates in place the inner IPv4 or IPv6 packet buf[off:off+n]
// with sequence number seq (from ReserveSeq) and returns where the outer
// packet lies: buf[start:end]. It needs Headroom() bytes before off and
// Tailroom() bytes after off+n (NoRoom otherwise); the inner packet is not
// moved. The layout written (RFC 4303 §2, RFC 3948 §2.1):
//
//	[outer IPv4][UDP]?[SPI|seq][IV][inner packet][pad 1,2,…][pad len][next hdr][ICV]
//
// The outer IPv4 ID is the low 16 bits of seq: unique per SA without a
// second shared counter (RFC 6864 asks uniqueness only within the
// reassembly lifetime). ECN is not copied to the outer header (RFC 6040
// compatibility mode, always safe).
func (sa *SA) Encap(buf []byte, off, n int, seq uint64) (start, end int, r Reason) {
	return sa.encap(nil, buf, off, n, seq)
}

// EncapWith is Encap with the caller's crypto scratch (one per worker,
// transform.Scratch), which spares the cipher a sync.Pool round trip per
// packet. sc may be nil.
func (sa *SA) EncapWith(sc *transform.Scratch, buf []byte, off, n int, seq uint64) (start, end int, r Reason) {
	return sa.encap(sc, buf, off, n, seq)
}

func (sa *SA) encap(sc *transform.Scratch, buf []byte, off, n int, seq uint64) (start, end int, r Reason) {
	if off < sa.hdrLen || n <= 0 || off > len(buf) || n > len(buf)-off {
		return 0, 0, NoRoom
	}
	inner := buf[off : off+n]
	var nh byte
	var tos uint8
	df := sa.df == DFSet
	switch inner[0] >> 4 {
	case 4:
		if n < packet.IPv4HeaderLen {
			return 0, 0, NotIP
		}
		nh = packet.ProtoIPv4
		tos = inner[packet.IPv4OffTOS]
		if sa.df == DFCopy {
			df = inner[packet.IPv4OffFlagsFrag]&(packet.IPv4FlagDF>>8) != 0
		}
	case 6:
		if n < packet.IPv6HeaderLen {
			return 0, 0, NotIP
		}
		nh = packet.ProtoIPv6
		tos = inner[0]<<4 | inner[1]>>4 // traffic class
		if sa.df == DFCopy {
			df = true
		}
	default:
		return 0, 0, NotIP
	}

	pad := sa.pad(n)
	espStart := off - sa.ivLen - espHdrLen
	end = off + n + pad + trailerLen + sa.icvLen
	if end > len(buf) {
		return 0, 0, NoRoom
	}
	start = off - sa.hdrLen
	total := end - start
	if total > 0xffff {
		return 0, 0, TooBig
	}

	// Trailer (RFC 4303 §2.4, §2.6).
	t := buf[off+n : end]
	copy(t[:pad], padBytes[:])
	t[pad] = byte(pad)
	t[pad+1] = nh

	// ESP header; Seal writes IV, ciphertext and ICV.
	e := buf[espStart:end]
	binary.BigEndian.PutUint32(e[0:], sa.spi)
	binary.BigEndian.PutUint32(e[4:], uint32(seq))
	if sc != nil && sa.scratch != nil {
		sa.scratch.SealWith(sc, e, seq, sa.esn)
	} else {
		sa.cipher.Seal(e, seq, sa.esn)
	}

	// Outer headers.
	h := buf[start : start+outerIPv4]
	proto := byte(packet.ProtoESP)
	if sa.udp {
		u := buf[start+outerIPv4 : espStart]
		binary.BigEndian.PutUint16(u[0:], sa.sport)
		binary.BigEndian.PutUint16(u[2:], sa.dport)
		binary.BigEndian.PutUint16(u[4:], uint16(total-outerIPv4))
		u[6], u[7] = 0, 0 // RFC 3948 §2.1: zero checksum over IPv4
		proto = packet.ProtoUDP
	}
	h[0] = 0x45
	if sa.dscpCopy {
		h[1] = tos &^ 3
	} else {
		h[1] = sa.tos
	}
	binary.BigEndian.PutUint16(h[2:], uint16(total))
	binary.BigEndian.PutUint16(h[4:], uint16(seq))
	if df {
		h[6] = packet.IPv4FlagDF >> 8
	} else {
		h[6] = 0
	}
	h[7] = 0
	h[8] = sa.ttl
	h[9] = proto
	h[10], h[11] = 0, 0
	copy(h[12:16], sa.src[:])
	copy(h[16:20], sa.dst[:])
	packet.IPv4HeaderChecksum(h)
	return start, end, OK
}
