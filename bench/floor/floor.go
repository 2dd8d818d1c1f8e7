// Package floor measures the raw cipher's cost on the bytes a gateway
// seals and opens, so a benchmark can set the gateway against its floor:
// with t_forward the CPU cost per packet of the same dataplane with ESP
// off and t_cipher the raw seal (or open) of that packet's ESP payload,
// no implementation of that design on that core does better than
// 1/(t_forward + t_cipher) packets per CPU-second.
package floor

import (
	"crypto/rand"
	"fmt"
	"runtime"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/crypto/transform"
)

// Overheads of an ESP packet around its padded plaintext.
const (
	espHdr = 8  // SPI, sequence number
	ipv4   = 20 // an inner IPv4 header (the frame's)
	eth    = 14
	fcs    = 4
)

// PlaintextLen is the ESP plaintext (payload, padding, pad length, next
// header) of an inner IPv4 packet of n bytes, padded to block.
func PlaintextLen(n, block int) int {
	p := n + 2
	if block > 1 {
		p = (p + block - 1) / block * block
	}
	return p
}

// Cost is the raw cipher's CPU time per operation.
type Cost struct {
	Seal, Open time.Duration
}

// Measure returns the median over runs of the thread CPU time per seal and
// per open of ESP packets carrying inner IPv4 packets of ipLen bytes, n
// operations per run, on a thread pinned to cpu (-1: not pinned). Open's
// figure has the copy that restores the sealed packet taken out.
func Measure(s transform.Suite, ipLen, n, runs, cpu int) (Cost, error) {
	key := make([]byte, s.KeymatLen())
	rand.Read(key)
	c, err := transform.New(s, key)
	if err != nil {
		return Cost{}, err
	}
	pkt := make([]byte, espHdr+c.IVLen()+PlaintextLen(ipLen, c.BlockSize())+c.ICVLen())
	rand.Read(pkt)
	type res struct {
		cost Cost
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if cpu >= 0 {
			var set unix.CPUSet
			set.Set(cpu)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				ch <- res{err: fmt.Errorf("floor: pinning to CPU %d: %w", cpu, err)}
				return
			}
		}
		var seals, opens []time.Duration
		sealed := make([]byte, len(pkt))
		for r := 0; r < runs; r++ {
			t0 := threadCPU()
			for i := 0; i < n; i++ {
				c.Seal(pkt, uint64(i+1), false)
			}
			t1 := threadCPU()
			seals = append(seals, (t1-t0)/time.Duration(n))
			c.Seal(pkt, 1, false)
			copy(sealed, pkt)
			t0 = threadCPU()
			for i := 0; i < n; i++ {
				copy(pkt, sealed)
			}
			t1 = threadCPU()
			copies := t1 - t0
			t0 = threadCPU()
			for i := 0; i < n; i++ {
				copy(pkt, sealed)
				if err := c.Open(pkt, 1, false); err != nil {
					ch <- res{err: fmt.Errorf("floor: open of a packet just sealed failed: %w", err)}
					return
				}
			}
			t1 = threadCPU()
			opens = append(opens, (t1-t0-copies)/time.Duration(n))
		}
		ch <- res{cost: Cost{Seal: median(seals), Open: median(opens)}}
	}()
	r := <-ch
	return r.cost, r.err
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// Efficiency is measured packets per CPU-second over the floor
// 1/(tForward + tCipher); tForward is 1/(the forwarder's packets per
// CPU-second).
func Efficiency(perCPUSecond, forwarderPerCPUSecond float64, tCipher time.Duration) float64 {
	if perCPUSecond <= 0 || forwarderPerCPUSecond <= 0 {
		return 0
	}
	return perCPUSecond * (1/forwarderPerCPUSecond + tCipher.Seconds())
}
