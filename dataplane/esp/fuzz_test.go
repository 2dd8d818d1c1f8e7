package esp

import (
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
)

// fuzzSuites are the suites the fuzz targets exercise: one AEAD and two
// CBC+HMAC (the shortest and the longest ICV).
var fuzzSuites = []transform.Suite{
	{Encr: transform.ENCR_AES_GCM_16, KeyBits: 128},
	{Encr: transform.ENCR_AES_CBC, KeyBits: 128, Integ: transform.AUTH_HMAC_SHA1_96},
	{Encr: transform.ENCR_AES_CBC, KeyBits: 256, Integ: transform.AUTH_HMAC_SHA2_512_256},
}

// fuzzPair returns a fixed outbound SA and a fresh inbound SA (new replay
// window) for suite index i, so each fuzz input is judged alone.
func fuzzPair(t testing.TB, i uint8, udp, esn bool) (out, in *SA) {
	s := fuzzSuites[int(i)%len(fuzzSuites)]
	return newPair(t, s, pairOpts{udp: udp, esn: esn, window: 64})
}

// FuzzDecap feeds arbitrary bytes to Decap of a valid SA: it must never
// panic or return bounds outside the packet, and what it accepts must be a
// well-formed inner packet.
func FuzzDecap(f *testing.F) {
	for i := range fuzzSuites {
		for _, udp := range []bool{false, true} {
			out, _ := fuzzPair(f, uint8(i), udp, false)
			b, off := frame(inner4(64, 0, true, i))
			st, en, _ := out.Encap(b, off, 64, 1)
			f.Add(uint8(i), udp, b[st:en])
		}
	}
	f.Add(uint8(0), true, udpPacket([]byte{0xff}))
	f.Fuzz(func(t *testing.T, suite uint8, udp bool, data []byte) {
		_, in := fuzzPair(t, suite, udp, false)
		const head = 16
		buf := make([]byte, head+len(data)+16)
		copy(buf[head:], data)
		s, e, r := in.Decap(buf, head, len(data))
		if r >= NumReasons {
			t.Fatalf("reason %d out of range", r)
		}
		if r != OK {
			return
		}
		if s < head || e > head+len(data) || s >= e {
			t.Fatalf("inner [%d,%d) outside the packet [%d,%d)", s, e, head, head+len(data))
		}
		if v := buf[s] >> 4; v != 4 && v != 6 {
			t.Fatalf("accepted inner packet of IP version %d", v)
		}
	})
}

// FuzzTamper seals a valid packet, changes one byte (xor mask) and checks
// Decap rejects it unless the mask is 0 or the byte is one ESP does not
// protect (the UDP ports and checksum, RFC 3948 §2.1).
func FuzzTamper(f *testing.F) {
	for i := range fuzzSuites {
		f.Add(uint8(i), false, false, uint16(100), uint16(30), byte(0x01))
		f.Add(uint8(i), true, true, uint16(1400), uint16(0), byte(0x80))
		f.Add(uint8(i), false, true, uint16(28), uint16(9999), byte(0x00))
	}
	f.Fuzz(func(t *testing.T, suite uint8, udp, esn bool, innerLen uint16, idx uint16, mask byte) {
		out, in := fuzzPair(t, suite, udp, esn)
		n := 28 + int(innerLen)%1400
		p := inner4(n, 0, true, int(idx))
		if innerLen%2 == 1 && n >= 48 {
			p = inner6(n, 0, int(idx))
		}
		b, off := frame(p)
		st, en, r := out.Encap(b, off, n, 1)
		if r != OK {
			t.Fatalf("Encap: %v", r)
		}
		i := st + int(idx)%(en-st)
		b[i] ^= mask
		s, e, r := in.Decap(b, st, en-st)
		rel := i - st
		unprotected := udp && (rel >= 20 && rel < 24 || rel >= 26 && rel < 28)
		switch {
		case mask == 0 || unprotected:
			if r != OK {
				t.Fatalf("untouched or unprotected byte %d changed: Decap = %v", rel, r)
			}
			if e-s != n || string(b[s:e]) != string(p) {
				t.Fatal("inner packet differs")
			}
		case r == OK:
			t.Fatalf("byte %d of %d xor %#02x accepted", rel, en-st, mask)
		}
	})
}
