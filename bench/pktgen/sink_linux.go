package pktgen

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// Sink counts and drops every IPv4 frame a device receives, in XDP, and
// passes the rest (ARP, so the sender can resolve the sink's address;
// IPv6 autoconfiguration chatter, which would skew the count) to the stack,
// and so the IPv4 frames of the length set with SetPass: a latency
// probe, uncounted, goes on to a socket.
type Sink struct {
	counts *ebpf.Map // per-CPU array, one {packets, bytes} entry
	pass   *ebpf.Map // array, one u32: frame length to pass (0: none)
	prog   *ebpf.Program
	link   link.Link
	ncpu   int
}

type sinkCounts struct{ Packets, Bytes uint64 }

// NewSink attaches the counting program to dev (native XDP) in the
// calling thread's namespace. Close detaches it.
func NewSink(dev string) (*Sink, error) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return nil, fmt.Errorf("pktgen: sink device %q: %w", dev, err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "pktgen_sink", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("pktgen: sink counter map (needs root / CAP_BPF): %w", err)
	}
	pm, err := ebpf.NewMap(&ebpf.MapSpec{Name: "pktgen_pass", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("pktgen: sink pass map: %w", err)
	}
	s := &Sink{counts: m, pass: pm, ncpu: ebpf.MustPossibleCPU()}
	s.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "pktgen_sink", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
			asm.LoadMem(asm.R7, asm.R1, 4, asm.Word), // data_end
			asm.Mov.Reg(asm.R3, asm.R2),
			asm.Add.Imm(asm.R3, 14),
			asm.JGT.Reg(asm.R3, asm.R7, "pass"),
			asm.LoadMem(asm.R3, asm.R2, 12, asm.Half),
			asm.JNE.Imm(asm.R3, 0x0008, "pass"), // EtherType 0x0800 (read little-endian)
			asm.Sub.Reg(asm.R7, asm.R2),         // length (privileged pointer difference)
			asm.StoreImm(asm.R10, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, pm.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "count"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
			asm.JEq.Reg(asm.R1, asm.R7, "pass"), // a probe (0 never matches: a frame has ≥ 14 bytes)
			asm.StoreImm(asm.R10, -4, 0, asm.Word).WithSymbol("count"),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			// Per-CPU values: plain adds, no atomics.
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
			asm.Add.Reg(asm.R1, asm.R7),
			asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("out"),
			asm.Return(),
			asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
			asm.Return(),
		},
	})
	if err != nil {
		m.Close()
		pm.Close()
		return nil, fmt.Errorf("pktgen: loading the sink program: %w", err)
	}
	s.link, err = link.AttachXDP(link.XDPOptions{Program: s.prog, Interface: ifi.Index, Flags: link.XDPDriverMode})
	if err != nil {
		s.prog.Close()
		m.Close()
		pm.Close()
		return nil, fmt.Errorf("pktgen: attaching the sink to %s (native XDP; is another program attached?): %w", dev, err)
	}
	return s, nil
}

// Close detaches and unloads the sink.
func (s *Sink) Close() error {
	err := s.link.Close()
	s.prog.Close()
	s.counts.Close()
	s.pass.Close()
	return err
}

// SetPass makes the sink pass IPv4 frames of length n (without FCS) to
// the stack uncounted; 0 passes none.
func (s *Sink) SetPass(n int) error {
	if err := s.pass.Put(uint32(0), uint32(n)); err != nil {
		return fmt.Errorf("pktgen: setting the sink's probe length: %w", err)
	}
	return nil
}

// Count returns the frames and bytes (without FCS) received so far.
func (s *Sink) Count() (packets, bytes uint64, err error) {
	vals := make([]sinkCounts, s.ncpu)
	if err := s.counts.Lookup(uint32(0), vals); err != nil {
		return 0, 0, fmt.Errorf("pktgen: reading the sink counters: %w", err)
	}
	for _, v := range vals {
		packets += v.Packets
		bytes += v.Bytes
	}
	return packets, bytes, nil
}

// Measurement is what the sink saw during Measure.
type Measurement struct {
	Packets, Bytes uint64 // everything that arrived
	// Span is the time from the first sample that saw traffic to the last
	// one that saw it grow, and InSpan the packets that arrived between
	// those two samples: the receive rate is InSpan/Span.
	Span   time.Duration
	InSpan uint64
}

// PPS is the received rate while traffic flowed.
func (m Measurement) PPS() float64 {
	if m.Span <= 0 {
		return 0
	}
	return float64(m.InSpan) / m.Span.Seconds()
}

// pollEvery is the sink's sampling interval; the rate's error is about
// two intervals over the span.
const pollEvery = 2 * time.Millisecond

// Measure counts what arrives from now on, until max has passed, or until
// nothing arrived for idle after traffic was seen.
func (s *Sink) Measure(ctx context.Context, max, idle time.Duration) (Measurement, error) {
	p0, b0, err := s.Count()
	if err != nil {
		return Measurement{}, err
	}
	var (
		first, last    time.Time
		pFirst, pl, bl = p0, p0, b0
		end            = time.Now().Add(max)
		tick           = time.NewTicker(pollEvery)
	)
	defer tick.Stop()
	for time.Now().Before(end) && ctx.Err() == nil {
		<-tick.C
		p, b, err := s.Count()
		if err != nil {
			return Measurement{}, err
		}
		now := time.Now()
		if p != pl {
			if first.IsZero() {
				first, pFirst = now, p
			}
			last, pl, bl = now, p, b
			continue
		}
		if !first.IsZero() && now.Sub(last) > idle {
			break
		}
	}
	m := Measurement{Packets: pl - p0, Bytes: bl - b0}
	if !first.IsZero() {
		m.Span, m.InSpan = last.Sub(first), pl-pFirst
	}
	return m, nil
}

// Pass is a native XDP program that passes every frame: a veth must run
// one for the generator's frames to be accepted when nothing else is
// attached (the strongSwan baseline's inside NIC).
type Pass struct {
	prog *ebpf.Program
	link link.Link
}

// NewPass attaches it to dev in the calling thread's namespace.
func NewPass(dev string) (*Pass, error) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return nil, fmt.Errorf("pktgen: device %q: %w", dev, err)
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "pktgen_pass", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()}})
	if err != nil {
		return nil, fmt.Errorf("pktgen: loading the XDP_PASS program: %w", err)
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: p, Interface: ifi.Index, Flags: link.XDPDriverMode})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("pktgen: attaching XDP_PASS to %s: %w", dev, err)
	}
	return &Pass{prog: p, link: l}, nil
}

// Close detaches it.
func (p *Pass) Close() error {
	err := p.link.Close()
	p.prog.Close()
	return err
}
