package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/dataplane/worker"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// lockedBuffer is a log destination the gateway's goroutines write to
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWorkerPanicRestarts (issue #9): a panic injected into one of two
// workers (worker.SetTestHook) is recovered, counted and its stack logged
// once; the other worker keeps forwarding through it, and the panicked
// one resumes on its queue. The gateway runs in-process in a namespace
// (-no-crypto, so it forwards LAN → WAN without SAs) between a LAN and a
// WAN namespace joined by two-queue veths; UDP from 32 sockets (a random
// transmit hash each) spreads over both queues. Without the supervision
// the injected panic ends the test binary.
func TestWorkerPanicRestarts(t *testing.T) {
	netnstest.Require(t, "ethtool")
	gw, lan, wan := netnstest.New(t, "cgwpg"), netnstest.New(t, "cgwpl"), netnstest.New(t, "cgwpw")
	end := func(ns *netnstest.NS, name, addr string) netnstest.End {
		return netnstest.End{NS: ns, Name: name, Addrs: []netip.Prefix{netip.MustParsePrefix(addr)}}
	}
	for _, v := range []netnstest.Veth{
		{A: end(lan, "l0", "198.18.0.2/24"), B: end(gw, "in0", "198.18.0.1/24"), Queues: 2, StaticNeighbours: true},
		{A: end(gw, "out0", "192.0.2.10/24"), B: end(wan, "w0", "192.0.2.11/24"), Queues: 2, StaticNeighbours: true},
	} {
		v.Create(t)
		// Frames from a veth peer's own stack carry partial checksums.
		v.A.NS.Run(t, "ethtool", "-K", v.A.Name, "tx", "off")
		v.B.NS.Run(t, "ethtool", "-K", v.B.Name, "tx", "off")
	}
	lan.Run(t, "ip", "route", "add", "default", "via", "198.18.0.1")
	wan.Run(t, "ip", "addr", "add", "198.19.0.2/32", "dev", "w0")
	wan.Run(t, "ip", "route", "add", "198.18.0.0/24", "via", "192.0.2.10")

	instance := fmt.Sprintf("cgwpanic%d", os.Getpid()%100000)
	objs, err := maps.Load(instance)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { objs.Close(); maps.Remove(instance) })
	w, err := maps.NewWriter(objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		w.SetTunnel(1, maps.Tunnel{Flags: uint32(maps.TunnelUp), Mtu: 1399,
			LocalAddr: maps.Addr16(netip.MustParseAddr("192.0.2.10")), RemoteAddr: maps.Addr16(netip.MustParseAddr("192.0.2.11"))}),
		w.AddRoute(netip.MustParsePrefix("198.19.0.0/24"), maps.Route{TunnelId: 1}),
		w.AddLocalAddr(netip.MustParseAddr("192.0.2.10"), maps.LocalOutside),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}

	// Worker 1 panics on its next batch each time the test arms it.
	var arm atomic.Bool
	worker.SetTestHook(func(id int) {
		if id == 1 && arm.CompareAndSwap(true, false) {
			panic("injected by TestWorkerPanicRestarts")
		}
	})
	t.Cleanup(func() { worker.SetTestHook(nil) })
	logs := new(lockedBuffer)
	log.SetOutput(logs)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })

	// Received at the WAN side.
	var got atomic.Int64
	var rc *net.UDPConn
	if err := wan.Do(func() (err error) {
		rc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(198, 19, 0, 2), Port: 9000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := rc.ReadFromUDP(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	var g *Gateway
	ready, errc := make(chan struct{}), make(chan error, 1)
	go func() {
		errc <- gw.Do(func() error {
			var err error
			g, err = New(Options{Instance: instance, Outside: "out0", Inside: "in0", Queues: 2, NoCrypto: true, Detach: true,
				OnRunning: func(string) { close(ready) }})
			if err != nil {
				return err
			}
			return g.Run(ctx)
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10 s of its context ending")
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs)
		}
	})
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("gateway: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("gateway not running after 20 s")
	}

	// send sends n datagrams from each of 32 sockets in the LAN (bounded:
	// 32·n packets).
	send := func(n int) {
		t.Helper()
		if err := lan.Do(func() error {
			for i := 0; i < 32; i++ {
				c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(198, 19, 0, 2), Port: 9000})
				if err != nil {
					return err
				}
				for j := 0; j < n; j++ {
					c.Write([]byte("cgw worker panic test"))
				}
				c.Close()
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	forwarded := func(id int) uint64 {
		return atomic.LoadUint64(&g.workers[id].Pipeline().Counters().Packets[worker.Out])
	}
	// until sends traffic until cond holds (at most 5 s).
	until := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 5 s (forwarded by worker 0: %d, worker 1: %d; panics %d; received %d)",
					what, forwarded(0), forwarded(1), g.workers[1].Panics(), got.Load())
			}
			send(4)
			time.Sleep(50 * time.Millisecond)
		}
	}

	until("both workers forward", func() bool { return forwarded(0) > 0 && forwarded(1) > 0 })
	for round := uint64(1); round <= 2; round++ {
		before0 := forwarded(0)
		arm.Store(true)
		until(fmt.Sprintf("panic %d injected into worker 1", round), func() bool { return g.workers[1].Panics() == round })
		after1 := forwarded(1)
		until("worker 0 forwards on and worker 1 resumes",
			func() bool { return forwarded(0) > before0 && forwarded(1) > after1 })
	}
	if p := g.workers[0].Panics(); p != 0 {
		t.Fatalf("worker 0 counted %d panics, want 0", p)
	}
	if n := got.Load(); n == 0 {
		t.Fatal("nothing reached the WAN side")
	}
	l := logs.String()
	if strings.Count(l, "panic: injected by TestWorkerPanicRestarts") < 1 || strings.Count(l, "runtime/debug.Stack()") != 1 {
		t.Fatalf("want the panic logged with its stack exactly once for two panics; log:\n%s", l)
	}
}
