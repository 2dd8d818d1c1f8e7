package esp

import (
	"encoding/binary"
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/dataplane/packet"
)

func TestReasonStrings(t *testing.T) {
	seen := map[string]Reason{}
	for r := Reason(0); r < NumReasons; r++ {
		s := r.String()
		if s == "" || s == "unknown" {
			t.Errorf("reason %d has no name", r)
		}
		if o, dup := seen[s]; dup {
			t.Errorf("reasons %d and %d share the name %q", o, r, s)
		}
		seen[s] = r
	}
	if NumReasons.String() != "unknown" {
		t.Errorf("out-of-range reason named %q", NumReasons.String())
	}
}

// sealed returns a fresh outer packet from out, as a frame and the outer
// packet's bounds.
func sealed(t *testing.T, out *SA, inner []byte) (buf []byte, start, end int) {
	t.Helper()
	b, off := frame(inner)
	seq, ok := out.ReserveSeq(1)
	if !ok {
		t.Fatal("ReserveSeq refused")
	}
	s, e, r := out.Encap(b, off, len(inner), seq)
	if r != OK {
		t.Fatalf("Encap: %v", r)
	}
	return b, s, e
}

// resealRaw builds a valid ESP packet around an arbitrary plaintext
// (payload, padding, trailer chosen by the test), so post-decryption checks
// can be provoked with a correct ICV.
func resealRaw(t *testing.T, out *SA, plaintext []byte, seq uint64) []byte {
	t.Helper()
	pkt := make([]byte, 20+8+out.ivLen+len(plaintext)+out.icvLen)
	e := pkt[20:]
	binary.BigEndian.PutUint32(e, out.spi)
	binary.BigEndian.PutUint32(e[4:], uint32(seq))
	copy(e[8+out.ivLen:], plaintext)
	out.cipher.Seal(e, seq, out.esn)
	pkt[0] = 0x45
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[8] = 64
	pkt[9] = packet.ProtoESP
	packet.IPv4HeaderChecksum(pkt[:20])
	return pkt
}

func TestDecapReasons(t *testing.T) {
	for _, s := range transform.Suites() {
		t.Run(s.String(), func(t *testing.T) { testDecapReasons(t, s) })
	}
}

func testDecapReasons(t *testing.T, s transform.Suite) {
	out, in := newPair(t, s, pairOpts{window: 64})
	uout, uin := newPair(t, s, pairOpts{window: 64, udp: true})
	inner := inner4(100, 0, true, 1)
	expect := func(name string, want Reason, b []byte, off, n int, sa *SA) {
		t.Helper()
		if _, _, got := sa.Decap(b, off, n); got != want {
			t.Errorf("%s: Decap = %v, want %v", name, got, want)
		}
	}

	// Valid packet first.
	b, st, en := sealed(t, out, inner)
	good := append([]byte(nil), b[st:en]...)
	expect("valid", OK, b, st, en-st, in)
	expect("replayed", Replayed, append([]byte(nil), good...), 0, len(good), in)

	// Accepted variants: Ethernet padding after the IP packet, IPv4
	// options in the outer header.
	b, st, en = sealed(t, out, inner)
	padded := append(append([]byte(nil), b[st:en]...), 0, 0, 0, 0, 0, 0)
	if s0, e0, r := in.Decap(padded, 0, len(padded)); r != OK || e0-s0 != len(inner) {
		t.Errorf("trailing padding: Decap = %v, len %d", r, e0-s0)
	}
	b, st, en = sealed(t, out, inner)
	opt := append(append(append([]byte(nil), b[st:st+20]...), 1, 1, 1, 0), b[st+20:en]...) // NOP NOP NOP EOL
	opt[0] = 0x46
	binary.BigEndian.PutUint16(opt[2:], uint16(len(opt)))
	packet.IPv4HeaderChecksum(opt[:24])
	if s0, e0, r := in.Decap(opt, 0, len(opt)); r != OK || e0-s0 != len(inner) {
		t.Errorf("outer options: Decap = %v, len %d", r, e0-s0)
	}

	// Outer header faults.
	expect("short", Short, good[:10], 0, 10, in)
	p := append([]byte(nil), good...)
	p[0] = 0x65
	expect("bad version", BadOuter, p, 0, len(p), in)
	p = append([]byte(nil), good...)
	p[15]++
	expect("bad checksum", BadOuter, p, 0, len(p), in)
	p = append([]byte(nil), good...)
	expect("truncated", Short, p, 0, len(p)-1, in)
	p = append([]byte(nil), good...)
	p[6] = 0x20 // MF
	packet.IPv4HeaderChecksum(p[:20])
	expect("fragment", OuterFragment, p, 0, len(p), in)
	p = append([]byte(nil), good...)
	p[9] = packet.ProtoTCP
	packet.IPv4HeaderChecksum(p[:20])
	expect("not esp", NotESP, p, 0, len(p), in)
	p = append([]byte(nil), good...)
	p[20]++ // SPI
	expect("wrong spi", WrongSPI, p, 0, len(p), in)

	// Lengths: a short ESP body, a body that is not whole blocks.
	p = append([]byte(nil), good[:20+8+out.ivLen+out.icvLen+2]...)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	packet.IPv4HeaderChecksum(p[:20])
	expect("short esp", Short, p, 0, len(p), in)
	if out.blockChk > 1 {
		p = append(append([]byte(nil), good...), 0, 0, 0, 0)
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		packet.IPv4HeaderChecksum(p[:20])
		expect("partial block", BadLength, p, 0, len(p), in)
	}

	// ICV: flip a ciphertext bit in a fresh packet.
	b, st, en = sealed(t, out, inner)
	b[en-out.icvLen-1] ^= 0x80
	expect("bad icv", BadICV, b, st, en-st, in)

	// Too old: move the window well past a kept packet.
	b, st, en = sealed(t, out, inner)
	old := append([]byte(nil), b[st:en]...)
	for range 70 {
		b, st, en = sealed(t, out, inner)
		expect("advance", OK, b, st, en-st, in)
	}
	expect("too old", TooOld, old, 0, len(old), in)

	// Sequence number 0 is never sent (RFC 4303 §2.2).
	z := resealRaw(t, out, append(inner4(28, 0, false, 0), make([]byte, padLen(28, out.align)+2)...), 0)
	expect("seq 0", BadSeq, z, 0, len(z), in)

	// Post-decryption faults, sealed with a correct ICV.
	pt := func(payload []byte, pad []byte, nh byte) []byte {
		x := append(append([]byte(nil), payload...), pad...)
		x = append(x, byte(len(pad)), nh)
		for len(x)%out.align != 0 { // keep it aligned: prefix more payload
			x = append([]byte{0}, x...)
		}
		return x
	}
	seq := out.LastSeq() + 1
	next := func() uint64 { seq++; return seq - 1 }
	// payload 98 + pad 2 + trailer 2 = 102: not aligned; use a 28-byte inner
	// and pad exactly to alignment instead.
	in28 := inner4(28, 0, false, 2)
	padOK := make([]byte, padLen(28, out.align))
	for i := range padOK {
		padOK[i] = byte(i + 1)
	}
	p = resealRaw(t, out, pt(in28, padOK, packet.ProtoIPv4), next())
	expect("resealed valid", OK, p, 0, len(p), in)
	// Wrong pad bytes: 28 + 14 + 2 = 44, aligned to 4; for CBC 28+2+2=32.
	bad := []byte{1, 3}
	if out.align == 4 {
		bad = []byte{1, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	}
	p = resealRaw(t, out, pt(in28, bad, packet.ProtoIPv4), next())
	expect("bad pad bytes", BadPadding, p, 0, len(p), in)
	// Pad length longer than the plaintext.
	x := pt(in28, padOK, packet.ProtoIPv4)
	x[len(x)-2] = 250
	p = resealRaw(t, out, x, next())
	expect("pad too long", BadPadding, p, 0, len(p), in)
	p = resealRaw(t, out, pt(in28, padOK, packet.ProtoNoNext), next())
	expect("dummy", Dummy, p, 0, len(p), in)
	p = resealRaw(t, out, pt(in28, padOK, packet.ProtoTCP), next())
	expect("next header", BadNextHeader, p, 0, len(p), in)
	p = resealRaw(t, out, pt(in28, padOK, packet.ProtoIPv6), next())
	expect("v4 inner as v6", BadInner, p, 0, len(p), in)
	lie := append([]byte(nil), in28...)
	binary.BigEndian.PutUint16(lie[2:], 400) // claims more than carried
	p = resealRaw(t, out, pt(lie, padOK, packet.ProtoIPv4), next())
	expect("inner length lie", BadInner, p, 0, len(p), in)
	// TFC padding (RFC 4303 §2.7): bytes after the inner packet are cut.
	tfc := append(append([]byte(nil), in28...), make([]byte, 16)...)
	p = resealRaw(t, out, pt(tfc, padOK, packet.ProtoIPv4), next())
	if s, e, r := in.Decap(p, 0, len(p)); r != OK || e-s != 28 {
		t.Errorf("TFC-padded: Decap = %v len %d, want ok len 28", r, e-s)
	}

	// UDP: keepalive, IKE marker, bad UDP length, and a valid one.
	ka := udpPacket([]byte{0xff})
	expect("keepalive", NATKeepalive, ka, 0, len(ka), uin)
	ike := udpPacket([]byte{0, 0, 0, 0, 0x12, 0x34})
	expect("ike", IKE, ike, 0, len(ike), uin)
	b, st, en = sealed(t, uout, inner)
	u := append([]byte(nil), b[st:en]...)
	expect("udp valid", OK, b, st, en-st, uin)
	binary.BigEndian.PutUint16(u[24:], uint16(len(u)))
	expect("bad udp length", BadUDP, u, 0, len(u), uin)
	short := udpPacket(nil)[:24]
	binary.BigEndian.PutUint16(short[2:], 24)
	packet.IPv4HeaderChecksum(short[:20])
	expect("short udp", Short, short, 0, len(short), uin)
}

func udpPacket(payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8] = 64
	p[9] = packet.ProtoUDP
	packet.IPv4HeaderChecksum(p[:20])
	binary.BigEndian.PutUint16(p[20:], 4500)
	binary.BigEndian.PutUint16(p[22:], 4500)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

func TestEncapReasons(t *testing.T) {
	s := transform.Suites()[0]
	out, _ := newPair(t, s, pairOpts{udp: true})
	p := inner4(64, 0, false, 1)
	b, off := frame(p)
	if _, _, r := out.Encap(b, out.Headroom()-1, len(p), 1); r != NoRoom {
		t.Errorf("no headroom: %v", r)
	}
	if _, _, r := out.Encap(b[:off+len(p)+1], off, len(p), 1); r != NoRoom {
		t.Errorf("no tailroom: %v", r)
	}
	if _, _, r := out.Encap(b, off, len(b), 1); r != NoRoom {
		t.Errorf("length beyond buffer: %v", r)
	}
	b[off] = 0x15
	if _, _, r := out.Encap(b, off, len(p), 1); r != NotIP {
		t.Errorf("version 1: %v", r)
	}
	b[off] = 0x45
	if _, _, r := out.Encap(b, off, 19, 1); r != NotIP {
		t.Errorf("19-byte IPv4: %v", r)
	}
	big := make([]byte, MaxHeadroom+65535+MaxTailroom)
	copy(big[MaxHeadroom:], inner4(100, 0, false, 1))
	if _, _, r := out.Encap(big, MaxHeadroom, 65500, 1); r != TooBig {
		t.Errorf("65500-byte inner: %v", r)
	}
}
