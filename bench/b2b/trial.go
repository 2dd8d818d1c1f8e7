package b2b

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/cgw-project/cgw/bench/pktgen"
	"github.com/cgw-project/cgw/bench/procstat"
)

// TrialConfig is one bounded trial through site A (see Load).
type TrialConfig struct {
	Label string
	Dir   Direction
	Mix   pktgen.Mix
	// Flows: sources in LANNet and destinations in VPCNet (inbound, the
	// inner packets go the other way); zero: one flow lan host → vpc host.
	Flows    pktgen.Flows
	Rate     pktgen.Rate   // zero: as fast as the generator goes
	Duration time.Duration // bound (default 1 s)
	Count    uint64        // bound (default: enough for Duration at Rate, else 50 M)
	Burst    int           // default pktgen.DefaultBurst
	GenCPU   int           // -1: any
	// GenCPUs, if set, runs one generator per CPU listed, each with its
	// share of Count and Rate (a veth spreads frames over its queues by
	// sending CPU); GenCPU is then ignored.
	GenCPUs []int
	// GenPriority runs paced generators at this SCHED_FIFO priority
	// (pktgen.RunConfig.Priority).
	GenPriority int
	Progress    io.Writer // one line a second, if set
	// Latency, if set, sends a timestamped probe every this long through
	// site A during the trial (outbound: B's dataplane must run) and
	// reports their one-way times.
	Latency time.Duration
	// PIDs are the processes whose CPU time the trial reports (default:
	// site A's dataplane, and B's for Through).
	PIDs []int
}

// Trial runs one bounded trial and reports offered, delivered, loss and
// site A's dataplane CPU time (nanosecond accounting).
func (l *Load) Trial(ctx context.Context, c TrialConfig) (pktgen.Trial, error) {
	if c.Duration <= 0 {
		c.Duration = time.Second
	}
	if c.Burst <= 0 {
		c.Burst = pktgen.DefaultBurst
	}
	if len(c.Mix.Sizes) == 0 {
		c.Mix = pktgen.Fixed(64)
	}
	if c.Flows.N == 0 {
		c.Flows = pktgen.Flows{N: 1,
			Src: []pktgen.Endpoints{{First: LANHost, Last: LANHost, PortLo: 9, PortHi: 9}},
			Dst: []pktgen.Endpoints{{First: VPCHost, Last: VPCHost, PortLo: 9, PortHi: 9}}}
	}
	if err := c.Flows.Valid(); err != nil {
		return pktgen.Trial{}, err
	}
	pps := c.Rate.FramesPerSecond(c.Mix.MeanSize())
	if c.Count == 0 {
		c.Count = 50_000_000
		if pps > 0 {
			c.Count = uint64(pps*c.Duration.Seconds()) + 1
		}
	}
	plan, err := pktgen.BuildPlan(c.Mix, c.Flows.N, c.Burst, func(f, size int) ([]pktgen.Template, error) {
		s, d := c.Flows.Flow(f)
		return l.templates(c.Dir, s, d, size)
	})
	if err != nil {
		return pktgen.Trial{}, err
	}
	genRole, genDev := LAN, LANDev
	sink, err := l.sinkFor(c.Dir)
	if err != nil {
		return pktgen.Trial{}, err
	}
	if c.Dir == Inbound {
		genRole, genDev = Wire, WireA
		if err := l.lanNeighbours(ctx, c.Flows); err != nil {
			return pktgen.Trial{}, err
		}
	}
	pids := c.PIDs
	if len(pids) == 0 {
		pids = []int{l.t.A.DataplanePid()}
		if c.Dir == Through {
			pids = append(pids, l.t.B.DataplanePid())
		}
	}
	cpuTime := func() (time.Duration, error) {
		var sum time.Duration
		for _, p := range pids {
			x, err := procstat.CPUTime(p)
			if err != nil {
				return 0, err
			}
			sum += x
		}
		return sum, nil
	}
	d0, _, err := sink.Count()
	if err != nil {
		return pktgen.Trial{}, err
	}
	c0, cerr := cpuTime()
	live := &pktgen.Live{}
	mon := &pktgen.Monitor{W: c.Progress, Live: live,
		Delivered: func() (uint64, error) { p, _, err := sink.Count(); return p - d0, err }}
	if cerr == nil {
		mon.CPU = func() (time.Duration, error) { x, err := cpuTime(); return x - c0, err }
	}
	var probes *probeRun
	if c.Latency > 0 {
		if err := CheckProbeMix(c.Mix); err != nil {
			return pktgen.Trial{}, err
		}
		if probes, err = l.startProbes(ctx, c.Dir, c.Latency); err != nil {
			return pktgen.Trial{}, err
		}
	}
	mon.Start()
	cpus := c.GenCPUs
	if len(cpus) == 0 {
		cpus = []int{c.GenCPU}
	}
	gens := make([]pktgen.GenResult, len(cpus))
	errs := make(chan error, len(cpus))
	for i, cpu := range cpus {
		go func() {
			errs <- pktgen.InNetns(l.t.NS(genRole), func() (err error) {
				rate := c.Rate
				rate.PPS /= float64(len(cpus))
				rate.BPS /= float64(len(cpus))
				gens[i], err = l.gen.RunPlan(ctx, plan, pktgen.RunConfig{Dev: genDev, Count: c.Count / uint64(len(cpus)), Timeout: c.Duration, CPU: cpu, Rate: rate, Live: live, Priority: c.GenPriority})
				return err
			})
		}()
	}
	for range cpus {
		if e := <-errs; e != nil {
			err = e
		}
	}
	var g pktgen.GenResult
	for _, x := range gens {
		g.Sent += x.Sent
		g.Bytes += x.Bytes
		g.Expected += x.Expected
		g.Elapsed = max(g.Elapsed, x.Elapsed)
	}
	// What has not arrived once the counter stood still for 50 ms never
	// will; the dataplane's CPU is read at the same moment.
	last, _, _ := sink.Count()
	for i := 0; i < 40; i++ {
		time.Sleep(50 * time.Millisecond)
		p, _, _ := sink.Count()
		if p == last {
			break
		}
		last = p
	}
	prog := mon.Stop()
	var lat *pktgen.Latency
	if probes != nil {
		lat = probes.finish()
	}
	if err != nil {
		return pktgen.Trial{}, err
	}
	tr := pktgen.Trial{Label: c.Label, Mix: c.Mix.String(), Flows: c.Flows.N, TargetPPS: pps,
		Sent: g.Sent, Bytes: g.Bytes, Expected: g.Expected, Delivered: last - d0, Seconds: g.Elapsed.Seconds(), Progress: prog, Latency: lat}
	if c1, err := cpuTime(); err == nil && cerr == nil {
		tr.CPUSeconds = (c1 - c0).Seconds()
	}
	return tr, nil
}

// lanNeighbours gives site A a permanent neighbour entry (the lan host's
// MAC) for every LAN address the flows use, so decrypted packets to them
// leave by the fast path rather than wait in the slow path for ARP that
// nobody answers.
func (l *Load) lanNeighbours(ctx context.Context, f pktgen.Flows) error {
	var b strings.Builder
	seen := map[netip.Addr]bool{}
	for i := 0; i < f.N; i++ {
		s, _ := f.Flow(i)
		if a := s.Addr(); !seen[a] && a != AInside && LANNet.Contains(a) {
			seen[a] = true
			fmt.Fprintf(&b, "neigh replace %s lladdr %s dev %s nud permanent\n", a, l.macLAN, InsideDev)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, "ip", "-n", l.t.NS(SiteA), "-batch", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("b2b: neighbour entries for the flows' LAN addresses: %v: %s", err, out)
	}
	return nil
}

// templates are the frames of one flow at one size. Outbound: a UDP frame
// lan → A without DF; over the tunnel MTU A fragments it (RFC 4459) and
// the sink counts each fragment. Inbound: what B would send for the
// reverse packet: its fragments if it exceeds the tunnel MTU, each
// encrypted with the current B→A SA.
func (l *Load) templates(d Direction, src, dst netip.AddrPort, size int) ([]pktgen.Template, error) {
	f := pktgen.Frame{SrcMAC: l.macLAN, DstMAC: l.macIn, Src: src, Dst: dst, Size: size, NoDF: true}
	if d != Inbound {
		b, err := f.Build()
		return []pktgen.Template{{Frame: b, Out: len(Fragments(b[14:], TunnelMTU))}}, err
	}
	f.Src, f.Dst = dst, src
	b, err := f.Build()
	if err != nil {
		return nil, err
	}
	var ts []pktgen.Template
	for _, frag := range Fragments(b[14:], TunnelMTU) {
		e, err := l.espFrame(frag)
		if err != nil {
			return nil, err
		}
		ts = append(ts, pktgen.Template{Frame: e, Out: 1})
	}
	return ts, nil
}

// Fragments splits an IPv4 packet (20-byte header) into fragments of at
// most mtu bytes (RFC 791), or returns it alone if it fits.
func Fragments(ip []byte, mtu int) [][]byte {
	if len(ip) <= mtu {
		return [][]byte{ip}
	}
	const hl = 20
	step := (mtu - hl) &^ 7
	var out [][]byte
	data := ip[hl:]
	for off := 0; off < len(data); off += step {
		n := min(step, len(data)-off)
		fr := make([]byte, hl+n)
		copy(fr, ip[:hl])
		copy(fr[hl:], data[off:off+n])
		binary.BigEndian.PutUint16(fr[2:], uint16(hl+n))
		fo := uint16(off / 8)
		if off+n < len(data) {
			fo |= 0x2000 // more fragments
		}
		binary.BigEndian.PutUint16(fr[6:], fo)
		fr[10], fr[11] = 0, 0
		binary.BigEndian.PutUint16(fr[10:], ipChecksum(fr[:hl]))
		out = append(out, fr)
	}
	return out
}

func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
