package rib

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
)

var instanceSeq atomic.Int32

// openMaps loads a fresh pinned instance and returns its Writer and Reader.
func openMaps(tb testing.TB) (*maps.Writer, *maps.Reader) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("loads BPF maps: needs root; run without -short")
	}
	if os.Geteuid() != 0 {
		tb.Fatalf("this test loads pinned BPF maps: run it as root")
	}
	name := fmt.Sprintf("test-rib-%d-%d", os.Getpid(), instanceSeq.Add(1))
	o, err := maps.Load(name)
	if err != nil {
		tb.Fatalf("LoadPinned: %v", err)
	}
	w, err := maps.NewWriter(o)
	if err != nil {
		tb.Fatalf("NewWriter: %v", err)
	}
	r, err := maps.NewReader(o)
	if err != nil {
		tb.Fatalf("NewReader: %v", err)
	}
	tb.Cleanup(func() {
		r.Close()
		w.Close()
		o.Close()
		maps.Remove(name)
	})
	return w, r
}

// prefixes returns n distinct prefixes: the /28s of 198.18.0.0/15 (8192 of
// them), then /64s of 2001:db8::/32.
func prefixes(n int) []netip.Prefix {
	out := make([]netip.Prefix, 0, n)
	for i := 0; i < n && i < 8192; i++ {
		a := netip.AddrFrom4([4]byte{198, 18 + byte(i>>12), byte(i >> 4), byte(i << 4)})
		out = append(out, netip.PrefixFrom(a, 28))
	}
	for i := 0; len(out) < n; i++ {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, byte(i >> 8), byte(i)})
		out = append(out, netip.PrefixFrom(a, 64))
	}
	return out
}

func announcements(ps []netip.Prefix, asLen int) []BGPRoute {
	out := make([]BGPRoute, len(ps))
	for i, p := range ps {
		out[i] = BGPRoute{Prefix: p, ASPath: []uint32{64512}, ASPathLen: asLen}
	}
	return out
}

// TestTenThousandIntoMaps runs 10 000 prefixes from two tunnels through the
// RIB into real pinned maps and checks what the dataplane would read.
func TestTenThousandIntoMaps(t *testing.T) {
	w, rd := openMaps(t)
	r, err := New(w, twoConns[:2], Options{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, r.SetTunnelUp(1, true))
	must(t, r.SetTunnelUp(2, true))
	ps := prefixes(10000)
	must(t, r.UpdateBGP(1, announcements(ps, 1), nil))
	must(t, r.UpdateBGP(2, announcements(ps, 2), nil))

	check := func(primary, backup uint32, n int) {
		t.Helper()
		tb, err := rd.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if len(tb.Routes) != n {
			t.Fatalf("maps hold %d routes, want %d", len(tb.Routes), n)
		}
		seen := map[netip.Prefix]bool{}
		for _, e := range tb.Routes {
			if e.TunnelId != primary || e.BackupTunnelId != backup {
				t.Fatalf("%v: %d/%d, want %d/%d", e.Prefix, e.TunnelId, e.BackupTunnelId, primary, backup)
			}
			seen[e.Prefix] = true
		}
		for _, p := range ps[:n] {
			if !seen[p] {
				t.Fatalf("%v missing from the maps", p)
			}
		}
	}
	check(1, 2, 10000)
	gen := rd.Generation()
	must(t, r.SetTunnelUp(1, false))
	check(2, 0, 10000)
	// One Batch: the generation moved by exactly one change.
	if g := rd.Generation(); g != gen+2 {
		t.Fatalf("tunnel down moved the generation %d -> %d, want one batch (+2)", gen, g)
	}
	must(t, r.WithdrawBGP(2))
	tb, err := rd.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Routes) != 0 {
		t.Fatalf("%d routes left after every path went", len(tb.Routes))
	}
	if st := r.Stats(); st.Installed != 0 || st.Adds != 10000 || st.Replaces != 20000 || st.Deletes != 10000 {
		t.Fatalf("stats %+v", st)
	}
}

// BenchmarkTenThousandIntoMaps reports the time to install 10 000 prefixes
// announced by two tunnels, to fail them over (tunnel down) and the RIB's
// heap per prefix.
func BenchmarkTenThousandIntoMaps(b *testing.B) {
	w, _ := openMaps(b)
	ps := prefixes(10000)
	a1, a2 := announcements(ps, 1), announcements(ps, 2)
	var install, failover time.Duration
	var heap uint64
	for b.Loop() {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		r, err := New(w, twoConns[:2], Options{})
		if err != nil {
			b.Fatal(err)
		}
		r.SetTunnelUp(1, true)
		r.SetTunnelUp(2, true)
		t0 := time.Now()
		if err := r.UpdateBGP(1, a1, nil); err != nil {
			b.Fatal(err)
		}
		if err := r.UpdateBGP(2, a2, nil); err != nil {
			b.Fatal(err)
		}
		install += time.Since(t0)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		heap += m1.HeapAlloc - m0.HeapAlloc
		t0 = time.Now()
		if err := r.SetTunnelUp(1, false); err != nil {
			b.Fatal(err)
		}
		failover += time.Since(t0)
		b.StopTimer()
		if err := r.WithdrawBGP(1); err != nil {
			b.Fatal(err)
		}
		if err := r.WithdrawBGP(2); err != nil {
			b.Fatal(err)
		}
		runtime.KeepAlive(r)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(install.Seconds()*1e3/n, "ms-install-10k")
	b.ReportMetric(failover.Seconds()*1e3/n, "ms-failover-10k")
	b.ReportMetric(float64(heap)/n/10000, "heap-B/prefix")
}

// TestRestartAdopts replays a cgw-control restart on real maps: the new
// RIB adopts the pinned table, re-learns half of it and sweeps the rest.
func TestRestartAdopts(t *testing.T) {
	w, rd := openMaps(t)
	ps := prefixes(2000)
	r1, err := New(w, twoConns[:2], Options{})
	if err != nil {
		t.Fatal(err)
	}
	must(t, r1.SetTunnelUp(1, true))
	must(t, r1.UpdateBGP(1, announcements(ps, 1), nil))

	tb, err := rd.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := New(w, twoConns[:2], Options{})
	if err != nil {
		t.Fatal(err)
	}
	r2.Adopt(tb.Routes)
	must(t, r2.SetTunnelUp(1, true))
	must(t, r2.UpdateBGP(1, announcements(ps[:1000], 1), nil))
	if st := r2.Stats(); st.Adds+st.Replaces+st.Deletes != 0 {
		t.Fatalf("re-learning the same routes wrote %+v", st)
	}
	if n, err := r2.SweepStale(); err != nil || n != 1000 {
		t.Fatalf("SweepStale: %d, %v", n, err)
	}
	tb, err = rd.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Routes) != 1000 {
		t.Fatalf("%d routes after the sweep, want 1000", len(tb.Routes))
	}
}
