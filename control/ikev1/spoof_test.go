package ikev1

import (
	"crypto/rand"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev1/message"
)

// spoofMM1 is a Main Mode message 1 for cfg's proposals with a fresh
// initiator cookie, as anyone can forge it with the peer's address.
func spoofMM1(cfg config.Tunnel) []byte {
	var trs []message.Transform
	for _, c := range phase1Choices(cfg.Phase1) {
		trs = append(trs, c.transform())
	}
	return message.Encode(message.Header{CkyI: randCky(), Exchange: message.ExchIdentityProt}, []message.Payload{
		{Type: message.PayloadSA, Body: message.SA{Proposals: []message.Proposal{{Protocol: message.ProtoISAKMP, Transforms: trs}}}.Encode()},
		{Type: message.PayloadVendor, Body: message.VIDNATT}, {Type: message.PayloadVendor, Body: message.VIDDPD}})
}

// established is what an attacker without the key must not change.
func established(t *testing.T, n *node) TunnelStatus {
	t.Helper()
	st := n.m.Status()
	if len(st) != 1 || st[0].State != "up" || st[0].IKE == nil {
		t.Fatalf("%s: not up: %+v", n.name, st)
	}
	return st[0]
}

func sameSAs(t *testing.T, n *node, want TunnelStatus) {
	t.Helper()
	got := established(t, n)
	if got.Peer != want.Peer || got.Encap != want.Encap || got.IKE.SPIi != want.IKE.SPIi || got.IKE.SPIr != want.IKE.SPIr {
		t.Fatalf("%s: ISAKMP SA or peer changed: %v %v %s/%s, was %v %v %s/%s", n.name, got.Peer, got.Encap, got.IKE.SPIi, got.IKE.SPIr,
			want.Peer, want.Encap, want.IKE.SPIi, want.IKE.SPIr)
	}
	if len(got.Children) != len(want.Children) {
		t.Fatalf("%s: %d SA pairs, was %d", n.name, len(got.Children), len(want.Children))
	}
	for i := range got.Children {
		if got.Children[i].InSPI != want.Children[i].InSPI || got.Children[i].OutSPI != want.Children[i].OutSPI {
			t.Fatalf("%s: SA pairs changed: %+v, was %+v", n.name, got.Children, want.Children)
		}
	}
}

func (n *node) none(t *testing.T, typ EventType) {
	t.Helper()
	if k := n.count(typ); k != 0 {
		t.Fatalf("%s: %d %s events", n.name, k, typ)
	}
}

// spoofPair is an established tunnel with DPD every 200 ms on both sides.
func spoofPair(t *testing.T) (a, b *node, c config.Tunnel) {
	c = testTunnel("t1")
	c.DPD = config.DPD{Interval: config.Duration(200 * time.Millisecond), Retries: 2, Action: config.DPDClear}
	a, b = newNode(t, "a", Options{}), newNode(t, "b", Options{})
	connect(t, a, b, c, c)
	a.wait(TunnelUp, 0)
	b.wait(TunnelUp, 0)
	return a, b, c
}

// TestSpoofedMainMode1 (issue #9): a forged message 1 from the peer's
// address (another port) on either side leaves the ISAKMP SA, the peer's
// address and port, NAT-T and the SA pairs alone, and DPD keeps being
// answered.
func TestSpoofedMainMode1(t *testing.T) {
	a, b, c := spoofPair(t)
	wa, wb := established(t, a), established(t, b)
	spoofer := listen(t)
	from := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port(spoofer))
	for i := 0; i < 3; i++ {
		b.m.Deliver(spoofMM1(c), from, false)
		a.m.Deliver(spoofMM1(c), from, false)
		b.m.Deliver(append([]byte{0, 0, 0, 0}, spoofMM1(c)...), from, true)
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // five DPD intervals
	sameSAs(t, a, wa)
	sameSAs(t, b, wb)
	a.none(t, DPDTimeout)
	b.none(t, DPDTimeout)
	a.none(t, TunnelDown)
	b.none(t, TunnelDown)
}

// TestSpoofedMainModeWrongPSK: a whole Main Mode from the peer's address
// with a wrong key fails (the operator sees it) and changes nothing;
// the same with the right key (the peer re-initiating) replaces the SA.
func TestSpoofedMainModeWrongPSK(t *testing.T) {
	a, b, c := spoofPair(t)
	wa, wb := established(t, a), established(t, b)
	x := newNode(t, "x", Options{})
	cx := c
	cx.PreSharedKey = "wrong.psk_0123456789"
	cx.DPD.Action = config.DPDNone
	if err := x.m.AddTunnel(cx, TunnelOptions{PeerPort: port(b.c500), PeerNATPort: port(b.c4500)}); err != nil {
		t.Fatal(err)
	}
	b.wait(NegotiationFailed, 0)
	x.m.RemoveTunnel(t.Context(), "t1")
	time.Sleep(time.Second)
	sameSAs(t, a, wa)
	sameSAs(t, b, wb)
	a.none(t, DPDTimeout)
	a.none(t, TunnelDown)
	b.none(t, TunnelDown)

	// The genuine peer (right key) re-initiating from another port.
	y := newNode(t, "y", Options{})
	cy := c
	cy.DPD.Action = config.DPDNone
	if err := y.m.AddTunnel(cy, TunnelOptions{PeerPort: port(b.c500), PeerNATPort: port(b.c4500)}); err != nil {
		t.Fatal(err)
	}
	y.wait(TunnelUp, 0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := b.m.Status()[0]
		if st.IKE != nil && st.IKE.SPIi != wb.IKE.SPIi && st.Peer.Port() == port(y.c500) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b kept its ISAKMP SA after the peer re-initiated: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestForgedProtected: Quick Mode and Informational messages with the
// SA's cookies but without its keys change nothing and fail nothing.
func TestForgedProtected(t *testing.T) {
	a, b, _ := spoofPair(t)
	wa, wb := established(t, a), established(t, b)
	spoofer := listen(t)
	from := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port(spoofer))
	for _, exch := range []uint8{message.ExchQuickMode, message.ExchInformation, message.ExchIdentityProt} {
		for i := 0; i < 5; i++ {
			body := make([]byte, 16*(i+1))
			rand.Read(body)
			h := message.Header{CkyI: wb.IKE.SPIi, CkyR: wb.IKE.SPIr, Exchange: exch, Flags: message.FlagEncryption, MsgID: newMsgID(), Next: message.PayloadHash}
			pkt := message.EncodeRaw(h, body)
			b.m.Deliver(pkt, from, false)
			b.m.Deliver(append([]byte{0, 0, 0, 0}, pkt...), from, true)
		}
	}
	time.Sleep(time.Second)
	sameSAs(t, a, wa)
	sameSAs(t, b, wb)
	b.none(t, NegotiationFailed)
	a.none(t, DPDTimeout)
}

// TestCommandErrors: operators' commands answer *NotFoundError for an
// unknown tunnel and *BusyError when they cannot start, as control/ikev2's.
func TestCommandErrors(t *testing.T) {
	a, _, _ := spoofPair(t)
	var nf *NotFoundError
	for _, f := range []func(string) error{a.m.Initiate, a.m.RekeyChild, a.m.RekeyIKE,
		func(n string) error { return a.m.RemoveTunnel(t.Context(), n) }} {
		if err := f("nope"); !errors.As(err, &nf) {
			t.Fatalf("unknown tunnel: %v", err)
		}
	}
	var busy *BusyError
	if err := a.m.Initiate("t1"); !errors.As(err, &busy) {
		t.Fatalf("Initiate on an up tunnel: %v", err)
	}
	// A tunnel waiting for its peer (startup add; nothing is sent) has
	// nothing to rekey.
	idle := testTunnel("t2")
	idle.AWSOutside, idle.StartupAction = netip.MustParseAddr("192.0.2.1"), config.StartupAdd
	if err := a.m.AddTunnel(idle, TunnelOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(string) error{a.m.RekeyIKE, a.m.RekeyChild} {
		if err := f("t2"); !errors.As(err, &busy) {
			t.Fatalf("rekey of a tunnel with no SA: %v", err)
		}
	}
}

// TestPanicRestartsOneTunnel: a panic on one tunnel's goroutine is
// recovered and counted (Manager.Panics and the process's ike.Panics,
// the metric), that tunnel comes back up, and another tunnel of the same
// Manager keeps running.
func TestPanicRestartsOneTunnel(t *testing.T) {
	p0 := ike.Panics.Load()
	c := testTunnel("t1")
	a := newNode(t, "a", Options{Timing: Timing{ReinitMin: 100 * time.Millisecond}})
	b := newNode(t, "b", Options{})
	connect(t, a, b, c, c)
	other := testTunnel("t2")
	other.AWSOutside, other.StartupAction = netip.MustParseAddr("192.0.2.1"), config.StartupAdd
	if err := a.m.AddTunnel(other, TunnelOptions{}); err != nil {
		t.Fatal(err)
	}
	a.wait(TunnelUp, 0)
	tun, _ := a.m.Tunnel("t1")
	tun.do(func() { panic("injected") })
	a.wait(TunnelDown, 0)
	a.wait(TunnelUp, 1)
	if n := a.m.Panics(); n != 1 {
		t.Fatalf("Panics() = %d, want 1", n)
	}
	// A command that panics answers instead of hanging.
	if err := a.m.tunnels.Command("t1", func(*Tunnel) error { panic("injected in a command") }); err == nil {
		t.Fatal("a panicking command answered no error")
	}
	a.wait(TunnelUp, 2)
	for _, s := range a.m.Status() {
		if s.Name == "t2" && s.State != "down" {
			t.Fatalf("t2: %+v", s)
		}
	}
	if n := a.m.Panics(); n != 2 {
		t.Fatalf("Panics() = %d, want 2", n)
	}
	if n := ike.Panics.Load() - p0; n != 2 {
		t.Fatalf("ike.Panics (cgw_control_panics_total) counted %d of the 2 panics", n)
	}
}
