package ikev2

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cgw-project/cgw/control/ikev2/message"
)

// Commands (status API, cgwctl) say whether they started: a second rekey
// of an SA whose rekey is under way is refused with a *BusyError naming
// the SA and since when, and nothing more goes out; an unknown tunnel is a
// *NotFoundError; Initiate on an up tunnel is refused.
func TestCommandsAnswer(t *testing.T) {
	a, b := newNode(t, "cgw", Options{}), newNode(t, "aws", Options{})
	connect(t, a, b, testTunnel("t1"), testTunnel("t1"))
	ca, cb := established(t, a, b)

	// Hold a's CREATE_CHILD_SA requests so its rekeys stay in flight.
	var mu sync.Mutex
	var held []func()
	hold := func() {
		for _, w := range []*wrapConn{a.c500, a.c4500} {
			w.set(func(w *wrapConn) {
				w.hold = func(p []byte, send func()) {
					mu.Lock()
					defer mu.Unlock()
					if isRequest(message.CREATE_CHILD_SA)(p) {
						held = append(held, send)
						return
					}
					send()
				}
			})
		}
	}
	release := func() {
		for _, w := range []*wrapConn{a.c500, a.c4500} {
			w.set(func(w *wrapConn) { w.hold = nil })
		}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range held {
			s()
		}
		held = nil
	}
	sent := func() int { mu.Lock(); defer mu.Unlock(); return len(held) }

	busy := func(what string, err error, want string) {
		t.Helper()
		var be *BusyError
		if !errors.As(err, &be) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want a *BusyError saying %q", what, err, want)
		}
	}
	hold()
	ka, kb := a.count(), b.count()
	if err := a.m.RekeyChild("t1"); err != nil {
		t.Fatalf("first child rekey: %v", err)
	}
	n := sent()
	busy("second child rekey", a.m.RekeyChild("t1"),
		fmt.Sprintf("tunnel t1: child SA 0x%08x is already being rekeyed (started ", ca.InSPI))
	if got := sent(); got != n {
		t.Errorf("the refused rekey sent %d more CREATE_CHILD_SA requests", got-n)
	}
	release()
	ca, cb = order(t, a, ka, ca), order(t, b, kb, cb)
	checkCrossKeys(t, ca, cb)

	hold()
	k := a.count()
	if err := a.m.RekeyIKE("t1"); err != nil {
		t.Fatalf("first IKE rekey: %v", err)
	}
	busy("second IKE rekey", a.m.RekeyIKE("t1"), "is already being rekeyed (started ")
	release()
	a.waitType(IKERekeyed, k)

	busy("initiate while up", a.m.Initiate("t1"), "tunnel t1: already up")
	var nf *NotFoundError
	for _, f := range []func(string) error{a.m.RekeyChild, a.m.RekeyIKE, a.m.Initiate} {
		if err := f("nope"); !errors.As(err, &nf) || err.Error() != "tunnel nope: not found" {
			t.Errorf("unknown tunnel: %v", err)
		}
	}
}
