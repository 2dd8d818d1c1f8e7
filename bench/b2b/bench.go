package b2b

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/cgw-project/cgw/bench/procstat"

	"github.com/cgw-project/cgw/bench/pktgen"
	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/dataplane/esp"
)

// Load drives site A alone, one direction at a time, so only one dataplane
// worker is on the path and its core is what is measured:
//   - Outbound: generator in lan → A (encrypt, or forward with -no-crypto)
//     → sink on the wire's side of A.
//   - Inbound: generator on the wire sending one ESP frame of the current
//     B→A SA → A (decrypt) → sink in lan. The topology must be made with
//     Options.NoReplay, as the frame repeats. (-no-crypto has no inbound
//     counterpart: the ESP frame is addressed to A itself.)
//
// A sink's XDP runs on the transmitting (worker's) CPU, the same in both
// modes; a generated frame's copy into the socket runs on the generator's.
type Load struct {
	t        *Topology
	gen      *pktgen.Generator
	sinkWire *pktgen.Sink     // on WireA
	sinkLAN  *pktgen.Sink     // on LANDev
	sinkVPC  *pktgen.Sink     // on VPCDev, while Through runs (sinkWire is then off)
	macIn    net.HardwareAddr // site A's inside NIC
	macOut   net.HardwareAddr // site A's outside NIC
	macLAN   net.HardwareAddr
	macWire  net.HardwareAddr // WireA
}

// Direction of a benchmark run through site A.
type Direction int

const (
	Outbound Direction = iota // lan → A → wire: encryption
	Inbound                   // wire → A → lan: decryption
	// Through is lan → A → wire → B → vpc: both gateways (encrypt at A,
	// decrypt at B) and the wire's kernel forwarding between them; the
	// sink is on vpc's link. For the comparison with strongSwan.
	Through
)

func (d Direction) String() string {
	switch d {
	case Inbound:
		return "inbound (decrypt)"
	case Through:
		return "through A and B"
	}
	return "outbound (encrypt)"
}

// NewLoad loads the generator and attaches the sinks.
func (t *Topology) NewLoad() (*Load, error) {
	l := &Load{t: t}
	var err error
	if l.gen, err = pktgen.NewGenerator(); err != nil {
		return nil, err
	}
	if err = pktgen.InNetns(t.NS(Wire), func() (err error) { l.sinkWire, err = pktgen.NewSink(WireA); return err }); err != nil {
		l.Close()
		return nil, err
	}
	if err = pktgen.InNetns(t.NS(LAN), func() (err error) { l.sinkLAN, err = pktgen.NewSink(LANDev); return err }); err != nil {
		l.Close()
		return nil, err
	}
	for _, x := range []struct {
		role, dev string
		mac       *net.HardwareAddr
	}{{SiteA, InsideDev, &l.macIn}, {SiteA, OutsideDev, &l.macOut}, {LAN, LANDev, &l.macLAN}, {Wire, WireA, &l.macWire}} {
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

// sinkFor returns the sink of direction d, attaching it (Through needs the
// wire to forward, so the wire's sink is detached while it runs).
func (l *Load) sinkFor(d Direction) (*pktgen.Sink, error) {
	var err error
	switch {
	case d == Inbound:
		return l.sinkLAN, nil
	case d == Through:
		if l.sinkWire != nil {
			l.sinkWire.Close()
			l.sinkWire = nil
		}
		if l.sinkVPC == nil {
			err = pktgen.InNetns(l.t.NS(VPC), func() (err error) { l.sinkVPC, err = pktgen.NewSink(VPCDev); return err })
		}
		return l.sinkVPC, err
	}
	if l.sinkVPC != nil {
		l.sinkVPC.Close()
		l.sinkVPC = nil
	}
	if l.sinkWire == nil {
		err = pktgen.InNetns(l.t.NS(Wire), func() (err error) { l.sinkWire, err = pktgen.NewSink(WireA); return err })
	}
	return l.sinkWire, err
}

// Close detaches the sinks and unloads the generator.
func (l *Load) Close() {
	for _, s := range []*pktgen.Sink{l.sinkWire, l.sinkLAN, l.sinkVPC} {
		if s != nil {
			s.Close()
		}
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

// Frame returns the frame the generator sends for a run: a UDP/IPv4 frame
// of size bytes (with FCS) between the lan and vpc hosts; inbound, that
// frame's IP packet (vpc → lan) encrypted with the current B→A SA, as B
// would send it.
func (l *Load) Frame(d Direction, size int) ([]byte, error) {
	f := pktgen.Frame{SrcMAC: l.macLAN, DstMAC: l.macIn,
		Src: netip.AddrPortFrom(LANHost, 9), Dst: netip.AddrPortFrom(VPCHost, 9), Size: size}
	if d == Outbound {
		return f.Build()
	}
	f.Src, f.Dst = f.Dst, f.Src
	inner, err := f.Build()
	if err != nil {
		return nil, err
	}
	return l.espFrame(inner[14:])
}

// espFrame is an inner IP packet as B sends it to A: encrypted with the
// current B→A SA, in an Ethernet frame wire → A.
func (l *Load) espFrame(inner []byte) ([]byte, error) {
	e := l.t.SAs.BA
	c, err := transform.New(e.Suite, e.Keymat)
	if err != nil {
		return nil, err
	}
	sa, err := esp.NewSA(esp.Config{SPI: e.SPI, Cipher: c, Src: e.Src, Dst: e.Dst})
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 14+esp.MaxHeadroom+len(inner)+esp.MaxTailroom)
	off := 14 + esp.MaxHeadroom
	copy(buf[off:], inner)
	seq, _ := sa.ReserveSeq(1)
	st, en, r := sa.Encap(buf, off, len(inner), seq)
	if r != esp.OK {
		return nil, fmt.Errorf("b2b: encrypting the inbound benchmark frame: %v", r)
	}
	fr := buf[st-14 : en]
	copy(fr[0:6], l.macOut)
	copy(fr[6:12], l.macWire)
	fr[12], fr[13] = 0x08, 0x00
	return fr, nil
}

// Run sends count frames of size bytes through site A in direction d from
// CPU genCPU (-1: any) and returns what the sink counted.
func (l *Load) Run(ctx context.Context, d Direction, size int, count uint64, genCPU int) (Result, error) {
	frame, err := l.Frame(d, size)
	if err != nil {
		return Result{}, err
	}
	genRole, genDev := LAN, LANDev
	if d == Inbound {
		genRole, genDev = Wire, WireA
	}
	sink, err := l.sinkFor(d)
	if err != nil {
		return Result{}, err
	}
	pid := l.t.A.DataplanePid()
	c0, cerr := procstat.CPUTime(pid)
	mc := make(chan pktgen.Measurement, 1)
	ec := make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		m, err := sink.Measure(sctx, 30*time.Second, 300*time.Millisecond)
		mc <- m
		ec <- err
	}()
	time.Sleep(20 * time.Millisecond)
	var g pktgen.GenResult
	err = pktgen.InNetns(l.t.NS(genRole), func() (err error) {
		g, err = l.gen.Run(ctx, frame, pktgen.RunConfig{Dev: genDev, Count: count, Timeout: 20 * time.Second, CPU: genCPU})
		return err
	})
	// Whatever has not arrived a second after the generator stopped never
	// will (the sink also stops itself once traffic went idle).
	t := time.AfterFunc(time.Second, stop)
	defer t.Stop()
	m, merr := <-mc, <-ec
	if err != nil {
		return Result{}, err
	}
	if merr != nil {
		return Result{}, merr
	}
	r := Result{Size: size, Gen: g, Sink: m}
	if c1, err := procstat.CPUTime(pid); err == nil && cerr == nil {
		r.CPU = c1 - c0
	}
	if g.Sent > m.Packets {
		r.Dropped = g.Sent - m.Packets
	}
	if m.Packets == 0 {
		return r, fmt.Errorf("b2b: %v: the sink counted nothing of %d frames (is site A's dataplane forwarding? log:\n%s)", d, g.Sent, l.t.A.DataplaneLog())
	}
	return r, nil
}
