package ikev2

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

// TestInitAnswersUnauthenticated: answers to our IKE_SA_INIT that anyone
// who saw the request could forge — error notifications, an
// INVALID_KE_PAYLOAD for a group phase 1 does not allow, malformed or
// unoffered responses — do not end the exchange (§2.21.1); an
// INVALID_KE_PAYLOAD for an allowed group changes the group for this
// exchange only, a bounded number of times; the genuine answer then
// completes it.
func TestInitAnswersUnauthenticated(t *testing.T) {
	cfg := testTunnel("t1")
	cfg.Phase1.DHGroups = []int{20, 19}
	clock := ike.NewFakeClock(time.Unix(1_800_000_000, 0))
	var failed atomic.Int32
	a := newSyncNode(t, clock, cfg, Options{Events: func(e Event) {
		if e.Type == NegotiationFailed {
			failed.Add(1)
		}
	}}, 1500, 14500, 2500, 24500)
	cb := cfg
	cb.StartupAction = config.StartupAdd
	b := newSyncNode(t, clock, cb, Options{}, 2500, 24500, 1500, 14500)
	a.t.initiate()
	sent := a.sent()
	req, err := message.Decode(sent[0].b)
	if err != nil {
		t.Fatal(err)
	}
	peer := netipAddrPort(loop, 2500)
	enc := func(m *message.Message) []byte {
		b, err := message.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	reply := func(ps ...message.Payload) []byte {
		m := &message.Message{Header: req.Reply(), Payloads: ps}
		m.SPIr = randSPI()
		return enc(m)
	}
	errReply := func(n message.Notify) []byte { return enc(req.ErrorReply(n)) }
	other := testTunnel("x")
	other.Phase1.Encryption, other.Phase1.Integrity = []string{config.AES128}, []string{config.SHA1}
	forgeries := map[string][]byte{
		"NO_PROPOSAL_CHOSEN":     errReply(message.Notify{NotifyType: message.NO_PROPOSAL_CHOSEN}),
		"INVALID_SYNTAX":         errReply(message.Notify{NotifyType: message.INVALID_SYNTAX}),
		"AUTHENTICATION_FAILED":  errReply(message.Notify{NotifyType: message.AUTHENTICATION_FAILED}),
		"NO_ADDITIONAL_SAS":      errReply(message.Notify{NotifyType: message.NO_ADDITIONAL_SAS}),
		"INVALID_KE not allowed": errReply(message.InvalidKE(14)),
		"INVALID_KE same group":  errReply(message.InvalidKE(20)),
		"empty":                  reply(),
		"nonce only":             reply(&message.Nonce{Data: randBytes(32)}),
		"unoffered proposal": reply(&message.SA{Proposals: ikeProposals(other.Phase1)[:1]},
			&message.KE{Group: 20, Data: randBytes(96)}, &message.Nonce{Data: randBytes(32)}),
		"bad KE": reply(&message.SA{Proposals: ikeProposals(cfg.Phase1)[:1]},
			&message.KE{Group: 20, Data: randBytes(3)}, &message.Nonce{Data: randBytes(32)}),
	}
	before := snapshot(a.t)
	for name, raw := range forgeries {
		clock.Advance(10 * time.Millisecond)
		a.inject(raw, peer, false)
		if s := a.sent(); len(s) != 0 {
			t.Errorf("%s: %d datagrams sent", name, len(s))
		}
		if after := snapshot(a.t); after != before {
			t.Errorf("%s changed the tunnel:\n%s\nwas\n%s", name, after, before)
		}
		if n := failed.Load(); n != 0 {
			t.Fatalf("%s: the negotiation failed", name)
		}
	}
	// INVALID_KE for allowed groups, back and forth: a few retries, the
	// tunnel's own first choice unchanged.
	retries := 0
	for i := 0; i < 10; i++ {
		g := message.DHGroup(19)
		if i%2 == 1 {
			g = 20
		}
		a.inject(errReply(message.InvalidKE(g)), peer, false)
		s := a.sent()
		retries += len(s)
		if len(s) > 0 {
			sent = s
			if req, err = message.Decode(s[0].b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if retries == 0 || retries > initRetries || a.t.ikeGroup != 20 {
		t.Fatalf("%d IKE_SA_INIT retries for 10 INVALID_KE_PAYLOAD (want 1–%d); tunnel group %d (want 20)", retries, initRetries, a.t.ikeGroup)
	}
	// The genuine peer answers the last request.
	b.inject(sent[len(sent)-1].b, netipAddrPort(loop, 1500), false)
	pump(a, b)
	if !a.t.lc.Up() || !b.t.lc.Up() || failed.Load() != 0 {
		t.Fatalf("after the genuine answer: up %v/%v, %d failures", a.t.lc.Up(), b.t.lc.Up(), failed.Load())
	}
}

// TestInitRefusedTimesOut: when the only answers are refusals, the
// exchange ends when IKE_SA_INIT times out, and says what they said.
func TestInitRefusedTimesOut(t *testing.T) {
	cfg := testTunnel("t1")
	cfg.StartupAction = config.StartupAdd
	clock := ike.NewFakeClock(time.Unix(1_800_000_000, 0))
	var last Event
	a := newSyncNode(t, clock, cfg, Options{Events: func(e Event) {
		if e.Type == NegotiationFailed {
			last = e
		}
	}}, 1500, 14500, 2500, 24500)
	a.t.initiate()
	req, _ := message.Decode(a.sent()[0].b)
	raw, _ := message.Encode(req.ErrorReply(message.Notify{NotifyType: message.NO_PROPOSAL_CHOSEN}))
	for i := 0; i < 20 && len(a.t.sas) > 0; i++ {
		a.inject(raw, netipAddrPort(loop, 2500), false)
		clock.Advance(time.Minute)
		a.t.tick()
		a.sent()
	}
	if len(a.t.sas) != 0 || last.Notify != uint16(message.NO_PROPOSAL_CHOSEN) {
		t.Fatalf("IKE SAs %d; failure %v, want NO_PROPOSAL_CHOSEN", len(a.t.sas), last)
	}
	t.Log(last.Err)
}
