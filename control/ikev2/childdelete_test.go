package ikev2

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cgw-project/cgw/control/ikev2/message"
)

// sentDelete is an INFORMATIONAL request a node sent: the IKE SA it went
// on and the ESP SPIs its Delete payload names.
type sentDelete struct {
	ike  message.SPI // SPIi
	spis []uint32
}

// pumpDeletes is pump, also returning the INFORMATIONAL requests a sent.
func pumpDeletes(t *testing.T, a, b *syncNode) []sentDelete {
	t.Helper()
	da, _ := pumpBoth(t, a, b)
	return da
}

// pumpBoth is pump, returning the INFORMATIONAL requests each side sent.
func pumpBoth(t *testing.T, a, b *syncNode) (da, db []sentDelete) {
	t.Helper()
	keys := map[message.SPI]*message.Keys{} // of every IKE SA seen: one may go before its last request is read
	learn := func(n *syncNode) {
		for _, sa := range n.t.sas {
			if sa.keys != nil {
				keys[sa.spiI] = sa.keys
			}
		}
	}
	learn(a)
	learn(b)
	move := func(from, to *syncNode, ds *[]sentDelete) int {
		k := 0
		for j, c := range []*memConn{from.c500, from.c4500} {
			for _, p := range c.take() {
				if isRequest(message.INFORMATIONAL)(p.b) {
					*ds = append(*ds, openDelete(t, keys, p.b))
				}
				to.inject(p.b, netip.AddrPortFrom(loop, uint16(c.port)), j == 1)
				learn(to)
				k++
			}
		}
		return k
	}
	for i := 0; i < 50 && move(a, b, &da)+move(b, a, &db) > 0; i++ {
	}
	return da, db
}

func openDelete(t *testing.T, keys map[message.SPI]*message.Keys, b []byte) sentDelete {
	t.Helper()
	if len(b) >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0 {
		b = b[4:]
	}
	h, err := message.DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	k := keys[h.SPIi]
	if k == nil {
		t.Fatalf("INFORMATIONAL request on an IKE SA %v never seen", h.SPIi)
	}
	m, err := message.DecodeEncrypted(b, k)
	if err != nil {
		t.Fatalf("opening an INFORMATIONAL request: %v", err)
	}
	d := sentDelete{ike: h.SPIi}
	if del := message.Find[*message.Delete](m); del != nil && del.Protocol == message.ProtoESP {
		d.spis = del.SPIs
	}
	return d
}

// childDeletes counts the requests in ds whose Delete names ESP SPI spi.
func childDeletes(ds []sentDelete, spi uint32) int {
	n := 0
	for _, d := range ds {
		if slices.Contains(d.spis, spi) {
			n++
		}
	}
	return n
}

const syncGrace = time.Second // newSyncNode's Timing.Grace

// TestChildRekeyDeleteAfterGrace: after a Child SA rekey we initiate, the
// Delete for the replaced pair goes to the peer a grace period after the
// switch, not with it: OutboundSwitch reaches the dataplane later than the
// Delete reaches the peer, and a peer that drops the old inbound SA on
// the Delete would drop what we still send on it. Exactly one Delete,
// then the old pair is retired a grace period after its answer.
func TestChildRekeyDeleteAfterGrace(t *testing.T) {
	a, b, clock := syncPair(t, testTunnel("t1"), Options{})
	oldA, oldB := a.t.out, b.t.out
	a.t.rekeyChild(oldA)
	ds := pumpDeletes(t, a, b)
	if a.t.out == oldA || a.t.out == nil {
		t.Fatal("a did not switch to the new pair")
	}
	if n := childDeletes(ds, oldA.InSPI); n != 0 {
		t.Fatalf("a sent %d Deletes for the replaced pair with the switch; the dataplane may still be sending on it", n)
	}
	if oldB.deleting || b.t.out != oldB {
		t.Fatalf("b dropped the old pair before being told (deleting %v, still its outbound %v)", oldB.deleting, b.t.out == oldB)
	}
	clock.Advance(syncGrace - 10*time.Millisecond)
	a.t.tick()
	b.t.tick()
	if n := childDeletes(pumpDeletes(t, a, b), oldA.InSPI); n != 0 {
		t.Fatalf("a sent %d Deletes for the replaced pair before the grace period passed", n)
	}
	clock.Advance(20 * time.Millisecond)
	a.t.tick()
	ds = pumpDeletes(t, a, b)
	if n := childDeletes(ds, oldA.InSPI); n != 1 || len(ds) != 1 {
		t.Fatalf("after the grace period a sent %d Deletes for the replaced pair (%d INFORMATIONAL requests); want exactly one", n, len(ds))
	}
	if !oldB.deleting || b.t.out == oldB {
		t.Fatal("b did not take the Delete: it still uses the old pair")
	}
	if a.t.childByOut(oldA.OutSPI) == nil {
		t.Fatal("a retired the old pair at the Delete's answer; packets the peer sent before it still need it")
	}
	for i := 0; i < 3; i++ {
		clock.Advance(syncGrace)
		a.t.tick()
		b.t.tick()
		if n := childDeletes(pumpDeletes(t, a, b), oldA.InSPI); n != 0 {
			t.Fatalf("a sent the Delete for the replaced pair again (%d more)", n)
		}
	}
	if onePairEach(t, "after the rekey", a, b) {
		checkCrossKeys(t, &a.t.out.ChildSA, &b.t.out.ChildSA)
	}
}

// TestChildRekeyPeerDeletesFirst: when the peer deletes the pair we
// replaced before our grace period ends, we answer with our half (our own
// Delete has not gone yet, §1.4.1) and send no Delete later.
func TestChildRekeyPeerDeletesFirst(t *testing.T) {
	a, b, clock := syncPair(t, testTunnel("t1"), Options{})
	oldA := a.t.out
	a.t.rekeyChild(oldA)
	pumpDeletes(t, a, b)
	resp, after := a.t.respInformational(a.t.ike, &message.Message{Payloads: []message.Payload{
		&message.Delete{Protocol: message.ProtoESP, SPIs: []uint32{oldA.OutSPI}}}})
	if d := message.Find[*message.Delete](&message.Message{Payloads: resp}); d == nil || !slices.Contains(d.SPIs, oldA.InSPI) {
		t.Fatalf("the answer to the peer's Delete of the replaced pair lacks our half %08x: %v", oldA.InSPI, resp)
	}
	after()
	for i := 0; i < 3; i++ {
		clock.Advance(syncGrace)
		a.t.tick()
		b.t.tick()
		if n := childDeletes(pumpDeletes(t, a, b), oldA.InSPI); n != 0 {
			t.Fatalf("a sent a Delete for a pair the peer already deleted (%d)", n)
		}
	}
	if a.t.childByOut(oldA.OutSPI) != nil {
		t.Fatal("a kept the pair the peer deleted")
	}
}

// TestChildRekeyThenDown: the tunnel goes down (the peer deletes the IKE
// SA) during the grace period: no Delete goes later for the dead pair and
// no timer of it is left.
func TestChildRekeyThenDown(t *testing.T) {
	a, b, clock := syncPair(t, testTunnel("t1"), Options{})
	oldA := a.t.out
	a.t.rekeyChild(oldA)
	pumpDeletes(t, a, b)
	b.t.deleteIKE(b.t.ike)
	pumpDeletes(t, a, b)
	if a.t.lc.Up() {
		t.Fatal("a still up after the peer deleted the IKE SA")
	}
	for _, c := range a.t.children {
		t.Errorf("a kept Child SA %08x (tellPeerAt %v) after the tunnel went down", c.InSPI, c.tellPeerAt)
	}
	for i := 0; i < 3; i++ {
		clock.Advance(syncGrace)
		a.t.tick()
		for _, p := range a.sent() {
			if isRequest(message.INFORMATIONAL)(p.b) {
				t.Fatal("a sent an INFORMATIONAL request after the tunnel went down")
			}
		}
	}
}

// TestChildRekeyThenIKERekey: an IKE SA rekey (by either end) during the
// grace period: the Delete for the replaced pair goes once, on the new
// IKE SA, when the grace period ends.
func TestChildRekeyThenIKERekey(t *testing.T) {
	for _, byPeer := range []bool{false, true} {
		a, b, clock := syncPair(t, testTunnel("t1"), Options{})
		oldA, oldB := a.t.out, b.t.out
		a.t.rekeyChild(oldA)
		pumpDeletes(t, a, b)
		oldIKE := a.t.ike
		if byPeer {
			b.t.rekeyIKE(b.t.ike)
		} else {
			a.t.rekeyIKE(a.t.ike)
		}
		ds := pumpDeletes(t, a, b)
		if a.t.ike == oldIKE || a.t.ike == nil || b.t.ike == nil || a.t.ike.spiI != b.t.ike.spiI {
			t.Fatalf("by peer %v: the IKE SA was not rekeyed", byPeer)
		}
		if n := childDeletes(ds, oldA.InSPI); n != 0 {
			t.Fatalf("by peer %v: the Delete for the replaced pair went with the IKE rekey", byPeer)
		}
		clock.Advance(syncGrace + 10*time.Millisecond)
		a.t.tick()
		b.t.tick()
		ds = pumpDeletes(t, a, b)
		if n := childDeletes(ds, oldA.InSPI); n != 1 {
			t.Fatalf("by peer %v: %d Deletes for the replaced pair after the grace period, want 1", byPeer, n)
		}
		for _, d := range ds {
			if slices.Contains(d.spis, oldA.InSPI) && d.ike != a.t.ike.spiI {
				t.Fatalf("by peer %v: the Delete went on IKE SA %v, not the current one %v", byPeer, d.ike, a.t.ike.spiI)
			}
		}
		if !oldB.deleting {
			t.Fatalf("by peer %v: b did not take the Delete", byPeer)
		}
		clock.Advance(2 * syncGrace)
		a.t.tick()
		b.t.tick()
		pumpDeletes(t, a, b)
		onePairEach(t, fmt.Sprintf("by peer %v", byPeer), a, b)
	}
}

// TestChildRekeyCollisionDeletes: both ends rekey the pair at once
// (§2.8.1). The end whose rekey made the lowest nonce deletes its
// redundant new pair at once (nobody sends on it); the other switches to
// its own and deletes the old pair a grace period later. Both end on the
// same surviving pair.
func TestChildRekeyCollisionDeletes(t *testing.T) {
	a, b, clock := syncPair(t, testTunnel("t1"), Options{})
	oldA, oldB := a.t.out, b.t.out
	a.t.rekeyChild(oldA)
	b.t.rekeyChild(oldB) // both requests are on the wire before either is answered
	da, db := pumpBoth(t, a, b)
	ds := append(da, db...)
	if oldA.ours == nil || oldA.theirs == nil || oldB.ours == nil || oldB.theirs == nil {
		t.Fatal("the rekeys did not collide")
	}
	if n := childDeletes(ds, oldA.InSPI) + childDeletes(ds, oldB.InSPI); n != 0 {
		t.Fatalf("%d Deletes for the old pair with the switch", n)
	}
	if len(ds) != 1 || len(ds[0].spis) != 1 {
		t.Fatalf("want one Delete, of the redundant pair, at once; got %v", ds)
	}
	clock.Advance(syncGrace + 10*time.Millisecond)
	a.t.tick()
	b.t.tick()
	da, db = pumpBoth(t, a, b)
	ds = append(da, db...)
	if n := childDeletes(ds, oldA.InSPI) + childDeletes(ds, oldB.InSPI); n != 1 {
		t.Fatalf("%d Deletes for the old pair after the grace period, want 1 (%v)", n, ds)
	}
	for i := 0; i < 3; i++ {
		clock.Advance(syncGrace)
		a.t.tick()
		b.t.tick()
		pumpBoth(t, a, b)
	}
	if onePairEach(t, "after the peer's Delete", a, b) {
		checkCrossKeys(t, &a.t.out.ChildSA, &b.t.out.ChildSA)
	}
}

// TestChildRekeyThenNewIKESA: the peer sets up a new IKE SA (it
// restarted its side) while the Delete for the pair we replaced waits for
// the grace period: the old IKE SA goes with its Child SAs at the peer
// (§1.4.1), so no Delete follows for the old pair, and no timer of it is
// left.
func TestChildRekeyThenNewIKESA(t *testing.T) {
	a, b, clock := syncPair(t, testTunnel("t1"), Options{})
	oldA, oldIKE := a.t.out, a.t.ike
	a.t.rekeyChild(oldA)
	pumpDeletes(t, a, b)
	if oldA.tellPeerAt.IsZero() {
		t.Fatal("no Delete pending for the replaced pair")
	}
	clock.Advance(100 * time.Millisecond) // not at once with the old IKE SA (adopt's collision rule)
	b.t.initiate()
	ds := pumpDeletes(t, a, b)
	if a.t.ike == oldIKE || a.t.ike == nil || !a.t.lc.Up() {
		t.Fatal("a did not adopt the peer's new IKE SA")
	}
	if !oldA.tellPeerAt.IsZero() {
		t.Fatal("the Delete for the replaced pair is still pending after its IKE SA went")
	}
	for i := 0; i < 4; i++ {
		clock.Advance(syncGrace)
		a.t.tick()
		b.t.tick()
		ds = append(ds, pumpDeletes(t, a, b)...)
	}
	if n := childDeletes(ds, oldA.InSPI); n != 0 {
		t.Fatalf("a sent %d Deletes for a pair whose IKE SA the peer replaced", n)
	}
	if len(a.t.children) != 1 || a.t.out != a.t.children[0] || a.t.out.owner != a.t.ike {
		t.Fatalf("a: %d pairs; want the new IKE SA's pair alone, active", len(a.t.children))
	}
}

// onePairEach reports whether each side holds one Child SA pair, sends on
// it and has its tunnel up, and fails the test where one does not.
func onePairEach(t *testing.T, when string, a, b *syncNode) bool {
	t.Helper()
	ok := true
	for name, n := range map[string]*syncNode{"a": a, "b": b} {
		if len(n.t.children) != 1 || n.t.out != n.t.children[0] || !n.t.lc.Up() {
			t.Errorf("%s: %s: %d pairs, up %v; want one pair, active", when, name, len(n.t.children), n.t.lc.Up())
			ok = false
		}
	}
	return ok
}
