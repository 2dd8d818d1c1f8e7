package packet

import (
	"encoding/binary"
	"testing"
)

// naive is RFC 1071 §4.1 written word by word, the reference for Sum.
func naive(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = (s >> 16) + (s & 0xffff)
	}
	return ^uint16(s)
}

func TestChecksumMatchesNaive(t *testing.T) {
	b := make([]byte, 300)
	for i := range b {
		b[i] = byte(i*7 + 0xf3)
	}
	for n := 0; n <= len(b); n++ {
		if got, want := Checksum(b[:n], 0), naive(b[:n]); got != want {
			t.Fatalf("len %d: Checksum = %#04x, want %#04x", n, got, want)
		}
	}
	// All-ones input exercises the carries.
	for i := range b {
		b[i] = 0xff
	}
	for n := 0; n <= len(b); n++ {
		if got, want := Checksum(b[:n], 0), naive(b[:n]); got != want {
			t.Fatalf("0xff len %d: Checksum = %#04x, want %#04x", n, got, want)
		}
	}
}

// TestIPv4HeaderChecksumKnown uses the example header from Wikipedia's
// "IPv4 header checksum" article (checksum 0xb861).
func TestIPv4HeaderChecksumKnown(t *testing.T) {
	h := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
		0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	IPv4HeaderChecksum(h)
	if got := binary.BigEndian.Uint16(h[10:]); got != 0xb861 {
		t.Fatalf("checksum = %#04x, want 0xb861", got)
	}
	if !IPv4HeaderValid(h) {
		t.Fatal("IPv4HeaderValid = false for a header just checksummed")
	}
	h[8]--
	if IPv4HeaderValid(h) {
		t.Fatal("IPv4HeaderValid = true after changing the TTL")
	}
}

// TestSum20MatchesSum: the unrolled 20-byte path of IPv4HeaderValid and
// IPv4HeaderChecksum agrees with the general one on random headers and
// on the carry-heavy all-ones and all-zero ones.
func TestSum20MatchesSum(t *testing.T) {
	h := make([]byte, IPv4HeaderLen)
	x := uint32(0x9e3779b9)
	for i := 0; i < 20000; i++ {
		for j := range h {
			x = x*1664525 + 1013904223
			h[j] = byte(x >> 24)
		}
		switch i {
		case 0:
			clear(h)
		case 1:
			for j := range h {
				h[j] = 0xff
			}
		}
		if got, want := sum20(h), Sum(h, 0); Fold(got) != Fold(want) {
			t.Fatalf("%x: sum20 folds to %#04x, Sum to %#04x", h, Fold(got), Fold(want))
		}
		if got, want := IPv4HeaderValid(h), Fold(Sum(h, 0)) == 0xffff; got != want {
			t.Fatalf("%x: IPv4HeaderValid = %v, want %v", h, got, want)
		}
		IPv4HeaderChecksum(h)
		if naive(h) != 0 || !IPv4HeaderValid(h) {
			t.Fatalf("%x: IPv4HeaderChecksum wrote a checksum that does not verify", h)
		}
	}
}
