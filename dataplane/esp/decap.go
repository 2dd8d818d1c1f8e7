package esp

import (
	"encoding/binary"

	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/dataplane/packet"
	"github.com/cgw-project/cgw/dataplane/replay"
)

// Locate parses the outer IPv4 header of pkt (and the UDP header when the
// protocol is UDP, RFC 3948) and returns where the ESP packet lies,
// pkt[espStart:espEnd], and its SPI, so the caller can look up the SA and
// call DecapESP. It does no crypto and reads only pkt.
//
// A UDP datagram is taken as ESP-in-UDP whatever its ports (the XDP program
// steers only the SA's port): a single 0xFF byte is a NAT keepalive
// (RFC 3948 §2.3) and a payload starting with four zero bytes is IKE
// (non-ESP marker, RFC 3948 §2.2); both come back as their own Reason.
// Bytes after the IPv4 total length (Ethernet padding) are ignored.
func Locate(pkt []byte) (espStart, espEnd int, spi uint32, r Reason) {
	if len(pkt) < outerIPv4 {
		return 0, 0, 0, Short
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[packet.IPv4OffTotalLen:]))
	if pkt[0]>>4 != 4 || ihl < outerIPv4 || total < ihl {
		return 0, 0, 0, BadOuter
	}
	if total > len(pkt) {
		return 0, 0, 0, Short
	}
	if !packet.IPv4HeaderValid(pkt[:ihl]) {
		return 0, 0, 0, BadOuter
	}
	if binary.BigEndian.Uint16(pkt[packet.IPv4OffFlagsFrag:])&(packet.IPv4FlagMF|packet.IPv4FragOffMask) != 0 {
		return 0, 0, 0, OuterFragment
	}
	espStart, espEnd = ihl, total
	switch pkt[packet.IPv4OffProto] {
	case packet.ProtoESP:
	case packet.ProtoUDP:
		if total-ihl < udpHdrLen {
			return 0, 0, 0, Short
		}
		ulen := int(binary.BigEndian.Uint16(pkt[ihl+4:]))
		if ulen < udpHdrLen || ulen > total-ihl {
			return 0, 0, 0, BadUDP
		}
		espStart, espEnd = ihl+udpHdrLen, ihl+ulen
		p := pkt[espStart:espEnd]
		if len(p) == 1 && p[0] == 0xff {
			return 0, 0, 0, NATKeepalive
		}
		if len(p) >= 4 && binary.BigEndian.Uint32(p) == 0 {
			return 0, 0, 0, IKE
		}
	default:
		return 0, 0, 0, NotESP
	}
	if espEnd-espStart < espHdrLen {
		return 0, 0, 0, Short
	}
	return espStart, espEnd, binary.BigEndian.Uint32(pkt[espStart:]), OK
}

// Decap decapsulates in place the outer packet buf[off:off+n], starting at
// its outer IPv4 header, and returns where the inner packet lies:
// buf[start:end]. It is Locate followed by DecapESP with an SPI check; a
// caller that already ran Locate for the SA lookup calls DecapESP.
func (sa *SA) Decap(buf []byte, off, n int) (start, end int, r Reason) {
	if off < 0 || n < 0 || off > len(buf) || n > len(buf)-off {
		return 0, 0, Short
	}
	es, ee, spi, r := Locate(buf[off : off+n])
	if r != OK {
		return 0, 0, r
	}
	if spi != sa.spi {
		return 0, 0, WrongSPI
	}
	return sa.DecapESP(buf, off+es, off+ee)
}

// DecapESP verifies and decrypts in place the ESP packet buf[espStart:espEnd]
// (from the SPI to the end of the ICV; the SPI is not checked again) and
// returns where the inner IPv4 or IPv6 packet lies: buf[start:end]. The
// order is RFC 4303 §3.4: length, replay check, ICV, replay update, then
// padding and next header. Traffic-flow-confidentiality padding after the
// inner packet (§2.7) is cut off using the inner IP length.
func (sa *SA) DecapESP(buf []byte, espStart, espEnd int) (start, end int, r Reason) {
	return sa.decapESP(nil, buf, espStart, espEnd)
}

// DecapESPWith is DecapESP with the caller's crypto scratch (one per
// worker, transform.Scratch), which spares the cipher a sync.Pool round
// trip per packet. sc may be nil.
func (sa *SA) DecapESPWith(sc *transform.Scratch, buf []byte, espStart, espEnd int) (start, end int, r Reason) {
	return sa.decapESP(sc, buf, espStart, espEnd)
}

func (sa *SA) decapESP(sc *transform.Scratch, buf []byte, espStart, espEnd int) (start, end int, r Reason) {
	if espStart < 0 || espEnd > len(buf) || espStart > espEnd {
		return 0, 0, Short
	}
	e := buf[espStart:espEnd]
	ct := len(e) - espHdrLen - sa.ivLen - sa.icvLen // padded plaintext length
	if ct < sa.align {
		return 0, 0, Short
	}
	if m := sa.blockMask; m >= 0 {
		if ct&m != 0 {
			return 0, 0, BadLength
		}
	} else if ct%sa.blockChk != 0 {
		return 0, 0, BadLength
	}

	seqLow := binary.BigEndian.Uint32(e[4:])
	seq := uint64(seqLow)
	if sa.replay != nil {
		var rr replay.Result
		if seq, rr = sa.replay.Check(seqLow); rr != replay.OK {
			return 0, 0, replayReason(rr)
		}
	}
	var err error
	if sc != nil && sa.scratch != nil {
		err = sa.scratch.OpenWith(sc, e, seq, sa.esn)
	} else {
		err = sa.cipher.Open(e, seq, sa.esn)
	}
	if err != nil {
		switch err {
		case transform.ErrShort:
			return 0, 0, Short
		case transform.ErrAlign:
			return 0, 0, BadLength
		}
		return 0, 0, BadICV
	}
	if sa.replay != nil {
		if rr := sa.replay.Update(seq); rr != replay.OK {
			return 0, 0, replayReason(rr)
		}
	}

	// Trailer (RFC 4303 §2.4): pad length counts the pad bytes before it,
	// which must be 1, 2, 3, … with the default padding scheme.
	pt := e[espHdrLen+sa.ivLen : espHdrLen+sa.ivLen+ct]
	pl := int(pt[ct-2])
	nh := pt[ct-1]
	if pl > ct-trailerLen {
		return 0, 0, BadPadding
	}
	payload := ct - trailerLen - pl
	for i, b := range pt[payload : ct-trailerLen] {
		if b != byte(i+1) {
			return 0, 0, BadPadding
		}
	}

	in := pt[:payload]
	var n int
	switch nh {
	case packet.ProtoIPv4:
		if len(in) < packet.IPv4HeaderLen || in[0]>>4 != 4 {
			return 0, 0, BadInner
		}
		n = int(binary.BigEndian.Uint16(in[packet.IPv4OffTotalLen:]))
		if n < int(in[0]&0x0f)*4 || n < packet.IPv4HeaderLen || n > len(in) {
			return 0, 0, BadInner
		}
	case packet.ProtoIPv6:
		if len(in) < packet.IPv6HeaderLen || in[0]>>4 != 6 {
			return 0, 0, BadInner
		}
		n = packet.IPv6HeaderLen + int(binary.BigEndian.Uint16(in[4:]))
		if n > len(in) {
			return 0, 0, BadInner
		}
	case packet.ProtoNoNext:
		return 0, 0, Dummy
	default:
		return 0, 0, BadNextHeader
	}
	start = espStart + espHdrLen + sa.ivLen
	return start, start + n, OK
}

// replayReason maps a replay verdict other than OK to a drop reason.
func replayReason(r replay.Result) Reason {
	switch r {
	case replay.Replayed:
		return Replayed
	case replay.TooOld:
		return TooOld
	}
	return BadSeq
}
