package pktgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)

// xdpMd is struct xdp_md, the context BPF_PROG_RUN takes for XDP.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// Generator sends frames out of a device with BPF_PROG_RUN live frames.
type Generator struct {
	prog *ebpf.Program
	park *parking
}

// NewGenerator loads the generator's XDP program (XDP_TX).
func NewGenerator() (*Generator, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "pktgen_tx", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpTX), asm.Return()},
	})
	if err != nil {
		return nil, fmt.Errorf("pktgen: loading the XDP_TX program (needs root / CAP_BPF): %w", err)
	}
	pk, err := park(p)
	if err != nil {
		p.Close()
		return nil, err
	}
	return &Generator{prog: p, park: pk}, nil
}

// Close unloads the program and removes its parking namespace.
func (g *Generator) Close() error {
	g.park.close()
	return g.prog.Close()
}

// Run options.
type RunConfig struct {
	Dev     string        // device to send from, in the calling thread's namespace
	Count   uint64        // frames to send (required)
	Timeout time.Duration // stop after this long even if Count is not reached (default 60 s)
	CPU     int           // pin the sending thread to this CPU; -1: don't
	Rate    Rate          // target rate; zero: as fast as possible
	// Priority, if set, runs a paced generator's thread at this SCHED_FIFO
	// priority, so it wakes on time when it shares a core with a busy
	// process (the gateway under test): it sleeps between bursts, so it
	// takes little. Ignored unpaced, where it would starve the core.
	Priority int
	Live     *Live // if set, added to after every burst
}

// GenResult is what the generator did.
type GenResult struct {
	Sent     uint64
	Bytes    uint64 // frame bytes with FCS
	Expected uint64 // frames the receiving end should count (Template.Out)
	Elapsed  time.Duration
}

// PPS is the generator's offered rate.
func (r GenResult) PPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// chunk bounds one BPF_PROG_RUN call of an unpaced single frame, so the
// deadline and ctx are checked every few tens of milliseconds.
const chunk = 1 << 16

// Run sends frame c.Count times out of c.Dev (see RunPlan).
func (g *Generator) Run(ctx context.Context, frame []byte, c RunConfig) (GenResult, error) {
	burst := chunk
	if !c.Rate.Unlimited() {
		burst = DefaultBurst
	}
	return g.RunPlan(ctx, Plan{Templates: []Template{{Frame: frame, Out: 1}}, Slots: []int{0}, Burst: burst}, c)
}

// DefaultBurst is the frames per BPF_PROG_RUN call of a paced or
// many-frame plan: small enough that a burst at 1 Mpps lasts 64 µs, large
// enough that the system call is not the generator's limit.
const DefaultBurst = 64

// RunPlan sends the plan's slots in turn, Burst frames each, until
// c.Count frames are sent, c.Timeout passed or ctx is done, paced to
// c.Rate. It must be called on a locked OS thread in the device's
// namespace (see InNetns), and changes that thread's CPU affinity when
// c.CPU >= 0. The peer of a veth must run a native XDP program to accept
// the frames.
func (g *Generator) RunPlan(ctx context.Context, p Plan, c RunConfig) (GenResult, error) {
	if c.Count == 0 {
		return GenResult{}, errors.New("pktgen: a frame count is required (the generator is always bounded)")
	}
	if len(p.Slots) == 0 || p.Burst < 1 {
		return GenResult{}, errors.New("pktgen: empty plan")
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	ifi, err := net.InterfaceByName(c.Dev)
	if err != nil {
		return GenResult{}, fmt.Errorf("pktgen: device %q: %w", c.Dev, err)
	}
	if c.CPU >= 0 {
		if err := PinThread(c.CPU); err != nil {
			return GenResult{}, err
		}
	}
	if c.Priority > 0 && !c.Rate.Unlimited() {
		if err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: uint32(c.Priority)}, 0); err != nil {
			return GenResult{}, fmt.Errorf("pktgen: SCHED_FIFO %d: %w", c.Priority, err)
		}
		defer unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_NORMAL}, 0)
	}
	// Pace frames for a frame rate, bits for a bit rate.
	pacer := Pacer{PerSecond: c.Rate.PPS}
	if c.Rate.BPS > 0 {
		pacer.PerSecond = c.Rate.BPS
	}
	var (
		r     GenResult
		units float64
		slot  int
		start = time.Now()
		end   = start.Add(c.Timeout)
		ctxMd xdpMd
		opts  = ebpf.RunOptions{Context: &ctxMd, Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES}
	)
	ctxMd.IngressIfindex = uint32(ifi.Index)
	for r.Sent < c.Count && ctx.Err() == nil {
		t := &p.Templates[p.Slots[slot]]
		slot++
		if slot == len(p.Slots) {
			slot = 0
		}
		n := min(c.Count-r.Sent, uint64(p.Burst))
		cost := float64(n)
		if c.Rate.BPS > 0 {
			cost *= float64(8 * t.WireSize())
		}
		now := time.Now()
		if !now.Before(end) {
			break
		}
		if w := pacer.Wait(now.Sub(start), units, cost); w > 0 {
			if now.Add(w).After(end) {
				break
			}
			// The thread's own sleep, not the Go scheduler's timer, which
			// would wait for another thread to get the CPU to wake it.
			ts := unix.NsecToTimespec(w.Nanoseconds())
			for unix.Nanosleep(&ts, &ts) == unix.EINTR {
			}
		} else if late := pacer.Late(now.Sub(start), units, cost); late > 0 {
			units += late // not sent: see Pacer
		}
		opts.Data = t.Frame
		ctxMd.DataEnd = uint32(len(t.Frame))
		opts.Repeat = uint32(n)
		if _, err := g.prog.Run(&opts); err != nil {
			r.Elapsed = time.Since(start)
			return r, fmt.Errorf("pktgen: BPF_PROG_RUN live frames on %s (kernel 5.18+ needed): %w", c.Dev, err)
		}
		units += cost
		r.Sent += n
		r.Bytes += n * uint64(t.WireSize())
		r.Expected += n * uint64(t.Out)
		if c.Live != nil { // added to: several generators may share one
			c.Live.Sent.Add(n)
			c.Live.Bytes.Add(n * uint64(t.WireSize()))
			c.Live.Expected.Add(n * uint64(t.Out))
		}
	}
	r.Elapsed = time.Since(start)
	return r, nil
}
