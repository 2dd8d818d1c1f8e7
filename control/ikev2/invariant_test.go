package ikev2

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/cgw-project/cgw/control/ikev2/message"
)

var fuzzExchanges = []message.ExchangeType{message.IKE_SA_INIT, message.IKE_AUTH, message.CREATE_CHILD_SA, message.INFORMATIONAL, 99}

// FuzzUnauthenticated: an established tunnel gets arbitrary datagrams —
// raw, a header with the SA's SPIs over arbitrary payloads, an Encrypted
// payload that fails its integrity check, as a request or as the answer
// to a request of ours in flight — from the peer's address or another,
// on port 500 or 4500: nothing may panic, the tunnel's peer, SAs, message
// IDs, cached response and exchange in flight stay as they were, and
// nothing is sent to another address.
func FuzzUnauthenticated(f *testing.F) {
	cfg := testTunnel("t1")
	f.Add([]byte{}, uint8(0), uint32(0), false, true)
	f.Add(initRequest(f, cfg, message.SPI{1, 2, 3, 4, 5, 6, 7, 8}), uint8(0), uint32(0), false, true)
	f.Add(initRequest(f, cfg, message.SPI{1, 2, 3, 4, 5, 6, 7, 8}), uint8(0), uint32(0), true, false)
	f.Add(make([]byte, 64), uint8(2+4*3), uint32(2), false, true)
	f.Add(make([]byte, 64), uint8(2+4*3+0x80), uint32(0), true, true)
	f.Add([]byte{0, 0, 0, 8, 1, 2, 3, 4}, uint8(1+4*2), uint32(2), false, true)
	f.Fuzz(func(t *testing.T, body []byte, mode uint8, mid uint32, nat, samePeer bool) {
		_, b, clock := syncPair(t, cfg, Options{})
		sa := b.t.ike
		if mode&0x80 != 0 {
			b.t.sendLiveness(sa) // an exchange of ours in flight
			mid = sa.pend.mid
		}
		b.sent()
		exch := fuzzExchanges[int(mode>>2&0x1f)%len(fuzzExchanges)]
		response := mode&0x80 != 0 || mode&0x40 != 0
		var pkt []byte
		switch mode % 4 {
		case 0:
			pkt = body
		case 1:
			h := message.Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: exch, MessageID: mid, Flags: message.FlagInitiator}
			if response {
				h.Flags |= message.FlagResponse
			}
			raw, err := message.Encode(&message.Message{Header: h})
			if err != nil {
				t.Fatal(err)
			}
			pkt = append(raw, body...)
			if len(body) > 0 {
				pkt[16] = body[0] % 64
			}
			binary.BigEndian.PutUint32(pkt[24:], uint32(len(pkt)))
		default:
			pkt = forged(sa, exch, mid, response, body)
		}
		from := netipAddrPort(loop, 1500)
		if nat {
			from = netipAddrPort(loop, 14500)
			pkt = message.AppendMarked(nil, pkt)
		}
		if !samePeer {
			from = netipAddrPort(mustAddr("192.0.2.99"), from.Port())
		}
		before := snapshot(b.t)
		clock.Advance(time.Second)
		b.inject(pkt, from, nat)
		if after := snapshot(b.t); after != before {
			t.Fatalf("unauthenticated %x… changed the tunnel:\n%s\nwas\n%s", pkt[:min(len(pkt), 48)], after, before)
		}
		for _, p := range b.sent() {
			if p.to.Addr() != loop {
				t.Fatalf("sent %d bytes to %v", len(p.b), p.to)
			}
		}
		if n := countHalfOpen(b.t); n > 4 {
			t.Fatalf("%d half-open SAs", n)
		}
		b.t.tick()
		b.t.status()
	})
}

// FuzzEstablished: INFORMATIONAL and CREATE_CHILD_SA requests sealed
// with the IKE SA's real keys (so they authenticate), with arbitrary
// payloads (each payload type given with an arbitrary body): nothing
// panics and the tunnel stays coherent; with the ICV broken, or outside
// the message-ID window, they change nothing.
func FuzzEstablished(f *testing.F) {
	cfg := testTunnel("t1")
	body := func(p message.Payload) []byte {
		b, err := message.Encode(&message.Message{Payloads: []message.Payload{p}})
		if err != nil {
			f.Fatal(err)
		}
		return b[message.HeaderLen+4:]
	}
	chunk := func(b []byte) []byte { return append([]byte{byte(len(b))}, b...) }
	del := body(&message.Delete{Protocol: message.ProtoESP, SPIs: []uint32{0x01020304}})
	f.Add(chunk(del), []byte{byte(message.PayloadDelete)}, false, uint8(0), false)
	f.Add(chunk(body(&message.Delete{Protocol: message.ProtoIKE})), []byte{byte(message.PayloadDelete)}, false, uint8(0), false)
	f.Add(append(chunk(body(&message.Nonce{Data: randBytes(32)})), chunk(body(&message.SA{Proposals: ikeProposals(cfg.Phase1)[:1]}))...),
		[]byte{byte(message.PayloadNonce), byte(message.PayloadSA)}, true, uint8(0), false)
	f.Add(chunk(body(&message.Notify{NotifyType: message.REKEY_SA, Protocol: message.ProtoESP, SPI: []byte{1, 2, 3, 4}})),
		[]byte{byte(message.PayloadNotify)}, true, uint8(0), true)
	f.Add([]byte{}, []byte{}, false, uint8(3), false)
	f.Fuzz(func(t *testing.T, data, types []byte, child bool, midOff uint8, badICV bool) {
		a, b, clock := syncPair(t, cfg, Options{})
		var ps []message.Payload
		for _, ty := range types[:min(len(types), 8)] {
			n := 0
			if len(data) > 0 {
				n = min(int(data[0]), len(data)-1)
				data = data[1:]
			}
			ps = append(ps, &message.Raw{PayloadType: message.PayloadType(ty), Data: data[:n]})
			data = data[n:]
		}
		exch := message.INFORMATIONAL
		if child {
			exch = message.CREATE_CHILD_SA
		}
		sa := b.t.ike
		mid := sa.expectMID + uint32(midOff%4)
		h := message.Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: exch, MessageID: mid, Flags: message.FlagInitiator}
		pkt, err := message.EncodeEncrypted(&message.Message{Header: h, Payloads: ps}, a.t.ike.keys)
		if err != nil {
			return // a payload type the encoder refuses
		}
		if badICV {
			pkt[len(pkt)-1] ^= 1
		}
		before := snapshot(b.t)
		clock.Advance(time.Second)
		b.inject(pkt, netipAddrPort(loop, 1500), false)
		if badICV || midOff%4 > 1 {
			if after := snapshot(b.t); after != before {
				t.Fatalf("unauthenticated or out-of-window request changed the tunnel:\n%s\nwas\n%s", after, before)
			}
			if s := b.sent(); len(s) > 0 {
				t.Fatalf("answered %d times", len(s))
			}
		}
		pump(a, b)
		for i := 0; i < 3; i++ {
			clock.Advance(3 * time.Second)
			a.t.tick()
			b.t.tick()
			pump(a, b)
		}
		for _, n := range []*syncNode{a, b} {
			if n.t.lc.Up() && (n.t.out == nil || n.t.ike == nil) {
				t.Fatal("up without a Child SA or IKE SA")
			}
			for _, c := range n.t.children {
				if o, ok := n.m.spis.Owner(c.InSPI); !c.retired && (!ok || o != n.t) {
					t.Fatalf("Child SA %08x's inbound SPI not held", c.InSPI)
				}
			}
			if why := n.t.saLimit(false); why != "" && len(n.t.children) > 2*maxLiveSAs {
				t.Fatalf("%d Child SAs: %s", len(n.t.children), why)
			}
			n.t.status()
		}
	})
}
