package adversary

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestUDP4Checksums(t *testing.T) {
	p := UDP4(netip.MustParseAddrPort("198.51.100.66:500"), netip.MustParseAddrPort("192.0.2.10:4500"), []byte("odd-length payload!"))
	if fold(sum(p[:20])) != 0xffff {
		t.Error("IPv4 header checksum does not verify")
	}
	ph := sum(p[12:20]) + 17 + uint32(binary.BigEndian.Uint16(p[24:]))
	if fold(ph+sum(p[20:])) != 0xffff {
		t.Error("UDP checksum does not verify")
	}
	src, dst, pl, ok := UDPOf(p)
	if !ok || src.Port() != 500 || dst.Addr() != netip.MustParseAddr("192.0.2.10") || string(pl) != "odd-length payload!" {
		t.Errorf("UDPOf: %v %v %q %v", src, dst, pl, ok)
	}
}
