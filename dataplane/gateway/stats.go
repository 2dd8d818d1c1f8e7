package gateway

import (
	"sync/atomic"

	"github.com/cgw-project/cgw/dataplane/worker"
)

// Stats are a gateway's totals over its workers, read atomically while
// they run (the full breakdown is Collector's).
type Stats struct {
	Generation uint64    // tables generation the workers hold
	Workers    int       // workers serving queues
	Packets    [2]uint64 // by direction (worker.Out, worker.In): packets that left the gateway
	Bytes      [2]uint64 // inner IP bytes
	Drops      uint64    // every stage and reason
	SlowPath   [2]uint64 // to the kernel (worker.In), from the kernel (worker.Out)
}

// Stats returns the gateway's totals.
func (g *Gateway) Stats() Stats {
	s := Stats{Workers: len(g.workers)}
	if v := g.tabs.Load(); v != nil {
		s.Generation = v.Generation
	}
	ld := atomic.LoadUint64
	for _, w := range g.workers {
		c := w.Pipeline().Counters()
		for d := range s.Packets {
			s.Packets[d] += ld(&c.Packets[d])
			s.Bytes[d] += ld(&c.Bytes[d])
		}
		for st := range c.Drops {
			for r := range c.Drops[st] {
				s.Drops += ld(&c.Drops[st][r])
			}
		}
		s.SlowPath[worker.In] += ld(&c.SlowToKernel)
		s.SlowPath[worker.Out] += ld(&c.SlowFromKernel)
	}
	return s
}
