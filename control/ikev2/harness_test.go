package ikev2

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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

const testPSK = "test.psk_0123456789"

// testTunnel is an AWS-like tunnel between two loopback instances.
func testTunnel(name string) config.Tunnel {
	p1, p2 := config.DefaultAlgorithms(2)
	p1.Lifetime = config.Duration(time.Hour)
	p2.Lifetime = config.Duration(30 * time.Minute)
	return config.Tunnel{Name: name, AWSOutside: netip.MustParseAddr("127.0.0.1"), LocalOutside: netip.MustParseAddr("127.0.0.1"),
		PreSharedKey: testPSK, IKEVersion: 2, Phase1: p1, Phase2: p2, RekeyMargin: config.Duration(time.Minute), RekeyFuzz: 0,
		ReplayWindow: 1024, DPD: config.DPD{Interval: config.Duration(time.Minute), Retries: 3, Action: config.DPDClear},
		NATTraversal: config.NATAuto, StartupAction: config.StartupStart}
}

// node is one IKE instance with its event log.
type node struct {
	t      *testing.T
	name   string
	m      *Manager
	c500   *wrapConn
	c4500  *wrapConn
	mu     sync.Mutex
	events []Event
	notify chan struct{}
}

// wrapConn can drop, record and hold outgoing datagrams.
type wrapConn struct {
	net.PacketConn
	mu     sync.Mutex
	drop   int                  // drop the next n writes
	filter func([]byte) bool    // drop writes for which it returns true
	sent   [][]byte             // every write, as sent
	hold   func([]byte, func()) // if set, called instead of writing; the func sends
}

func (w *wrapConn) WriteTo(b []byte, a net.Addr) (int, error) {
	w.mu.Lock()
	w.sent = append(w.sent, append([]byte(nil), b...))
	if w.drop > 0 {
		w.drop--
		w.mu.Unlock()
		return len(b), nil
	}
	if w.filter != nil && w.filter(b) {
		w.mu.Unlock()
		return len(b), nil
	}
	hold := w.hold
	w.mu.Unlock()
	if hold != nil {
		c := append([]byte(nil), b...)
		hold(c, func() { w.PacketConn.WriteTo(c, a) })
		return len(b), nil
	}
	return w.PacketConn.WriteTo(b, a)
}

func (w *wrapConn) set(f func(w *wrapConn)) {
	w.mu.Lock()
	f(w)
	w.mu.Unlock()
}

func listen(t *testing.T) *wrapConn {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &wrapConn{PacketConn: c}
}

type testLogWriter struct {
	t    *testing.T
	name string
}

func (w testLogWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, strings.TrimSpace(string(b)))
	return len(b), nil
}

func newNode(t *testing.T, name string, o Options) *node {
	n := &node{t: t, name: name, notify: make(chan struct{}, 1)}
	n.c500, n.c4500 = listen(t), listen(t)
	o.Conn500, o.Conn4500 = n.c500, n.c4500
	o.Events = n.record
	o.Log = slog.New(slog.NewTextHandler(testLogWriter{t, name}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if o.Timing.RetransmitTimeout == 0 {
		o.Timing.RetransmitTimeout = 200 * time.Millisecond
	}
	if o.Timing.Grace == 0 {
		o.Timing.Grace = 100 * time.Millisecond
	}
	if o.Timing.ReinitMin == 0 {
		o.Timing.ReinitMin = 300 * time.Millisecond
	}
	if o.Timing.DeleteWait == 0 {
		o.Timing.DeleteWait = time.Second
	}
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	n.m = m
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		m.Close(ctx)
	})
	return n
}

func (n *node) record(e Event) {
	n.mu.Lock()
	n.events = append(n.events, e)
	n.mu.Unlock()
	select {
	case n.notify <- struct{}{}:
	default:
	}
}

// connect adds the tunnel on both nodes, a initiating towards b.
func connect(t *testing.T, a, b *node, ca, cb config.Tunnel) {
	t.Helper()
	cb.StartupAction = config.StartupAdd
	if err := b.m.AddTunnel(cb, TunnelOptions{PeerPort: a.c500.port(), PeerNATPort: a.c4500.port()}); err != nil {
		t.Fatal(err)
	}
	if err := a.m.AddTunnel(ca, TunnelOptions{PeerPort: b.c500.port(), PeerNATPort: b.c4500.port()}); err != nil {
		t.Fatal(err)
	}
}

func (w *wrapConn) port() uint16 { return ike.PortOf(w.LocalAddr()) }

// wait returns the first event (from index from on) matching ok.
func (n *node) wait(what string, from int, ok func(Event) bool) (Event, int) {
	n.t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		for i := from; i < len(n.events); i++ {
			if ok(n.events[i]) {
				e := n.events[i]
				n.mu.Unlock()
				return e, i
			}
		}
		n.mu.Unlock()
		select {
		case <-n.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline.C:
			n.t.Fatalf("%s: no %s event; events: %v", n.name, what, n.eventList())
		}
	}
}

func (n *node) waitType(typ EventType, from int) (Event, int) {
	n.t.Helper()
	return n.wait(typ.String(), from, func(e Event) bool { return e.Type == typ })
}

func (n *node) eventList() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, e := range n.events {
		out = append(out, e.String())
	}
	return out
}

func (n *node) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.events)
}

func (n *node) all() []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Event(nil), n.events...)
}

// checkCrossKeys checks that a's Child SA is b's, mirrored.
func checkCrossKeys(t *testing.T, a, b *ChildSA) {
	t.Helper()
	if a.InSPI != b.OutSPI || a.OutSPI != b.InSPI {
		t.Fatalf("SPIs do not mirror: a in=%08x out=%08x, b in=%08x out=%08x", a.InSPI, a.OutSPI, b.InSPI, b.OutSPI)
	}
	if a.Suite != b.Suite || a.ESN != b.ESN {
		t.Fatalf("suites differ: %v/%v vs %v/%v", a.Suite, a.ESN, b.Suite, b.ESN)
	}
	if string(a.InKeymat) != string(b.OutKeymat) || string(a.OutKeymat) != string(b.InKeymat) {
		t.Fatalf("KEYMAT does not match crosswise (suite %s)", a.Suite)
	}
	if len(a.InKeymat) != a.Suite.KeymatLen() {
		t.Fatalf("KEYMAT length %d, suite %s wants %d", len(a.InKeymat), a.Suite, a.Suite.KeymatLen())
	}
}

// established waits for both sides' first Child SA and checks it.
func established(t *testing.T, a, b *node) (*ChildSA, *ChildSA) {
	t.Helper()
	ea, _ := a.waitType(TunnelUp, 0)
	_ = ea
	b.waitType(TunnelUp, 0)
	ia, _ := a.waitType(ChildSAInstalled, 0)
	ib, _ := b.waitType(ChildSAInstalled, 0)
	checkCrossKeys(t, ia.Child, ib.Child)
	return ia.Child, ib.Child
}

func isRequest(exch message.ExchangeType) func([]byte) bool {
	return func(b []byte) bool {
		if len(b) >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0 {
			b = b[4:]
		}
		h, err := message.DecodeHeader(b)
		return err == nil && h.Exchange == exch && !h.IsResponse()
	}
}

func fmtEvents(es []Event) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintln(&b, e.String())
	}
	return b.String()
}

var discardLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// packets returns a copy of everything written so far.
func (w *wrapConn) packets() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.sent...)
}
