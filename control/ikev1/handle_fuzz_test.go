package ikev1

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev1/message"
)

// FuzzHandle feeds datagrams to a responder tunnel's state machine,
// synchronously (its goroutine is not started), from the peer's address
// on both ports.
func FuzzHandle(f *testing.F) {
	c500, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	c4500, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	m, err := New(Options{Conn500: c500, Conn4500: c4500})
	if err != nil {
		f.Fatal(err)
	}
	defer m.Close(context.Background())
	cfg := testTunnel("fz")
	cfg.StartupAction = config.StartupAdd
	opt := TunnelOptions{PeerPort: 9, PeerNATPort: 9, LocalTS: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, RemoteTS: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}
	ini, err := newTunnel(m, cfg, opt)
	if err != nil {
		f.Fatal(err)
	}
	ini.initiate()
	f.Add(ini.p1.req.pkt, false)
	f.Add(append([]byte{0, 0, 0, 0}, ini.p1.req.pkt...), true)
	f.Fuzz(func(t *testing.T, b []byte, nat bool) {
		tun, err := newTunnel(m, cfg, opt)
		if err != nil {
			t.Fatal(err)
		}
		from := netip.MustParseAddrPort("127.0.0.1:9")
		for _, pkt := range [][]byte{ini.p1.req.pkt, b} {
			h, err := message.DecodeHeader(pkt)
			if err != nil {
				return
			}
			tun.handle(datagram{b: pkt[:h.Length], h: h, from: from, nat: nat})
		}
		tun.tick()
		tun.status()
	})
}
