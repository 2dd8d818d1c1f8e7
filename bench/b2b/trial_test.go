package b2b

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cgw-project/cgw/bench/pktgen"
)

// TestFragments: IMIX's 1518-byte frame through the 1399-byte tunnel is
// two fragments whose data adds up, with offsets, MF and checksums right.
func TestFragments(t *testing.T) {
	b, err := pktgen.Frame{SrcMAC: make([]byte, 6), DstMAC: make([]byte, 6), Src: netip.MustParseAddrPort("198.18.0.2:9"),
		Dst: netip.MustParseAddrPort("198.19.0.2:9"), Size: 1518, NoDF: true}.Build()
	if err != nil {
		t.Fatal(err)
	}
	ip := b[14:]
	fs := Fragments(ip, TunnelMTU)
	if len(fs) != 2 {
		t.Fatalf("%d fragments, want 2", len(fs))
	}
	data := 0
	for i, f := range fs {
		if len(f) > TunnelMTU || int(binary.BigEndian.Uint16(f[2:])) != len(f) || ipChecksum(f[:20]) != 0 {
			t.Errorf("fragment %d: %d bytes, total length %d, checksum %#x", i, len(f), binary.BigEndian.Uint16(f[2:]), ipChecksum(f[:20]))
		}
		fo := binary.BigEndian.Uint16(f[6:])
		if int(fo&0x1fff)*8 != data || (fo&0x2000 != 0) != (i == 0) {
			t.Errorf("fragment %d: offset field %#x, want offset %d and MF only on the first", i, fo, data)
		}
		data += len(f) - 20
	}
	if data != len(ip)-20 {
		t.Errorf("fragments carry %d bytes, want %d", data, len(ip)-20)
	}
	if got := Fragments(ip[:1000], TunnelMTU); len(got) != 1 {
		t.Errorf("a packet under the MTU was fragmented")
	}
}
