package ikev2

import (
	"bytes"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

func dropAll(n *node, on bool) {
	for _, c := range []*wrapConn{n.c500, n.c4500} {
		c.set(func(w *wrapConn) {
			if on {
				w.filter = func([]byte) bool { return true }
			} else {
				w.filter = nil
			}
		})
	}
}

// advanceUntil moves the fake clock in steps until ok, and returns the
// fake time that passed.
func advanceUntil(t *testing.T, fc *ike.FakeClock, step, limit time.Duration, ok func() bool) time.Duration {
	t.Helper()
	start := fc.Now()
	for !ok() {
		if fc.Now().Sub(start) > limit {
			t.Fatalf("nothing after %s of fake time", limit)
		}
		fc.Advance(step)
		time.Sleep(5 * time.Millisecond) // let the tunnel goroutine run
	}
	return fc.Now().Sub(start)
}

func has(n *node, typ EventType, from int) bool {
	for _, e := range n.all()[from:] {
		if e.Type == typ {
			return true
		}
	}
	return false
}

func TestDPDClear(t *testing.T) {
	fc := ike.NewFakeClock(time.Unix(1_800_000_000, 0))
	ta := testTunnel("t1")
	ta.DPD = config.DPD{Interval: config.Duration(10 * time.Second), Retries: 3, Action: config.DPDClear}
	ta.StartupAction = config.StartupAdd // no re-initiation: only DPD's action is seen
	a, b := newNode(t, "cgw", Options{Clock: fc}), newNode(t, "aws", Options{})
	connect(t, a, b, ta, testTunnel("t1"))
	a.m.Initiate("t1")
	established(t, a, b)
	k := a.count()
	dropAll(a, true) // the peer hears nothing from us, so answers nothing
	took := advanceUntil(t, fc, time.Second, 5*time.Minute, func() bool { return has(a, TunnelDown, k) })
	if e, _ := a.waitType(DPDTimeout, k); e.Err == nil {
		t.Fatal("DPDTimeout without a reason")
	}
	// Idle interval, then liveness checks one interval apart: dead
	// interval × retries after the peer was last heard (AWS's DPD
	// timeout; the lab measured interval × (retries+1) before).
	limit := ta.DPD.Interval.D() * time.Duration(ta.DPD.Retries)
	if took > limit+time.Second {
		t.Fatalf("DPD acted after %s of silence, want ≤ %s", took, limit)
	}
	if took < ta.DPD.Interval.D()*time.Duration(ta.DPD.Retries) {
		t.Fatalf("DPD acted after only %s", took)
	}
	e, _ := a.waitType(TunnelDown, k)
	t.Logf("after %s: %v", took, e)
	if st := a.m.Status()[0]; st.State != "down" || len(st.Children) != 0 {
		t.Fatalf("status after clear: %+v", st)
	}
}

func TestDPDRestart(t *testing.T) {
	fc := ike.NewFakeClock(time.Unix(1_800_000_000, 0))
	ta := testTunnel("t1")
	ta.DPD = config.DPD{Interval: config.Duration(10 * time.Second), Retries: 3, Action: config.DPDRestart}
	a, b := newNode(t, "cgw", Options{Clock: fc}), newNode(t, "aws", Options{})
	connect(t, a, b, ta, testTunnel("t1"))
	_, cb := established(t, a, b)
	k := a.count()
	dropAll(a, true)
	advanceUntil(t, fc, time.Second, 5*time.Minute, func() bool { return has(a, DPDTimeout, k) })
	dropAll(a, false)
	advanceUntil(t, fc, 100*time.Millisecond, time.Minute, func() bool { return has(a, TunnelUp, k) })
	// The peer took our INITIAL_CONTACT and dropped the old SAs.
	b.wait("old child retired", 0, func(e Event) bool { return e.Type == ChildSARetired && e.Child.InSPI == cb.InSPI })
	ea, _ := a.waitType(ChildSAInstalled, k)
	eb, _ := b.wait("new child", 0, func(e Event) bool { return e.Type == ChildSAInstalled && e.Child.InSPI == ea.Child.OutSPI })
	checkCrossKeys(t, ea.Child, eb.Child)
}

func TestLastInboundSuppressesDPD(t *testing.T) {
	fc := ike.NewFakeClock(time.Unix(1_800_000_000, 0))
	ta := testTunnel("t1")
	ta.DPD = config.DPD{Interval: config.Duration(10 * time.Second), Retries: 3, Action: config.DPDClear}
	a, b := newNode(t, "cgw", Options{Clock: fc}), newNode(t, "aws", Options{})
	connect(t, a, b, ta, testTunnel("t1"))
	ca, _ := established(t, a, b)
	n := len(a.c500.packets()) + len(a.c4500.packets())
	for i := 0; i < 12; i++ { // 60 s of ESP arriving, no IKE
		fc.Advance(5 * time.Second)
		a.m.LastInbound(ca.InSPI, fc.Now())
		time.Sleep(5 * time.Millisecond)
	}
	if m := len(a.c500.packets()) + len(a.c4500.packets()); m != n {
		t.Fatalf("%d IKE messages sent while ESP kept arriving, want none", m-n)
	}
	// Without traffic the liveness check goes out.
	advanceUntil(t, fc, time.Second, time.Minute, func() bool {
		return len(a.c500.packets())+len(a.c4500.packets()) > n
	})
}

func TestNATTForced(t *testing.T) {
	ta := testTunnel("t1")
	ta.NATTraversal = config.NATForce
	a, b := newNode(t, "cgw", Options{Timing: Timing{Keepalive: 50 * time.Millisecond}}), newNode(t, "aws", Options{})
	connect(t, a, b, ta, testTunnel("t1"))
	ca, cb := established(t, a, b)
	if !ca.Encap || !cb.Encap {
		t.Fatalf("not encapsulated: %+v / %+v", ca, cb)
	}
	if ca.LocalPort != a.c4500.port() || ca.PeerPort != b.c4500.port() || cb.LocalPort != b.c4500.port() || cb.PeerPort != a.c4500.port() {
		t.Fatalf("ports: a %d→%d, b %d→%d", ca.LocalPort, ca.PeerPort, cb.LocalPort, cb.PeerPort)
	}
	// IKE_AUTH went over 4500 behind the non-ESP marker.
	var marked bool
	for _, p := range a.c4500.packets() {
		if ike, ok := message.StripMarker(p); ok && isRequest(message.IKE_AUTH)(ike) {
			marked = true
		}
	}
	if !marked {
		t.Fatal("no marked IKE_AUTH on the NAT-T socket")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var ka bool
		for _, p := range a.c4500.packets() {
			ka = ka || bytes.Equal(p, []byte{0xff})
		}
		if ka {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no NAT keepalive sent")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Rekeyed children stay encapsulated.
	k := a.count()
	a.m.RekeyChild("t1")
	e, _ := a.waitType(ChildSAInstalled, k)
	if !e.Child.Encap {
		t.Fatal("rekeyed child not encapsulated")
	}
}

func TestShutdownDeletes(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	_, cb := established(t, a, b)
	k := b.count()
	a.m.Close(t.Context())
	b.wait("TunnelDown", k, func(e Event) bool { return e.Type == TunnelDown && e.Reason == "deleted by peer" })
	b.wait("retired", k, func(e Event) bool { return e.Type == ChildSARetired && e.Child.InSPI == cb.InSPI })
	for _, e := range a.all() {
		if e.Type == TunnelDown && e.Reason == "shutdown" {
			return
		}
	}
	t.Fatal("no TunnelDown(shutdown) on the side that closed")
}

// TestNATDetected: the gateway believes its address is 192.0.2.10 but its
// packets arrive from 127.0.0.1, as behind a source NAT: both ends detect
// it (§2.23), float to the NAT-T port, and the gateway sends keepalives.
func TestNATDetected(t *testing.T) {
	ta := testTunnel("t1")
	ta.LocalOutside = mustAddr("192.0.2.10")
	a, b := newNode(t, "cgw", Options{Timing: Timing{Keepalive: 50 * time.Millisecond}}), newNode(t, "aws", Options{})
	connect(t, a, b, ta, testTunnel("t1"))
	ca, cb := established(t, a, b)
	if !ca.Encap || !cb.Encap || cb.PeerPort != a.c4500.port() {
		t.Fatalf("not encapsulated after NAT detection: %+v / %+v", ca, cb)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var ka bool
		for _, p := range a.c4500.packets() {
			ka = ka || bytes.Equal(p, []byte{0xff})
		}
		if ka {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no NAT keepalive from the side behind the NAT")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range b.c4500.packets() {
		if bytes.Equal(p, []byte{0xff}) {
			t.Fatal("the side not behind a NAT sent keepalives")
		}
	}
}
