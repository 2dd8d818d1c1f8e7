package ike

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
)

// fakeTunnel is the least an engine's tunnel is: state on a Loop.
type fakeTunnel struct {
	name    string
	loop    *Loop[int]
	handled []int
	resets  int
	stopped bool
}

func newFakes(t *testing.T, panics *atomic.Uint64) (*Tunnels[*fakeTunnel, int], func(string) *fakeTunnel) {
	var r *Tunnels[*fakeTunnel, int]
	r = NewTunnels(Hooks[*fakeTunnel, int]{Engine: "fake",
		Loop: func(f *fakeTunnel) *Loop[int] { return f.loop },
		Run: func(f *fakeTunnel) {
			f.loop.Run(Steps[int]{Handle: func(d int) { f.handled = append(f.handled, d) }, Tick: func() {}, Every: time.Hour})
		},
		Stop: func(f *fakeTunnel, _ context.Context) {
			f.loop.Call(f.name, func() error { f.stopped = true; return nil })
			f.loop.Stop()
		},
		BySPI: func(spi uint32) (*fakeTunnel, bool) {
			f, ok := r.Tunnel(map[uint32]string{1000: "a", 2000: "b"}[spi])
			return f, ok
		}})
	mk := func(name string) *fakeTunnel {
		f := &fakeTunnel{name: name}
		f.loop = NewLoop[int](Supervisor{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Count: panics,
			Cleanup: func(error) { panic("cleanup panics too") }, Reset: func() { f.resets++ }})
		return f
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r, mk
}

// TestTunnels: the registry both engines' Managers stand on.
func TestTunnels(t *testing.T) {
	var panics atomic.Uint64
	r, mk := newFakes(t, &panics)
	a, b := mk("a"), mk("b")
	pa, pb := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if err := r.Add("a", pa, a); err != nil {
		t.Fatal(err)
	}
	if err := r.Add("b", pb, b); err != nil {
		t.Fatal(err)
	}
	if err := r.Add("a", pb, mk("a")); err == nil || !strings.Contains(err.Error(), "already added") {
		t.Fatalf("a second tunnel a: %v", err)
	}
	if got, _ := r.ByPeer(pb); got != b {
		t.Fatal("a refused duplicate took over b's peer address")
	}
	if !r.OnSPI(1000, func(f *fakeTunnel) { f.handled = append(f.handled, 7) }) || r.OnSPI(3000, func(*fakeTunnel) {}) {
		t.Fatal("OnSPI: wrong tunnel found")
	}
	a.loop.Post(8)
	// Commands and datagrams have a queue each: no order between them.
	for both := false; !both; {
		r.Command("a", func(f *fakeTunnel) error { both = len(f.handled) == 2; return nil })
	}
	if err := r.Command("a", func(*fakeTunnel) error { return errors.New("busy") }); err == nil || err.Error() != "busy" {
		t.Fatalf("Command answered %v, want busy", err)
	}
	// A command that panics answers, the tunnel is reset (even though
	// its cleanup panics too) and counted, and goes on.
	if err := r.Command("a", func(*fakeTunnel) error { panic("injected") }); err == nil {
		t.Fatal("a panicking command answered no error")
	}
	if st := r.h.Loop(a).Status("a", func() TunnelStatus { return TunnelStatus{Name: "a", State: "up"} }); st.State != "up" || a.resets != 1 || panics.Load() != 1 {
		t.Fatalf("after a panic: %+v, %d resets, %d panics", st, a.resets, panics.Load())
	}
	if st := a.loop.Status("a", func() TunnelStatus { panic("in status") }); st.State != "restarting" {
		t.Fatalf("a status that panics: %+v", st)
	}
	var nf *NotFoundError
	if err := r.Command("c", func(*fakeTunnel) error { return nil }); !errors.As(err, &nf) {
		t.Fatalf("a command for no tunnel: %v", err)
	}
	if err := r.Remove(t.Context(), "a"); err != nil || !a.stopped {
		t.Fatalf("Remove: %v, stopped %v", err, a.stopped)
	}
	if _, ok := r.ByPeer(pa); ok {
		t.Fatal("a removed tunnel still gets its peer's new exchanges")
	}
	if err := r.Remove(t.Context(), "a"); !errors.As(err, &nf) {
		t.Fatalf("removing it again: %v", err)
	}
	if st := a.loop.Status("a", func() TunnelStatus { return TunnelStatus{} }); st.State != "stopped" {
		t.Fatalf("a stopped tunnel's status: %+v", st)
	}
	if err := a.loop.Call("a", func() error { return nil }); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("a command for a stopped tunnel: %v", err)
	}
	if n := len(r.Status(func(f *fakeTunnel) TunnelStatus { return TunnelStatus{Name: f.name} })); n != 1 {
		t.Fatalf("%d statuses for 1 tunnel", n)
	}
	r.Close(t.Context())
	if !b.stopped {
		t.Fatal("Close did not stop b")
	}
	if err := r.Add("d", pa, mk("d")); err == nil || !strings.Contains(err.Error(), "fake: manager is closed") {
		t.Fatalf("Add after Close: %v", err)
	}
}

// TestLoopTicks: with Next, Tick runs at the deadline on the clock and
// after every datagram; with Every, only on the period.
func TestLoopTicks(t *testing.T) {
	clock := NewFakeClock(time.Unix(1_800_000_000, 0))
	l := NewLoop[int](Supervisor{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ticks := make(chan time.Time, 10)
	dl := clock.Now().Add(time.Minute)
	deadline := dl // the loop's: once passed, no more
	tick := func() {
		if !clock.Now().Before(deadline) {
			deadline = time.Time{}
		}
		ticks <- clock.Now()
	}
	go l.Run(Steps[int]{Handle: func(int) {}, Tick: tick, Next: func() time.Time { return deadline }, Clock: clock})
	defer l.Stop()
	l.Post(1)
	if at := <-ticks; !at.Equal(clock.Now()) {
		t.Fatalf("tick after a datagram at %v", at)
	}
	for !l.Do(func() {}) {
	}
	<-ticks // after the command
	clock.Advance(time.Minute)
	if at := <-ticks; at.Before(dl) {
		t.Fatalf("tick at %v, before the deadline %v", at, dl)
	}

	p := NewLoop[int](Supervisor{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	n := 0
	go p.Run(Steps[int]{Handle: func(int) {}, Tick: func() { n++ }, Every: time.Hour})
	p.Post(1)
	p.Call("p", func() error { return nil })
	p.Stop()
	if n != 0 {
		t.Fatalf("a polling loop ticked %d times within its period", n)
	}
}

// TestCheckTunnel: each engine refuses a tunnel of the other's version
// and one it cannot run, saying why.
func TestCheckTunnel(t *testing.T) {
	ok := config.Tunnel{Name: "t", AWSOutside: netip.MustParseAddr("192.0.2.1"), LocalOutside: netip.MustParseAddr("198.51.100.1"), PreSharedKey: "k"}
	v6 := ok
	v6.AWSOutside, v6.LocalOutside = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	for _, c := range []struct {
		c        config.Tunnel
		version  int
		ipv4Only bool
		want     string
	}{
		{ok, 2, false, ""},
		{v6, 2, false, ""},
		{with(ok, func(c *config.Tunnel) { c.IKEVersion = 1 }), 1, true, ""},
		{ok, 1, true, "ike_version 0 is not handled by the IKEv1 engine"},
		{with(ok, func(c *config.Tunnel) { c.IKEVersion = 1 }), 2, false, "ike_version 1 is not handled by the IKEv2 engine"},
		{with(v6, func(c *config.Tunnel) { c.IKEVersion = 1 }), 1, true, "must both be IPv4 addresses"},
		{with(ok, func(c *config.Tunnel) { c.LocalOutside = netip.Addr{} }), 2, false, "must both be set"},
		{with(ok, func(c *config.Tunnel) { c.PreSharedKey = "" }), 2, false, "pre_shared_key is empty"},
	} {
		err := CheckTunnel(c.c, c.version, c.ipv4Only)
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v as IKEv%d: %v, want %q", c.c, c.version, err, c.want)
		}
	}
}

func with(c config.Tunnel, f func(*config.Tunnel)) config.Tunnel {
	f(&c)
	return c
}
