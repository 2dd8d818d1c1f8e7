package ikev2

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

func TestEstablish(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	ca, _ := established(t, a, b)
	if ca.Encap {
		t.Errorf("no NAT on loopback, yet the Child SA is UDP-encapsulated")
	}
	st := a.m.Status()
	if len(st) != 1 || st[0].State != "up" || st[0].IKE == nil || len(st[0].Children) != 1 || !st[0].Children[0].Active {
		t.Fatalf("status: %+v", st)
	}
	t.Logf("status: %+v ike=%+v", st[0], *st[0].IKE)
}

// TestSuites establishes a tunnel with each AWS algorithm combination and
// rekeys the Child SA with PFS, checking KEYMAT crosswise each time.
func TestSuites(t *testing.T) {
	type tc struct {
		enc, integ string
		ike, pfs   int
	}
	var cases []tc
	for _, e := range []string{config.AES128, config.AES256} {
		for _, i := range []string{config.SHA1, config.SHA2256, config.SHA2384, config.SHA2512} {
			cases = append(cases, tc{e, i, 14, 14})
		}
	}
	for _, e := range []string{config.AES128GCM, config.AES256GCM} {
		for _, i := range []string{config.SHA1, config.SHA2256, config.SHA2384, config.SHA2512} {
			cases = append(cases, tc{e, i, 19, 19})
		}
	}
	for _, g := range []int{2, 14, 15, 16, 19, 20, 21, 24, 31} {
		cases = append(cases, tc{config.AES256GCM, config.SHA2256, g, g})
	}
	cases = append(cases, tc{config.AES128, config.SHA1, 2, 5})
	for _, c := range cases {
		t.Run(strings.Join([]string{c.enc, c.integ, "ike" + itoa(c.ike), "pfs" + itoa(c.pfs)}, "_"), func(t *testing.T) {
			tun := testTunnel("s")
			tun.Phase1.Encryption, tun.Phase1.Integrity, tun.Phase1.DHGroups = []string{c.enc}, []string{c.integ}, []int{c.ike}
			tun.Phase2.Encryption, tun.Phase2.Integrity, tun.Phase2.DHGroups = []string{c.enc}, []string{c.integ}, []int{c.pfs}
			a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
			connect(t, a, b, tun, tun)
			ca, _ := established(t, a, b)
			enc, _ := config.LookupEncryption(c.enc)
			if ca.Suite.Encr != enc.ID || ca.Suite.KeyBits != enc.KeyBits {
				t.Fatalf("suite %s for %s", ca.Suite, c.enc)
			}
			na, nb := a.count(), b.count()
			a.m.RekeyChild("s")
			ea, _ := a.wait("rekeyed ChildSAInstalled", na, func(e Event) bool { return e.Type == ChildSAInstalled })
			eb, _ := b.wait("rekeyed ChildSAInstalled", nb, func(e Event) bool { return e.Type == ChildSAInstalled })
			checkCrossKeys(t, ea.Child, eb.Child)
			if ea.Child.InSPI == ca.InSPI {
				t.Fatal("rekey reused the SPI")
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestInvalidKE(t *testing.T) {
	ta, tb := testTunnel("t1"), testTunnel("t1")
	ta.Phase1.DHGroups = []int{14, 19}
	tb.Phase1.DHGroups = []int{19}
	ta.Phase2.DHGroups = []int{2, 20}
	tb.Phase2.DHGroups = []int{20}
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, ta, tb)
	established(t, a, b)
	st := a.m.Status()[0]
	if !strings.Contains(st.IKE.Proposal, "ecp256") {
		t.Fatalf("IKE SA proposal %s: want ecp256 after INVALID_KE_PAYLOAD", st.IKE.Proposal)
	}
	// PFS: a offers modp1024 first; b asks for ecp384.
	na, nb := a.count(), b.count()
	a.m.RekeyChild("t1")
	ea, _ := a.wait("rekey", na, func(e Event) bool { return e.Type == ChildSAInstalled })
	eb, _ := b.wait("rekey", nb, func(e Event) bool { return e.Type == ChildSAInstalled })
	checkCrossKeys(t, ea.Child, eb.Child)
}

func TestCookie(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{CookieThreshold: -1})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	established(t, a, b)
	// The responder answered the first IKE_SA_INIT with a COOKIE only.
	var cookies int
	for _, raw := range b.c500.packets() {
		m, err := message.Decode(raw)
		if err == nil && m.Exchange == message.IKE_SA_INIT && m.Notify(message.COOKIE) != nil {
			cookies++
		}
	}
	if cookies != 1 {
		t.Fatalf("responder sent %d COOKIE responses, want 1", cookies)
	}
}

func TestWrongPSK(t *testing.T) {
	ta, tb := testTunnel("t1"), testTunnel("t1")
	tb.PreSharedKey = "another.psk_987654321"
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, ta, tb)
	for _, n := range []*node{a, b} {
		e, _ := n.waitType(NegotiationFailed, 0)
		if e.Notify != uint16(message.AUTHENTICATION_FAILED) {
			t.Fatalf("%s: failure %v, want AUTHENTICATION_FAILED", n.name, e)
		}
		msg := e.Err.Error()
		if !strings.Contains(msg, "tunnel t1: authentication failed: check the pre-shared key (both sides must match)") {
			t.Fatalf("%s: message %q", n.name, msg)
		}
		if strings.Contains(msg, ta.PreSharedKey) || strings.Contains(msg, tb.PreSharedKey) {
			t.Fatalf("%s: message shows a pre-shared key: %q", n.name, msg)
		}
	}
}

func TestNoProposalChosen(t *testing.T) {
	ta, tb := testTunnel("t1"), testTunnel("t1")
	ta.Phase1.Encryption, ta.Phase1.Integrity = []string{config.AES128}, []string{config.SHA1}
	tb.Phase1.Encryption, tb.Phase1.Integrity = []string{config.AES256}, []string{config.SHA2512}
	// The refusal is not authenticated: a waits for a valid answer until
	// IKE_SA_INIT times out (§2.21.1), here after 2 retransmissions.
	a, b := newNode(t, "cgw", Options{Timing: Timing{RetransmitTries: 2}}), newNode(t, "aws", Options{})
	connect(t, a, b, ta, tb)
	eb, _ := b.waitType(NegotiationFailed, 0)
	ea, _ := a.waitType(NegotiationFailed, 0)
	for _, e := range []Event{ea, eb} {
		if e.Notify != uint16(message.NO_PROPOSAL_CHOSEN) {
			t.Fatalf("failure %v, want NO_PROPOSAL_CHOSEN", e)
		}
	}
	// The responder knows both lists and logs them side by side.
	msg := eb.Err.Error()
	if !strings.Contains(msg, "aes128-sha1") || !strings.Contains(msg, "aes256-sha512") {
		t.Fatalf("responder's message lacks one of the proposal lists: %q", msg)
	}
	if !strings.Contains(ea.Err.Error(), "aes128-sha1") {
		t.Fatalf("initiator's message lacks its proposals: %q", ea.Err)
	}
	t.Logf("responder: %v", eb.Err)
	t.Logf("initiator: %v", ea.Err)
}

func TestChildProposalMismatch(t *testing.T) {
	ta, tb := testTunnel("t1"), testTunnel("t1")
	ta.Phase2.Encryption = []string{config.AES128GCM}
	tb.Phase2.Encryption = []string{config.AES256}
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, ta, tb)
	eb, _ := b.waitType(NegotiationFailed, 0)
	ea, _ := a.waitType(NegotiationFailed, 0)
	if ea.Notify != uint16(message.NO_PROPOSAL_CHOSEN) || eb.Notify != uint16(message.NO_PROPOSAL_CHOSEN) {
		t.Fatalf("got %v / %v", ea, eb)
	}
	if !strings.Contains(eb.Err.Error(), "aes128gcm16") || !strings.Contains(eb.Err.Error(), "aes256") {
		t.Fatalf("responder's message lacks a list: %v", eb.Err)
	}
}

func TestRetransmission(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	a.c500.set(func(w *wrapConn) { w.drop = 2 }) // IKE_SA_INIT twice
	b.c500.set(func(w *wrapConn) { w.filter = isRequest(0); w.drop = 0 })
	b.c500.set(func(w *wrapConn) { w.filter = nil })
	// Lose the first IKE_AUTH response too.
	dropped := false
	b.c500.set(func(w *wrapConn) {
		w.filter = func(p []byte) bool {
			h, err := message.DecodeHeader(p)
			if err == nil && h.Exchange == message.IKE_AUTH && h.IsResponse() && !dropped {
				dropped = true
				return true
			}
			return false
		}
	})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	established(t, a, b)
	var re int
	for _, e := range a.all() {
		if e.Type == Retransmit {
			re++
		}
	}
	if re < 3 {
		t.Fatalf("%d retransmissions, want ≥ 3 (2 lost IKE_SA_INIT, 1 lost IKE_AUTH response)", re)
	}
	if !dropped {
		t.Fatal("the IKE_AUTH response was never seen")
	}
}

func TestUnreachablePeer(t *testing.T) {
	a, b := newNode(t, "cgw", Options{Timing: Timing{RetransmitTimeout: 50 * time.Millisecond, RetransmitFactor: 1.2, RetransmitTries: 2, ReinitMin: time.Hour}}), newNode(t, "aws", Options{})
	a.c500.set(func(w *wrapConn) { w.filter = func([]byte) bool { return true } })
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	e, _ := a.waitType(NegotiationFailed, 0)
	want := "no answer from 127.0.0.1:" + itoa(int(b.c500.port())) + " to IKE_SA_INIT after 3 tries"
	if !strings.Contains(e.Err.Error(), want) {
		t.Fatalf("message %q lacks %q", e.Err, want)
	}
}

// TestDuplicateRequest replays a request the responder already answered:
// it must resend the cached response byte for byte (§2.1) and nothing else.
func TestDuplicateRequest(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	established(t, a, b)
	var req, resp []byte
	for _, p := range a.c500.packets() {
		if isRequest(message.IKE_AUTH)(p) {
			req = p
		}
	}
	for _, p := range b.c500.packets() {
		if h, err := message.DecodeHeader(p); err == nil && h.Exchange == message.IKE_AUTH && h.IsResponse() {
			resp = p
		}
	}
	if req == nil || resp == nil {
		t.Fatal("IKE_AUTH request or response not recorded")
	}
	n := len(b.c500.packets())
	b.m.Socket().Deliver(req, netipAddrPort(mustAddr("127.0.0.1"), a.c500.port()), false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		ps := b.c500.packets()
		var last []byte
		if len(ps) > n {
			last = ps[len(ps)-1]
		}
		if last != nil {
			if string(last) != string(resp) {
				t.Fatal("the duplicate got a different response")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no response to the duplicate request")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The tunnel is unaffected: still one Child SA.
	if st := b.m.Status()[0]; st.State != "up" || len(st.Children) != 1 {
		t.Fatalf("status after duplicate: %+v", st)
	}
}
