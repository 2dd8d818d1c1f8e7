package pcap

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestEncode(t *testing.T) {
	pkts := [][]byte{{0x45, 1, 2}, {0x60}}
	b := Encode(LinkTypeRaw, pkts)
	if len(b) != 24+16+3+16+1 {
		t.Fatalf("length %d", len(b))
	}
	if binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != LinkTypeRaw {
		t.Fatalf("global header % x", b[:24])
	}
	r1 := b[24:]
	if binary.LittleEndian.Uint32(r1[8:]) != 3 || binary.LittleEndian.Uint32(r1[12:]) != 3 || !bytes.Equal(r1[16:19], pkts[0]) {
		t.Fatalf("first record % x", r1[:19])
	}
	r2 := r1[19:]
	if us := binary.LittleEndian.Uint32(r2[4:]); us != 1000 {
		t.Fatalf("second record timestamp %d µs, want 1000", us)
	}
	if !bytes.Equal(r2[16:], pkts[1]) {
		t.Fatalf("second record % x", r2)
	}
}
