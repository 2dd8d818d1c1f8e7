package adversary

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// InNetns runs fn on a fresh OS thread switched into the named network
// namespace (/run/netns/name). The thread is never unlocked, so Go ends
// it with fn's goroutine and nothing else runs there by accident; sockets
// fn opens stay in the namespace wherever they are used later.
func InNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		f, err := os.Open(filepath.Join("/run/netns", name))
		if err != nil {
			errc <- fmt.Errorf("network namespace %s: %w", name, err)
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("entering network namespace %s: %w", name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Injector sends hand-made IPv4 packets (IP_HDRINCL) from a namespace:
// any source address, so a namespace on the path can pose as anyone.
type Injector struct {
	fd   int
	sent atomic.Uint64
}

// NewInjector opens a raw IPv4 socket in namespace ns.
func NewInjector(ns string) (*Injector, error) {
	var fd int
	err := InNetns(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("raw socket in %s (needs root): %w", ns, err)
		}
		// A flood must not stall on a full socket buffer for long.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Injector{fd: fd}, nil
}

// Send sends one IPv4 packet (header included) to its destination.
func (j *Injector) Send(pkt []byte) error {
	if len(pkt) < 20 {
		return errors.New("adversary: packet shorter than an IPv4 header")
	}
	sa := &unix.SockaddrInet4{}
	copy(sa.Addr[:], pkt[16:20])
	for {
		err := unix.Sendto(j.fd, pkt, 0, sa)
		if err == unix.ENOBUFS || err == unix.EAGAIN {
			time.Sleep(50 * time.Microsecond)
			continue
		}
		if err == nil {
			j.sent.Add(1)
		}
		return err
	}
}

// Sent is how many packets Send has sent.
func (j *Injector) Sent() uint64 { return j.sent.Load() }

// Close closes the socket.
func (j *Injector) Close() error { return unix.Close(j.fd) }

// UDP4 builds an IPv4/UDP packet with correct checksums.
func UDP4(src, dst netip.AddrPort, payload []byte) []byte {
	n := 20 + 8 + len(payload)
	b := make([]byte, n)
	b[0], b[8], b[9] = 0x45, 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], ^fold(sum(b[:20])))
	u := b[20:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	ph := sum(b[12:20]) + unix.IPPROTO_UDP + uint32(8+len(payload))
	c := ^fold(ph + sum(u))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return b
}

func sum(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// Frame is one Ethernet frame seen by a Tap, with when it was read.
type Frame struct {
	At   time.Time
	Data []byte
}

// Tap reads (and can send) whole Ethernet frames on one interface of a
// namespace with an AF_PACKET socket; a classic BPF filter keeps only
// IPv4 packets from or to the given address, in the kernel, so a flood
// on the same link costs the tap nothing.
type Tap struct {
	fd      int
	ifindex int
}

// Match selects which IPv4 packets a Tap keeps.
type Match struct {
	Src, Dst netip.Addr // zero: any
}

// NewTap opens a tap on iface in namespace ns.
func NewTap(ns, iface string, m Match) (*Tap, error) {
	t := &Tap{}
	err := InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", iface, ns, err)
		}
		t.ifindex = ifi.Index
		proto := htons(unix.ETH_P_ALL)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("packet socket in %s: %w", ns, err)
		}
		t.fd = fd
		// The filter first: packets queued before it would slip past it.
		prog := filter(m)
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("attaching the tap's filter: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("binding a packet socket to %s in %s: %w", iface, ns, err)
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		// Drain what arrived between socket() and the filter.
		buf := make([]byte, 65536)
		for {
			if _, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT); err != nil {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// filter: ethertype IPv4, then the source and destination addresses.
func filter(m Match) []unix.SockFilter {
	const drop = 0
	var p []unix.SockFilter
	ins := func(code uint16, jt, jf uint8, k uint32) {
		p = append(p, unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k})
	}
	ldh, ldw, jeq, ret := uint16(unix.BPF_LD|unix.BPF_H|unix.BPF_ABS), uint16(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS),
		uint16(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K), uint16(unix.BPF_RET|unix.BPF_K)
	var checks [][2]uint32 // offset, value
	checks = append(checks, [2]uint32{12, unix.ETH_P_IP})
	if m.Src.IsValid() {
		checks = append(checks, [2]uint32{26, binary.BigEndian.Uint32(m.Src.AsSlice())})
	}
	if m.Dst.IsValid() {
		checks = append(checks, [2]uint32{30, binary.BigEndian.Uint32(m.Dst.AsSlice())})
	}
	// Each check jumps to the final "drop" when it fails.
	for i, c := range checks {
		if i == 0 {
			ins(ldh, 0, 0, c[0])
		} else {
			ins(ldw, 0, 0, c[0])
		}
		left := uint8(2*(len(checks)-i-1) + 1) // instructions up to "drop"
		ins(jeq, 0, left, c[1])
	}
	ins(ret, 0, 0, 0x40000)
	ins(ret, 0, 0, drop)
	return p
}

// Read returns the frames that arrive until d has passed (each at most
// 64 KiB); at most max frames are kept, the rest only counted.
func (t *Tap) Read(d time.Duration, max int) (frames []Frame, total int, err error) {
	deadline := time.Now().Add(d)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return frames, total, nil
		}
		tv := unix.NsecToTimeval(min(left, 100*time.Millisecond).Nanoseconds())
		unix.SetsockoptTimeval(t.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, _, rerr := unix.Recvfrom(t.fd, buf, 0)
		if rerr == unix.EAGAIN || rerr == unix.EINTR {
			continue
		}
		if rerr != nil {
			return frames, total, rerr
		}
		total++
		if len(frames) < max {
			frames = append(frames, Frame{At: time.Now(), Data: append([]byte(nil), buf[:n]...)})
		}
	}
}

// NewFrameSender opens a packet socket on iface in namespace ns that
// only sends (protocol 0: the kernel queues nothing to it).
func NewFrameSender(ns, iface string) (*Tap, error) {
	t := &Tap{}
	err := InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", iface, ns, err)
		}
		t.ifindex = ifi.Index
		t.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket in %s: %w", ns, err)
		}
		return nil
	})
	return t, err
}

// Send transmits a whole Ethernet frame on the tap's interface.
func (t *Tap) Send(frame []byte) error {
	return unix.Sendto(t.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: t.ifindex, Protocol: htons(unix.ETH_P_IP)})
}

// Close closes the socket.
func (t *Tap) Close() error { return unix.Close(t.fd) }

// IPv4 returns a frame's IPv4 packet (after the 14-byte Ethernet header)
// and whether it is one.
func IPv4(frame []byte) ([]byte, bool) {
	if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != unix.ETH_P_IP || frame[14]>>4 != 4 {
		return nil, false
	}
	ip := frame[14:]
	if l := int(binary.BigEndian.Uint16(ip[2:])); l <= len(ip) && l >= 20 {
		ip = ip[:l]
	}
	return ip, true
}

// UDPOf returns an IPv4 packet's UDP ports and payload.
func UDPOf(ip []byte) (src, dst netip.AddrPort, payload []byte, ok bool) {
	hl := int(ip[0]&0x0f) * 4
	if ip[9] != unix.IPPROTO_UDP || len(ip) < hl+8 {
		return src, dst, nil, false
	}
	u := ip[hl:]
	sa, da := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	src = netip.AddrPortFrom(sa, binary.BigEndian.Uint16(u))
	dst = netip.AddrPortFrom(da, binary.BigEndian.Uint16(u[2:]))
	return src, dst, u[8:], true
}
