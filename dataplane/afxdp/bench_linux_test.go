package afxdp

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/internal/netnstest"
)

// The benchmarks measure the AF_XDP layer on veth the way DESIGN §4 did: a
// BPF_PROG_RUN live-frames generator (XDP_TX of one frame, repeated) on one
// core pushes b.N frames into the socket's veth; the worker, pinned to the
// other core, receives and drops, or receives and forwards each frame through
// a second socket sharing the UMEM onto a second veth whose far end counts
// and drops them in XDP. Reported: rx-pps (frames the worker got, over the
// time between first and last), rx-per-cpu-s (the same per second of the
// worker thread's CPU time, user and system, which includes the kernel's
// copy-mode transmit: the figure that survives a shared, noisy machine),
// fwd-pps (frames the far end counted), gen-pps and lost-% (generated but
// never seen by the worker). Run with e.g.
//
//	go test -run '^$' -bench . -benchtime 2000000x ./dataplane/afxdp/
//
// ns/op is the generator's time per frame and means little here.

func BenchmarkReceiveDrop(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) { benchWorker(b, size, false) })
	}
}

func BenchmarkForward(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) { benchWorker(b, size, true) })
	}
	// The same with one sendto() allowed to send more than 32.
	for _, budget := range []int{64, 256} {
		for _, size := range []int{64, 1400} {
			b.Run(fmt.Sprintf("%dB-budget%d", size, budget), func(b *testing.B) { benchWorkerCfg(b, size, true, budget) })
		}
	}
}

// xdpMd is struct xdp_md as BPF_PROG_RUN takes it.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// countDropProg counts frames in counter[0] and drops them.
func countDropProg(tb testing.TB, counter *ebpf.Map) *ebpf.Program {
	return loadProg(tb, "afxdp_count", asm.Instructions{
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, counter.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("out"),
		asm.Return(),
	})
}

// threadCPU returns the calling thread's CPU time, user and system.
func threadCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func pinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu % runtime.NumCPU())
	return unix.SchedSetaffinity(0, &set)
}

func benchWorker(b *testing.B, size int, forward bool) { benchWorkerCfg(b, size, forward, 0) }

func benchWorkerCfg(b *testing.B, size int, forward bool, txBudget int) {
	netnstest.Require(b)
	l := newLab(b, 2)
	xsks := newXSKMap(b)
	v0, v1 := l.pairs[0], l.pairs[1]
	attach(b, l.g, v0.gIndex, redirectProg(b, xsks, rxPort, false))
	counter, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		b.Fatalf("creating a counter map: %v", err)
	}
	b.Cleanup(func() { counter.Close() })
	attach(b, l.p, v1.pIndex, countDropProg(b, counter))
	u, socks := l.newUMEMSocketsCfg(b, UMEMConfig{Frames: 16384, FrameSize: 2048, FillSize: 8192}, SocketConfig{TxBudget: txBudget, RxSize: 4096, TxSize: 4096, FillSize: 8192, CompletionSize: 4096}, 0, 1)
	a, fwd := socks[0], socks[1]
	if err := a.Register(xsks); err != nil {
		b.Fatal(err)
	}
	a.Refill()

	pkt := make([]byte, size-4) // the size on the wire includes the FCS
	putUDP(pkt, v0.pMAC, v0.gMAC, netip.AddrPortFrom(v0.pIP, 9), netip.AddrPortFrom(v0.gIP, rxPort), make([]byte, size-4-42))
	gen := constProg(b, xdpTX)

	var (
		genDone  atomic.Bool
		received uint64
		first    time.Time
		last     time.Time
		cpu0     time.Duration // worker thread CPU time at the first frame
		cpuN     time.Duration // and at the last sample
		cntN     uint64        // frames received at the last sample
		werr     error
		wg       sync.WaitGroup
		ready    = make(chan struct{})
	)
	wg.Add(1)
	go func() { // the worker
		defer wg.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if werr = pinThread(1); werr != nil {
			close(ready)
			return
		}
		close(ready)
		descs := make([]Desc, 64)
		idleSince := time.Now()
		var sampled uint64
		for {
			if forward {
				fwd.Complete()
			}
			a.Refill()
			n := a.Receive(descs)
			if n == 0 {
				if genDone.Load() && time.Since(idleSince) > 100*time.Millisecond {
					return
				}
				continue
			}
			now := time.Now()
			if received == 0 {
				first = now
				cpu0 = threadCPU()
			}
			if received-sampled >= 32768 {
				cpuN, cntN, sampled = threadCPU(), received, received
			}
			last, idleSince = now, now
			received += uint64(n)
			if !forward {
				for _, d := range descs[:n] {
					u.Free(d.Addr)
				}
				continue
			}
			for _, d := range descs[:n] {
				f := u.Data(d)
				copy(f[0:6], v1.pMAC)
				copy(f[6:12], v1.gMAC)
			}
			sent := fwd.Transmit(descs[:n])
			for _, d := range descs[sent:n] { // TX ring full: drop
				u.Free(d.Addr)
			}
		}
	}()
	<-ready
	if werr != nil {
		b.Fatalf("pinning the worker: %v", werr)
	}

	var genTime time.Duration
	b.ResetTimer()
	err = l.p.Do(func() error {
		if err := pinThread(0); err != nil {
			return err
		}
		start := time.Now()
		_, err := gen.Run(&ebpf.RunOptions{
			Data:    pkt,
			Context: &xdpMd{DataEnd: uint32(len(pkt)), IngressIfindex: uint32(v0.pIndex)},
			Repeat:  uint32(b.N),
			Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		})
		genTime = time.Since(start)
		return err
	})
	b.StopTimer()
	genDone.Store(true)
	wg.Wait()
	if err != nil {
		b.Fatalf("live-frames generator (BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES): %v", err)
	}
	if received == 0 {
		b.Fatalf("the worker received nothing of %d generated frames", b.N)
	}
	span := last.Sub(first).Seconds()
	if span <= 0 {
		span = genTime.Seconds()
	}
	b.ReportMetric(float64(received)/span, "rx-pps")
	if cpuN > cpu0 {
		// Frames per second of the worker's own CPU time: what one core
		// would do, even when other processes share it (noisy machines).
		b.ReportMetric(float64(cntN)/(cpuN-cpu0).Seconds(), "rx-per-cpu-s")
	}
	b.ReportMetric(float64(b.N)/genTime.Seconds(), "gen-pps")
	b.ReportMetric(100*(1-float64(received)/float64(b.N)), "lost-%")
	if forward {
		// Let the last transmissions land, then read the far end's count.
		for deadline := time.Now().Add(time.Second); fwd.TxPending() > 0 && time.Now().Before(deadline); {
			fwd.Kick()
			fwd.Complete()
		}
		var delivered uint64
		if err := counter.Lookup(uint32(0), &delivered); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(delivered)/span, "fwd-pps")
		st, _ := fwd.Stats()
		b.Logf("forwarded %d of %d received; tx stats %+v", delivered, received, st)
	}
	st, _ := a.Stats()
	b.Logf("b.N=%d received %d; rx stats %+v", b.N, received, st)
}
