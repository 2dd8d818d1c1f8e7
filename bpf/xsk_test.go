package bpf_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/bpf"
)

// xsk is a minimal AF_XDP socket for tests: bound in copy mode to queue 0
// of the loopback device of a private network namespace that lives as
// long as the socket (XSKMAP only accepts bound sockets).
type xsk struct {
	fd        int
	umem      []byte
	fill, rx  []byte
	off       unix.XDPMmapOffsets
	frames    int
	frameSize int
}

func xskSocket(t *testing.T) int {
	t.Helper()
	var s *xsk
	err := inNetns(func() (err error) { s, err = newXSK(); return err })
	if err != nil {
		t.Fatalf("creating an AF_XDP socket for the XSKMAP test (needs root, AF_XDP in the kernel): %v", err)
	}
	t.Cleanup(s.close)
	return s.fd
}

// inNetns runs fn on a thread moved into a new network namespace. The
// thread is never unlocked: it exits with the goroutine, so the namespace
// change does not leak to other goroutines.
func inNetns(fn func() error) error {
	ch := make(chan error)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		ch <- fn()
	}()
	return <-ch
}

func sockopt(fd, opt int, p unsafe.Pointer, size uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), size, 0); e != 0 {
		return e
	}
	return nil
}

func newXSK() (*xsk, error) {
	s := &xsk{frames: 16, frameSize: 2048}
	var err error
	if s.fd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW, 0); err != nil {
		return nil, fmt.Errorf("socket(AF_XDP): %w", err)
	}
	fail := func(what string, err error) (*xsk, error) {
		s.close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s.umem, err = unix.Mmap(-1, 0, s.frames*s.frameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fail("umem", err)
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&s.umem[0]))), Len: uint64(len(s.umem)), Size: uint32(s.frameSize)}
	if err := sockopt(s.fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return fail("XDP_UMEM_REG", err)
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, opt, s.frames); err != nil {
			return fail(fmt.Sprintf("ring option %d", opt), err)
		}
	}
	size := uint32(unsafe.Sizeof(s.off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&s.off)), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
		return fail("XDP_MMAP_OFFSETS", e)
	}
	if s.fill, err = unix.Mmap(s.fd, unix.XDP_UMEM_PGOFF_FILL_RING, int(s.off.Fr.Desc)+s.frames*8,
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail("mmap fill ring", err)
	}
	if s.rx, err = unix.Mmap(s.fd, unix.XDP_PGOFF_RX_RING, int(s.off.Rx.Desc)+s.frames*16,
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail("mmap rx ring", err)
	}
	// Give the kernel every frame to receive into.
	for i := range s.frames {
		binary.LittleEndian.PutUint64(s.fill[int(s.off.Fr.Desc)+8*i:], uint64(i*s.frameSize))
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&s.fill[s.off.Fr.Producer])), uint32(s.frames))
	if err := unix.Bind(s.fd, &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: 1, QueueID: 0}); err != nil {
		return fail("bind to lo queue 0", err)
	}
	return s, nil
}

func (s *xsk) close() {
	for _, b := range [][]byte{s.fill, s.rx, s.umem} {
		if b != nil {
			unix.Munmap(b)
		}
	}
	unix.Close(s.fd)
}

// received returns the descriptors the kernel has put on the rx ring.
func (s *xsk) received() []unix.XDPDesc {
	prod := atomic.LoadUint32((*uint32)(unsafe.Pointer(&s.rx[s.off.Rx.Producer])))
	var out []unix.XDPDesc
	for i := uint32(0); i < prod && i < uint32(s.frames); i++ {
		d := s.rx[int(s.off.Rx.Desc)+16*int(i):]
		out = append(out, unix.XDPDesc{Addr: binary.LittleEndian.Uint64(d), Len: binary.LittleEndian.Uint32(d[8:])})
	}
	return out
}

// liveRedirect runs prog on frame in live-frames mode (BPF_PROG_RUN
// really redirects) with a socket bound to lo queue 0 of a private
// namespace in xskmap, and returns what the socket received.
func liveRedirect(t *testing.T, o *bpf.Objects, xskmap *ebpf.Map, prog *ebpf.Program, frame []byte) (*xsk, unix.XDPDesc) {
	t.Helper()
	var (
		s    *xsk
		runE error
	)
	err := inNetns(func() (err error) {
		if s, err = newXSK(); err != nil {
			return err
		}
		if err := xskmap.Put(uint32(0), uint32(s.fd)); err != nil {
			return fmt.Errorf("XSKMAP insert: %w", err)
		}
		const liveFrames = 1 << 1 // BPF_F_TEST_XDP_LIVE_FRAMES
		_, runE = prog.Run(&ebpf.RunOptions{Data: frame, Flags: liveFrames, Repeat: 1})
		return nil
	})
	if err != nil {
		t.Fatalf("AF_XDP socket in a private namespace: %v", err)
	}
	t.Cleanup(s.close)
	if runE != nil {
		t.Fatalf("live-frames BPF_PROG_RUN (kernel >= 5.18): %v", runE)
	}
	descs := s.received()
	if len(descs) != 1 {
		t.Fatalf("socket received %d frames, want 1 (decision counters %v)", len(descs), stats(t, o))
	}
	d := descs[0]
	if got := s.umem[d.Addr : d.Addr+uint64(d.Len)]; !bytes.Equal(got, frame) {
		t.Errorf("frame in the socket differs from the one sent:\n got %x\nwant %x", got, frame)
	}
	return s, d
}

func TestOutsideRedirectReachesSocket(t *testing.T) {
	o := load(t)
	outsideFixture(t, o)
	liveRedirect(t, o, o.XsksOutside, o.XdpOutside, ipv4(protoUDP, peer4, local4, udp(4500, 4500, esp(knownSPI, 64))))
	if s := stats(t, o); s[bpf.CgwStatOutRedirect] != 1 {
		t.Errorf("out_redirect %d, want 1", s[bpf.CgwStatOutRedirect])
	}
}

// DESIGN §3: the tunnel id written with bpf_xdp_adjust_meta must reach the
// AF_XDP socket in copy mode (the only mode veth offers here).
func TestInsideMetadataReachesSocket(t *testing.T) {
	o := load(t)
	insideFixture(t, o)
	frame := ipv4(protoUDP, "198.18.0.50", "198.19.1.1", udp(1000, 2000, []byte("metadata check payload")))
	s, d := liveRedirect(t, o, o.XsksInside, o.XdpInside, frame)
	metaLen := uint64(unsafe.Sizeof(bpf.CgwXdpMeta{}))
	if d.Addr%uint64(s.frameSize) < metaLen {
		t.Fatalf("no room for metadata before the frame (offset %d in its UMEM frame)", d.Addr%uint64(s.frameSize))
	}
	m := s.umem[d.Addr-metaLen : d.Addr]
	tun, magic := binary.LittleEndian.Uint32(m), binary.LittleEndian.Uint32(m[4:])
	if magic != uint32(bpf.CgwLimitsMetaMagic) || tun != tunUp {
		t.Errorf("metadata in front of the frame: tunnel %d magic %#x, want tunnel %d magic %#x (copy mode drops XDP metadata?)",
			tun, magic, tunUp, uint32(bpf.CgwLimitsMetaMagic))
	}
	t.Logf("frame at UMEM offset %d (frame %d, +%d), metadata tunnel %d", d.Addr, d.Addr/uint64(s.frameSize), d.Addr%uint64(s.frameSize), tun)
}

// A dataplane that dies closes its sockets, and the kernel removes them
// from the XSKMAPs; with the programs still attached (pinned links) the
// frames they steered must be dropped, not passed to the kernel in clear.
func TestSocketGoneDrops(t *testing.T) {
	o := load(t)
	outsideFixture(t, o)
	insideFixture(t, o)
	var s *xsk
	err := inNetns(func() (err error) {
		if s, err = newXSK(); err != nil {
			return err
		}
		for _, m := range []*ebpf.Map{o.XsksInside, o.XsksOutside} {
			if err := m.Put(uint32(0), uint32(s.fd)); err != nil {
				return fmt.Errorf("XSKMAP insert: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("AF_XDP socket in a private namespace: %v", err)
	}
	inner := ipv4(protoUDP, "198.18.0.50", "198.19.1.1", udp(1000, 2000, make([]byte, 32)))
	espFrame := ipv4(protoUDP, peer4, local4, udp(4500, 4500, esp(knownSPI, 64)))
	run(t, o, o.XdpInside, inner, xdpRedirect, bpf.CgwStatInRedirect)
	run(t, o, o.XdpOutside, espFrame, xdpRedirect, bpf.CgwStatOutRedirect)

	s.close() // the dataplane dies; the kernel empties the XSKMAP slots
	run(t, o, o.XdpInside, inner, xdpDrop, bpf.CgwStatInDropNoSocket)
	run(t, o, o.XdpOutside, espFrame, xdpDrop, bpf.CgwStatOutDropNoSocket)
	// IKE still reaches cgw-control.
	run(t, o, o.XdpOutside, ipv4(protoUDP, peer4, local4, udp(500, 500, make([]byte, 40))), xdpPass, bpf.CgwStatOutIke)
}
