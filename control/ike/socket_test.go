package ike

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestUDP(t *testing.T) {
	l := func() net.PacketConn {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	type rx struct {
		b    []byte
		from netip.AddrPort
		nat  bool
	}
	got := make(chan rx, 4)
	u, err := NewUDP(l(), l(), func(b []byte, from netip.AddrPort, nat bool) { got <- rx{bytes.Clone(b), from, nat} })
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	peer := l()
	defer peer.Close()
	to := func(p uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p) }
	pp := PortOf(peer.LocalAddr())
	if err := u.Send([]byte("ike"), to(pp), true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], []byte{0, 0, 0, 0, 'i', 'k', 'e'}) || PortOf(from) != u.LocalPort(true) {
		t.Fatalf("sent on 4500: %x from %v (%v), want the marker and ike from port %d", buf[:n], from, err, u.Port4500)
	}
	peer.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(to(u.Port500)))
	peer.WriteTo([]byte("y"), net.UDPAddrFromAddrPort(to(u.Port4500)))
	// The two sockets' loops run side by side: any order.
	want := map[string]bool{"x": false, "y": true}
	for range 2 {
		select {
		case r := <-got:
			nat, ok := want[string(r.b)]
			if !ok || r.from != to(pp) || r.nat != nat {
				t.Fatalf("delivered %q from %v nat %v, want x (500) and y (4500) from %v", r.b, r.from, r.nat, to(pp))
			}
			delete(want, string(r.b))
		case <-time.After(5 * time.Second):
			t.Fatal("nothing delivered")
		}
	}
	u.Close()
	if err := u.Send([]byte("z"), to(pp), false); err == nil {
		t.Fatal("Send after Close succeeded")
	}
}
