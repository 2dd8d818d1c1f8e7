package ikev1

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cgw-project/cgw/crypto/transform"
)

// tapConn hands ESP-in-UDP datagrams (non-zero first word) to esp as well
// as to the Manager, which ignores them.
type tapConn struct {
	net.PacketConn
	mu  sync.Mutex
	esp [][]byte
}

func (c *tapConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(b)
	if err == nil && n > 8 && b[0]|b[1]|b[2]|b[3] != 0 {
		c.mu.Lock()
		c.esp = append(c.esp, append([]byte(nil), b[:n]...))
		c.mu.Unlock()
	}
	return n, a, err
}

func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// echoRequest is an IPv4 ICMP echo request from src to dst.
func echoRequest(src, dst netip.Addr, id uint16) []byte {
	icmp := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 1}
	icmp = append(icmp, []byte("cgw-ikev1-esp-ok")...)
	binary.BigEndian.PutUint16(icmp[2:], csum(icmp))
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, 1
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(icmp)))
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], csum(ip))
	return append(ip, icmp...)
}

// espPing proves both directions' KEYMAT against charon's libipsec: an
// ICMP echo request sealed with our outbound SA must be decrypted by
// charon, and its reply, sealed by charon with our inbound SA, must open
// with our inbound keys.
func espPing(t *testing.T, l *swanLab, n *node, c *ChildSA, tap *tapConn, seq uint32) {
	t.Helper()
	local, remote := netip.MustParseAddr("169.254.99.2"), netip.MustParseAddr("169.254.99.1")
	aws := l.awsNS
	if !l.tunReady {
		// libipsec's TUN device carries the inner packets in charon's
		// namespace; it needs the inner addresses and a route back.
		l.WaitFor("libipsec's ipsec0 device", 10*time.Second, func() bool {
			return aws.Command("ip", "link", "show", "ipsec0").Run() == nil
		})
		aws.Run(t, "ip", "addr", "add", remote.String()+"/32", "dev", "ipsec0")
		aws.Run(t, "ip", "link", "set", "ipsec0", "up")
		aws.Run(t, "ip", "route", "add", local.String()+"/32", "dev", "ipsec0")
		aws.Run(t, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.ipsec0.rp_filter=0")
		l.tunReady = true
	}
	out, err := transform.New(c.Suite, c.OutKeymat)
	if err != nil {
		t.Fatal(err)
	}
	in, err := transform.New(c.Suite, c.InKeymat)
	if err != nil {
		t.Fatal(err)
	}
	inner := echoRequest(local, remote, uint16(seq))
	bs := out.BlockSize()
	padLen := (bs - (len(inner)+2)%bs) % bs
	pkt := make([]byte, 8+out.IVLen(), 8+out.IVLen()+len(inner)+padLen+2+out.ICVLen())
	binary.BigEndian.PutUint32(pkt, c.OutSPI)
	binary.BigEndian.PutUint32(pkt[4:], seq)
	pkt = append(pkt, inner...)
	for i := 1; i <= padLen; i++ {
		pkt = append(pkt, byte(i))
	}
	pkt = append(pkt, byte(padLen), 4) // next header: IPv4 (tunnel mode)
	pkt = append(pkt, make([]byte, out.ICVLen())...)
	out.Seal(pkt, uint64(seq), false)
	tap.mu.Lock()
	tap.esp = nil
	tap.mu.Unlock()
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(c.Peer, c.PeerPort))
	if _, err := tap.WriteTo(pkt, to); err != nil {
		t.Fatal(err)
	}
	var reply []byte
	l.WaitFor("charon's encrypted echo reply", 5*time.Second, func() bool {
		tap.mu.Lock()
		defer tap.mu.Unlock()
		for _, p := range tap.esp {
			if binary.BigEndian.Uint32(p) == c.InSPI {
				reply = p
				return true
			}
		}
		return false
	})
	if err := in.Open(reply, uint64(binary.BigEndian.Uint32(reply[4:])), false); err != nil {
		t.Fatalf("charon's ESP for SPI %08x does not open with our inbound KEYMAT: %v", c.InSPI, err)
	}
	pl := reply[8+in.IVLen() : len(reply)-in.ICVLen()]
	if len(pl) < 2 || pl[len(pl)-1] != 4 {
		t.Fatalf("decrypted reply has next header %d, want 4 (IPv4)", pl[len(pl)-1])
	}
	ip := pl[:len(pl)-2-int(pl[len(pl)-2])]
	if len(ip) < 28 || ip[20] != 0 || !bytes.Equal(ip[12:16], remote.AsSlice()) || !bytes.Contains(ip, []byte("cgw-ikev1-esp-ok")) {
		t.Fatalf("decrypted reply is not our echo reply: % x", ip)
	}
	t.Logf("ESP round trip with charon on SA pair in=%08x out=%08x (%s): ok", c.InSPI, c.OutSPI, c.Suite)
}
