package b2b

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/bench/pktgen"
)

// Latency probes: while a trial runs, timestamped UDP packets of a size no
// benchmark mix uses cross site A beside the load; the sink passes frames
// of exactly their length to the stack uncounted, and a socket takes them
// with the kernel's receive timestamp (SO_TIMESTAMPNS). Both clocks are
// this host's CLOCK_REALTIME.
//   - Outbound: a UDP socket in lan → A (encrypt) → the wire's sink passes
//     it → the wire's kernel forwards it → B (decrypt) → a socket in vpc.
//     B's dataplane must run; it carries only the probes, so its decrypt
//     and the wire's forwarding (a few µs) are in the figure.
//   - Inbound: a packet socket in wire sends the probe encrypted with the
//     B→A SA → A (decrypt) → the lan sink passes it → a socket in lan.
const (
	probePort    = 7
	probeIPLen   = 78                 // inner IPv4 packet: 20 + 8 + 50
	probeMagic   = 0x6367775f70726f62 // "cgw_prob"
	probeHeadLen = 24                 // magic, sequence, send time (ns)
)

// ProbeFrameSize is the probes' Ethernet frame size with FCS; a mix with
// a size within 2 bytes of it could be taken for a probe (ESP pads to 4),
// and CheckProbeMix refuses it.
const ProbeFrameSize = 14 + probeIPLen + 4

// CheckProbeMix says whether m can run beside latency probes.
func CheckProbeMix(m pktgen.Mix) error {
	for _, s := range m.Sizes {
		if s >= ProbeFrameSize-3 && s <= ProbeFrameSize+3 {
			return fmt.Errorf("b2b: mix size %d is too close to the latency probes' %d bytes: choose another size or no latency sample", s, ProbeFrameSize)
		}
	}
	return nil
}

type probeRun struct {
	rc      *net.UDPConn
	sink    *pktgen.Sink
	mu      sync.Mutex
	sent    int
	lat     []time.Duration
	stop    chan struct{}
	done    chan struct{}
	readEnd chan struct{}
}

// startProbes starts sending a probe every interval until stop.
func (l *Load) startProbes(ctx context.Context, d Direction, every time.Duration) (*probeRun, error) {
	src := netip.AddrPortFrom(LANHost, probePort)
	dst := netip.AddrPortFrom(VPCHost, probePort)
	rxRole, sink := VPC, l.sinkWire
	if d == Inbound {
		src, dst = dst, src
		rxRole, sink = LAN, l.sinkLAN
	}
	// The probe frame as the sink sees it: outbound A's ESP frame (the
	// same suite and encapsulation as espFrame's), inbound the plain one.
	inner, err := l.probePacket(src, dst, 0, 0)
	if err != nil {
		return nil, err
	}
	passLen := 14 + len(inner)
	if d == Outbound {
		e, err := l.espFrame(inner)
		if err != nil {
			return nil, err
		}
		passLen = len(e)
	}
	if err := sink.SetPass(passLen); err != nil {
		return nil, err
	}
	p := &probeRun{sink: sink, stop: make(chan struct{}), done: make(chan struct{}), readEnd: make(chan struct{})}
	err = pktgen.InNetns(l.t.NS(rxRole), func() (err error) {
		p.rc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		raw, err := p.rc.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) })
		return serr
	})
	if err != nil {
		sink.SetPass(0)
		return nil, fmt.Errorf("b2b: latency probe receiver in %s: %w", l.t.NS(rxRole), err)
	}
	go p.read()
	send, closeSend, err := l.probeSender(d, src, dst)
	if err != nil {
		p.rc.Close()
		sink.SetPass(0)
		return nil, err
	}
	go func() {
		defer close(p.done)
		defer closeSend()
		t := time.NewTicker(every)
		defer t.Stop()
		for seq := uint64(1); ; seq++ {
			select {
			case <-p.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if send(seq) == nil {
				p.mu.Lock()
				p.sent++
				p.mu.Unlock()
			}
		}
	}()
	return p, nil
}

// probePacket is the inner IPv4/UDP probe packet.
func (l *Load) probePacket(src, dst netip.AddrPort, seq uint64, now int64) ([]byte, error) {
	f, err := pktgen.Frame{SrcMAC: l.macLAN, DstMAC: l.macIn, Src: src, Dst: dst, Size: ProbeFrameSize}.Build()
	if err != nil {
		return nil, err
	}
	ip := f[14:]
	pl := ip[28:]
	binary.BigEndian.PutUint64(pl[0:], probeMagic)
	binary.BigEndian.PutUint64(pl[8:], seq)
	binary.BigEndian.PutUint64(pl[16:], uint64(now))
	binary.BigEndian.PutUint16(ip[26:], 0) // UDP checksum optional in IPv4 (RFC 768)
	return ip, nil
}

// probeSender returns a function that sends probe seq now.
func (l *Load) probeSender(d Direction, src, dst netip.AddrPort) (func(uint64) error, func(), error) {
	if d == Outbound {
		var c *net.UDPConn
		err := pktgen.InNetns(l.t.NS(LAN), func() (err error) {
			c, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(src), net.UDPAddrFromAddrPort(dst))
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("b2b: latency probe sender in lan: %w", err)
		}
		buf := make([]byte, probeIPLen-28)
		return func(seq uint64) error {
			binary.BigEndian.PutUint64(buf[0:], probeMagic)
			binary.BigEndian.PutUint64(buf[8:], seq)
			binary.BigEndian.PutUint64(buf[16:], uint64(time.Now().UnixNano()))
			_, err := c.Write(buf)
			return err
		}, func() { c.Close() }, nil
	}
	var fd int
	ifi := 0
	err := pktgen.InNetns(l.t.NS(Wire), func() error {
		i, err := net.InterfaceByName(WireA)
		if err != nil {
			return err
		}
		ifi = i.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("b2b: latency probe sender in wire: %w", err)
	}
	sa := &unix.SockaddrLinklayer{Ifindex: ifi, Halen: 6}
	copy(sa.Addr[:], l.macOut)
	return func(seq uint64) error {
		ip, err := l.probePacket(src, dst, seq, time.Now().UnixNano())
		if err != nil {
			return err
		}
		fr, err := l.espFrame(ip)
		if err != nil {
			return err
		}
		return unix.Sendto(fd, fr, 0, sa)
	}, func() { unix.Close(fd) }, nil
}

func (p *probeRun) read() {
	defer close(p.readEnd)
	buf := make([]byte, 256)
	oob := make([]byte, 256)
	for {
		n, oobn, _, _, err := p.rc.ReadMsgUDP(buf, oob)
		if err != nil {
			return
		}
		if n < probeHeadLen || binary.BigEndian.Uint64(buf) != probeMagic {
			continue
		}
		at := time.Now()
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
					sec := int64(binary.NativeEndian.Uint64(m.Data[0:]))
					nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
					at = time.Unix(sec, nsec)
				}
			}
		}
		sent := time.Unix(0, int64(binary.BigEndian.Uint64(buf[16:])))
		p.mu.Lock()
		p.lat = append(p.lat, at.Sub(sent))
		p.mu.Unlock()
	}
}

// finish stops sending, waits for the last probes and summarises.
func (p *probeRun) finish() *pktgen.Latency {
	close(p.stop)
	<-p.done
	time.Sleep(100 * time.Millisecond)
	p.rc.Close()
	<-p.readEnd
	p.sink.SetPass(0)
	p.mu.Lock()
	defer p.mu.Unlock()
	return pktgen.Summarize(p.sent, p.lat)
}
