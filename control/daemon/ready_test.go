package daemon

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// fakeDataplane polls an instance's maps as cgw-dataplane does, taking
// 30 ms to hand each snapshot to its "workers", and remembers every
// inbound SPI its workers have had.
type fakeDataplane struct {
	mu   sync.Mutex
	spis map[uint32]bool
}

func (f *fakeDataplane) has(spi uint32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spis[spi]
}

func startFakeDataplane(t *testing.T, inst string) *fakeDataplane {
	t.Helper()
	o, err := maps.Load(inst)
	if err != nil {
		t.Fatalf("LoadPinned %s: %v", inst, err)
	}
	r, err := maps.NewReader(o)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDataplane{spis: map[uint32]bool{}}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		r.Poll(stop, 10*time.Millisecond, func(tb *maps.Tables) {
			time.Sleep(30 * time.Millisecond)
			f.mu.Lock()
			for spi := range tb.Inbound {
				f.spis[spi] = true
			}
			f.mu.Unlock()
		}, nil)
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		r.Close()
		o.Close()
	})
	return f
}

// TestInboundAppliedBeforePeerSwitch: two daemons, each with a (slow)
// dataplane on its maps. Whenever one side switches its outbound SA to a
// new Child SA, the other side's dataplane already decrypts with the
// matching inbound SA: the daemon installs it and waits for the dataplane
// before the IKE response (or the rekey initiator's Delete) goes out. The
// one exception is the first Child SA of the IKE_AUTH responder, which
// may send before the initiator has read the response (RFC 7296 §1.2).
func TestInboundAppliedBeforePeerSwitch(t *testing.T) {
	netnstest.Require(t)
	base := fmt.Sprintf("mbb%d", os.Getpid())
	ns := netnstest.New(t, "cgwdt-"+base)
	var mu sync.Mutex
	var problems []string
	var checked atomic.Int32
	dps := map[string]*fakeDataplane{}
	side := func(name, peerName, local, peer, start string) *Daemon {
		c := testConfig()
		c.Connections[0].Tunnels = c.Connections[0].Tunnels[:1]
		tu := &c.Connections[0].Tunnels[0]
		tu.LocalOutside, tu.AWSOutside, tu.StartupAction = netip.MustParseAddr(local), netip.MustParseAddr(peer), start
		inst := base + name
		t.Cleanup(func() { maps.Remove(inst) })
		maps.Remove(inst)
		dps[name] = startFakeDataplane(t, inst)
		first := true
		d := startQuiet(t, ns, inst, Options{Config: c,
			OnEvent: func(e ike.Event) {
				if e.Type != ike.OutboundSwitch {
					return
				}
				skip := first && start == config.StartupAdd
				first = false
				if skip {
					return
				}
				checked.Add(1)
				if !dps[peerName].has(e.Child.OutSPI) {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("%s switched to SPI %08x before %s's dataplane had it", name, e.Child.OutSPI, peerName))
					mu.Unlock()
				}
			}})
		return d
	}
	b := side("r", "i", "127.0.0.2", "127.0.0.1", config.StartupAdd)
	// The responder's dataplane is running (applied a generation) before
	// the initiator starts: a daemon does not wait for a dataplane that
	// never applied anything.
	for end := time.Now().Add(5 * time.Second); b.w.Applied() == 0 || b.w.Applied() < b.w.Generation(); {
		if time.Now().After(end) {
			t.Fatalf("the responder's fake dataplane did not apply generation %d (applied %d)", b.w.Generation(), b.w.Applied())
		}
		time.Sleep(5 * time.Millisecond)
	}
	a := side("i", "r", "127.0.0.1", "127.0.0.2", config.StartupStart)

	wait := func(what string, ok func(ca, cb ChildInfo) bool) ChildInfo {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			ca, oka := active(a)
			cb, okb := active(b)
			if oka && okb && ok(ca, cb) {
				return ca
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: initiator %+v (%v), responder %+v (%v)", what, ca, oka, cb, okb)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ca := wait("tunnel up", func(ca, cb ChildInfo) bool { return ca.InSPI == cb.OutSPI && ca.OutSPI == cb.InSPI })
	for i := 0; i < 2; i++ {
		atomic.StoreUint64(&a.w.Counters(ca.OutIndex).Seq, seqSoftLimit)
		old := ca
		ca = wait("rekeyed", func(n, m ChildInfo) bool { return n.InSPI != old.InSPI && n.InSPI == m.OutSPI && n.OutSPI == m.InSPI })
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	if n := checked.Load(); n < 4 {
		t.Errorf("only %d outbound switches checked, want at least 4", n)
	}
}

// TestSyncDataplaneAfterSwitch: syncDataplane (ikev2's SyncDataplane)
// returns only once the dataplane's workers send on the SA of the
// OutboundSwitch emitted before it: the IKEv2 engine answers the peer's
// Delete of a rekeyed pair then, and the peer may drop the old pair on
// that answer.
func TestSyncDataplaneAfterSwitch(t *testing.T) {
	netnstest.Require(t)
	inst := fmt.Sprintf("sync%d", os.Getpid())
	ns := netnstest.New(t, "cgwds-"+inst)
	t.Cleanup(func() { maps.Remove(inst) })
	maps.Remove(inst)
	c := testConfig()
	c.Connections[0].Tunnels = c.Connections[0].Tunnels[:1]
	c.Connections[0].Tunnels[0].StartupAction = config.StartupAdd
	d := startQuiet(t, ns, inst, Options{Config: c})
	o, err := maps.Load(inst)
	if err != nil {
		t.Fatal(err)
	}
	r, err := maps.NewReader(o)
	if err != nil {
		t.Fatal(err)
	}
	// A slow dataplane: its workers take each snapshot up 30 ms after
	// reading it.
	var mu sync.Mutex
	var workers *maps.Tables
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		r.Poll(stop, 10*time.Millisecond, func(tb *maps.Tables) {
			time.Sleep(30 * time.Millisecond)
			mu.Lock()
			workers = tb
			mu.Unlock()
		}, nil)
	}()
	t.Cleanup(func() { close(stop); <-done; r.Close(); o.Close() })
	for end := time.Now().Add(5 * time.Second); d.w.Applied() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the fake dataplane applied nothing")
		}
	}
	suite, err := transform.ParseSuite("aes128gcm16")
	if err != nil {
		t.Fatal(err)
	}
	name := c.Connections[0].Tunnels[0].Name
	child := func(in, out uint32) *ike.ChildSA {
		return &ike.ChildSA{InSPI: in, OutSPI: out, Suite: suite, InKeymat: make([]byte, suite.KeymatLen()), OutKeymat: make([]byte, suite.KeymatLen()),
			Local: netip.MustParseAddr("127.0.0.1"), Peer: netip.MustParseAddr("203.0.113.1"), ReplayWindow: 64}
	}
	for i, ch := range []*ike.ChildSA{child(0x1001, 0x2001), child(0x1002, 0x2002), child(0x1003, 0x2003)} {
		d.events <- ike.Event{Type: ike.ChildSAInstalled, Tunnel: name, Child: ch}
		d.events <- ike.Event{Type: ike.OutboundSwitch, Tunnel: name, Child: ch}
		if err := d.syncDataplane(name); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		tb := workers
		mu.Unlock()
		var out uint32
		d.mu.Lock()
		tu := d.byName[name]
		d.mu.Unlock()
		if tb != nil && int(tu.id) < len(tb.Outbound) {
			out = tb.SAs[tb.Outbound[tu.id]].Spi
		}
		if out != ch.OutSPI {
			t.Fatalf("switch %d: syncDataplane returned while the dataplane's workers send on SPI %08x, not %08x", i+1, out, ch.OutSPI)
		}
	}
}
