package pktgen

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

func testFrame(size int) Frame {
	return Frame{
		SrcMAC: macA, DstMAC: macB,
		Src:  netip.MustParseAddrPort("198.18.0.2:9"),
		Dst:  netip.MustParseAddrPort("198.19.0.2:9"),
		Size: size, Seq: 7,
	}
}

func TestBuildChecksumsAndLengths(t *testing.T) {
	for _, size := range []int{64, 65, 1400, 1518} {
		b, err := testFrame(size).Build()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != size-4 {
			t.Errorf("size %d: frame is %d bytes, want %d (FCS left to the kernel)", size, len(b), size-4)
		}
		ip := b[14:34]
		if got := fold(sum(0, ip)); got != 0xffff {
			t.Errorf("size %d: IPv4 header checksum does not verify (%#x)", size, got)
		}
		if int(binary.BigEndian.Uint16(ip[2:])) != size-18 {
			t.Errorf("size %d: IP total length %d, want %d", size, binary.BigEndian.Uint16(ip[2:]), size-18)
		}
		udp := b[34:]
		c := sum(0, ip[12:20]) + 17 + uint32(len(udp))
		if got := fold(sum(c, udp)); got != 0xffff {
			t.Errorf("size %d: UDP checksum does not verify (%#x)", size, got)
		}
		if binary.BigEndian.Uint64(udp[8:]) != 7 {
			t.Errorf("size %d: sequence number not in the payload", size)
		}
	}
}

func TestBuildRefuses(t *testing.T) {
	bad := []func(*Frame){
		func(f *Frame) { f.Size = 63 },
		func(f *Frame) { f.Size = 1519 },
		func(f *Frame) { f.Dst = netip.MustParseAddrPort("192.0.2.1:9") },
		func(f *Frame) { f.Src = netip.MustParseAddrPort("10.0.0.1:9") },
		func(f *Frame) { f.Dst = netip.MustParseAddrPort("[2001:db8::1]:9") },
		func(f *Frame) { f.DstMAC = nil },
	}
	for i, mod := range bad {
		f := testFrame(64)
		mod(&f)
		if _, err := f.Build(); err == nil {
			t.Errorf("case %d: Build accepted %+v", i, f)
		}
	}
}
