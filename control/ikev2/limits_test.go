package ikev2

import (
	"testing"

	"github.com/cgw-project/cgw/control/ikev2/message"
)

// TestCreateChildCap: a peer that loops CREATE_CHILD_SA — new Child SAs,
// or IKE SA rekeys it never follows with a Delete — gets
// NO_ADDITIONAL_SAS once the tunnel has maxLiveSAs of them: its state
// stays bounded and the tunnel keeps working.
func TestCreateChildCap(t *testing.T) {
	a, b, _ := syncPair(t, testTunnel("t1"), Options{})
	refused := 0
	for i := 0; i < 12; i++ {
		inSPI := a.t.newChildSPI()
		props := withSPI(a.t.espPFS, spiBytes(inSPI))
		var ke []message.Payload
		if g := a.t.pfsGroup; g != 0 {
			_, pub, err := keyExchange(g)
			if err != nil {
				t.Fatal(err)
			}
			props = preferGroup(props, g)
			ke = append(ke, &message.KE{Group: message.DHGroup(g), Data: pub})
		}
		ps := append([]message.Payload{&message.SA{Proposals: props}, &message.Nonce{Data: randBytes(32)}}, ke...)
		ps = append(ps, &message.TrafficSelectors{Selectors: selectors(a.t.opt.LocalTS)},
			&message.TrafficSelectors{Responder: true, Selectors: selectors(a.t.opt.RemoteTS)})
		a.t.request(a.t.ike, &pending{exch: message.CREATE_CHILD_SA, payloads: ps, onResp: func(m *message.Message, _ []byte) {
			if m.Notify(message.NO_ADDITIONAL_SAS) != nil {
				refused++
			}
		}})
		pump(a, b)
	}
	live := 0
	for _, c := range b.t.children {
		if !c.deleting {
			live++
		}
	}
	// Literal bound: the test checks the cap, not the constant.
	if live > 4 || refused < 12-3 || b.m.spis.Len() > 4 {
		t.Fatalf("12 new Child SAs asked: %d live pairs, %d SPIs held, %d refused", live, b.m.spis.Len(), refused)
	}

	// IKE SA rekeys whose Deletes never arrive.
	isDelete := func(p []byte) bool {
		h, err := message.DecodeHeader(p)
		return err == nil && h.Exchange == message.INFORMATIONAL && !h.IsResponse()
	}
	for i := 0; i < 8; i++ {
		a.t.rekeyIKE(a.t.ike)
		for k := 0; k < 5; k++ {
			for _, p := range a.sent() {
				if !isDelete(p.b) {
					b.inject(p.b, netipAddrPort(loop, 1500), false)
				}
			}
			b.deliver(a)
		}
	}
	ikes := 0
	for _, sa := range b.t.sas {
		if sa.state == saEstablished && !sa.deleting {
			ikes++
		}
	}
	if ikes > 4 {
		t.Fatalf("8 IKE SA rekeys without Deletes: %d IKE SAs at the responder", ikes)
	}
	if !a.t.lc.Up() || !b.t.lc.Up() {
		t.Fatal("tunnel down")
	}
}

// TestRekeyInvalidKEBounded: a peer that answers every rekey of ours with
// INVALID_KE_PAYLOAD, switching between groups we allow, gets a few
// retries, not a loop without end.
func TestRekeyInvalidKEBounded(t *testing.T) {
	cfg := testTunnel("t1")
	cfg.Phase1.DHGroups, cfg.Phase2.DHGroups = []int{20, 19}, []int{20, 19}
	for _, ike := range []bool{false, true} {
		a, b, _ := syncPair(t, cfg, Options{})
		if ike {
			a.t.rekeyIKE(a.t.ike)
		} else {
			a.t.rekeyChild(a.t.out)
		}
		requests := 0
		for i := 0; i < 10; i++ {
			s := a.sent()
			if len(s) == 0 {
				break
			}
			requests += len(s)
			h, err := message.DecodeHeader(s[0].b)
			if err != nil {
				t.Fatal(err)
			}
			n := message.InvalidKE(message.DHGroup(19 + i%2))
			raw, err := message.EncodeEncrypted(&message.Message{Header: h.Reply(), Payloads: []message.Payload{&n}}, b.t.ike.keys)
			if err != nil {
				t.Fatal(err)
			}
			a.inject(raw, netipAddrPort(loop, 2500), false)
		}
		if requests > 1+3 {
			t.Fatalf("IKE %v: %d rekey requests for INVALID_KE_PAYLOAD answers switching groups", ike, requests)
		}
	}
}
