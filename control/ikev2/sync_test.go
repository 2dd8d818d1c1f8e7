package ikev2

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

// memConn is a socket that records what is sent and never receives:
// syncNode carries the datagrams itself.
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

// syncNode is one tunnel driven by hand on a fake clock (its goroutine is
// not started), so a test sees exactly what each datagram changed.
type syncNode struct {
	m           *Manager
	t           *Tunnel
	c500, c4500 *memConn
}

var loop = netip.MustParseAddr("127.0.0.1")

func newSyncNode(tb testing.TB, clock *ike.FakeClock, cfg config.Tunnel, o Options, p500, p4500, peer500, peer4500 int) *syncNode {
	n := &syncNode{c500: newMemConn(p500), c4500: newMemConn(p4500)}
	o.Conn500, o.Conn4500, o.Clock = n.c500, n.c4500, clock
	if o.Log == nil {
		o.Log = discardLog
	}
	if o.Timing.Grace == 0 {
		o.Timing.Grace = time.Second
	}
	m, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.sock.close)
	t, err := newTunnel(m, cfg, TunnelOptions{PeerPort: uint16(peer500), PeerNATPort: uint16(peer4500)}.WithDefaults())
	if err != nil {
		tb.Fatal(err)
	}
	m.tunnels.Route(cfg.AWSOutside, t)
	n.m, n.t = m, t
	return n
}

// inject hands b, as received from from, through the Socket to the
// tunnel and runs what reached it.
func (n *syncNode) inject(b []byte, from netip.AddrPort, nat bool) {
	n.m.sock.Deliver(b, from, nat)
	for len(n.t.loop.Inbox()) > 0 {
		n.t.handle(<-n.t.loop.Inbox())
	}
}

// deliver hands what from sent to to, as the network would.
func (from *syncNode) deliver(to *syncNode) int {
	k := 0
	for i, c := range []*memConn{from.c500, from.c4500} {
		for _, p := range c.take() {
			to.inject(p.b, netip.AddrPortFrom(loop, uint16(c.port)), i == 1)
			k++
		}
	}
	return k
}

// sent takes everything n sent.
func (n *syncNode) sent() []memPkt { return append(n.c500.take(), n.c4500.take()...) }

func pump(a, b *syncNode) {
	for i := 0; i < 50 && a.deliver(b)+b.deliver(a) > 0; i++ {
	}
}

// syncPair is an established tunnel between a (initiator) and b.
func syncPair(tb testing.TB, cfg config.Tunnel, ob Options) (a, b *syncNode, clock *ike.FakeClock) {
	return syncPairWith(tb, cfg, Options{}, ob)
}

// syncPairWith is syncPair with Options for a as well.
func syncPairWith(tb testing.TB, cfg config.Tunnel, oa, ob Options) (a, b *syncNode, clock *ike.FakeClock) {
	clock = ike.NewFakeClock(time.Unix(1_800_000_000, 0))
	a = newSyncNode(tb, clock, cfg, oa, 1500, 14500, 2500, 24500)
	cb := cfg
	cb.StartupAction = config.StartupAdd
	b = newSyncNode(tb, clock, cb, ob, 2500, 24500, 1500, 14500)
	a.t.initiate()
	pump(a, b)
	if !a.t.lc.Up() || !b.t.lc.Up() {
		tb.Fatalf("not up: a %v, b %v", a.t.lc.Up(), b.t.lc.Up())
	}
	return a, b, clock
}

func digest(b []byte) string {
	if b == nil {
		return "-"
	}
	s := sha256.Sum256(b)
	return fmt.Sprintf("%x", s[:6])
}

// snapshot is the tunnel state unauthenticated input must not change:
// its IKE SAs with their peer, NAT-T, message IDs, cached response,
// exchange in progress and timers; its Child SAs; DPD and re-initiation.
// (Half-open SAs of the peer's IKE_SA_INIT requests are left out: they
// are bounded and touch none of this.)
func snapshot(t *Tunnel) string {
	var b strings.Builder
	fmt.Fprintf(&b, "up=%v lastIn=%v reinit=%v contacted=%v ka=%v spis=%d\n", t.lc.Up(), t.lastInbound, t.reinit, t.contacted, t.nextKA, t.m.spis.Len())
	for _, sa := range t.sas {
		if sa.state == saResponderInit {
			continue
		}
		fmt.Fprintf(&b, "sa %v/%v cur=%v init=%v st=%v peer=%v nat=%v/%v mid=%d/%d resp=%s heard=%v rekey=%v/%v/%v expire=%v del=%v ours=%v theirs=%v q=%d",
			sa.spiI, sa.spiR, sa == t.ike, sa.initiator, sa.state, sa.peer, sa.nat, sa.natSelf, sa.nextMID, sa.expectMID, digest(sa.lastResp),
			sa.lastHeard, sa.rekeyAt, sa.rekeyInFlight, sa.rekeyStarted, sa.expireAt, sa.deleting, sa.ours != nil, sa.theirs != nil, len(sa.queue))
		if p := sa.pend; p != nil {
			fmt.Fprintf(&b, " pend=%v/%d tries=%d next=%v raw=%s", p.exch, p.mid, p.tries, p.next, digest(p.raw))
		}
		b.WriteByte('\n')
	}
	for _, c := range t.children {
		fmt.Fprintf(&b, "child %08x/%08x out=%v rekey=%v/%v retire=%v expire=%v rekeying=%v del=%v ours=%v theirs=%v\n",
			c.InSPI, c.OutSPI, c == t.out, c.rekeyAt, c.rekeyStarted, c.retireAt, c.expireAt, c.rekeying, c.deleting, c.ours != nil, c.theirs != nil)
	}
	return b.String()
}

// forged builds a message with sa's SPIs as the peer would send it (the
// I flag of the peer's role), whose Encrypted payload is body: it fails
// the integrity check unless body was sealed with the keys.
func forged(sa *ikeSA, exch message.ExchangeType, mid uint32, response bool, body []byte) []byte {
	h := message.Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: exch, MessageID: mid}
	if !sa.initiator {
		h.Flags |= message.FlagInitiator
	}
	if response {
		h.Flags |= message.FlagResponse
	}
	b, err := message.Encode(&message.Message{Header: h, Payloads: []message.Payload{&message.Encrypted{NextPayload: message.PayloadNonce, Body: body}}})
	if err != nil {
		panic(err)
	}
	return b
}

// sealed builds a request of the peer of sa, sealed with the keys (it
// authenticates), carrying ps.
func sealed(sa *ikeSA, exch message.ExchangeType, mid uint32, ps ...message.Payload) []byte {
	h := message.Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: exch, MessageID: mid}
	if !sa.initiator {
		h.Flags |= message.FlagInitiator
	}
	b, err := message.EncodeEncrypted(&message.Message{Header: h, Payloads: ps}, sa.keys)
	if err != nil {
		panic(err)
	}
	return b
}
