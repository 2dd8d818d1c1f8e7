package ikev2

import (
	"sync"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

// order checks that, from event index k on, n shows the make-before-break
// sequence: new child installed, outbound switched to it, old retired.
func order(t *testing.T, n *node, k int, old *ChildSA) *ChildSA {
	t.Helper()
	inst, i := n.wait("new ChildSAInstalled", k, func(e Event) bool { return e.Type == ChildSAInstalled })
	_, j := n.wait("OutboundSwitch to the new child", k, func(e Event) bool {
		return e.Type == OutboundSwitch && e.Child.InSPI == inst.Child.InSPI
	})
	_, r := n.wait("old child retired", k, func(e Event) bool { return e.Type == ChildSARetired && e.Child.InSPI == old.InSPI })
	if !(i < j && j < r) {
		t.Fatalf("%s: make-before-break order broken (install %d, switch %d, retire %d):\n%s", n.name, i, j, r, fmtEvents(n.all()[k:]))
	}
	return inst.Child
}

func TestChildRekeyEachSide(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	ca, cb := established(t, a, b)
	for round, initiator := range []*node{a, b, a} {
		ka, kb := a.count(), b.count()
		if round == 2 {
			// The dataplane's counters ask (byte lifetime / sequence space).
			if !a.m.ChildNeedsRekey(ca.OutSPI) {
				t.Fatal("ChildNeedsRekey: SPI unknown")
			}
		} else {
			initiator.m.RekeyChild("t1")
		}
		na := order(t, a, ka, ca)
		nb := order(t, b, kb, cb)
		checkCrossKeys(t, na, nb)
		ca, cb = na, nb
	}
	for _, n := range []*node{a, b} {
		st := n.m.Status()[0]
		if len(st.Children) != 1 || !st.Children[0].Active {
			t.Fatalf("%s: %+v", n.name, st)
		}
	}
}

// gate holds the first CREATE_CHILD_SA request of each side until both
// have sent one, so the two requests cross on the wire (§2.8.1).
type gate struct {
	mu    sync.Mutex
	held  []func()
	armed bool
}

func (g *gate) attach(w *wrapConn) {
	w.set(func(w *wrapConn) {
		w.hold = func(b []byte, send func()) {
			g.mu.Lock()
			if g.armed && isRequest(message.CREATE_CHILD_SA)(b) {
				g.held = append(g.held, send)
				if len(g.held) == 2 {
					g.armed = false
					h := g.held
					g.mu.Unlock()
					for _, f := range h {
						f()
					}
					return
				}
				g.mu.Unlock()
				return
			}
			g.mu.Unlock()
			send()
		}
	})
}

func TestChildRekeyCollision(t *testing.T) {
	for i := 0; i < 3; i++ {
		a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
		connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
		ca, cb := established(t, a, b)
		g := &gate{armed: true}
		g.attach(a.c500)
		g.attach(b.c500)
		ka, kb := a.count(), b.count()
		a.m.RekeyChild("t1")
		b.m.RekeyChild("t1")
		// Each side made two new Child SAs; one pair survives.
		a.wait("old retired", ka, func(e Event) bool { return e.Type == ChildSARetired && e.Child.InSPI == ca.InSPI })
		b.wait("old retired", kb, func(e Event) bool { return e.Type == ChildSARetired && e.Child.InSPI == cb.InSPI })
		var sa, sb TunnelStatus
		deadline := time.Now().Add(10 * time.Second)
		for {
			sa, sb = a.m.Status()[0], b.m.Status()[0]
			if len(sa.Children) == 1 && len(sb.Children) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("collision left children: %+v / %+v\n%s\n%s", sa.Children, sb.Children, fmtEvents(a.all()[ka:]), fmtEvents(b.all()[kb:]))
			}
			time.Sleep(20 * time.Millisecond)
		}
		x, y := sa.Children[0], sb.Children[0]
		if x.InSPI != y.OutSPI || x.OutSPI != y.InSPI || !x.Active || !y.Active {
			t.Fatalf("survivors differ: %+v / %+v", x, y)
		}
		var installed int
		for _, e := range a.all()[ka:] {
			if e.Type == ChildSAInstalled {
				installed++
			}
		}
		if installed != 2 {
			t.Fatalf("the requests did not cross (%d Child SAs made), no collision tested:\n%s", installed, fmtEvents(a.all()[ka:]))
		}
		// The survivor's keys match (from the install events).
		var ia, ib *ChildSA
		for _, e := range a.all() {
			if e.Type == ChildSAInstalled && e.Child.InSPI == x.InSPI {
				ia = e.Child
			}
		}
		for _, e := range b.all() {
			if e.Type == ChildSAInstalled && e.Child.InSPI == y.InSPI {
				ib = e.Child
			}
		}
		checkCrossKeys(t, ia, ib)
	}
}

func ikeSPIs(t *testing.T, n *node) (message.SPI, message.SPI) {
	st := n.m.Status()[0]
	if st.IKE == nil {
		t.Fatalf("%s: no IKE SA", n.name)
	}
	return message.SPI(st.IKE.SPIi), message.SPI(st.IKE.SPIr)
}

// sameIKE waits until both sides use one IKE SA that is not old.
func sameIKE(t *testing.T, a, b *node, oldI message.SPI) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ai, ar := ikeSPIs(t, a)
		bi, br := ikeSPIs(t, b)
		if ai == bi && ar == br && ai != oldI {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("IKE SAs differ: %v/%v vs %v/%v", ai, ar, bi, br)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIKERekey(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	established(t, a, b)
	for _, who := range []*node{a, b} {
		old, _ := ikeSPIs(t, a)
		ka, kb := a.count(), b.count()
		who.m.RekeyIKE("t1")
		a.waitType(IKERekeyed, ka)
		b.waitType(IKERekeyed, kb)
		sameIKE(t, a, b, old)
	}
	// Both at once: the requests cross.
	g := &gate{armed: true}
	g.attach(a.c500)
	g.attach(b.c500)
	old, _ := ikeSPIs(t, a)
	ka, kb := a.count(), b.count()
	a.m.RekeyIKE("t1")
	b.m.RekeyIKE("t1")
	a.waitType(IKERekeyed, ka)
	b.waitType(IKERekeyed, kb)
	sameIKE(t, a, b, old)
	// Children survive IKE rekeys, and the new IKE SA works.
	ca, cb := a.m.Status()[0].Children[0], b.m.Status()[0].Children[0]
	ka, kb = a.count(), b.count()
	a.m.RekeyChild("t1")
	na := order(t, a, ka, &ChildSA{InSPI: ca.InSPI})
	nb := order(t, b, kb, &ChildSA{InSPI: cb.InSPI})
	checkCrossKeys(t, na, nb)
	for _, e := range append(a.all(), b.all()...) {
		if e.Type == TunnelDown || e.Type == NegotiationFailed {
			t.Fatalf("unexpected %v", e)
		}
	}
}

// TestLifetimes lets the timers rekey: short lifetimes, no fuzz on one
// side so both ends sometimes start together.
func TestLifetimes(t *testing.T) {
	ta, tb := testTunnel("t1"), testTunnel("t1")
	for _, c := range []*config.Tunnel{&ta, &tb} {
		c.Phase1.Lifetime = config.Duration(3 * time.Second)
		c.Phase2.Lifetime = config.Duration(2 * time.Second)
		c.RekeyMargin = config.Duration(time.Second)
	}
	tb.RekeyFuzz = 50
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, ta, tb)
	established(t, a, b)
	a.waitType(IKERekeyed, 0)
	b.waitType(IKERekeyed, 0)
	// Three Child SA generations at least.
	for _, n := range []*node{a, b} {
		n.wait("third child", 0, func(e Event) bool {
			var c int
			for _, x := range n.events {
				if x.Type == ChildSAInstalled {
					c++
				}
			}
			return c >= 3
		})
	}
	time.Sleep(300 * time.Millisecond)
	sa, sb := a.m.Status()[0], b.m.Status()[0]
	if sa.State != "up" || sb.State != "up" {
		t.Fatalf("after rekeys: %+v / %+v", sa, sb)
	}
	for _, e := range append(a.all(), b.all()...) {
		if e.Type == TunnelDown {
			t.Fatalf("tunnel went down during rekeys: %v", e)
		}
	}
}

// TestIKERekeyLateCross: both ends start an IKE rekey, but one request is
// delayed until the other exchange has finished (and its Delete of the old
// IKE SA is under way): the late one is refused (TEMPORARY_FAILURE) and
// both ends end on the finished rekey's IKE SA without a tunnel flap.
func TestIKERekeyLateCross(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	established(t, a, b)
	old, _ := ikeSPIs(t, a)
	ka, kb := a.count(), b.count()
	var held func()
	var mu sync.Mutex
	b.c500.set(func(w *wrapConn) {
		w.hold = func(p []byte, send func()) {
			mu.Lock()
			defer mu.Unlock()
			if held == nil && isRequest(message.CREATE_CHILD_SA)(p) {
				held = send
				return
			}
			send()
		}
	})
	b.m.RekeyIKE("t1")
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		h := held
		mu.Unlock()
		if h != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b's rekey request never sent")
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.m.RekeyIKE("t1")
	a.waitType(IKERekeyed, ka)
	mu.Lock()
	held()
	mu.Unlock()
	b.waitType(IKERekeyed, kb)
	sameIKE(t, a, b, old)
	for _, e := range append(a.all(), b.all()...) {
		if e.Type == TunnelDown || e.Type == ChildSARetired {
			t.Fatalf("unexpected %v\n%s\n%s", e, fmtEvents(a.all()), fmtEvents(b.all()))
		}
	}
	// And the survivor works.
	ka = a.count()
	b.m.RekeyChild("t1")
	a.waitType(ChildSARetired, ka)
}

// TestChildRekeyLateCross is TestIKERekeyLateCross for a Child SA.
func TestChildRekeyLateCross(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	ca, cb := established(t, a, b)
	ka, kb := a.count(), b.count()
	var held func()
	var mu sync.Mutex
	b.c500.set(func(w *wrapConn) {
		w.hold = func(p []byte, send func()) {
			mu.Lock()
			defer mu.Unlock()
			if held == nil && isRequest(message.CREATE_CHILD_SA)(p) {
				held = send
				return
			}
			send()
		}
	})
	b.m.RekeyChild("t1")
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		h := held
		mu.Unlock()
		if h != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b's rekey request never sent")
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.m.RekeyChild("t1")
	na := order(t, a, ka, ca)
	mu.Lock()
	held()
	mu.Unlock()
	nb := order(t, b, kb, cb)
	checkCrossKeys(t, na, nb)
	for _, n := range []*node{a, b} {
		deadline := time.Now().Add(5 * time.Second)
		for len(n.m.Status()[0].Children) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v", n.name, n.m.Status()[0].Children)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, e := range append(a.all(), b.all()...) {
		if e.Type == TunnelDown || (e.Type == NegotiationFailed) {
			t.Fatalf("unexpected %v", e)
		}
	}
}
