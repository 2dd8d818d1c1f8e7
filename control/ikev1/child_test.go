package ikev1

import (
	"testing"
	"time"
)

// TestReplacedPairDeletedAtRetire: after a Quick Mode rekey neither side
// tells the peer to delete the replaced pair at the switch — the dataplane
// takes up OutboundSwitch asynchronously and may still send on the old
// pair, which the peer must then still accept (the lab lost a ping) — but
// each does when it retires the pair, a grace period later.
func TestReplacedPairDeletedAtRetire(t *testing.T) {
	a, b, clock := syncPair(t, testTunnel("t1"))
	oldA, oldB := a.t.out, b.t.out
	a.t.rekeyChild(oldA)
	pump(a, b) // b, the responder, switches on message 3
	clock.Advance(rekeySwitchDelay + 100*time.Millisecond)
	a.t.tick() // a switches
	b.t.tick()
	pump(a, b)
	if a.t.out == oldA || b.t.out == oldB || a.t.out == nil || b.t.out == nil {
		t.Fatal("the Quick Mode rekey did not switch both sides to the new pair")
	}
	if oldA.deleted || oldB.deleted {
		t.Fatalf("the peer was told to delete the replaced pair at the switch (a's deleted %v, b's %v): what the dataplane still sends on it is dropped",
			oldA.deleted, oldB.deleted)
	}
	clock.Advance(time.Second + 10*time.Millisecond) // the grace period
	a.t.tick()
	pump(a, b)
	if a.t.childByIn(oldA.sa.InSPI) != nil {
		t.Fatal("a kept the replaced pair after the grace period")
	}
	if !oldB.deleted {
		t.Fatal("a retired the pair it replaced without a Delete to the peer")
	}
	b.t.tick()
	pump(a, b)
	for name, n := range map[string]*syncNode{"a": a, "b": b} {
		if len(n.t.children) != 1 || n.t.out != n.t.children[0] || !n.t.lc.Up() {
			t.Errorf("%s: %d pairs after the rekey, up %v; want the new pair alone, active", name, len(n.t.children), n.t.lc.Up())
		}
	}
}
