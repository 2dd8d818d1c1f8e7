package afxdp

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Mode is how the kernel moves packets between the device and the UMEM.
type Mode int

const (
	// ModeAuto asks for zero-copy and lets the kernel fall back to copy
	// mode; Socket.Mode tells which one was obtained.
	ModeAuto Mode = iota
	// ModeCopy forces copy mode (the only one veth offers).
	ModeCopy
	// ModeZeroCopy fails unless the driver does zero-copy.
	ModeZeroCopy
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeCopy:
		return "copy"
	case ModeZeroCopy:
		return "zero-copy"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// SocketConfig says where a socket binds and how big its rings are. Zero
// sizes take DefaultRingSize.
type SocketConfig struct {
	Ifindex int // device, in the network namespace of the calling thread
	Queue   int // receive/transmit queue of that device
	// Mode applies to the first socket of a UMEM only: sockets sharing it
	// inherit its mode and wakeup setting (the kernel refuses flags with
	// XDP_SHARED_UMEM).
	Mode   Mode
	RxSize int
	TxSize int
	// FillSize and CompletionSize size the socket's own fill and completion
	// rings, made when it shares the UMEM on another device or queue.
	FillSize       int
	CompletionSize int
	// TxBudget raises how many descriptors one copy-mode sendto() sends
	// (XDP_MAX_TX_SKB_BUDGET, Linux ≥ 6.17; 32 ≤ TxBudget ≤ TxSize). Zero
	// keeps the kernel's 32.
	TxBudget int
	// NoNeedWakeup turns off XDP_USE_NEED_WAKEUP, so every Transmit kicks
	// the kernel; with it on, the kernel says when a kick is needed (always,
	// in copy mode).
	NoNeedWakeup bool
	// BindRetry, if set, calls bind until it is content with the result:
	// a restarted process retries EBUSY while the kernel still releases
	// its predecessor's sockets. Only bind(2) is repeated; the rings are
	// set up once (the kernel refuses to set them up twice).
	BindRetry func(bind func() error) error
}

// Socket is an AF_XDP socket bound to one queue of one device, with its RX
// and TX rings and the fill and completion rings of that queue.
type Socket struct {
	u          *UMEM
	fd         int
	ownsFd     bool // false for the UMEM's registering socket
	q          *queueRings
	ownsRings  bool
	rx, tx     descRing
	rxMem      []byte
	txMem      []byte
	ifindex    int
	queue      int
	mode       Mode
	needWakeup bool
	pfd        [1]unix.PollFd
	c          counters
	lastErr    error
}

type counters struct {
	rxPackets, txPackets, txInvalid, txRingFull   uint64
	txWakeups, rxWakeups, txKickErrors, completed uint64
}

// NewSocket creates a socket on u and binds it to cfg.Ifindex/cfg.Queue. The
// first socket of a UMEM uses the UMEM's own fill and completion rings; later
// ones bind with XDP_SHARED_UMEM, so one frame can be received on one device
// and transmitted on another without a copy. Call it on a thread in the
// device's network namespace. If the UMEM's first NewSocket fails, close the
// UMEM and start again: the kernel keeps part of the setup on its socket.
func NewSocket(u *UMEM, cfg SocketConfig) (*Socket, error) {
	if u.mem == nil {
		return nil, errors.New("afxdp: NewSocket on a closed UMEM")
	}
	for _, r := range []struct {
		name string
		n    *int
	}{{"RX", &cfg.RxSize}, {"TX", &cfg.TxSize}, {"fill", &cfg.FillSize}, {"completion", &cfg.CompletionSize}} {
		if *r.n == 0 {
			*r.n = DefaultRingSize
		}
		if err := checkRingSize(r.name, *r.n); err != nil {
			return nil, err
		}
	}
	if cfg.Ifindex <= 0 || cfg.Queue < 0 {
		return nil, fmt.Errorf("afxdp: socket needs an interface index > 0 and a queue ≥ 0 (got %d, %d)", cfg.Ifindex, cfg.Queue)
	}
	s := &Socket{u: u, ifindex: cfg.Ifindex, queue: cfg.Queue}
	sa := &unix.SockaddrXDP{Ifindex: uint32(cfg.Ifindex), QueueID: uint32(cfg.Queue)}
	first := u.sys.first
	if first == nil {
		s.fd, s.q = u.sys.fd, u.sys.rings
		switch cfg.Mode {
		case ModeCopy:
			sa.Flags |= unix.XDP_COPY
		case ModeZeroCopy:
			sa.Flags |= unix.XDP_ZEROCOPY
		}
		if !cfg.NoNeedWakeup {
			sa.Flags |= unix.XDP_USE_NEED_WAKEUP
		}
		s.needWakeup = !cfg.NoNeedWakeup
	} else {
		fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("afxdp: creating an AF_XDP socket: %w", err)
		}
		s.fd, s.ownsFd = fd, true
		if cfg.Ifindex == first.ifindex && cfg.Queue == first.queue {
			// Same queue: the kernel shares the buffer pool and refuses
			// rings of our own.
			s.q = first.q
		} else {
			q, err := newQueueRings(fd, cfg.FillSize, cfg.CompletionSize)
			if err != nil {
				unix.Close(fd)
				return nil, err
			}
			s.q, s.ownsRings = q, true
		}
		sa.Flags = unix.XDP_SHARED_UMEM
		sa.SharedUmemFD = uint32(u.sys.fd)
		s.needWakeup = first.needWakeup
	}
	if err := s.setup(cfg, sa); err != nil {
		s.release()
		return nil, err
	}
	if first == nil {
		u.sys.first = s
	}
	u.sys.users++
	s.pfd[0] = unix.PollFd{Fd: int32(s.fd)}
	return s, nil
}

func (s *Socket) setup(cfg SocketConfig, sa *unix.SockaddrXDP) error {
	if err := setRingSize(s.fd, unix.XDP_RX_RING, "RX", cfg.RxSize); err != nil {
		return err
	}
	if err := setRingSize(s.fd, unix.XDP_TX_RING, "TX", cfg.TxSize); err != nil {
		return err
	}
	off, err := mmapOffsets(s.fd)
	if err != nil {
		return err
	}
	var p, c, f *uint32
	var d unsafe.Pointer
	if s.rxMem, p, c, f, d, err = mmapRing(s.fd, unix.XDP_PGOFF_RX_RING, off.Rx, cfg.RxSize, unsafe.Sizeof(Desc{}), "RX"); err != nil {
		return err
	}
	s.rx = descRing{newConsumerIndex(p, c, f, uint32(cfg.RxSize)), unsafe.Slice((*Desc)(d), cfg.RxSize)}
	if s.txMem, p, c, f, d, err = mmapRing(s.fd, unix.XDP_PGOFF_TX_RING, off.Tx, cfg.TxSize, unsafe.Sizeof(Desc{}), "TX"); err != nil {
		return err
	}
	s.tx = descRing{newProducerIndex(p, c, f, uint32(cfg.TxSize)), unsafe.Slice((*Desc)(d), cfg.TxSize)}

	if cfg.TxBudget != 0 {
		v := uint32(cfg.TxBudget)
		if err := setsockopt(s.fd, unix.XDP_MAX_TX_SKB_BUDGET, unsafe.Pointer(&v), 4); err != nil {
			return fmt.Errorf("afxdp: setting the copy-mode TX budget to %d: %w (needs Linux ≥ 6.17 and 32 ≤ budget ≤ TX ring size %d; or leave TxBudget 0)",
				cfg.TxBudget, err, cfg.TxSize)
		}
	}
	bind := func() error { return unix.Bind(s.fd, sa) }
	if cfg.BindRetry != nil {
		err = cfg.BindRetry(bind)
	} else {
		err = bind()
	}
	if err != nil {
		hint := ""
		switch {
		case errors.Is(err, unix.ENODEV):
			hint = " (no such interface in this thread's network namespace)"
		case errors.Is(err, unix.EBUSY):
			hint = " (another AF_XDP socket already holds this queue)"
		case errors.Is(err, unix.EOPNOTSUPP):
			hint = " (the driver has no zero-copy support: use ModeAuto or ModeCopy)"
		case errors.Is(err, unix.EINVAL):
			hint = " (queue out of range for the device, or a shared UMEM whose mode the device cannot match)"
		}
		what := "mode " + cfg.Mode.String()
		if sa.Flags&unix.XDP_SHARED_UMEM != 0 {
			what = "shared UMEM"
		}
		return fmt.Errorf("afxdp: binding to interface %d queue %d (%s): %w%s", s.ifindex, s.queue, what, err, hint)
	}
	var opts uint32
	n := uint32(4)
	if err := getsockopt(s.fd, unix.XDP_OPTIONS, unsafe.Pointer(&opts), &n); err != nil {
		return fmt.Errorf("afxdp: reading socket options: %w", err)
	}
	s.mode = ModeCopy
	if opts&unix.XDP_OPTIONS_ZEROCOPY != 0 {
		s.mode = ModeZeroCopy
	}
	return nil
}

func (s *Socket) release() {
	if s.rxMem != nil {
		unix.Munmap(s.rxMem)
		s.rxMem = nil
	}
	if s.txMem != nil {
		unix.Munmap(s.txMem)
		s.txMem = nil
	}
	if s.ownsRings {
		s.q.unmap()
		s.ownsRings = false
	}
	if s.ownsFd {
		unix.Close(s.fd)
		s.ownsFd = false
	}
}

// Close unmaps the socket's rings and closes it. Frames it held in the kernel
// are not returned to the free list. The UMEM's first socket stays bound
// until the UMEM is closed (its file descriptor holds the registration).
func (s *Socket) Close() error {
	if s.u == nil {
		return nil
	}
	s.release()
	s.u.sys.users--
	s.u = nil
	return nil
}

// Fd returns the socket's file descriptor (for an XSKMAP, or poll).
func (s *Socket) Fd() int { return s.fd }

// Queue returns the queue the socket is bound to.
func (s *Socket) Queue() int { return s.queue }

// Ifindex returns the interface the socket is bound to.
func (s *Socket) Ifindex() int { return s.ifindex }

// Mode returns the mode obtained: ModeCopy or ModeZeroCopy.
func (s *Socket) Mode() Mode { return s.mode }

// UMEM returns the UMEM the socket uses.
func (s *Socket) UMEM() *UMEM { return s.u }

// Register puts the socket into an XSKMAP at key = its queue, which is what
// an XDP program redirecting to XSKMAP[ctx->rx_queue_index] expects.
func (s *Socket) Register(xsks *ebpf.Map) error {
	if err := xsks.Put(uint32(s.queue), uint32(s.fd)); err != nil {
		return fmt.Errorf("afxdp: inserting the socket for queue %d into XSKMAP %v: %w", s.queue, xsks, err)
	}
	return nil
}

// Unregister removes the socket's queue from an XSKMAP.
func (s *Socket) Unregister(xsks *ebpf.Map) error {
	if err := xsks.Delete(uint32(s.queue)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("afxdp: removing queue %d from XSKMAP %v: %w", s.queue, xsks, err)
	}
	return nil
}

// Receive moves up to len(descs) received descriptors into descs and returns
// how many. The frames become the caller's: pass each to Transmit (on this or
// another socket of the UMEM) or UMEM.Free.
func (s *Socket) Receive(descs []Desc) int {
	idx, n := s.rx.peek(uint32(len(descs)))
	if n == 0 {
		return 0
	}
	for i := uint32(0); i < n; i++ {
		descs[i] = s.rx.entries[(idx+i)&s.rx.mask]
	}
	s.rx.release()
	s.c.rxPackets += uint64(n)
	return int(n)
}

// Fill moves up to n frames from the free list to the fill ring, for the
// kernel to receive into, and returns how many.
func (s *Socket) Fill(n int) int {
	n = min(n, s.u.free.len())
	if n <= 0 {
		return 0
	}
	r := &s.q.fill
	idx, got := r.reserve(uint32(n))
	for i := uint32(0); i < got; i++ {
		addr, _ := s.u.free.pop()
		r.entries[(idx+i)&r.mask] = addr
	}
	if got > 0 {
		r.submit()
	}
	// A zero-copy driver that ran out of fill entries sleeps until kicked.
	if s.needWakeup && r.needsWakeup() {
		unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		s.c.rxWakeups++
	}
	return int(got)
}

// Refill moves as many free frames to the fill ring as it has room for. Call
// it once per batch; the kernel drops what arrives when the fill ring is
// empty (Stats.RxFillRingEmpty).
func (s *Socket) Refill() int { return s.Fill(s.FillFree()) }

// FillFree returns the free slots of the fill ring: how many frames Fill
// could place now.
func (s *Socket) FillFree() int { return int(s.q.fill.free(s.q.fill.size)) }

// Transmit queues descriptors from the front of descs and returns how many it
// took (fewer than len(descs) when the TX ring is full; the caller keeps the
// rest). A descriptor that is not UMEM.Valid is not sent: its frame goes back
// to the free list and Stats.TxInvalid counts it. Transmit then kicks the
// kernel as often as needed: in copy mode each sendto() sends at most 32.
func (s *Socket) Transmit(descs []Desc) int {
	want := uint32(len(descs))
	idx, got := s.tx.reserve(want)
	if got < want && s.tx.pending() > 0 {
		// Ring full of descriptors the kernel has not taken: kick, retry.
		s.kick()
		idx2, got2 := s.tx.reserve(want - got)
		if got == 0 {
			idx = idx2
		}
		got += got2
	}
	if got < want {
		s.c.txRingFull++
	}
	j := uint32(0)
	for i := uint32(0); i < got; i++ {
		d := descs[i]
		if !s.u.Valid(d) {
			s.c.txInvalid++
			if d.Addr < uint64(len(s.u.mem)) {
				s.u.free.push(d.Addr)
			}
			continue
		}
		s.tx.entries[(idx+j)&s.tx.mask] = d
		j++
	}
	s.tx.unreserve(got - j)
	if j > 0 {
		s.tx.submit()
		s.c.txPackets += uint64(j)
		s.kick()
	}
	return int(got)
}

// kick tells the kernel to transmit. In copy mode a sendto() sends at most
// 32 descriptors (the kernel's TX batch) and returns EAGAIN when more are
// left, so it loops while the kernel makes progress. A full completion ring
// also stops transmission: then it reaps completions and tries again.
func (s *Socket) kick() {
	if s.needWakeup && !s.tx.needsWakeup() {
		return
	}
	for {
		before := s.tx.pending()
		if before == 0 {
			return
		}
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		s.c.txWakeups++
		after := s.tx.pending()
		if after == 0 {
			return
		}
		if after < before {
			continue
		}
		// No progress.
		if (e == 0 || e == unix.EAGAIN || e == unix.ENOBUFS) && s.Complete() > 0 {
			continue
		}
		switch e {
		case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.ENETDOWN:
			// Transient: the next Transmit or Poll kicks again.
		default:
			s.c.txKickErrors++
			s.lastErr = e
		}
		return
	}
}

// TxPending returns how many queued descriptors the kernel has not yet taken
// from the TX ring.
func (s *Socket) TxPending() int { return int(s.tx.pending()) }

// Kick retries transmission of descriptors still in the TX ring.
func (s *Socket) Kick() { s.kick() }

// Complete returns transmitted frames from the completion ring to the free
// list and returns how many.
func (s *Socket) Complete() int {
	r := &s.q.comp
	idx, n := r.peek(r.size)
	if n == 0 {
		return 0
	}
	for i := uint32(0); i < n; i++ {
		s.u.free.push(r.entries[(idx+i)&r.mask])
	}
	r.release()
	s.c.completed += uint64(n)
	return int(n)
}

// Poll waits up to timeout (negative: forever) for received packets and
// reports whether there are some. With a TX backlog it also kicks.
func (s *Socket) Poll(timeout time.Duration) (bool, error) {
	if s.rx.available(1) > 0 {
		return true, nil
	}
	if s.tx.pending() > 0 {
		s.kick()
	}
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	s.pfd[0].Events, s.pfd[0].Revents = unix.POLLIN, 0
	for {
		n, err := unix.Poll(s.pfd[:], ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("afxdp: poll: %w", err)
		}
		if n > 0 && s.pfd[0].Revents&unix.POLLERR != 0 {
			return false, fmt.Errorf("afxdp: poll: socket error on interface %d queue %d", s.ifindex, s.queue)
		}
		return s.rx.available(1) > 0, nil
	}
}

// Stats are the kernel's counters for the socket (XDP_STATISTICS) and the
// socket's own.
type Stats struct {
	RxDropped       uint64 // kernel: dropped for lack of room (e.g. frame too big)
	RxInvalidDescs  uint64 // kernel: invalid fill-ring addresses
	TxInvalidDescs  uint64 // kernel: invalid TX descriptors
	RxRingFull      uint64 // kernel: dropped because the RX ring was full
	RxFillRingEmpty uint64 // kernel: times the fill ring was found empty
	TxRingEmpty     uint64 // kernel: times the TX ring was found empty

	RxPackets    uint64 // descriptors handed out by Receive
	TxPackets    uint64 // descriptors queued by Transmit
	TxInvalid    uint64 // descriptors Transmit refused (not UMEM.Valid)
	TxRingFull   uint64 // Transmit calls that found the TX ring full
	TxWakeups    uint64 // sendto() kicks
	RxWakeups    uint64 // recvfrom() kicks for the fill ring
	TxKickErrors uint64 // kicks that failed with a non-transient error
	Completed    uint64 // frames reaped from the completion ring
	DoubleFree   uint64 // frames freed while already free (a bug upstream)
}

// Stats reads the kernel's counters (one syscall) and adds the socket's.
func (s *Socket) Stats() (Stats, error) {
	if s.u == nil {
		return Stats{}, errors.New("afxdp: Stats on a closed socket")
	}
	var k unix.XDPStatistics
	n := uint32(unsafe.Sizeof(k))
	err := getsockopt(s.fd, unix.XDP_STATISTICS, unsafe.Pointer(&k), &n)
	if err != nil {
		err = fmt.Errorf("afxdp: reading statistics: %w", err)
	}
	return Stats{
		RxDropped: k.Rx_dropped, RxInvalidDescs: k.Rx_invalid_descs, TxInvalidDescs: k.Tx_invalid_descs,
		RxRingFull: k.Rx_ring_full, RxFillRingEmpty: k.Rx_fill_ring_empty_descs, TxRingEmpty: k.Tx_ring_empty_descs,
		RxPackets: s.c.rxPackets, TxPackets: s.c.txPackets, TxInvalid: s.c.txInvalid, TxRingFull: s.c.txRingFull,
		TxWakeups: s.c.txWakeups, RxWakeups: s.c.rxWakeups, TxKickErrors: s.c.txKickErrors,
		Completed: s.c.completed, DoubleFree: s.u.free.doubleFree,
	}, err
}

// Err returns the last non-transient error a kick met, if any.
func (s *Socket) Err() error { return s.lastErr }
