package esp

import (
	"bytes"
	"sync"
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
)

// TestSharedSA has several workers encapsulate on one outbound SA and
// then decapsulate, in a different split, on one inbound SA: every packet
// gets a distinct sequence number, every one is accepted exactly once,
// and a second delivery of the whole set is refused as replays. Run with
// -race to check the sharing.
func TestSharedSA(t *testing.T) {
	for _, s := range []transform.Suite{transform.Suites()[0], transform.Suites()[2]} {
		out, in := newPair(t, s, pairOpts{window: 4096, esn: true, udp: true})
		const workers, perWorker, batch = 4, 192, 16
		type pkt struct {
			buf      []byte
			off, n   int
			innerIdx int
		}
		inners := make([][]byte, workers*perWorker)
		pkts := make([][]pkt, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := 0; b < perWorker; b += batch {
					bufs := make([][]byte, batch)
					offs, lens := make([]int, batch), make([]int, batch)
					res := make([]Reason, batch)
					for i := range bufs {
						k := w*perWorker + b + i
						inners[k] = inner4(40+k%300, 0, true, k)
						bufs[i], offs[i] = frame(inners[k])
						lens[i] = len(inners[k])
					}
					if n := encapBatch(out, bufs, offs, lens, res); n != batch {
						t.Errorf("worker %d: encapBatch %d of %d: %v", w, n, batch, res)
						return
					}
					for i := range bufs {
						pkts[w] = append(pkts[w], pkt{bufs[i], offs[i], lens[i], w*perWorker + b + i})
					}
				}
			}()
		}
		wg.Wait()
		if out.LastSeq() != workers*perWorker {
			t.Fatalf("%v: LastSeq %d, want %d", s, out.LastSeq(), workers*perWorker)
		}
		var all []pkt
		for _, p := range pkts {
			all = append(all, p...)
		}
		saved := make([][]byte, len(all))
		for i, p := range all {
			saved[i] = append([]byte(nil), p.buf[p.off:p.off+p.n]...)
		}
		// Interleaved split: worker w takes packets w, w+workers, …
		var mu sync.Mutex
		accepted := map[int]int{}
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(all); i += workers {
					p := all[i]
					st, en, r := in.Decap(p.buf, p.off, p.n)
					if r != OK {
						t.Errorf("%v: packet %d: %v", s, i, r)
						continue
					}
					if !bytes.Equal(p.buf[st:en], inners[p.innerIdx]) {
						t.Errorf("%v: packet %d: inner differs", s, i)
					}
					mu.Lock()
					accepted[p.innerIdx]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(accepted) != len(all) {
			t.Fatalf("%v: %d distinct packets accepted, want %d", s, len(accepted), len(all))
		}
		// Everything again, concurrently: all replays.
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(saved); i += workers {
					b := append([]byte(nil), saved[i]...)
					if _, _, r := in.Decap(b, 0, len(b)); r != Replayed {
						t.Errorf("%v: replay of packet %d: %v", s, i, r)
					}
				}
			}()
		}
		wg.Wait()
	}
}
