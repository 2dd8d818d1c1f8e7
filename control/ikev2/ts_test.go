package ikev2

import (
	"net"
	"net/netip"
	"testing"

	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// TestNarrowing: the initiator proposes 0.0.0.0/0 both ways; a responder
// with a narrower policy answers with the intersection (§2.9) and both
// sides record it.
func TestNarrowing(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	cb := testTunnel("t1")
	cb.StartupAction = "add"
	if err := b.m.AddTunnel(cb, TunnelOptions{PeerPort: a.c500.port(), PeerNATPort: a.c4500.port(),
		LocalTS: prefixes("198.19.0.0/24"), RemoteTS: prefixes("198.18.0.0/15")}); err != nil {
		t.Fatal(err)
	}
	if err := a.m.AddTunnel(testTunnel("t1"), TunnelOptions{PeerPort: b.c500.port(), PeerNATPort: b.c4500.port()}); err != nil {
		t.Fatal(err)
	}
	ca, cbb := established(t, a, b)
	want := func(ts []ike.TrafficSelector, p string) {
		t.Helper()
		if len(ts) != 1 {
			t.Fatalf("selectors %v, want %s", ts, p)
		}
		if got, ok := ts[0].Prefix(); !ok || got != netip.MustParsePrefix(p) {
			t.Fatalf("selector %v, want %s", ts[0], p)
		}
	}
	want(ca.LocalTS, "198.18.0.0/15")
	want(ca.RemoteTS, "198.19.0.0/24")
	want(cbb.LocalTS, "198.19.0.0/24")
	want(cbb.RemoteTS, "198.18.0.0/15")
}

func TestTSUnacceptable(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	cb := testTunnel("t1")
	cb.StartupAction = "add"
	if err := b.m.AddTunnel(cb, TunnelOptions{PeerPort: a.c500.port(), PeerNATPort: a.c4500.port(), RemoteTS: prefixes("198.18.0.0/15")}); err != nil {
		t.Fatal(err)
	}
	if err := a.m.AddTunnel(testTunnel("t1"), TunnelOptions{PeerPort: b.c500.port(), PeerNATPort: b.c4500.port(), LocalTS: prefixes("192.0.2.0/24")}); err != nil {
		t.Fatal(err)
	}
	eb, _ := b.waitType(NegotiationFailed, 0)
	ea, _ := a.waitType(NegotiationFailed, 0)
	if ea.Notify != uint16(message.TS_UNACCEPTABLE) || eb.Notify != uint16(message.TS_UNACCEPTABLE) {
		t.Fatalf("got %v / %v", ea, eb)
	}
}

// TestSharedSocket runs two tunnels of one Manager to two peers over the
// same pair of sockets: messages are routed by SPI and peer address.
func TestSharedSocket(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws1", Options{})
	c := &node{t: t, name: "aws2", notify: make(chan struct{}, 1)}
	// c listens on 127.0.0.2.
	l500, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	l4500, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	c.c500, c.c4500 = &wrapConn{PacketConn: l500}, &wrapConn{PacketConn: l4500}
	m, err := New(Options{Conn500: c.c500, Conn4500: c.c4500, Events: c.record})
	if err != nil {
		t.Fatal(err)
	}
	c.m = m
	t.Cleanup(func() { m.Close(t.Context()) })

	t1, t2 := testTunnel("t1"), testTunnel("t2")
	t2.AWSOutside = netip.MustParseAddr("127.0.0.2")
	t2.PreSharedKey = "second.tunnel_key"
	bt, ct := testTunnel("t1"), testTunnel("t2")
	ct.LocalOutside = netip.MustParseAddr("127.0.0.2")
	ct.PreSharedKey = t2.PreSharedKey
	bt.StartupAction, ct.StartupAction = "add", "add"
	if err := b.m.AddTunnel(bt, TunnelOptions{PeerPort: a.c500.port(), PeerNATPort: a.c4500.port()}); err != nil {
		t.Fatal(err)
	}
	if err := c.m.AddTunnel(ct, TunnelOptions{PeerPort: a.c500.port(), PeerNATPort: a.c4500.port()}); err != nil {
		t.Fatal(err)
	}
	if err := a.m.AddTunnel(t1, TunnelOptions{PeerPort: b.c500.port(), PeerNATPort: b.c4500.port()}); err != nil {
		t.Fatal(err)
	}
	if err := a.m.AddTunnel(t2, TunnelOptions{PeerPort: c.c500.port(), PeerNATPort: c.c4500.port()}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"t1", "t2"} {
		ea, _ := a.wait("up "+name, 0, func(e Event) bool { return e.Type == TunnelUp && e.Tunnel == name })
		_ = ea
	}
	ib, _ := b.waitType(ChildSAInstalled, 0)
	ic, _ := c.waitType(ChildSAInstalled, 0)
	ia1, _ := a.wait("t1 child", 0, func(e Event) bool { return e.Type == ChildSAInstalled && e.Tunnel == "t1" })
	ia2, _ := a.wait("t2 child", 0, func(e Event) bool { return e.Type == ChildSAInstalled && e.Tunnel == "t2" })
	checkCrossKeys(t, ia1.Child, ib.Child)
	checkCrossKeys(t, ia2.Child, ic.Child)
	if len(a.m.Status()) != 2 {
		t.Fatalf("status: %+v", a.m.Status())
	}
}
