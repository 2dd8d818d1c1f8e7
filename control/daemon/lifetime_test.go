package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// TestByteLimits: the soft limit is 10 % below phase2.lifetime_bytes,
// lower by up to rekey_fuzz_percent of that margin, the same for both
// entries of one SA pair; no limit gives no limits.
func TestByteLimits(t *testing.T) {
	c := testConfig()
	tn := &tunnel{cfg: &c.Connections[0].Tunnels[0]}
	if s, h := byteLimits(tn, 0x1234); s != 0 || h != 0 {
		t.Errorf("no lifetime_bytes: limits %d/%d, want 0/0", s, h)
	}
	const hard = 10 << 20
	tn.cfg.Phase2.LifetimeBytes, tn.cfg.RekeyFuzz = hard, 0
	if s, h := byteLimits(tn, 0x1234); s != hard-hard/10 || h != hard {
		t.Errorf("fuzz 0: limits %d/%d, want %d/%d", s, h, hard-hard/10, hard)
	}
	tn.cfg.RekeyFuzz = 100
	seen := map[uint64]bool{}
	for spi := uint32(1); spi <= 64; spi++ {
		s, h := byteLimits(tn, spi)
		if h != hard || s > hard-hard/10 || s < hard-2*(hard/10) {
			t.Fatalf("fuzz 100, SPI %d: limits %d/%d, want soft in [%d, %d]", spi, s, h, hard-2*(hard/10), hard-hard/10)
		}
		if s2, _ := byteLimits(tn, spi); s2 != s {
			t.Fatalf("SPI %d: soft limit %d then %d: the two entries of a pair would disagree", spi, s, s2)
		}
		seen[s] = true
	}
	if len(seen) < 32 {
		t.Errorf("fuzz 100: only %d distinct soft limits over 64 SPIs", len(seen))
	}
}

// TestRekeyWanted: a counter-triggered rekey is asked once, not again
// while it may be in flight, again after RekeyRetry, or RekeyFailRetry
// after an exchange of the tunnel failed, and never once a successor is
// installed.
func TestRekeyWanted(t *testing.T) {
	c := testConfig()
	tn := &tunnel{id: 1, cfg: &c.Connections[0].Tunnels[0], children: map[uint32]*child{}}
	d := &Daemon{opt: Options{RekeyRetry: time.Hour, RekeyFailRetry: time.Minute}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		byName: map[string]*tunnel{tn.cfg.Name: tn}}
	now := time.Now()
	old := &child{sa: ike.ChildSA{InSPI: 1}, installed: now.Add(-time.Minute)}
	tn.children[1] = old
	if !d.rekeyWanted(tn, old, now) {
		t.Fatal("first request refused")
	}
	old.rekeyAgain = now.Add(d.opt.RekeyRetry)
	if d.rekeyWanted(tn, old, now.Add(time.Second)) {
		t.Error("asked again while the first request may be in flight")
	}
	if !d.rekeyWanted(tn, old, now.Add(d.opt.RekeyRetry)) {
		t.Error("not asked again after RekeyRetry")
	}
	d.apply(ike.Event{Type: ike.NegotiationFailed, Tunnel: tn.cfg.Name, Reason: "NO_PROPOSAL_CHOSEN"})
	if d.rekeyWanted(tn, old, now.Add(time.Second)) {
		t.Error("asked again at once after a failed exchange: RekeyFailRetry is the back-off")
	}
	if !d.rekeyWanted(tn, old, now.Add(2*time.Minute)) {
		t.Error("not asked again RekeyFailRetry after a failed exchange")
	}
	fresh := &child{sa: ike.ChildSA{InSPI: 3}, installed: now.Add(-time.Minute)}
	tn.children[3] = fresh
	d.apply(ike.Event{Type: ike.NegotiationFailed, Tunnel: tn.cfg.Name})
	if !fresh.rekeyAgain.IsZero() {
		t.Error("a failure elsewhere scheduled a retry for an SA never asked for")
	}
	delete(tn.children, 3)
	tn.children[2] = &child{sa: ike.ChildSA{InSPI: 2}, installed: now}
	if d.rekeyWanted(tn, old, now.Add(24*time.Hour)) {
		t.Error("asked to rekey an SA that already has a successor")
	}
}

// TestBackToBackBytes mirrors TestBackToBack's sequence-limit rekey for
// phase2.lifetime_bytes: two daemons over loopback, fake counters. The
// byte limits reach both SA entries; inbound bytes at the soft limit
// rekey the Child SA, so do outbound bytes; each SA is asked for once;
// an inbound SA at the hard limit leaves the maps while the Child SA
// (kept by a long grace period) still exists, and is rekeyed.
func TestBackToBackBytes(t *testing.T) {
	netnstest.Require(t)
	base := fmt.Sprintf("bl%d", os.Getpid())
	ns := netnstest.New(t, "cgwdt-"+base)
	const hard = 8 << 20
	var mu sync.Mutex
	requests := map[string]int{}
	side := func(name, local, peer, start string) *Daemon {
		c := testConfig()
		c.Connections[0].Tunnels = c.Connections[0].Tunnels[:1]
		tu := &c.Connections[0].Tunnels[0]
		tu.LocalOutside, tu.AWSOutside, tu.StartupAction = netip.MustParseAddr(local), netip.MustParseAddr(peer), start
		tu.Phase2.LifetimeBytes = hard
		inst := base + name
		t.Cleanup(func() { maps.Remove(inst) })
		maps.Remove(inst)
		d := startQuiet(t, ns, inst, Options{Config: c,
			// The old pair stays installed long after a rekey, so the
			// hard limit's effect on it can be seen.
			Timing: ike.Timing{Grace: time.Minute},
			OnRekeyRequest: func(tunnel, reason string) {
				mu.Lock()
				requests[name+" "+reason]++
				mu.Unlock()
			}})
		return d
	}
	b := side("r", "127.0.0.2", "127.0.0.1", config.StartupAdd)
	a := side("i", "127.0.0.1", "127.0.0.2", config.StartupStart)

	up := func(what string, ok func(ca, cb *ChildInfo) bool) ChildInfo {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			ca, oka := active(a)
			cb, okb := active(b)
			if oka && okb && ok(&ca, &cb) {
				return ca
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: initiator %+v (%v), responder %+v (%v)", what, ca, oka, cb, okb)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	rekeyed := func(what string, old ChildInfo) ChildInfo {
		t.Helper()
		return up(what, func(n, m *ChildInfo) bool { return n.InSPI != old.InSPI && n.InSPI == m.OutSPI && n.OutSPI == m.InSPI })
	}
	count := func(key string) int {
		mu.Lock()
		defer mu.Unlock()
		return requests[key]
	}
	ca := up("tunnel up on both sides", func(ca, cb *ChildInfo) bool { return ca.InSPI == cb.OutSPI && ca.OutSPI == cb.InSPI })

	// Both entries carry the limits; the dataplane enforces the hard one.
	for _, idx := range []uint32{ca.InIndex, ca.OutIndex} {
		var sa maps.SA
		if err := a.objs.SaTable.Lookup(idx, &sa); err != nil {
			t.Fatal(err)
		}
		if sa.LifeHardBytes != hard || sa.LifeSoftBytes < hard-2*(hard/10) || sa.LifeSoftBytes > hard-hard/10 {
			t.Errorf("SA slot %d: life bytes soft %d hard %d, want hard %d and soft 80–90 %% of it", idx, sa.LifeSoftBytes, sa.LifeHardBytes, hard)
		}
	}
	ch, _ := a.children1(ca.InSPI)
	soft := ch.softBytes

	// Inbound bytes at the soft limit.
	atomic.StoreUint64(&a.w.Counters(ca.InIndex).Bytes, soft)
	c2 := rekeyed("child rekeyed after inbound bytes reached the soft limit", ca)
	if n := count("i bytes"); n != 1 {
		t.Errorf("%d byte rekey requests for one SA, want 1", n)
	}
	if c2.OutIndex == ca.OutIndex || c2.InIndex == ca.InIndex {
		t.Errorf("new child reuses slots %d/%d", c2.InIndex, c2.OutIndex)
	}
	// The old pair, still at its soft limit and kept for the grace
	// period, is not asked for again: its successor is installed.
	time.Sleep(300 * time.Millisecond)
	if n := count("i bytes"); n != 1 {
		t.Errorf("the rekeyed SA was asked for again: %d requests", n)
	}

	// Outbound bytes at the soft limit.
	ch2, _ := a.children1(c2.InSPI)
	atomic.StoreUint64(&a.w.Counters(c2.OutIndex).Bytes, ch2.softBytes)
	c3 := rekeyed("child rekeyed after outbound bytes reached the soft limit", c2)
	if n := count("i bytes"); n != 2 {
		t.Errorf("%d byte rekey requests after two SAs, want 2", n)
	}

	// Inbound bytes at the hard limit: the inbound SA leaves the maps at
	// once (the peer's packets on it are dropped) and the pair is rekeyed.
	r, err := maps.NewReader(a.objs)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	atomic.StoreUint64(&a.w.Counters(c3.InIndex).Bytes, hard)
	c4 := rekeyed("child rekeyed after inbound bytes reached the hard limit", c3)
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		tabs, err := r.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		_, still := tabs.Inbound[c3.InSPI]
		old, ok := a.children1(c3.InSPI)
		if !ok {
			t.Fatalf("the old Child SA %08x is gone before its grace period ended", c3.InSPI)
		}
		if !still && old.inExpired {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("inbound SA %08x at its hard byte limit still in the maps (%v) / not marked expired (%v)", c3.InSPI, still, old.inExpired)
		}
	}
	tu, _ := a.Status().Tunnel("vpn-t1")
	for _, c := range tu.Children {
		if c.InSPI == c3.InSPI && c.InIndex != 0 {
			t.Errorf("status shows the removed inbound SA in slot %d", c.InIndex)
		}
	}
	if _, ok := a.children1(c4.InSPI); !ok {
		t.Errorf("successor %08x not installed", c4.InSPI)
	}
	if n := count("i bytes"); n != 3 {
		t.Errorf("%d byte rekey requests after three SAs, want 3", n)
	}
	if n := count("i sequence") + count("r sequence") + count("r bytes"); n != 0 {
		t.Errorf("%d other rekey requests, want none", n)
	}
}

// children1 returns a copy of the child with inbound SPI spi of the
// daemon's only tunnel.
func (d *Daemon) children1(spi uint32) (child, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.tunnels[0].children[spi]
	if !ok {
		return child{}, false
	}
	return *c, true
}
