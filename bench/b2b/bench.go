package b2b

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cgw-project/cgw/bench/pktgen"
)

// Load is a generator in lan and a sink on the wire's side of site A: the
// benchmark path generator → A (encrypt, or forward with -no-crypto) →
// sink. Only one dataplane worker is on the path, so its core is what is
// measured; the sink's XDP runs on the transmitting (worker's) CPU, the
// same for both modes.
type Load struct {
	t    *Topology
	gen  *pktgen.Generator
	sink *pktgen.Sink
	mac  net.HardwareAddr // site A's inside MAC
	src  net.HardwareAddr // lan0's
}

// NewLoad loads the generator and attaches the sink to the wire's WireA.
func (t *Topology) NewLoad() (*Load, error) {
	l := &Load{t: t}
	var err error
	if l.gen, err = pktgen.NewGenerator(); err != nil {
		return nil, err
	}
	err = pktgen.InNetns(t.NS(Wire), func() (err error) { l.sink, err = pktgen.NewSink(WireA); return err })
	if err != nil {
		l.gen.Close()
		return nil, err
	}
	for _, x := range []struct {
		role, dev string
		mac       *net.HardwareAddr
	}{{SiteA, InsideDev, &l.mac}, {LAN, LANDev, &l.src}} {
		err := pktgen.InNetns(t.NS(x.role), func() error {
			ifi, err := net.InterfaceByName(x.dev)
			if err == nil {
				*x.mac = ifi.HardwareAddr
			}
			return err
		})
		if err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// Close detaches the sink and unloads the generator.
func (l *Load) Close() {
	if l.sink != nil {
		l.sink.Close()
	}
	l.gen.Close()
}

// Result of one bounded run.
type Result struct {
	Size    int
	Gen     pktgen.GenResult
	Sink    pktgen.Measurement
	Dropped uint64 // generated but not counted by the sink
	// CPU is the CPU time (user + system) site A's dataplane used during
	// the run: delivered packets per CPU-second survive a machine other
	// processes share, where wall-clock rates do not.
	CPU time.Duration
}

// PerCPUSecond is the delivered packets per second of dataplane CPU time.
func (r Result) PerCPUSecond() float64 {
	if r.CPU <= 0 {
		return 0
	}
	return float64(r.Sink.Packets) / r.CPU.Seconds()
}

// Run sends count frames of size bytes lan → vpc (UDP, 198.18.0.2 →
// 198.19.0.2) from CPU genCPU (-1: any) and returns what the sink counted.
func (l *Load) Run(ctx context.Context, size int, count uint64, genCPU int) (Result, error) {
	f := pktgen.Frame{SrcMAC: l.src, DstMAC: l.mac,
		Src:  netip.AddrPortFrom(LANHost, 9),
		Dst:  netip.AddrPortFrom(VPCHost, 9),
		Size: size}
	frame, err := f.Build()
	if err != nil {
		return Result{}, err
	}
	pid := l.t.A.DataplanePid()
	cpu0, cerr := procCPU(pid)
	mc := make(chan pktgen.Measurement, 1)
	ec := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		close(ready)
		m, err := l.sink.Measure(ctx, 30*time.Second, 300*time.Millisecond)
		mc <- m
		ec <- err
	}()
	<-ready
	time.Sleep(20 * time.Millisecond)
	var g pktgen.GenResult
	err = pktgen.InNetns(l.t.NS(LAN), func() (err error) {
		g, err = l.gen.Run(ctx, frame, pktgen.RunConfig{Dev: LANDev, Count: count, Timeout: 20 * time.Second, CPU: genCPU})
		return err
	})
	m, merr := <-mc, <-ec
	if err != nil {
		return Result{}, err
	}
	if merr != nil {
		return Result{}, merr
	}
	r := Result{Size: size, Gen: g, Sink: m}
	if cpu1, err := procCPU(pid); err == nil && cerr == nil {
		r.CPU = cpu1 - cpu0
	}
	if g.Sent > m.Packets {
		r.Dropped = g.Sent - m.Packets
	}
	if m.Packets == 0 {
		return r, fmt.Errorf("b2b: the sink counted nothing of %d frames (is site A's dataplane forwarding? log:\n%s)", g.Sent, l.t.A.DataplaneLog())
	}
	return r, nil
}

// procCPU is a process's CPU time, user and system (/proc/<pid>/stat
// fields 14 and 15, in clock ticks of 1/100 s on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("pid %d: malformed /proc stat", pid)
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond, nil
}
