package worker

import (
	"math/bits"
	"sync/atomic"

	"github.com/cgw-project/cgw/bpf/maps"
)

// A worker's counters are read by the metrics scrape on other goroutines,
// which the Go memory model only allows with atomic writes too. An atomic
// store per packet would cost a locked instruction each (XCHG on amd64),
// so the worker counts in its own tally with plain writes and publishes
// what changed into Pipeline.Counters with atomic stores once per batch.
// The tally marks the drop reasons and tunnels a batch touched: publishing
// costs a few stores, not one per counter (Drops and the per-tunnel
// arrays hold ~4,500).

// tally is a worker's own Counters: only its goroutine reads or writes it.
type tally struct {
	Counters
	drops   [NumStages]uint32      // bit r: Drops[s][r] changed since the last publish
	tunnels [2][tunnelWords]uint64 // bit t%64 of word t/64: Tunnel*[d][t] changed
	// Which words of drops and tunnels are not 0: bit s, bit d*tunnelWords+w.
	dropStages, tunnelWord uint64
}

const tunnelWords = int(maps.MaxTunnels / 64)

// The summaries have a bit for each stage and each word of tunnels.
const _, _ = uint64(64 - NumStages), uint32(64 - 2*tunnelWords)

// drop counts a drop at stage s for reason r (that stage's enum).
func (c *tally) drop(s Stage, r uint8) {
	r &= maxReasons - 1
	c.Drops[s][r]++
	c.drops[s] |= 1 << r
	c.dropStages |= 1 << s
}

// sent counts packets of tunnel id that left the gateway in direction d.
func (c *tally) sent(d int, id uint32, packets, bytes uint64) {
	id &= maps.MaxTunnels - 1
	c.Packets[d] += packets
	c.Bytes[d] += bytes
	c.TunnelPackets[d][id] += packets
	c.TunnelBytes[d][id] += bytes
	c.tunnels[d][id/64] |= 1 << (id % 64)
	c.tunnelWord |= 1 << (d*tunnelWords + int(id/64))
}

// publish stores what changed since the last publish into to, to's only
// writer.
func (c *tally) publish(to *Counters) {
	for d := range c.Packets {
		store(&to.Packets[d], c.Packets[d])
		store(&to.Bytes[d], c.Bytes[d])
	}
	for ws := c.tunnelWord; ws != 0; ws &= ws - 1 {
		i := bits.TrailingZeros64(ws)
		d, w := i/tunnelWords, i%tunnelWords
		for m := c.tunnels[d][w]; m != 0; m &= m - 1 {
			t := w*64 + bits.TrailingZeros64(m)
			atomic.StoreUint64(&to.TunnelPackets[d][t], c.TunnelPackets[d][t])
			atomic.StoreUint64(&to.TunnelBytes[d][t], c.TunnelBytes[d][t])
		}
		c.tunnels[d][w] = 0
	}
	c.tunnelWord = 0
	for ss := c.dropStages; ss != 0; ss &= ss - 1 {
		s := bits.TrailingZeros64(ss)
		for m := c.drops[s]; m != 0; m &= m - 1 {
			r := bits.TrailingZeros32(m)
			atomic.StoreUint64(&to.Drops[s][r], c.Drops[s][r])
		}
		c.drops[s] = 0
	}
	c.dropStages = 0
	for i := range c.BatchSizes {
		store(&to.BatchSizes[i], c.BatchSizes[i])
	}
	store(&to.BatchSum, c.BatchSum)
	store(&to.RingFull, c.RingFull)
	store(&to.Wakeups, c.Wakeups)
	store(&to.Idle, c.Idle)
	store(&to.SlowToKernel, c.SlowToKernel)
	store(&to.SlowFromKernel, c.SlowFromKernel)
	store(&to.SlowMisses, c.SlowMisses)
	store(&to.ICMPErrors, c.ICMPErrors)
	store(&to.Fragments, c.Fragments)
	store(&to.NoMetadata, c.NoMetadata)
	store(&to.LateView, c.LateView)
}

// store sets *p to v if it differs. The caller is p's only writer, so its
// plain read races with nothing; readers load p atomically.
func store(p *uint64, v uint64) {
	if *p != v {
		atomic.StoreUint64(p, v)
	}
}
