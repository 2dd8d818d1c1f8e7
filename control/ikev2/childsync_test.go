package ikev2

import (
	"errors"
	"testing"
	"time"
)

// The tests of Options.SyncDataplane: a message on which the peer may drop
// a pair goes only once the dataplane sends on its successor.

// syncCall is what one Options.SyncDataplane call saw.
type syncCall struct {
	out     *child
	pending int // datagrams the node had written, not yet on the wire
}

// recordSyncs is an Options.SyncDataplane for the node *n (set once the
// pair is made) that appends what it sees to calls and returns err.
func recordSyncs(n **syncNode, calls *[]syncCall, err error) func(string) error {
	return func(string) error {
		x := *n
		x.c500.mu.Lock()
		pending := len(x.c500.out)
		x.c500.mu.Unlock()
		*calls = append(*calls, syncCall{x.t.out, pending})
		return err
	}
}

// TestResponderSwitchesBeforeAnswer: when the peer deletes the pair it
// replaced by its rekey, we switch outbound to the new pair and wait for
// the dataplane (Options.SyncDataplane) before our answer goes out: the
// answer carries our half of the Delete, on which the peer may drop the
// old pair's inbound SA.
func TestResponderSwitchesBeforeAnswer(t *testing.T) {
	var b *syncNode
	var calls []syncCall
	a, b0, clock := syncPair(t, testTunnel("t1"), Options{SyncDataplane: recordSyncs(&b, &calls, nil)})
	b = b0
	oldB := b.t.out
	a.t.rekeyChild(a.t.out) // b answers the rekey: the peer's rekey for b
	pumpBoth(t, a, b)
	if b.t.out != oldB || len(calls) != 0 {
		t.Fatalf("b switched before the peer's Delete (out changed %v, %d syncs)", b.t.out != oldB, len(calls))
	}
	clock.Advance(syncGrace + 10*time.Millisecond)
	a.t.tick()
	_, db := pumpBoth(t, a, b)
	if len(calls) != 1 {
		t.Fatalf("b synced with the dataplane %d times on the peer's Delete, want 1", len(calls))
	}
	if c := calls[0]; c.out == oldB || c.out == nil || c.pending != 0 {
		t.Fatalf("at the sync b sent on the old pair %v, had written %d datagrams (its answer went before the dataplane took up the switch)", c.out == oldB, c.pending)
	}
	if b.t.out != calls[0].out || !oldB.deleting || len(db) != 0 {
		t.Fatalf("after the Delete: b's outbound moved again %v, old deleting %v, b sent %d INFORMATIONAL requests", b.t.out != calls[0].out, oldB.deleting, len(db))
	}
}

// TestChildRekeyDeleteAfterSync: when the dataplane confirms it sends on
// the new pair (Options.SyncDataplane), the Delete for the replaced pair
// goes at once after that, not a grace period later, so the peer (which
// switches on it, §2.8) stops sending on the old pair promptly; when it
// does not confirm, the Delete waits for the grace period.
func TestChildRekeyDeleteAfterSync(t *testing.T) {
	for _, confirm := range []bool{true, false} {
		var a *syncNode
		var calls []syncCall
		var refuse error
		if !confirm {
			refuse = errors.New("the dataplane did not take up the change in time")
		}
		a0, b, clock := syncPairWith(t, testTunnel("t1"), Options{SyncDataplane: recordSyncs(&a, &calls, refuse)}, Options{})
		a = a0
		oldA, oldB := a.t.out, b.t.out
		a.t.rekeyChild(oldA)
		ds := pumpDeletes(t, a, b)
		if len(calls) != 1 || calls[0].out == oldA || calls[0].out == nil || calls[0].pending != 0 {
			t.Fatalf("confirm %v: want one sync after the switch, before anything more is sent; got %+v (old %p)", confirm, calls, oldA)
		}
		want := 0
		if confirm {
			want = 1
		}
		if n := childDeletes(ds, oldA.InSPI); n != want {
			t.Fatalf("confirm %v: %d Deletes for the replaced pair right after the rekey, want %d", confirm, n, want)
		}
		if confirm != (b.t.out != oldB) {
			t.Fatalf("confirm %v: the peer switched away from the old pair: %v", confirm, b.t.out != oldB)
		}
		clock.Advance(syncGrace + 10*time.Millisecond)
		a.t.tick()
		b.t.tick()
		ds = pumpDeletes(t, a, b)
		if n := childDeletes(ds, oldA.InSPI); n != 1-want {
			t.Fatalf("confirm %v: %d Deletes for the replaced pair after the grace period, want %d", confirm, n, 1-want)
		}
		clock.Advance(2 * syncGrace)
		a.t.tick()
		b.t.tick()
		pumpDeletes(t, a, b)
		for name, n := range map[string]*syncNode{"a": a, "b": b} {
			if len(n.t.children) != 1 || n.t.out != n.t.children[0] {
				t.Errorf("confirm %v: %s: %d pairs; want the new pair alone, active", confirm, name, len(n.t.children))
			}
		}
	}
}

// TestExpiryDeleteAfterSync: the pair we send on reaches its hard
// lifetime while the peer's rekey of it waits for the peer's Delete: we
// switch to the new pair and sync with the dataplane before our Delete.
func TestExpiryDeleteAfterSync(t *testing.T) {
	var a *syncNode
	var syncs []syncCall
	a0, b, clock := syncPairWith(t, testTunnel("t1"), Options{SyncDataplane: recordSyncs(&a, &syncs, nil)}, Options{})
	a = a0
	oldA := a.t.out
	b.t.rekeyChild(b.t.out) // b's Delete of the old pair waits for its grace period
	pumpDeletes(t, a, b)
	if oldA.theirs == nil || a.t.out != oldA || len(syncs) != 0 {
		t.Fatalf("a should have answered b's rekey and still send on the old pair (theirs %v, switched %v, %d syncs)", oldA.theirs != nil, a.t.out != oldA, len(syncs))
	}
	oldA.expireAt = clock.Now().Add(time.Millisecond)
	clock.Advance(2 * time.Millisecond)
	a.t.tick()
	ds := pumpDeletes(t, a, b)
	if a.t.out == oldA || len(syncs) != 1 || syncs[0].pending != 0 {
		t.Fatalf("at the hard lifetime: switched %v, syncs %v; want one sync after the switch, before the Delete", a.t.out != oldA, syncs)
	}
	if n := childDeletes(ds, oldA.InSPI); n != 1 {
		t.Fatalf("%d Deletes for the expired pair, want 1", n)
	}
}
