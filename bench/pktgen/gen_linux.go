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
	return &Generator{prog: p}, nil
}

// Close unloads the program.
func (g *Generator) Close() error { return g.prog.Close() }

// Run options.
type RunConfig struct {
	Dev     string        // device to send from, in the calling thread's namespace
	Count   uint64        // frames to send (required)
	Timeout time.Duration // stop after this long even if Count is not reached (default 60 s)
	CPU     int           // pin the sending thread to this CPU; -1: don't
}

// GenResult is what the generator did.
type GenResult struct {
	Sent    uint64
	Elapsed time.Duration
}

// PPS is the generator's offered rate.
func (r GenResult) PPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// chunk bounds one BPF_PROG_RUN call, so the deadline and ctx are checked
// every few tens of milliseconds.
const chunk = 1 << 16

// Run sends frame c.Count times out of c.Dev. It must be called on a
// locked OS thread in the device's namespace (see InNetns), and changes
// that thread's CPU affinity when c.CPU >= 0. The peer of a veth must run
// a native XDP program to accept the frames.
func (g *Generator) Run(ctx context.Context, frame []byte, c RunConfig) (GenResult, error) {
	if c.Count == 0 {
		return GenResult{}, errors.New("pktgen: a frame count is required (the generator is always bounded)")
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
	deadline := time.Now().Add(c.Timeout)
	var r GenResult
	start := time.Now()
	for r.Sent < c.Count && time.Now().Before(deadline) && ctx.Err() == nil {
		n := min(c.Count-r.Sent, chunk)
		_, err := g.prog.Run(&ebpf.RunOptions{
			Data:    frame,
			Context: &xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifi.Index)},
			Repeat:  uint32(n),
			Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		})
		if err != nil {
			r.Elapsed = time.Since(start)
			return r, fmt.Errorf("pktgen: BPF_PROG_RUN live frames on %s (kernel 5.18+ needed): %w", c.Dev, err)
		}
		r.Sent += n
	}
	r.Elapsed = time.Since(start)
	return r, nil
}
