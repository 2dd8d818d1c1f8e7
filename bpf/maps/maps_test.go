package maps

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/cgw-project/cgw/crypto/transform"
)

var instanceSeq atomic.Int32

func instanceName() string {
	return fmt.Sprintf("test-maps-%d-%d", os.Getpid(), instanceSeq.Add(1))
}

// open loads a fresh instance with a Writer and a Reader on it.
func open(t testing.TB) (*Objects, *Writer, *Reader) {
	t.Helper()
	if testing.Short() {
		t.Skip("loads BPF maps: needs root; run without -short")
	}
	if os.Geteuid() != 0 {
		t.Fatalf("the map tests load BPF maps: run them as root")
	}
	name := instanceName()
	o, err := Load(name)
	if err != nil {
		t.Fatalf("LoadPinned: %v", err)
	}
	w, err := NewWriter(o)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	r, err := NewReader(o)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	t.Cleanup(func() {
		r.Close()
		w.Close()
		o.Close()
		Remove(name)
	})
	return o, w, r
}

func gcmSA(spi, tunnel uint32, dir SADir) SA {
	sa := SA{
		Spi:          spi,
		TunnelId:     tunnel,
		EncrId:       uint16(transform.ENCR_AES_GCM_16),
		EncrKeyBits:  128,
		EncKeyLen:    16,
		SaltLen:      4,
		Direction:    uint8(dir),
		ReplayWindow: 1024,
		LocalAddr:    Addr16(netip.MustParseAddr("192.0.2.10")),
		RemoteAddr:   Addr16(netip.MustParseAddr("203.0.113.1")),
	}
	for i := range 16 {
		sa.EncKey[i] = byte(spi) + byte(i)
	}
	return sa
}

func snapshot(t *testing.T, r *Reader) *Tables {
	t.Helper()
	tb, err := r.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return tb
}

func TestGenerationMovesAfterEachChange(t *testing.T) {
	_, w, r := open(t)
	steps := []struct {
		name string
		do   func() error
	}{
		{"SetTunnel", func() error { return w.SetTunnel(1, Tunnel{Mtu: 1399, Mss: 1379}) }},
		{"SetTunnelUp", func() error { return w.SetTunnelUp(1, true) }},
		{"InstallSA", func() error { return w.InstallSA(1, gcmSA(0x1001, 1, DirOutbound)) }},
		{"SetOutboundSA", func() error { return w.SetOutboundSA(1, 1) }},
		{"InstallInboundSA", func() error { return w.InstallInboundSA(2, gcmSA(0x2001, 1, DirInbound)) }},
		{"SetSAState", func() error { return w.SetSAState(2, StateActive) }},
		{"AddRoute", func() error { return w.AddRoute(netip.MustParsePrefix("198.19.0.0/16"), Route{TunnelId: 1}) }},
		{"ReplaceRoute", func() error { return w.ReplaceRoute(netip.MustParsePrefix("198.19.0.0/16"), Route{TunnelId: 2}) }},
		{"DeleteRoute", func() error { return w.DeleteRoute(netip.MustParsePrefix("198.19.0.0/16")) }},
		{"AddLocalAddr", func() error { return w.AddLocalAddr(netip.MustParseAddr("192.0.2.10"), LocalOutside) }},
		{"DeleteLocalAddr", func() error { return w.DeleteLocalAddr(netip.MustParseAddr("192.0.2.10")) }},
		{"RetireSA", func() error { return w.RetireSA(2) }},
	}
	for _, s := range steps {
		before := r.ReadGeneration()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		after := r.ReadGeneration()
		if before%2 != 0 || after != before+2 {
			t.Errorf("%s: generation %d -> %d, want even and +2", s.name, before, after)
		}
		if tb := snapshot(t, r); tb.Generation != after {
			t.Errorf("%s: snapshot generation %d, want %d", s.name, tb.Generation, after)
		}
	}
	// A failed change still closes its generation (even).
	if err := w.RetireSA(2); err == nil {
		t.Errorf("retiring a free slot succeeded")
	}
	if g := r.ReadGeneration(); g%2 != 0 {
		t.Errorf("generation %d odd after a failed change", g)
	}
}

func TestBatchIsOneChange(t *testing.T) {
	_, w, r := open(t)
	before := r.ReadGeneration()
	err := w.Batch(func() error {
		for i := range 10 {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24)
			if err := w.AddRoute(p, Route{TunnelId: 1}); err != nil {
				return err
			}
			if g := r.ReadGeneration(); g%2 != 1 {
				return fmt.Errorf("generation %d even inside a batch", g)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if after := r.ReadGeneration(); after != before+2 {
		t.Errorf("batch moved the generation %d -> %d, want +2", before, after)
	}
	if n := len(snapshot(t, r).Routes); n != 10 {
		t.Errorf("%d routes, want 10", n)
	}
}

// Make-before-break rekey (DESIGN §2): new SAs in, one update switches the
// outbound SA, old SAs retire.
func TestRekeySwitchIsOneUpdate(t *testing.T) {
	_, w, r := open(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.SetTunnel(1, Tunnel{Flags: uint32(TunnelUp), Mtu: 1399}))
	must(w.InstallSA(1, gcmSA(0x1001, 1, DirOutbound)))
	must(w.InstallInboundSA(2, gcmSA(0x2001, 1, DirInbound)))
	must(w.SetOutboundSA(1, 1))

	// Rekey.
	must(w.InstallInboundSA(4, gcmSA(0x2002, 1, DirInbound)))
	must(w.InstallSA(3, gcmSA(0x1002, 1, DirOutbound)))
	n := w.updates
	must(w.SetOutboundSA(1, 3))
	if d := w.updates - n; d != 1 {
		t.Errorf("outbound switch made %d map writes, want 1", d)
	}
	tb := snapshot(t, r)
	if tb.Outbound[1] != 3 {
		t.Errorf("tunnel 1 outbound SA %d, want 3", tb.Outbound[1])
	}
	if len(tb.Inbound) != 2 || tb.Inbound[0x2001].SaIndex != 2 || tb.Inbound[0x2002].SaIndex != 4 {
		t.Errorf("during grace both inbound SAs must be steered: %+v", tb.Inbound)
	}
	must(w.SetSAState(2, StateRetiring))

	if err := w.RetireSA(3); err == nil || !strings.Contains(err.Error(), "outbound SA") {
		t.Errorf("retiring the current outbound SA: %v, want refusal", err)
	}
	must(w.RetireSA(1))
	must(w.RetireSA(2))
	tb = snapshot(t, r)
	if _, ok := tb.Inbound[0x2001]; ok {
		t.Errorf("retired inbound SPI still steered")
	}
	if len(tb.SAs) != 2 || tb.SAs[3].Spi != 0x1002 || tb.SAs[4].Spi != 0x2002 {
		t.Errorf("installed SAs after rekey: %v, want 3 and 4", tb.SAs)
	}
	if tb.SAs[4].State != uint8(StateInstalling) || tb.SAs[4].EncKey != gcmSA(0x2002, 1, DirInbound).EncKey {
		t.Errorf("SA 4 read back wrong: %+v", tb.SAs[4])
	}
	// The freed slot can be reused, with zeroed counters.
	atomic.AddUint64(&r.Counters(1).Seq, 99)
	must(w.InstallSA(1, gcmSA(0x1003, 1, DirOutbound)))
	if c, _ := w.ReadSACounters(1); c.Seq != 0 {
		t.Errorf("counters of a reinstalled slot not zeroed: seq %d", c.Seq)
	}
}

func TestRejectsBadChanges(t *testing.T) {
	_, w, _ := open(t)
	cbc := gcmSA(0x3001, 1, DirOutbound)
	cbc.EncrId, cbc.SaltLen, cbc.IntegId, cbc.IntegKeyLen = uint16(transform.ENCR_AES_CBC), 0, uint16(transform.AUTH_HMAC_SHA2_256_128), 32
	if err := w.InstallSA(5, cbc); err != nil {
		t.Errorf("valid AES-CBC/HMAC-SHA2-256 SA refused: %v", err)
	}
	bad := map[string]func() error{
		"slot in use":         func() error { return w.InstallSA(5, gcmSA(0x3002, 1, DirOutbound)) },
		"index 0":             func() error { return w.InstallSA(0, gcmSA(0x3003, 1, DirOutbound)) },
		"index too big":       func() error { return w.InstallSA(MaxSAs, gcmSA(0x3003, 1, DirOutbound)) },
		"reserved spi":        func() error { return w.InstallSA(6, gcmSA(7, 1, DirOutbound)) },
		"no direction":        func() error { return w.InstallSA(6, gcmSA(0x3004, 1, 0)) },
		"tunnel 0":            func() error { return w.InstallSA(6, gcmSA(0x3004, 0, DirOutbound)) },
		"key length":          func() error { s := gcmSA(0x3004, 1, DirOutbound); s.EncKeyLen = 32; return w.InstallSA(6, s) },
		"gcm without salt":    func() error { s := gcmSA(0x3004, 1, DirOutbound); s.SaltLen = 0; return w.InstallSA(6, s) },
		"unknown cipher":      func() error { s := gcmSA(0x3004, 1, DirOutbound); s.EncrId = 3; return w.InstallSA(6, s) },
		"switch to inbound":   func() error { return w.SetOutboundSA(1, 7) },
		"switch wrong tunnel": func() error { return w.SetOutboundSA(2, 5) },
		"mapped v4 route":     func() error { return w.AddRoute(netip.MustParsePrefix("::ffff:198.19.0.0/112"), Route{TunnelId: 1}) },
		"route tunnel 0":      func() error { return w.AddRoute(netip.MustParsePrefix("198.19.0.0/16"), Route{}) },
	}
	if err := w.InstallInboundSA(7, gcmSA(0x3005, 1, DirInbound)); err != nil {
		t.Fatal(err)
	}
	bad["duplicate inbound spi"] = func() error { return w.InstallInboundSA(8, gcmSA(0x3005, 1, DirInbound)) }
	for name, f := range bad {
		if err := f(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRoutes(t *testing.T) {
	_, w, r := open(t)
	p4 := netip.MustParsePrefix("198.19.0.0/16")
	p6 := netip.MustParsePrefix("2001:db8:100::/48")
	if err := w.AddRoute(p4, Route{TunnelId: 1, BackupTunnelId: 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.AddRoute(netip.MustParsePrefix("198.19.7.7/16"), Route{TunnelId: 1}); err == nil {
		t.Errorf("adding an existing prefix (unmasked) succeeded")
	}
	if err := w.ReplaceRoute(p6, Route{TunnelId: 1}); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("replacing a missing route: %v, want ErrKeyNotExist", err)
	}
	if err := w.AddRoute(p6, Route{TunnelId: 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.ReplaceRoute(p4, Route{TunnelId: 2}); err != nil {
		t.Fatal(err)
	}
	tb := snapshot(t, r)
	want := []RouteEntry{{p4, Route{TunnelId: 2}}, {p6, Route{TunnelId: 2}}}
	if fmt.Sprint(tb.Routes) != fmt.Sprint(want) {
		t.Errorf("routes %v, want %v", tb.Routes, want)
	}
	if err := w.DeleteRoute(p4); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRoute(p4); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("deleting a missing route: %v, want ErrKeyNotExist", err)
	}
	if tb := snapshot(t, r); len(tb.Routes) != 1 || tb.Routes[0].Prefix != p6 {
		t.Errorf("after delete: %v, want only %v", tb.Routes, p6)
	}
}

// The counters are one memory: a worker's atomic add through one mapping
// is seen through the other mapping and through the map syscall.
func TestCountersAreSharedMemory(t *testing.T) {
	o, w, r := open(t)
	c := r.Counters(9)
	atomic.AddUint64(&c.Packets, 3)
	atomic.AddUint64(&c.Bytes, 4500)
	atomic.StoreUint64(&c.LastNs, 12345)
	atomic.AddUint64(&c.DropReplay, 1)
	got, err := w.ReadSACounters(9)
	if err != nil {
		t.Fatal(err)
	}
	if got.Packets != 3 || got.Bytes != 4500 || got.LastNs != 12345 || got.DropReplay != 1 {
		t.Errorf("writer sees %+v", got)
	}
	var viaMap SACounters
	if err := o.SaStats.Lookup(uint32(9), &viaMap); err != nil || viaMap.Packets != 3 {
		t.Errorf("map lookup sees %+v, %v", viaMap, err)
	}
	if r.Counters(0) != nil || r.Counters(MaxSAs) != nil {
		t.Errorf("Counters accepted an index out of range")
	}
	if _, err := w.ReadSACounters(MaxSAs); err == nil {
		t.Errorf("ReadSACounters accepted an index out of range")
	}
}

// A restarted process reopens the pinned maps and finds everything.
func TestStateSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("loads BPF maps: needs root; run without -short")
	}
	if os.Geteuid() != 0 {
		t.Fatalf("the map tests load BPF maps: run them as root")
	}
	name := instanceName()
	t.Cleanup(func() { Remove(name) })
	o, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(o)
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("198.19.0.0/16")
	for _, err := range []error{
		w.SetTunnel(3, Tunnel{Flags: uint32(TunnelUp), Mtu: 1399}),
		w.InstallInboundSA(10, gcmSA(0x4001, 3, DirInbound)),
		w.AddRoute(p, Route{TunnelId: 3}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	atomic.StoreUint64(&w.Counters(10).Seq, 777)
	gen := w.Generation()
	w.Close()
	o.Close()

	o, err = Load(name)
	if err != nil {
		t.Fatalf("reloading from pins: %v", err)
	}
	defer o.Close()
	r, err := NewReader(o)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tb := snapshot(t, r)
	if tb.Generation != gen {
		t.Errorf("generation %d after restart, want %d", tb.Generation, gen)
	}
	if tb.Tunnels[3].Mtu != 1399 || tb.Inbound[0x4001].SaIndex != 10 || tb.SAs[10].Spi != 0x4001 ||
		len(tb.Routes) != 1 || tb.Routes[0].Prefix != p {
		t.Errorf("state lost across restart: tunnel %+v inbound %v routes %v", tb.Tunnels[3], tb.Inbound, tb.Routes)
	}
	if c, _ := r.ReadSACounters(10); c.Seq != 777 {
		t.Errorf("outbound sequence lost across restart: %d, want 777", c.Seq)
	}
}

// A writer that died mid-change leaves the generation odd; the next
// writer closes it so readers are not stuck.
func TestNewWriterRepairsOddGeneration(t *testing.T) {
	o, w, r := open(t)
	atomic.AddUint64(w.gen, 1)
	w2, err := NewWriter(o)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if g := r.ReadGeneration(); g%2 != 0 {
		t.Errorf("generation %d still odd", g)
	}
}

// The programs read what the Writer writes: same layout on both sides.
func TestWriterDrivesXDP(t *testing.T) {
	o, w, _ := open(t)
	frame := make([]byte, 14+20+16)
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	ip := frame[14:]
	ip[0], ip[9] = 0x45, 50
	binary.BigEndian.PutUint16(ip[2:], 36)
	copy(ip[12:], []byte{203, 0, 113, 1})
	copy(ip[16:], []byte{192, 0, 2, 10})
	binary.BigEndian.PutUint32(ip[20:], 0x5001)

	count := func(s Stat) uint64 {
		var per []uint64
		if err := o.XdpStats.Lookup(uint32(s), &per); err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		return n
	}
	step := func(want Stat) {
		t.Helper()
		before := count(want)
		if _, err := o.XdpOutside.Run(&ebpf.RunOptions{Data: frame}); err != nil {
			t.Fatal(err)
		}
		if count(want)-before != 1 {
			t.Errorf("decision counter %d did not move", want)
		}
	}
	step(StatOutNotLocal)
	if err := w.AddLocalAddr(netip.MustParseAddr("192.0.2.10"), LocalOutside); err != nil {
		t.Fatal(err)
	}
	step(StatOutUnknownSPI)
	if err := w.InstallInboundSA(1, gcmSA(0x5001, 1, DirInbound)); err != nil {
		t.Fatal(err)
	}
	step(StatOutDropNoSocket) // ours, but no socket bound in this test: dropped
	if err := w.RetireSA(1); err != nil {
		t.Fatal(err)
	}
	step(StatOutUnknownSPI)
}

// BenchmarkAddRoutes10k: cost of a full BGP table load, route by route.
func BenchmarkAddRoutes10k(b *testing.B) {
	_, w, _ := open(b)
	const n = 10000
	prefixes := make([]netip.Prefix, n)
	base := netip.MustParseAddr("198.18.0.0").As4()
	for i := range prefixes {
		a := base
		a[1] += byte(i >> 16)
		a[2] = byte(i >> 8)
		a[3] = byte(i)
		prefixes[i] = netip.PrefixFrom(netip.AddrFrom4(a), 32)
	}
	b.ResetTimer()
	for b.Loop() {
		for _, p := range prefixes {
			if err := w.AddRoute(p, Route{TunnelId: 1}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		for _, p := range prefixes {
			w.DeleteRoute(p)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/route")
}

// BenchmarkSnapshot10kRoutes: what a dataplane pays per table change.
func BenchmarkSnapshot10kRoutes(b *testing.B) {
	_, w, r := open(b)
	w.Batch(func() error {
		for i := range 10000 {
			a := [4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)}
			if err := w.AddRoute(netip.PrefixFrom(netip.AddrFrom4(a), 32), Route{TunnelId: 1}); err != nil {
				b.Fatal(err)
			}
		}
		return nil
	})
	for b.Loop() {
		if _, err := r.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSnapshotEmpty(b *testing.B) {
	_, _, r := open(b)
	for b.Loop() {
		if _, err := r.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadGeneration(b *testing.B) {
	_, _, r := open(b)
	var s uint64
	for b.Loop() {
		s += r.ReadGeneration()
	}
	_ = s
}

// Snapshots taken while a writer changes the tables contain only whole
// changes: the writer always adds and removes two routes in one batch.
func TestSnapshotsAreConsistent(t *testing.T) {
	_, w, r := open(t)
	a, b := netip.MustParsePrefix("198.19.1.0/24"), netip.MustParsePrefix("198.19.2.0/24")
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		var err error
		for i := 0; err == nil; i++ {
			select {
			case <-stop:
				done <- nil
				return
			case <-time.After(100 * time.Microsecond): // a busy, not a spinning, writer
			}
			err = w.Batch(func() error {
				if i%2 == 0 {
					if err := w.AddRoute(a, Route{TunnelId: 1}); err != nil {
						return err
					}
					return w.AddRoute(b, Route{TunnelId: 1})
				}
				if err := w.DeleteRoute(a); err != nil {
					return err
				}
				return w.DeleteRoute(b)
			})
		}
		done <- err
	}()
	seen := map[int]int{}
	var snapErr error
	for range 100 {
		tb, err := r.Snapshot()
		if err != nil {
			snapErr = err
			break
		}
		seen[len(tb.Routes)]++
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if snapErr != nil {
		t.Fatal(snapErr)
	}
	if seen[1] > 0 {
		t.Errorf("%d of 100 snapshots held half a batch (route counts seen: %v)", seen[1], seen)
	}
	t.Logf("route counts seen: %v", seen)
}

func TestPollPublishesOnChange(t *testing.T) {
	_, w, r := open(t)
	var cur atomic.Pointer[Tables]
	published := make(chan uint64, 100)
	stop, exited := make(chan struct{}), make(chan struct{})
	go func() {
		r.Poll(stop, time.Millisecond, func(tb *Tables) { cur.Store(tb); published <- tb.Generation }, func(err error) { t.Error(err) })
		close(exited)
	}()
	defer func() { close(stop); <-exited }()
	first := <-published
	if err := w.SetTunnel(5, Tunnel{Mtu: 1399}); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-published:
		if g != first+2 || cur.Load().Tunnels[5].Mtu != 1399 {
			t.Errorf("published generation %d (tunnel 5 MTU %d), want %d with MTU 1399", g, cur.Load().Tunnels[5].Mtu, first+2)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot published after a change")
	}
}

// SetKeys and Keys round-trip KEYMAT for every suite, and the result
// builds a working Cipher.
func TestKeysRoundTrip(t *testing.T) {
	for _, s := range transform.Suites() {
		keymat := make([]byte, s.KeymatLen())
		for i := range keymat {
			keymat[i] = byte(i + 1)
		}
		sa := SA{Spi: 0x1000, TunnelId: 1, Direction: uint8(DirOutbound)}
		if err := SetKeys(&sa, s, keymat); err != nil {
			t.Fatalf("%v: SetKeys: %v", s, err)
		}
		if err := checkSA(&sa); err != nil {
			t.Errorf("%v: checkSA refused SetKeys' output: %v", s, err)
		}
		s2, km2, err := Keys(&sa)
		if err != nil || s2 != s || !bytes.Equal(km2, keymat) {
			t.Errorf("%v: Keys = %v %x %v, want the suite and KEYMAT back", s, s2, km2, err)
		}
		if _, err := transform.New(s2, km2); err != nil {
			t.Errorf("%v: transform.New: %v", s, err)
		}
		if err := SetKeys(&sa, s, keymat[1:]); err == nil {
			t.Errorf("%v: short KEYMAT accepted", s)
		}
	}
}

func TestCounterHelpers(t *testing.T) {
	_, w, r := open(t)
	c := r.Counters(3)
	// Two workers reserving batches never get overlapping numbers.
	const workers, batches, size = 2, 1000, 32
	firsts := make(chan uint64, workers*batches)
	done := make(chan struct{})
	for range workers {
		go func() {
			for range batches {
				firsts <- ReserveSeq(c, size)
			}
			done <- struct{}{}
		}()
	}
	for range workers {
		<-done
	}
	close(firsts)
	seen := map[uint64]bool{}
	for f := range firsts {
		if (f-1)%size != 0 || seen[f] {
			t.Fatalf("batch starting at %d overlaps another", f)
		}
		seen[f] = true
	}
	if !seen[1] {
		t.Errorf("no batch started at sequence 1")
	}
	in := r.Counters(4)
	RaiseSeq(in, 10)
	RaiseSeq(in, 7)
	Account(in, 2, 3000, 42)
	got, _ := w.ReadSACounters(4)
	if got.Seq != 10 || got.Packets != 2 || got.Bytes != 3000 || got.LastNs != 42 {
		t.Errorf("counters %+v, want seq 10, 2 packets, 3000 bytes, last 42", got)
	}
	if n := testing.AllocsPerRun(100, func() {
		cc := r.Counters(4)
		ReserveSeq(cc, 1)
		RaiseSeq(cc, 11)
		Account(cc, 1, 100, 43)
		_ = r.ReadGeneration()
	}); n != 0 {
		t.Errorf("per-packet helpers allocate %.0f times per call", n)
	}
}

// TestWaitAppliedFollowsPublish: WaitApplied returns only once the
// dataplane's Poll has handed a snapshot holding the new inbound SA to
// its workers (publish returned), and times out with a clear error when
// no dataplane is polling.
func TestWaitAppliedFollowsPublish(t *testing.T) {
	_, w, r := open(t)
	var published atomic.Pointer[Tables]
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		r.Poll(stop, 10*time.Millisecond, func(tb *Tables) {
			time.Sleep(30 * time.Millisecond) // building the workers' view takes time
			published.Store(tb)
		}, nil)
	}()
	defer func() { close(stop); <-done }()

	for i := uint32(1); i <= 5; i++ {
		spi := 0x1000 + i
		if err := w.InstallInboundSA(i, gcmSA(spi, 1, DirInbound)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := w.WaitApplied(ctx, w.Generation())
		cancel()
		if err != nil {
			t.Fatalf("SA %d: %v", i, err)
		}
		tb := published.Load()
		if tb == nil {
			t.Fatalf("SA %d: WaitApplied returned before any snapshot was published", i)
		}
		if _, ok := tb.Inbound[spi]; !ok {
			t.Fatalf("SA %d: WaitApplied returned while the workers' tables (generation %d) lack SPI %#x", i, tb.Generation, spi)
		}
	}

	close(stop)
	<-done
	stop, done = make(chan struct{}), make(chan struct{})
	close(done)
	if err := w.InstallInboundSA(9, gcmSA(0x2000, 1, DirInbound)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := w.WaitApplied(ctx, w.Generation())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "cgw-dataplane") {
		t.Fatalf("no dataplane polling: WaitApplied = %v, want a deadline error naming cgw-dataplane", err)
	}
}
