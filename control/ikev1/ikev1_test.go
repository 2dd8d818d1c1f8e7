package ikev1

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev1/message"
)

const testPSK = "test.psk_0123456789"

func testTunnel(name string) config.Tunnel {
	p1, p2 := config.DefaultAlgorithms(1)
	p1.Lifetime = config.Duration(time.Hour)
	p2.Lifetime = config.Duration(30 * time.Minute)
	return config.Tunnel{Name: name, AWSOutside: netip.MustParseAddr("127.0.0.1"), LocalOutside: netip.MustParseAddr("127.0.0.1"),
		PreSharedKey: testPSK, IKEVersion: 1, Phase1: p1, Phase2: p2, RekeyMargin: config.Duration(time.Minute),
		ReplayWindow: 1024, DPD: config.DPD{Interval: config.Duration(time.Minute), Retries: 3, Action: config.DPDClear},
		NATTraversal: config.NATAuto, StartupAction: config.StartupStart}
}

type node struct {
	t      *testing.T
	name   string
	m      *Manager
	c500   net.PacketConn
	c4500  net.PacketConn
	mu     sync.Mutex
	events []Event
}

type logW struct {
	t    *testing.T
	name string
}

func (w logW) Write(b []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, strings.TrimSpace(string(b)))
	return len(b), nil
}

func listen(t *testing.T) net.PacketConn {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func port(c net.PacketConn) uint16 { return uint16(c.LocalAddr().(*net.UDPAddr).Port) }

func newNode(t *testing.T, name string, o Options) *node {
	n := &node{t: t, name: name, c500: listen(t), c4500: listen(t)}
	o.Conn500, o.Conn4500 = n.c500, n.c4500
	o.Events = func(e Event) { n.mu.Lock(); n.events = append(n.events, e); n.mu.Unlock() }
	o.Log = slog.New(slog.NewTextHandler(logW{t, name}, nil))
	o.Timing.RetransmitTimeout = 300 * time.Millisecond
	o.Timing.Grace = 100 * time.Millisecond
	o.Tick = 20 * time.Millisecond
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

func connect(t *testing.T, a, b *node, ca, cb config.Tunnel) {
	t.Helper()
	cb.StartupAction = config.StartupAdd
	if err := b.m.AddTunnel(cb, TunnelOptions{PeerPort: port(a.c500), PeerNATPort: port(a.c4500)}); err != nil {
		t.Fatal(err)
	}
	if err := a.m.AddTunnel(ca, TunnelOptions{PeerPort: port(b.c500), PeerNATPort: port(b.c4500)}); err != nil {
		t.Fatal(err)
	}
}

// wait returns the index-th event of type typ (counting from 0).
func (n *node) wait(typ EventType, index int) Event {
	n.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		n.mu.Lock()
		k := 0
		for _, e := range n.events {
			if e.Type == typ {
				if k == index {
					n.mu.Unlock()
					return e
				}
				k++
			}
		}
		n.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.t.Fatalf("%s: no %s #%d; events: %v", n.name, typ, index, n.events)
	return Event{}
}

func checkPair(t *testing.T, a, b *ChildSA) {
	t.Helper()
	if a.InSPI != b.OutSPI || a.OutSPI != b.InSPI {
		t.Fatalf("SPIs do not match crosswise: %08x/%08x vs %08x/%08x", a.InSPI, a.OutSPI, b.InSPI, b.OutSPI)
	}
	if !bytes.Equal(a.InKeymat, b.OutKeymat) || !bytes.Equal(a.OutKeymat, b.InKeymat) {
		t.Fatal("KEYMAT does not match crosswise")
	}
	if bytes.Equal(a.InKeymat, a.OutKeymat) || len(a.InKeymat) != a.Suite.KeymatLen() {
		t.Fatalf("KEYMAT: %d bytes, want %d, directions distinct", len(a.InKeymat), a.Suite.KeymatLen())
	}
	if a.Suite != b.Suite {
		t.Fatalf("suites differ: %s vs %s", a.Suite, b.Suite)
	}
}

// TestSuites runs Main Mode + Quick Mode (with PFS) for AWS's suites.
func TestSuites(t *testing.T) {
	for _, enc := range []string{"AES128", "AES256"} {
		for _, integ := range []string{"SHA1", "SHA2-256"} {
			for _, g := range []int{2, 14, 19, 20} {
				t.Run(fmt.Sprintf("%s-%s-%d", enc, integ, g), func(t *testing.T) {
					c := testTunnel("t1")
					c.Phase1.Encryption, c.Phase1.Integrity, c.Phase1.DHGroups = []string{enc}, []string{integ}, []int{g}
					c.Phase2.Encryption, c.Phase2.Integrity, c.Phase2.DHGroups = []string{enc}, []string{integ}, []int{g}
					a, b := newNode(t, "a", Options{}), newNode(t, "b", Options{})
					connect(t, a, b, c, c)
					ea, eb := a.wait(ChildSAInstalled, 0), b.wait(ChildSAInstalled, 0)
					checkPair(t, ea.Child, eb.Child)
					a.wait(TunnelUp, 0)
					b.wait(TunnelUp, 0)
					if ea.Child.Suite.KeyBits != map[string]int{"AES128": 128, "AES256": 256}[enc] {
						t.Fatalf("suite %s", ea.Child.Suite)
					}
				})
			}
		}
	}
}

// TestNATForce floats to the NAT-T port and reports UDP encapsulation.
func TestNATForce(t *testing.T) {
	c := testTunnel("t1")
	c.NATTraversal = config.NATForce
	a, b := newNode(t, "a", Options{}), newNode(t, "b", Options{})
	connect(t, a, b, c, c)
	ea, eb := a.wait(ChildSAInstalled, 0), b.wait(ChildSAInstalled, 0)
	checkPair(t, ea.Child, eb.Child)
	if !ea.Child.Encap || !eb.Child.Encap || ea.Child.PeerPort != port(b.c4500) || eb.Child.PeerPort != port(a.c4500) {
		t.Fatalf("encap: %+v / %+v", ea.Child, eb.Child)
	}
}

// TestRekeyChild: a new Quick Mode from either side replaces the pair
// make-before-break, and the old pair is retired on both.
func TestRekeyChild(t *testing.T) {
	c := testTunnel("t1")
	a, b := newNode(t, "a", Options{}), newNode(t, "b", Options{})
	connect(t, a, b, c, c)
	a.wait(TunnelUp, 0)
	b.wait(TunnelUp, 0)
	first := a.wait(ChildSAInstalled, 0)
	for i, n := range []*node{a, b} {
		if err := n.m.RekeyChild("t1"); err != nil {
			t.Fatal(err)
		}
		ea, eb := a.wait(ChildSAInstalled, i+1), b.wait(ChildSAInstalled, i+1)
		checkPair(t, ea.Child, eb.Child)
		a.wait(OutboundSwitch, i+1)
		b.wait(OutboundSwitch, i+1)
		ra, rb := a.wait(ChildSARetired, i), b.wait(ChildSARetired, i)
		if ra.Child.InSPI != rb.Child.OutSPI {
			t.Fatalf("retired different pairs: %08x vs %08x", ra.Child.InSPI, rb.Child.OutSPI)
		}
		if i == 0 && ra.Child.InSPI != first.Child.InSPI {
			t.Fatalf("retired %08x, want the first pair %08x", ra.Child.InSPI, first.Child.InSPI)
		}
	}
	for _, n := range []*node{a, b} {
		st := n.m.Status()
		if len(st) != 1 || st[0].State != "up" || len(st[0].Children) != 1 {
			t.Fatalf("%s status: %+v", n.name, st)
		}
	}
}

// TestRekeyIKE: a new Main Mode replaces the ISAKMP SA; the SA pair stays
// and can be rekeyed under the new one.
func TestRekeyIKE(t *testing.T) {
	c := testTunnel("t1")
	a, b := newNode(t, "a", Options{}), newNode(t, "b", Options{})
	connect(t, a, b, c, c)
	a.wait(TunnelUp, 0)
	old := a.m.Status()[0].IKE.SPIi
	a.m.RekeyIKE("t1")
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := a.m.Status()[0]
		if st.IKE != nil && st.IKE.SPIi != old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new ISAKMP SA")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.m.RekeyChild("t1")
	ea, eb := a.wait(ChildSAInstalled, 1), b.wait(ChildSAInstalled, 1)
	checkPair(t, ea.Child, eb.Child)
}

// TestDPD: a silent peer is declared dead after interval × retries.
func TestDPD(t *testing.T) {
	c := testTunnel("t1")
	c.DPD = config.DPD{Interval: config.Duration(200 * time.Millisecond), Retries: 2, Action: config.DPDClear}
	a, b := newNode(t, "a", Options{}), newNode(t, "b", Options{})
	cb := c
	cb.DPD.Action = config.DPDNone
	connect(t, a, b, c, cb)
	a.wait(TunnelUp, 0)
	// Answers keep the tunnel up past several intervals.
	time.Sleep(time.Second)
	a.mu.Lock()
	for _, e := range a.events {
		if e.Type == DPDTimeout {
			t.Fatal("DPD timeout while the peer answers")
		}
	}
	a.mu.Unlock()
	// Silence the peer: close its manager without deletes reaching us.
	b.c500.Close()
	b.c4500.Close()
	a.wait(DPDTimeout, 0)
	a.wait(TunnelDown, 0)
}

// TestWrongPSK fails with an operator message naming the key.
func TestWrongPSK(t *testing.T) {
	c := testTunnel("t1")
	cb := c
	cb.PreSharedKey = "another.psk_0123456789"
	a, b := newNode(t, "a", Options{}), newNode(t, "b", Options{})
	connect(t, a, b, c, cb)
	e := b.wait(NegotiationFailed, 0)
	if e.Err == nil || !strings.Contains(e.Err.Error(), "pre-shared key") || e.Notify != message.NotifyAuthFailed || e.Reason != "AUTHENTICATION_FAILED" {
		t.Fatalf("event %v (notify %d, reason %q)", e, e.Notify, e.Reason)
	}
}

// TestDeleteOnClose: closing one side deletes the SAs on the other.
func TestDeleteOnClose(t *testing.T) {
	c := testTunnel("t1")
	a, b := newNode(t, "a", Options{}), newNode(t, "b", Options{})
	connect(t, a, b, c, c)
	b.wait(TunnelUp, 0)
	a.m.RemoveTunnel(context.Background(), "t1")
	b.wait(ChildSARetired, 0)
	b.wait(TunnelDown, 0)
}

// dropConn drops the first n writes.
type dropConn struct {
	net.PacketConn
	mu sync.Mutex
	n  int
}

func (d *dropConn) WriteTo(b []byte, a net.Addr) (int, error) {
	d.mu.Lock()
	drop := d.n > 0
	if drop {
		d.n--
	}
	d.mu.Unlock()
	if drop {
		return len(b), nil
	}
	return d.PacketConn.WriteTo(b, a)
}

// TestRetransmit: lost requests are sent again (Retransmit events) and the
// tunnel still comes up.
func TestRetransmit(t *testing.T) {
	c := testTunnel("t1")
	a, b := newNode(t, "a", Options{}), newNode(t, "b", Options{})
	// Recreate a's manager on a lossy 500 socket.
	a.m.Close(context.Background())
	a.c500, a.c4500 = listen(t), listen(t)
	o := Options{Conn500: &dropConn{PacketConn: a.c500, n: 2}, Conn4500: a.c4500, Tick: 20 * time.Millisecond,
		Events: func(e Event) { a.mu.Lock(); a.events = append(a.events, e); a.mu.Unlock() }}
	o.Timing.RetransmitTimeout = 100 * time.Millisecond
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	a.m = m
	t.Cleanup(func() { m.Close(context.Background()) })
	connect(t, a, b, c, c)
	a.wait(Retransmit, 1)
	ea, eb := a.wait(ChildSAInstalled, 0), b.wait(ChildSAInstalled, 0)
	checkPair(t, ea.Child, eb.Child)
}

// TestLifetimeRekey: the SA pair is replaced before its lifetime ends
// without any command.
func TestLifetimeRekey(t *testing.T) {
	c := testTunnel("t1")
	c.Phase2.Lifetime = config.Duration(2 * time.Second)
	c.RekeyMargin = config.Duration(time.Second)
	a, b := newNode(t, "a", Options{}), newNode(t, "b", Options{})
	connect(t, a, b, c, c)
	ea, eb := a.wait(ChildSAInstalled, 1), b.wait(ChildSAInstalled, 1)
	checkPair(t, ea.Child, eb.Child)
	if ea.Child.Lifetime != 2*time.Second {
		t.Fatalf("lifetime %v", ea.Child.Lifetime)
	}
	a.wait(ChildSARetired, 0)
	b.wait(ChildSARetired, 0)
}

// TestInstallInbound: the hook sees each new pair before its
// ChildSAInstalled event, on both sides, initial pair and rekey.
func TestInstallInbound(t *testing.T) {
	c := testTunnel("t1")
	mk := func(name string) *node {
		var n *node
		n = newNode(t, name, Options{InstallInbound: func(tun string, cs ChildSA) error {
			n.mu.Lock()
			n.events = append(n.events, Event{Type: -1, Tunnel: tun, Child: &cs})
			n.mu.Unlock()
			return nil
		}})
		return n
	}
	a, b := mk("a"), mk("b")
	connect(t, a, b, c, c)
	a.wait(TunnelUp, 0)
	a.m.RekeyChild("t1")
	a.wait(ChildSAInstalled, 1)
	b.wait(ChildSAInstalled, 1)
	for _, n := range []*node{a, b} {
		n.mu.Lock()
		hooked := map[uint32]bool{}
		installed := 0
		for _, e := range n.events {
			switch e.Type {
			case -1:
				hooked[e.Child.InSPI] = true
			case ChildSAInstalled:
				installed++
				if !hooked[e.Child.InSPI] {
					t.Errorf("%s: ChildSAInstalled %08x before InstallInbound", n.name, e.Child.InSPI)
				}
			}
		}
		n.mu.Unlock()
		if installed != 2 {
			t.Errorf("%s: %d ChildSAInstalled, want 2", n.name, installed)
		}
	}
}

// dupConn sends every datagram twice.
type dupConn struct{ net.PacketConn }

func (d dupConn) WriteTo(b []byte, a net.Addr) (int, error) {
	d.PacketConn.WriteTo(b, a)
	return d.PacketConn.WriteTo(b, a)
}

// TestDuplicates: every message arriving twice (both directions, both
// phases) sets up exactly one pair per side, without failures.
func TestDuplicates(t *testing.T) {
	c := testTunnel("t1")
	mk := func(name string) *node {
		n := &node{t: t, name: name, c500: listen(t), c4500: listen(t)}
		m, err := New(Options{Conn500: dupConn{n.c500}, Conn4500: dupConn{n.c4500}, Tick: 20 * time.Millisecond, Timing: Timing{Grace: 100 * time.Millisecond},
			Events: func(e Event) { n.mu.Lock(); n.events = append(n.events, e); n.mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		n.m = m
		t.Cleanup(func() { m.Close(context.Background()) })
		return n
	}
	a, b := mk("a"), mk("b")
	connect(t, a, b, c, c)
	a.wait(TunnelUp, 0)
	b.wait(TunnelUp, 0)
	a.m.RekeyChild("t1")
	a.wait(ChildSARetired, 0)
	b.wait(ChildSARetired, 0)
	time.Sleep(300 * time.Millisecond)
	for _, n := range []*node{a, b} {
		n.mu.Lock()
		k := 0
		for _, e := range n.events {
			switch e.Type {
			case ChildSAInstalled:
				k++
			case NegotiationFailed:
				t.Errorf("%s: %v", n.name, e)
			}
		}
		n.mu.Unlock()
		if k != 2 {
			t.Errorf("%s: %d ChildSAInstalled, want 2", n.name, k)
		}
	}
}

// lossyConn drops every third datagram it sends.
type lossyConn struct {
	net.PacketConn
	mu sync.Mutex
	n  int
}

func (l *lossyConn) WriteTo(b []byte, a net.Addr) (int, error) {
	l.mu.Lock()
	l.n++
	drop := l.n%3 == 0
	l.mu.Unlock()
	if drop {
		return len(b), nil
	}
	return l.PacketConn.WriteTo(b, a)
}

// TestLossy: with a third of each side's datagrams lost, retransmissions
// still set up one pair and rekey it, KEYMAT matching.
func TestLossy(t *testing.T) {
	c := testTunnel("t1")
	mk := func(name string) *node {
		n := &node{t: t, name: name, c500: listen(t), c4500: listen(t)}
		m, err := New(Options{Conn500: &lossyConn{PacketConn: n.c500}, Conn4500: &lossyConn{PacketConn: n.c4500}, Tick: 20 * time.Millisecond,
			Timing: Timing{Grace: 100 * time.Millisecond, RetransmitTimeout: 100 * time.Millisecond, RetransmitFactor: 1.2, RetransmitTries: 8},
			Events: func(e Event) { n.mu.Lock(); n.events = append(n.events, e); n.mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		n.m = m
		t.Cleanup(func() { m.Close(context.Background()) })
		return n
	}
	a, b := mk("a"), mk("b")
	connect(t, a, b, c, c)
	ea, eb := a.wait(ChildSAInstalled, 0), b.wait(ChildSAInstalled, 0)
	checkPair(t, ea.Child, eb.Child)
	a.wait(TunnelUp, 0)
	b.wait(TunnelUp, 0)
	a.m.RekeyChild("t1")
	ea, eb = a.wait(ChildSAInstalled, 1), b.wait(ChildSAInstalled, 1)
	checkPair(t, ea.Child, eb.Child)
	b.wait(OutboundSwitch, 1)
}
