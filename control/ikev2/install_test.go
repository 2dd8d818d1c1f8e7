package ikev2

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestInstallInboundBeforePeerSends: Options.InstallInbound runs before
// the message that lets the peer send on the new inbound SPI goes out, so
// the peer never switches its outbound SA to one we have not installed
// yet (make-before-break across the two gateways), and it runs for every
// Child SA before its ChildSAInstalled event. The hook takes 50 ms, as a
// dataplane taking up a new snapshot may: were it called after the
// response, the peer would switch meanwhile.
func TestInstallInboundBeforePeerSends(t *testing.T) {
	var mu sync.Mutex
	var nodes [2]*node
	var problems []string
	pre := [2]map[uint32]bool{{}, {}}
	hook := func(me int) func(string, ChildSA) error {
		return func(_ string, c ChildSA) error {
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			pre[me][c.InSPI] = true
			self, peer := nodes[me], nodes[1-me]
			if me == 0 && !has(self, TunnelUp, 0) {
				// Our IKE_AUTH request: the responder may send as soon as
				// it has answered, before we hear the answer (§1.2).
				return nil
			}
			for _, e := range peer.all() {
				if e.Type == OutboundSwitch && e.Child.OutSPI == c.InSPI {
					problems = append(problems, fmt.Sprintf("%s: peer switched to SPI %08x before our InstallInbound returned", self.name, c.InSPI))
				}
			}
			return nil
		}
	}
	a := newNode(t, "cgw", Options{InstallInbound: hook(0)})
	mu.Lock()
	nodes[0] = a
	mu.Unlock()
	b := newNode(t, "aws", Options{InstallInbound: hook(1)})
	mu.Lock()
	nodes[1] = b
	mu.Unlock()
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	ca, cb := established(t, a, b)
	for _, initiator := range []*node{a, b, a} {
		ka, kb := a.count(), b.count()
		initiator.m.RekeyChild("t1")
		ca = order(t, a, ka, ca)
		cb = order(t, b, kb, cb)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	for i, n := range nodes {
		for _, e := range n.all() {
			if e.Type == ChildSAInstalled && !pre[i][e.Child.InSPI] {
				t.Errorf("%s: ChildSAInstalled %08x without InstallInbound first", n.name, e.Child.InSPI)
			}
		}
	}
}
