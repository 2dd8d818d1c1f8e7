package ikev1

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev1/message"
)

// memConn is a socket that records what is sent and never receives:
// syncPair carries the datagrams itself.
type memConn struct {
	port   int
	mu     sync.Mutex
	out    []memPkt
	once   sync.Once
	closed chan struct{}
}

type memPkt struct {
	b  []byte
	to netip.AddrPort
}

func newMemConn(port int) *memConn { return &memConn{port: port, closed: make(chan struct{})} }

func (c *memConn) ReadFrom([]byte) (int, net.Addr, error) { <-c.closed; return 0, nil, net.ErrClosed }
func (c *memConn) WriteTo(b []byte, a net.Addr) (int, error) {
	c.mu.Lock()
	c.out = append(c.out, memPkt{append([]byte(nil), b...), a.(*net.UDPAddr).AddrPort()})
	c.mu.Unlock()
	return len(b), nil
}
func (c *memConn) take() []memPkt {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.out
	c.out = nil
	return o
}
func (c *memConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: c.port} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// syncNode is one tunnel driven by hand on a fake clock (no goroutine),
// so a test sees exactly what each datagram changed.
type syncNode struct {
	m           *Manager
	t           *Tunnel
	c500, c4500 *memConn
}

var loop = netip.MustParseAddr("127.0.0.1")

func newSyncNode(tb testing.TB, clock *ike.FakeClock, cfg config.Tunnel, p500, p4500, peer500, peer4500 int) *syncNode {
	n := &syncNode{c500: newMemConn(p500), c4500: newMemConn(p4500)}
	m, err := New(Options{Conn500: n.c500, Conn4500: n.c4500, Clock: clock, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Timing: Timing{Grace: time.Second}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close(tb.Context()) })
	t, err := newTunnel(m, cfg, TunnelOptions{PeerPort: uint16(peer500), PeerNATPort: uint16(peer4500)}.WithDefaults())
	if err != nil {
		tb.Fatal(err)
	}
	m.tunnels.Route(cfg.AWSOutside, t)
	n.m, n.t = m, t
	return n
}

// deliver hands what from sent to to's tunnel, as Deliver would.
func (from *syncNode) deliver(to *syncNode) int {
	k := 0
	for i, c := range []*memConn{from.c500, from.c4500} {
		for _, p := range c.take() {
			b := p.b
			if i == 1 {
				if len(b) < 4+message.HeaderLen {
					continue // keepalive
				}
				b = b[4:]
			}
			h, err := message.DecodeHeader(b)
			if err != nil {
				panic(err)
			}
			to.t.handle(datagram{b: b[:h.Length], h: h, from: netip.AddrPortFrom(loop, uint16(c.port)), nat: i == 1})
			k++
		}
	}
	return k
}

func pump(a, b *syncNode) {
	for i := 0; i < 50 && a.deliver(b)+b.deliver(a) > 0; i++ {
	}
}

// syncPair is an established tunnel between a (initiator) and b.
func syncPair(tb testing.TB, cfg config.Tunnel) (a, b *syncNode, clock *ike.FakeClock) {
	clock = ike.NewFakeClock(time.Unix(1_800_000_000, 0))
	a = newSyncNode(tb, clock, cfg, 1500, 14500, 2500, 24500)
	cb := cfg
	cb.StartupAction = config.StartupAdd
	b = newSyncNode(tb, clock, cb, 2500, 24500, 1500, 14500)
	a.t.initiate()
	pump(a, b)
	if !a.t.lc.Up() || !b.t.lc.Up() {
		tb.Fatalf("not up: a %v, b %v", a.t.lc.Up(), b.t.lc.Up())
	}
	return a, b, clock
}

// snapshot is the tunnel state unauthenticated input must not change:
// peer, NAT-T, ISAKMP SAs with their IVs and message IDs, Quick Modes,
// SA pairs, DPD and timers. (The peer's unauthenticated candidate Main
// Modes are left out: they are bounded and touch none of this.)
func snapshot(t *Tunnel) string {
	var b strings.Builder
	fmt.Fprintf(&b, "peer=%v nat=%v up=%v lastIn=%v reinit=%v keep=%v\n", t.peer, t.nat, t.lc.Up(), t.lastInbound, t.reinit, t.lastKeep)
	for i, sa := range append([]*p1SA{t.p1}, t.old...) {
		if sa == nil {
			fmt.Fprintf(&b, "sa%d=nil\n", i)
			continue
		}
		fmt.Fprintf(&b, "sa%d=%x/%x st=%d iv=%x last=%x dpd=%d/%v/%v del=%v seen=%d lastIn=%x\n", i, sa.ckyI, sa.ckyR, sa.state, sa.iv, sa.p1last,
			sa.dpdSeq, sa.dpdSince, sa.dpdNext, sa.deleteAt, len(sa.infoSeen), sa.lastIn)
		if sa.req != nil {
			fmt.Fprintf(&b, " req tries=%d next=%v\n", sa.req.tries, sa.req.next)
		}
		var ids []string
		for id, q := range sa.qms {
			ids = append(ids, fmt.Sprintf(" qm %08x init=%v done=%v iv=%x in=%08x out=%08x", id, q.initiator, q.done, q.iv, q.inSPI, q.outSPI))
		}
		sort.Strings(ids)
		b.WriteString(strings.Join(ids, "\n"))
	}
	for _, c := range t.children {
		fmt.Fprintf(&b, "\nchild %08x/%08x out=%v retire=%v switch=%v rekeying=%v deleted=%v", c.sa.InSPI, c.sa.OutSPI, c == t.out, c.retireAt, c.switchAt, c.rekeying, c.deleted)
	}
	return b.String()
}

// protected builds an encrypted message of sa with the SA's real keys:
// HASH over M-ID and rest (correct unless badHash), then rest, the
// payload chain starting with type first.
func protected(sa *p1SA, exch uint8, msgID uint32, iv []byte, first uint8, rest []byte, badHash bool) []byte {
	h := sa.hash.Sum(sa.keys.SKEYIDa, msgIDBytes(msgID), rest)
	if badHash {
		h[0] ^= 1
	}
	body := append([]byte{first, 0, 0, byte(4 + len(h))}, h...)
	body = append(body, rest...)
	hd := message.Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Next: message.PayloadHash, Exchange: exch, MsgID: msgID}
	pkt, _ := sa.crypt.SealEncoded(hd, body, iv)
	return pkt
}

func handleRaw(t *Tunnel, b []byte, from netip.AddrPort, nat bool) {
	h, err := message.DecodeHeader(b)
	if err != nil {
		return
	}
	t.handle(datagram{b: b[:h.Length], h: h, from: from, nat: nat})
}

// TestQuickModeInProgressForged: a Quick Mode message 2 with the right
// cookies and message ID, encrypted with the real key but with a wrong
// HASH(2), leaves our rekey under way as it was; the real one completes it.
func TestQuickModeInProgressForged(t *testing.T) {
	a, b, clock := syncPair(t, testTunnel("t1"))
	a.t.rekeyChild(a.t.out)
	sent := a.c500.take()
	if len(sent) != 1 {
		t.Fatalf("%d datagrams for a rekey", len(sent))
	}
	var q *quick
	for _, x := range a.t.p1.qms {
		if x.initiator && !x.done {
			q = x
		}
	}
	before := snapshot(a.t)
	clock.Advance(time.Second)
	forged := protected(b.t.p1, message.ExchQuickMode, q.msgID, q.iv, message.PayloadNonce, []byte{0, 0, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8}, true)
	handleRaw(a.t, forged, netip.MustParseAddrPort("127.0.0.1:7"), false)
	if after := snapshot(a.t); after != before {
		t.Fatalf("forged quick mode message 2 changed the tunnel:\n%s\nwas\n%s", after, before)
	}
	// The genuine exchange still completes.
	for _, p := range sent {
		h, _ := message.DecodeHeader(p.b)
		b.t.handle(datagram{b: p.b, h: h, from: netip.AddrPortFrom(loop, 1500)})
	}
	pump(a, b)
	if len(a.t.children) != 2 {
		t.Fatalf("rekey did not complete: %d pairs", len(a.t.children))
	}
}

// FuzzUnauthenticated: an established tunnel gets arbitrary datagrams —
// raw, with the SA's cookies, as message 1 — from the peer's address or
// another; nothing may panic and the tunnel's state stays as it was.
func FuzzUnauthenticated(f *testing.F) {
	cfg := testTunnel("t1")
	f.Add([]byte{}, uint8(0), false, false)
	f.Add(spoofMM1(cfg), uint8(0), false, true)
	f.Add(make([]byte, 48), uint8(1), true, true)
	f.Add(make([]byte, 64), uint8(2), false, true)
	f.Fuzz(func(t *testing.T, body []byte, mode uint8, nat, samePeer bool) {
		_, b, clock := syncPair(t, cfg)
		from := netip.AddrPortFrom(loop, 1500)
		if nat {
			from = netip.AddrPortFrom(loop, 14500)
		}
		if !samePeer {
			from = netip.MustParseAddrPort("192.0.2.99:500")
		}
		sa := b.t.p1
		var pkt []byte
		switch mode % 3 {
		case 0:
			pkt = body
		case 1, 2:
			exch := []uint8{message.ExchIdentityProt, message.ExchInformation, message.ExchQuickMode}[int(mode/3)%3]
			h := message.Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: exch, Next: message.PayloadHash, MsgID: uint32(mode) << 8}
			if mode%3 == 1 {
				h.Flags = message.FlagEncryption
			}
			pkt = message.EncodeRaw(h, body)
		}
		before := snapshot(b.t)
		clock.Advance(time.Second)
		handleRaw(b.t, pkt, from, nat)
		if after := snapshot(b.t); after != before {
			t.Fatalf("unauthenticated %x… changed the tunnel:\n%s\nwas\n%s", pkt[:min(len(pkt), 48)], after, before)
		}
		if len(b.t.cands) > maxCands {
			t.Fatalf("%d candidates", len(b.t.cands))
		}
		b.t.tick()
		b.t.status()
	})
}

// FuzzEstablished: Quick Mode and Informational messages encrypted and
// hashed with the ISAKMP SA's real keys (so they authenticate), with
// arbitrary payloads: nothing panics and the tunnel stays sane; with the
// hash corrupted they change nothing.
func FuzzEstablished(f *testing.F) {
	cfg := testTunnel("t1")
	del := message.EncodePayloads([]message.Payload{{Type: message.PayloadDelete, Body: message.Delete{Protocol: message.ProtoESP, SPIs: [][]byte{{1, 2, 3, 4}}}.Encode()}})
	f.Add(del[4:], uint8(message.PayloadDelete), true, uint32(7), false)
	f.Add([]byte{}, uint8(message.PayloadNonce), false, uint32(9), true)
	sa2 := message.SA{Proposals: []message.Proposal{{Protocol: message.ProtoESP, SPI: []byte{1, 2, 3, 4}, Transforms: []message.Transform{
		{ID: message.ESPTransformID, Attrs: []message.Attr{{Type: message.AttrSALifeType, Value: message.LifeSecs}, {Type: message.AttrSALifeDur, Value: 100000}, {Type: message.AttrEncapMode, Value: message.EncapTunnel}, {Type: message.AttrAuthAlg, Value: 2}, {Type: message.AttrESPKeyLength, Value: 128}}},
		{ID: message.ESPTransformID, Attrs: []message.Attr{{Type: message.AttrESPKeyLength, Value: 256}}},
	}}}}.Encode()
	f.Add(append([]byte{message.PayloadNonce, 0, 0, byte(4 + len(sa2))}, sa2...), uint8(message.PayloadSA), false, uint32(11), false)
	f.Fuzz(func(t *testing.T, rest []byte, first uint8, info bool, msgID uint32, badHash bool) {
		a, b, clock := syncPair(t, cfg)
		exch := uint8(message.ExchQuickMode)
		if info {
			exch = message.ExchInformation
		}
		if msgID == 0 {
			msgID = 1
		}
		// a's view of the same ISAKMP SA encrypts it, as the peer would.
		pkt := protected(a.t.p1, exch, msgID, a.t.p1.crypt.ExchangeIV(a.t.p1.p1last, msgID), first, rest, badHash)
		before := snapshot(b.t)
		clock.Advance(time.Second)
		handleRaw(b.t, pkt, netip.AddrPortFrom(loop, 1500), false)
		if badHash {
			if after := snapshot(b.t); after != before {
				t.Fatalf("bad HASH changed the tunnel:\n%s\nwas\n%s", after, before)
			}
		}
		b.t.tick()
		if b.t.lc.Up() && (b.t.out == nil || b.t.p1 == nil) {
			t.Fatalf("up without an SA pair or ISAKMP SA")
		}
		if b.t.p1 != nil && b.t.p1.peerQuicks() > maxPeerQuick {
			t.Fatalf("%d peer quick modes", b.t.p1.peerQuicks())
		}
		for _, c := range b.t.children {
			if o, _ := b.m.spis.Owner(c.sa.InSPI); o != b.t {
				t.Fatalf("SA pair %08x's inbound SPI not held", c.sa.InSPI)
			}
		}
		b.t.status()
	})
}

// TestSPIRelease: every inbound SPI is held while its pair lives and
// released when it is retired, a Quick Mode fails, or the tunnel goes down.
func TestSPIRelease(t *testing.T) {
	a, b, clock := syncPair(t, testTunnel("t1"))
	for i := 0; i < 3; i++ {
		a.t.rekeyChild(a.t.out)
		pump(a, b)
		clock.Advance(2 * time.Second) // rekeySwitchDelay, then the grace period
		a.t.tick()
		pump(a, b)
		clock.Advance(2 * time.Second)
		a.t.tick()
		b.t.tick()
		pump(a, b)
	}
	for _, n := range []*syncNode{a, b} {
		if got, want := n.m.spis.Len(), len(n.t.children); got != want || want != 1 {
			t.Fatalf("%d SPIs held for %d SA pairs (want 1)", got, want)
		}
	}
	// A Quick Mode the peer never answers releases its SPI.
	a.t.rekeyChild(a.t.out)
	a.c500.take()
	for i := 0; i < 10; i++ {
		clock.Advance(time.Minute)
		a.t.tick()
		a.c500.take()
	}
	a.t.down("test", nil, false)
	if n := a.m.spis.Len(); n != 0 {
		t.Fatalf("%d SPIs held after the tunnel went down", n)
	}
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return len(b) > 0
}

// TestKeysWiped: a replaced ISAKMP SA's SKEYIDs and a retired pair's
// KEYMAT are zeroed in the engine; a candidate's too when it goes.
func TestKeysWiped(t *testing.T) {
	a, b, clock := syncPair(t, testTunnel("t1"))
	old := a.t.p1
	oldKeys := [][]byte{old.keys.SKEYID, old.keys.SKEYIDd, old.keys.SKEYIDa, old.keys.SKEYIDe}
	pair := a.t.out
	in, out := pair.sa.InKeymat, pair.sa.OutKeymat
	a.t.rekeyIKE()
	pump(a, b)
	a.t.rekeyChild(a.t.out)
	pump(a, b)
	for i := 0; i < 4; i++ {
		clock.Advance(2 * time.Second)
		a.t.tick()
		b.t.tick()
		pump(a, b)
	}
	if a.t.p1 == old || a.t.p1 == nil || a.t.out == pair {
		t.Fatal("rekeys did not happen")
	}
	for i, k := range oldKeys {
		if !zero(k) {
			t.Errorf("replaced ISAKMP SA: SKEYID #%d not zeroed", i)
		}
	}
	if !zero(in) || !zero(out) {
		t.Error("retired SA pair: KEYMAT not zeroed")
	}
	if zero(a.t.p1.keys.SKEYIDd) || zero(a.t.out.sa.InKeymat) {
		t.Fatal("the live SAs' keys were zeroed")
	}
	cur, live := a.t.p1.keys.SKEYIDa, a.t.out.sa.OutKeymat
	a.t.down("test", nil, false)
	if !zero(cur) || !zero(live) {
		t.Error("keys not zeroed when the tunnel went down")
	}
}
