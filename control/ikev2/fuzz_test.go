package ikev2

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev2/message"
	"github.com/cgw-project/cgw/crypto/dh"
)

// initRequest builds a genuine IKE_SA_INIT request for tun.
func initRequest(tb testing.TB, tun config.Tunnel, spi message.SPI) []byte {
	g, err := dh.Lookup(dh.ID(tun.Phase1.DHGroups[0]))
	if err != nil {
		tb.Fatal(err)
	}
	_, pub, err := g.Generate(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	m := &message.Message{Header: message.Header{SPIi: spi, Exchange: message.IKE_SA_INIT, Flags: message.FlagInitiator},
		Payloads: []message.Payload{&message.SA{Proposals: ikeProposals(tun.Phase1)},
			&message.KE{Group: message.DHGroup(tun.Phase1.DHGroups[0]), Data: pub}, &message.Nonce{Data: randBytes(32)},
			&message.Notify{NotifyType: message.NAT_DETECTION_SOURCE_IP, Data: randBytes(20)},
			&message.Notify{NotifyType: message.NAT_DETECTION_DESTINATION_IP, Data: randBytes(20)}}}
	b, err := message.Encode(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzResponder feeds arbitrary datagrams to a responder tunnel, on both
// ports, after a genuine IKE_SA_INIT so later messages find a half-open
// SA: nothing may panic, and that SA does not change (nothing the
// fuzzer makes authenticates).
func FuzzResponder(f *testing.F) {
	cfg := testTunnel("t1")
	cfg.StartupAction = config.StartupAdd
	cfg.Phase1.DHGroups = []int{19}
	spi := message.SPI{1, 2, 3, 4, 5, 6, 7, 8}
	init := initRequest(f, cfg, spi)
	f.Add(init, false)
	f.Add(message.AppendMarked(nil, init), true)
	// An IKE_AUTH-shaped request for the half-open SA (fails integrity).
	auth := &message.Message{Header: message.Header{SPIi: spi, Exchange: message.IKE_AUTH, Flags: message.FlagInitiator, MessageID: 1},
		Payloads: []message.Payload{&message.Encrypted{NextPayload: message.PayloadIDi, Body: randBytes(64)}}}
	if b, err := message.Encode(auth); err == nil {
		f.Add(b, false)
	}
	f.Add([]byte{0, 0, 0, 0, 1, 2}, true)
	f.Add([]byte{0xff}, true)

	c500, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	c4500, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	m, err := New(Options{Conn500: c500, Conn4500: c4500, CookieThreshold: 1 << 20, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close(f.Context()) })
	from := netip.MustParseAddrPort("127.0.0.1:9")
	all := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	f.Fuzz(func(t *testing.T, b []byte, nat bool) {
		tun, err := newTunnel(m, cfg, TunnelOptions{PeerPort: 9, PeerNATPort: 9, LocalTS: all, RemoteTS: all})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			for _, sa := range tun.sas {
				m.sock.unregister(sa.ourSPI())
				tun.countHalfOpen(sa, false)
			}
		}()
		tun.handle(datagram{b: init, from: from})
		if len(tun.sas) != 1 {
			t.Fatalf("%d SAs after the IKE_SA_INIT", len(tun.sas))
		}
		sa := tun.sas[0]
		state := func() string {
			return fmt.Sprintf("st=%v mid=%d/%d resp=%s req=%s peer=%v nat=%v", sa.state, sa.nextMID, sa.expectMID, digest(sa.lastResp), digest(sa.lastReq), sa.peer, sa.nat)
		}
		before := state()
		d := datagram{b: b, from: from, nat: nat}
		if nat {
			kind, ike := message.Classify4500(b)
			if kind != message.Datagram4500IKE {
				return
			}
			d.b = ike
		}
		tun.handle(d)
		// Nothing the fuzzer makes authenticates: the half-open SA is as it was.
		if after := state(); after != before && slices.Contains(tun.sas, sa) {
			t.Fatalf("%x… changed the half-open SA: %s, was %s", b[:min(len(b), 48)], after, before)
		}
		if tun.halfOpen.Load() > maxHalfOpenPerPeer {
			t.Fatalf("%d half-open SAs", tun.halfOpen.Load())
		}
		tun.tick()
	})
}
