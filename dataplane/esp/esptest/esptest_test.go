package esptest

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/dataplane/esp"
)

// writePcap writes raw IPv4 packets (LINKTYPE_IPV4, 228).
func writePcap(path string, pkts [][]byte) error {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(b[4:], 2)
	binary.LittleEndian.PutUint16(b[6:], 4)
	binary.LittleEndian.PutUint32(b[16:], 65535)
	binary.LittleEndian.PutUint32(b[20:], 228)
	for i, p := range pkts {
		h := make([]byte, 16)
		binary.LittleEndian.PutUint32(h[0:], uint32(i+1))
		binary.LittleEndian.PutUint32(h[8:], uint32(len(p)))
		binary.LittleEndian.PutUint32(h[12:], uint32(len(p)))
		b = append(append(b, h...), p...)
	}
	return os.WriteFile(path, b, 0o600)
}

// inner builds an IPv4/UDP packet of n bytes.
func inner(n int) []byte {
	p := make([]byte, n)
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	copy(p[12:], []byte{198, 18, 0, 2, 198, 19, 0, 2})
	var s uint32
	for i := 0; i < 20; i += 2 {
		s += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(s))
	binary.BigEndian.PutUint16(p[20:], 9)
	binary.BigEndian.PutUint16(p[22:], 9)
	binary.BigEndian.PutUint16(p[24:], uint16(n-20))
	return p
}

// TestDecodeOurESP has tshark decrypt packets made by dataplane/esp for a
// GCM and a CBC suite, and flag a tampered copy and an unknown SPI.
func TestDecodeOurESP(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-check with tshark: run without -short")
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("tshark not found: install the Debian package tshark (scripts/install-deps.sh)")
	}
	src, dst := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("203.0.113.1")
	var sas []SA
	var pkts [][]byte
	for i, name := range []string{"aes128gcm16", "aes256-sha256"} {
		s, err := transform.ParseSuite(name)
		if err != nil {
			t.Fatal(err)
		}
		km := make([]byte, s.KeymatLen())
		for j := range km {
			km[j] = byte(j*7 + i)
		}
		c, err := transform.New(s, km)
		if err != nil {
			t.Fatal(err)
		}
		spi := uint32(0x100 + i)
		sa, err := esp.NewSA(esp.Config{SPI: spi, Cipher: c, Src: src, Dst: dst})
		if err != nil {
			t.Fatal(err)
		}
		sas = append(sas, SA{Src: src, Dst: dst, SPI: spi, Suite: s, Keymat: km})
		for _, n := range []int{28, 1300} {
			p := inner(n)
			buf := make([]byte, esp.MaxHeadroom+n+esp.MaxTailroom)
			copy(buf[esp.MaxHeadroom:], p)
			seq, _ := sa.ReserveSeq(1)
			st, en, r := sa.Encap(buf, esp.MaxHeadroom, n, seq)
			if r != esp.OK {
				t.Fatalf("%s: Encap: %v", name, r)
			}
			pkts = append(pkts, buf[st:en])
		}
	}
	tampered := append([]byte(nil), pkts[0]...)
	tampered[len(tampered)-1] ^= 1
	unknown := append([]byte(nil), pkts[1]...)
	binary.BigEndian.PutUint32(unknown[20:], 0xdead)
	pkts = append(pkts, tampered, unknown)

	dir := t.TempDir()
	pcap := filepath.Join(dir, "esp.pcap")
	if err := writePcap(pcap, pkts); err != nil {
		t.Fatal(err)
	}
	ps, err := Decode(context.Background(), dir, pcap, sas, "")
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(ps)
	if s.ESP != 6 || s.Decrypted != 4 || s.ByProto[17] != 4 || len(s.Bad) != 2 {
		t.Fatalf("summary %+v, want 6 ESP, 4 decrypted UDP, 2 bad", s)
	}
	for _, p := range ps[:4] {
		if p.InnerSrc != "198.18.0.2" || p.InnerDst != "198.19.0.2" || p.OuterSrc != src {
			t.Errorf("frame %d: inner %s→%s outer %v, want 198.18.0.2→198.19.0.2 outer %v", p.Frame, p.InnerSrc, p.InnerDst, p.OuterSrc, src)
		}
	}
	if !ps[4].ICVBad {
		t.Errorf("tampered frame: tshark row %q, want a bad ICV", ps[4].Raw)
	}
	if ps[5].Decrypted || ps[5].SPI != 0xdead {
		t.Errorf("unknown SPI frame: %+v, want SPI 0xdead not decrypted", ps[5])
	}
}
