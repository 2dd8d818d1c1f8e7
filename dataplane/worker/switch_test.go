package worker

import (
	"encoding/binary"
	"runtime"
	"sync"
	"testing"

	"github.com/cgw-project/cgw/bpf/maps"
)

// TestOutboundSwitchLosesNothing switches the tunnel's outbound SA back
// and forth (make-before-break rekey, DESIGN §2) while a worker encrypts
// batches: every packet must come out sealed by the old or the new SA,
// none dropped, and the receiver (holding both inbound SAs) must accept
// every one — so no sequence number was reused under either key, even
// though switching back rebuilds the old SA's object on the shared
// counter.
func TestOutboundSwitchLosesNothing(t *testing.T) {
	const batches, spiNew = 300, 0xa1a1a1a1
	a, b := pair(t)
	withNew := func(tb *maps.Tables, useNew bool) *maps.Tables {
		c := *tb
		c.SAs = map[uint32]maps.SA{1: tb.SAs[1], 2: tb.SAs[2], 3: gcmSA(t, spiNew, 1, maps.DirOutbound, 5, gwOut, peerOut)}
		c.Outbound = append([]uint32(nil), tb.Outbound...)
		if useNew {
			c.Outbound[1] = 3
		}
		return &c
	}
	// The receiver knows both SAs from the start (installed before the switch).
	b.tb.SAs[3] = gcmSA(t, spiNew, 1, maps.DirInbound, 5, gwOut, peerOut)
	b.tb.Inbound[spiNew] = maps.InboundSA{SaIndex: 3, TunnelId: 1}
	b.tabs.Store(b.b.Build(b.tb))

	ip := ipv4(lanHost, vpcHost, 300, 64, false, 9)
	var sent [][]byte
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the control plane
		defer wg.Done()
		gen := uint64(10)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			tb := withNew(a.tb, i%2 == 0)
			gen += 2
			tb.Generation = gen
			a.tabs.Store(a.b.Build(tb))
		}
	}()
	batch := a.p.NewBatch()
	seen := map[uint32]bool{}
	n := 0
	// At least `batches` batches, and on until both SAs were used (the
	// switcher may be scheduled late on a loaded machine).
	for ; n < batches || (len(seen) < 2 && n < 100*batches); n++ {
		runtime.Gosched()
		batch = batch[:0]
		for j := 0; j < 32; j++ {
			batch = append(batch, a.frameOf(t, macIn, macLAN, ip))
		}
		a.out.Reset()
		a.p.Outbound(a.tabs.Load(), batch, a.out)
		for _, pk := range a.out.Outside {
			seen[binary.BigEndian.Uint32(pk.Data()[34:])] = true
			sent = append(sent, append([]byte(nil), pk.Data()...))
			a.frames.Free(pk.Addr)
		}
	}
	close(done)
	wg.Wait()
	if len(sent) != n*32 {
		t.Fatalf("sent %d of %d; drops %v", len(sent), n*32, a.drops())
	}
	bySPI := map[uint32]int{}
	for _, f := range sent {
		bySPI[binary.BigEndian.Uint32(f[34:])]++
	}
	if bySPI[0xa0a0a0a0] == 0 || bySPI[spiNew] == 0 {
		t.Fatalf("packets by SPI %v: the switch did not happen during the run", bySPI)
	}
	delivered := 0
	for i := 0; i < len(sent); i += 32 {
		batch := b.p.NewBatch()
		for _, f := range sent[i:min(i+32, len(sent))] {
			batch = append(batch, b.frameOf(t, [6]byte(f[0:6]), [6]byte(f[6:12]), f[14:]))
		}
		b.out.Reset()
		b.p.Inbound(b.view(), batch, b.out)
		delivered += len(b.out.Inside)
		for _, pk := range b.out.Inside {
			b.frames.Free(pk.Addr)
		}
	}
	if delivered != len(sent) {
		t.Fatalf("receiver accepted %d of %d (by SPI %v); drops %v", delivered, len(sent), bySPI, b.drops())
	}
	t.Logf("packets by SPI: %v", bySPI)
}
