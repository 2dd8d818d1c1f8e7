package worker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/dataplane/afxdp"
	"github.com/cgw-project/cgw/dataplane/tables"
)

// WorkerConfig places one worker.
type WorkerConfig struct {
	ID    int
	CPU   int // core to pin the worker's thread to; -1: no pinning
	Queue int // NIC queue of both devices

	Pipeline Config // Frames is set by NewWorker (the worker's UMEM)

	InsideXSKs, OutsideXSKs *ebpf.Map // the XDP programs' XSKMAPs
	Mode                    afxdp.Mode
	Frames                  int // UMEM frames (default 4096, or 4 × RingSize when larger)
	RingSize                int // every ring (default 1024)
	TxBudget                int // copy-mode descriptors per sendto (0: kernel default 32)
	// BindRetry wraps each socket's bind (afxdp.SocketConfig.BindRetry).
	BindRetry func(bind func() error) error
	// UMEM, if set, is the worker's UMEM made ahead by NewUMEM (mapping
	// and pinning it takes milliseconds, which a restart spends better
	// while the maps load). NewWorker owns it, and closes it if it fails.
	UMEM *afxdp.UMEM
}

// NewUMEM makes the UMEM NewWorker would make for cfg.
func NewUMEM(cfg WorkerConfig) (*afxdp.UMEM, error) {
	cfg.setDefaults()
	u, err := afxdp.NewUMEM(afxdp.UMEMConfig{Frames: cfg.Frames, FillSize: cfg.RingSize, CompletionSize: cfg.RingSize})
	if err != nil {
		return nil, fmt.Errorf("worker %d: %w", cfg.ID, err)
	}
	return u, nil
}

func (cfg *WorkerConfig) setDefaults() {
	if cfg.RingSize == 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.Frames == 0 {
		// Two fill rings, a receive ring's worth and what is in transmit:
		// four rings' worth of frames keeps the fill rings full.
		cfg.Frames = max(afxdp.DefaultFrames, 4*cfg.RingSize)
	}
}

// DefaultRingSize is every AF_XDP ring's size unless set.
const DefaultRingSize = 1024

// Worker is one core's loop: an inside and an outside AF_XDP socket on
// one shared UMEM (XDP_SHARED_UMEM), so a frame received on one device
// is sent on the other in place.
type Worker struct {
	cfg     WorkerConfig
	umem    *afxdp.UMEM
	in, out *afxdp.Socket
	p       *Pipeline
	tables  *tables.Tables
	kernel  chan *KernelBatch
	evfd    int
	tid     atomic.Int32 // the OS thread Run locked (CPUTime)
	stop    atomic.Bool
	done    chan struct{}
	sup     supervision
}

// KernelBatch carries packets a tunnel's kernel interface produced (read
// by the slow path's reader goroutine) to a worker, which encrypts them
// and sends the batch back on Done for reuse.
type KernelBatch struct {
	Tunnel uint32
	Bufs   [][]byte // packets are Bufs[i][:Sizes[i]], IP without Ethernet
	Sizes  []int
	N      int
	Done   chan *KernelBatch
}

// NewKernelBatch returns a batch of n buffers of size bytes.
func NewKernelBatch(n, size int) *KernelBatch {
	b := &KernelBatch{Bufs: make([][]byte, n), Sizes: make([]int, n), Done: make(chan *KernelBatch, 1)}
	for i := range b.Bufs {
		b.Bufs[i] = make([]byte, size)
	}
	return b
}

// NewWorker creates the worker's UMEM (unless cfg.UMEM) and sockets,
// fills the fill rings and registers the sockets in the XSKMAPs: from then
// on the XDP programs steer to them and frames wait in the RX rings until
// Run. Call it on a thread in the devices' network namespace.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	cfg.setDefaults()
	u := cfg.UMEM
	if u == nil {
		var err error
		if u, err = NewUMEM(cfg); err != nil {
			return nil, err
		}
	}
	cfg.UMEM = nil // the worker's from here (w.umem)
	var err error
	w := &Worker{cfg: cfg, umem: u, kernel: make(chan *KernelBatch, 16), done: make(chan struct{}), evfd: -1}
	fail := func(err error) (*Worker, error) {
		w.Close()
		return nil, fmt.Errorf("worker %d (queue %d): %w", cfg.ID, cfg.Queue, err)
	}
	sc := func(ifindex int) afxdp.SocketConfig {
		return afxdp.SocketConfig{Ifindex: ifindex, Queue: cfg.Queue, Mode: cfg.Mode, RxSize: cfg.RingSize, TxSize: cfg.RingSize,
			FillSize: cfg.RingSize, CompletionSize: cfg.RingSize, TxBudget: cfg.TxBudget, BindRetry: cfg.BindRetry}
	}
	if w.out, err = afxdp.NewSocket(u, sc(cfg.Pipeline.OutsideIfindex)); err != nil {
		return fail(fmt.Errorf("outside socket: %w", err))
	}
	if w.in, err = afxdp.NewSocket(u, sc(cfg.Pipeline.InsideIfindex)); err != nil {
		return fail(fmt.Errorf("inside socket (shared UMEM): %w", err))
	}
	if w.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return fail(fmt.Errorf("eventfd: %w", err))
	}
	pc := cfg.Pipeline
	pc.Frames = u
	if w.p, err = New(pc); err != nil {
		return fail(err)
	}
	w.tables = pc.Tables
	// Frames for the kernel before the sockets are steered to: what
	// arrives before Run waits in the RX rings instead of being dropped
	// for want of a buffer (a restart's first packets, issue #9).
	w.refill()
	if cfg.OutsideXSKs != nil {
		if err := w.out.Register(cfg.OutsideXSKs); err != nil {
			return fail(fmt.Errorf("registering the outside socket in the XSKMAP: %w", err))
		}
	}
	if cfg.InsideXSKs != nil {
		if err := w.in.Register(cfg.InsideXSKs); err != nil {
			return fail(fmt.Errorf("registering the inside socket in the XSKMAP: %w", err))
		}
	}
	return w, nil
}

// Pipeline returns the worker's pipeline (for its counters).
func (w *Worker) Pipeline() *Pipeline { return w.p }

// ID returns the worker's number.
func (w *Worker) ID() int { return w.cfg.ID }

// Modes returns the AF_XDP modes obtained on the inside and outside
// devices.
func (w *Worker) Modes() (inside, outside afxdp.Mode) { return w.in.Mode(), w.out.Mode() }

// SocketStats returns the sockets' counters (a syscall each).
func (w *Worker) SocketStats() (inside, outside afxdp.Stats, err error) {
	inside, err1 := w.in.Stats()
	outside, err2 := w.out.Stats()
	return inside, outside, errors.Join(err1, err2)
}

// Kernel hands a batch from a tunnel's kernel interface to the worker.
// It blocks while the worker's queue is full (backpressure on the TUN
// reader) and returns false once the worker stopped.
func (w *Worker) Kernel(b *KernelBatch) bool {
	select {
	case w.kernel <- b:
	case <-w.done:
		return false
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(w.evfd, one[:])
	return true
}

// spinRounds is how many empty rounds a worker busy-polls before it
// sleeps in poll(2): long enough to catch the next burst without a
// wakeup, short enough not to burn an idle core.
const spinRounds = 256

// Run is the worker loop; it returns after Stop. It pins its thread. A
// panic in the loop is recovered and the loop restarted on the same
// queue (supervise_linux.go): one worker's bug does not stop the others.
func (w *Worker) Run() error {
	defer close(w.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	w.noteThread()
	defer w.tid.Store(0)
	if w.cfg.CPU >= 0 {
		var set unix.CPUSet
		set.Set(w.cfg.CPU)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("worker %d: pinning to CPU %d: %w (is the CPU online? check gateway.dataplane.cpus)", w.cfg.ID, w.cfg.CPU, err)
		}
	}
	l := w.newLoop()
	for !w.serve(l) {
	}
	return nil
}

// loop is the state of Run's loop, kept across a restart after a panic.
type loop struct {
	descs []afxdp.Desc
	pkts  []Packet
	out   *Output
	txd   []afxdp.Desc
	fds   []unix.PollFd
	// busy: pkts and out hold the frames of a batch between receive and
	// transmit, which a panic would otherwise leak.
	busy bool
}

func (w *Worker) newLoop() *loop {
	out := w.p.NewOutput()
	return &loop{
		descs: make([]afxdp.Desc, w.p.cfg.Batch),
		pkts:  w.p.NewBatch(),
		out:   out,
		txd:   make([]afxdp.Desc, cap(out.Outside)),
		fds:   []unix.PollFd{{Fd: int32(w.in.Fd()), Events: unix.POLLIN}, {Fd: int32(w.out.Fd()), Events: unix.POLLIN}, {Fd: int32(w.evfd), Events: unix.POLLIN}},
	}
}

// run is the loop proper, until Stop.
func (w *Worker) run(l *loop) {
	var evbuf [8]byte
	w.refill()
	idle := 0
	for !w.stop.Load() {
		v := w.tables.Load()
		work := 0

		// Inside → outside.
		if n := w.in.Receive(l.descs); n > 0 {
			work += n
			w.receive(l, n)
			if v == nil {
				w.freeAll(l.pkts)
			} else {
				w.p.Outbound(v, l.pkts, l.out)
			}
			l.busy = false
			w.transmit(w.out, l.out.Outside, l.txd)
			w.transmit(w.in, l.out.Inside, l.txd)
		}

		// Outside → inside.
		if n := w.out.Receive(l.descs); n > 0 {
			work += n
			w.receive(l, n)
			if v == nil {
				w.freeAll(l.pkts)
			} else {
				w.p.Inbound(v, l.pkts, l.out)
			}
			l.busy = false
			w.transmit(w.in, l.out.Inside, l.txd)
		}

		// The kernel's own packets into the tunnels.
		select {
		case kb := <-w.kernel:
			work += kb.N
			w.fromKernel(v, kb, l)
		default:
		}

		w.in.Complete()
		w.out.Complete()
		w.refill()

		if work > 0 {
			idle = 0
			continue
		}
		if idle++; idle < spinRounds {
			w.p.c.Idle++
			continue
		}
		idle = 0
		w.p.c.Wakeups++
		// What transmit counted after the last batch, before sleeping.
		w.p.publish()
		if _, err := unix.Poll(l.fds, 100); err == nil && l.fds[2].Revents != 0 {
			unix.Read(w.evfd, evbuf[:])
		}
	}
}

// refill hands free frames to both sockets' fill rings, keeping a
// batch's worth (with fragments) for transmit.
func (w *Worker) refill() {
	reserve := w.p.cfg.Batch * maxFragments
	for _, s := range [...]*afxdp.Socket{w.out, w.in} {
		if free := w.umem.FreeFrames() - reserve; free > 0 {
			s.Fill(min(free, s.FillFree()))
		}
	}
}

// receive makes the n descriptors received into l's batch.
func (w *Worker) receive(l *loop, n int) {
	l.pkts = l.pkts[:0]
	for _, d := range l.descs[:n] {
		l.pkts = append(l.pkts, w.packet(d))
	}
	l.out.Reset()
	l.busy = true
	w.hook()
}

func (w *Worker) packet(d afxdp.Desc) Packet {
	base := w.umem.FrameBase(d.Addr)
	return Packet{Buf: w.umem.Frame(d.Addr), Addr: d.Addr, Off: int(d.Addr - base), Len: int(d.Len)}
}

func (w *Worker) freeAll(pkts []Packet) {
	for _, pk := range pkts {
		w.umem.Free(pk.Addr)
	}
}

// transmit queues the packets on s; what the ring refuses is dropped.
func (w *Worker) transmit(s *afxdp.Socket, pkts []Packet, txd []afxdp.Desc) {
	for len(pkts) > 0 {
		n := min(len(pkts), len(txd))
		for i, pk := range pkts[:n] {
			txd[i] = afxdp.Desc{Addr: w.umem.FrameBase(pk.Addr) + uint64(pk.Off), Len: uint32(pk.Len)}
		}
		sent := s.Transmit(txd[:n])
		for _, d := range txd[sent:n] {
			w.umem.Free(d.Addr)
			w.p.c.RingFull++
			w.p.c.drop(StageTx, uint8(RingFull))
		}
		pkts = pkts[n:]
	}
}

func (w *Worker) fromKernel(v *tables.View, kb *KernelBatch, l *loop) {
	defer func() { kb.Done <- kb }()
	if v == nil {
		return
	}
	off := w.umem.DataOffset()
	for start := 0; start < kb.N; start += w.p.cfg.Batch {
		l.pkts = l.pkts[:0]
		l.out.Reset()
		l.busy = true
		for i := start; i < kb.N && i < start+w.p.cfg.Batch; i++ {
			a, ok := w.umem.Alloc()
			if !ok {
				w.p.c.drop(StageSlowPath, uint8(NoFrames))
				continue
			}
			fb := w.umem.Frame(a)
			n := copy(fb[off:], kb.Bufs[i][:kb.Sizes[i]])
			l.pkts = append(l.pkts, Packet{Buf: fb, Addr: a, Off: off, Len: n})
		}
		w.p.FromKernel(v, kb.Tunnel, l.pkts, l.out)
		l.busy = false
		w.transmit(w.out, l.out.Outside, l.txd)
		w.transmit(w.in, l.out.Inside, l.txd)
	}
}

// Stop asks Run to return and waits until it has (if it was started).
func (w *Worker) Stop() {
	w.stop.Store(true)
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if w.evfd >= 0 {
		unix.Write(w.evfd, one[:])
	}
}

// Done is closed when Run has returned.
func (w *Worker) Done() <-chan struct{} { return w.done }

// Close unregisters and closes the sockets and the UMEM. Call it after
// Run returned (or if it never ran).
func (w *Worker) Close() error {
	var errs []error
	if w.in != nil {
		if w.cfg.InsideXSKs != nil {
			w.in.Unregister(w.cfg.InsideXSKs)
		}
		errs = append(errs, w.in.Close())
	}
	if w.out != nil {
		if w.cfg.OutsideXSKs != nil {
			w.out.Unregister(w.cfg.OutsideXSKs)
		}
		errs = append(errs, w.out.Close())
	}
	if w.umem != nil {
		errs = append(errs, w.umem.Close())
	}
	if w.evfd >= 0 {
		unix.Close(w.evfd)
		w.evfd = -1
	}
	return errors.Join(errs...)
}

// Wait blocks until Run returns or the timeout passes.
func (w *Worker) Wait(d time.Duration) bool {
	select {
	case <-w.done:
		return true
	case <-time.After(d):
		return false
	}
}
