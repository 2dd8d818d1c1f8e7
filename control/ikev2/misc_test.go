package ikev2

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

// TestBothInitiate: both ends start at once (AWS with DPD restart and the
// gateway re-initiating); they settle on one IKE SA and one Child SA pair.
func TestBothInitiate(t *testing.T) {
	for i := 0; i < 3; i++ {
		a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
		if err := b.m.AddTunnel(testTunnel("t1"), TunnelOptions{PeerPort: a.c500.port(), PeerNATPort: a.c4500.port()}); err != nil {
			t.Fatal(err)
		}
		if err := a.m.AddTunnel(testTunnel("t1"), TunnelOptions{PeerPort: b.c500.port(), PeerNATPort: b.c4500.port()}); err != nil {
			t.Fatal(err)
		}
		a.waitType(TunnelUp, 0)
		b.waitType(TunnelUp, 0)
		deadline := time.Now().Add(10 * time.Second)
		for {
			sa, sb := a.m.Status()[0], b.m.Status()[0]
			ok := sa.State == "up" && sb.State == "up" && len(sa.Children) == 1 && len(sb.Children) == 1 &&
				sa.IKE.SPIi == sb.IKE.SPIi && sa.Children[0].InSPI == sb.Children[0].OutSPI && sa.Children[0].OutSPI == sb.Children[0].InSPI
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("did not settle: %+v / %+v\n%s\n%s", sa, sb, fmtEvents(a.all()), fmtEvents(b.all()))
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, e := range append(a.all(), b.all()...) {
			if e.Type == TunnelDown || e.Type == NegotiationFailed {
				t.Fatalf("simultaneous start flapped: %v\n%s\n%s", e, fmtEvents(a.all()), fmtEvents(b.all()))
			}
		}
	}
}

// TestHalfOpenTimeout: a responder forgets an IKE_SA_INIT nobody follows
// up, and the half-open count (which triggers cookies) goes back down.
func TestHalfOpenTimeout(t *testing.T) {
	fc := ike.NewFakeClock(time.Unix(1_800_000_000, 0))
	b := newNode(t, "aws", Options{Clock: fc, Timing: Timing{HalfOpenTimeout: 30 * time.Second}})
	cb := testTunnel("t1")
	cb.StartupAction = config.StartupAdd
	cb.Phase1.DHGroups = []int{19}
	if err := b.m.AddTunnel(cb, TunnelOptions{PeerPort: 9, PeerNATPort: 9}); err != nil {
		t.Fatal(err)
	}
	b.m.Socket().Deliver(initRequest(t, cb, message.SPI{9, 9, 9, 9, 9, 9, 9, 9}), netip.MustParseAddrPort("127.0.0.1:9"), false)
	deadline := time.Now().Add(5 * time.Second)
	for b.m.Socket().halfOpen.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no half-open SA")
		}
		time.Sleep(5 * time.Millisecond)
	}
	advanceUntil(t, fc, time.Second, time.Minute, func() bool { return b.m.Socket().halfOpen.Load() == 0 })
}

// TestPeerDeletesOnlyChild: the peer deletes our only Child SA (e.g. its
// hard lifetime ran out): the tunnel goes down and, with startup action
// start, comes back with a new IKE SA.
func TestPeerDeletesOnlyChild(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	ca, _ := established(t, a, b)
	bt, _ := b.m.Tunnel("t1")
	bt.do(func() { bt.deleteChild(bt.out) })
	e, k := a.waitType(TunnelDown, 0)
	if e.Reason != "child SA deleted by peer" {
		t.Fatalf("down: %v", e)
	}
	a.waitType(TunnelUp, k)
	ea, _ := a.wait("new child", k, func(e Event) bool { return e.Type == ChildSAInstalled && e.Child.InSPI != ca.InSPI })
	eb, _ := b.wait("new child", 0, func(e Event) bool { return e.Type == ChildSAInstalled && e.Child.InSPI == ea.Child.OutSPI })
	checkCrossKeys(t, ea.Child, eb.Child)
}

func TestRemoveTunnel(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	established(t, a, b)
	k := b.count()
	if err := a.m.RemoveTunnel(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
	b.wait("down", k, func(e Event) bool { return e.Type == TunnelDown })
	if len(a.m.Status()) != 0 {
		t.Fatalf("status after remove: %+v", a.m.Status())
	}
	if err := a.m.RemoveTunnel(t.Context(), "t1"); err == nil {
		t.Fatal("removing twice: no error")
	}
	// It can be added again and comes up.
	k = a.count()
	if err := a.m.AddTunnel(testTunnel("t1"), TunnelOptions{PeerPort: b.c500.port(), PeerNATPort: b.c4500.port()}); err != nil {
		t.Fatal(err)
	}
	a.waitType(TunnelUp, k)
}

// TestPeerReinitiates: the peer sets up a new IKE SA while the old one is
// still up (no INITIAL_CONTACT): both ends move to the new one, the old
// Child SA is retired after the new one carries traffic.
func TestPeerReinitiates(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	ca, cb := established(t, a, b)
	oldI, _ := ikeSPIs(t, a)
	ka, kb := a.count(), b.count()
	at, _ := a.m.Tunnel("t1")
	at.do(func() { at.initiate() })
	na := order(t, a, ka, ca)
	nb := order(t, b, kb, cb)
	checkCrossKeys(t, na, nb)
	sameIKE(t, a, b, oldI)
	for _, e := range append(a.all()[ka:], b.all()[kb:]...) {
		if e.Type == TunnelDown {
			t.Fatalf("unexpected %v", e)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(b.m.Status()[0].Children) != 1 || len(a.m.Status()[0].Children) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("children: %+v / %+v", a.m.Status()[0].Children, b.m.Status()[0].Children)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHalfOpenLimits: past the cookie threshold a responder answers only
// with a COOKIE; past the cap it answers nothing.
func TestHalfOpenLimits(t *testing.T) {
	b := newNode(t, "aws", Options{CookieThreshold: 2, MaxHalfOpen: 3})
	cb := testTunnel("t1")
	cb.StartupAction = config.StartupAdd
	cb.Phase1.DHGroups = []int{19}
	if err := b.m.AddTunnel(cb, TunnelOptions{PeerPort: 9, PeerNATPort: 9}); err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("127.0.0.1:9")
	cookies := func() int {
		var n int
		for _, p := range b.c500.packets() {
			if m, err := message.Decode(p); err == nil && m.Notify(message.COOKIE) != nil {
				n++
			}
		}
		return n
	}
	waitHalfOpen := func(n int64) {
		deadline := time.Now().Add(5 * time.Second)
		for b.m.Socket().halfOpen.Load() != n {
			if time.Now().After(deadline) {
				t.Fatalf("half-open %d, want %d", b.m.Socket().halfOpen.Load(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i := byte(1); i <= 2; i++ {
		b.m.Socket().Deliver(initRequest(t, cb, message.SPI{i, 1, 1, 1, 1, 1, 1, 1}), from, false)
		waitHalfOpen(int64(i))
	}
	b.m.Socket().Deliver(initRequest(t, cb, message.SPI{3, 1, 1, 1, 1, 1, 1, 1}), from, false)
	if c := cookies(); c != 1 {
		t.Fatalf("%d COOKIE answers at the threshold, want 1", c)
	}
	b.m.Socket().halfOpen.Store(3) // at the cap
	n := len(b.c500.packets())
	b.m.Socket().Deliver(initRequest(t, cb, message.SPI{4, 1, 1, 1, 1, 1, 1, 1}), from, false)
	if len(b.c500.packets()) != n {
		t.Fatal("answered beyond the half-open cap")
	}
	b.m.Socket().halfOpen.Store(2)
}
