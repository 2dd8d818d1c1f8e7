package afxdp

import (
	"fmt"
	"math/bits"
)

const (
	// DefaultHeadroom is the headroom registered in every frame. The ESP
	// engine prepends outer IPv4 (20) + UDP (8, NAT-T, RFC 3948) + ESP
	// header (8) + IV (16) = 52 bytes in front of the inner packet; 128
	// leaves room for that, for IPv6 later and keeps the data cache-aligned.
	// The kernel's own XDP_PACKET_HEADROOM (256) comes on top, see
	// UMEM.DataOffset.
	DefaultHeadroom = 128
	// DefaultFrameSize holds a 1500-byte frame plus all the encapsulation
	// and the ESP trailer without a second thought, and is page-aligned.
	DefaultFrameSize = 4096
	// DefaultFrames is the number of frames in a UMEM (16 MiB at 4096).
	DefaultFrames = 4096
	// DefaultRingSize is the default size of every ring.
	DefaultRingSize = 2048

	// xdpPacketHeadroom is the kernel's XDP_PACKET_HEADROOM: received data
	// starts this far after the registered headroom.
	xdpPacketHeadroom = 256
	// minFrameTail is the least room the kernel wants after the registered
	// headroom (measured: headroom must be ≤ frame size − 704, DESIGN §4).
	minFrameTail = 704
)

// UMEMConfig sizes a UMEM. Zero fields take the defaults above.
type UMEMConfig struct {
	Frames    int // number of frames
	FrameSize int // 2048 or 4096 (aligned mode needs a power of two)
	Headroom  int // bytes the kernel leaves free at the start of each frame
	// FillSize and CompletionSize size the fill and completion rings of the
	// first socket; sockets that share the UMEM on another device or queue
	// get their own, sized by SocketConfig.
	FillSize       int
	CompletionSize int
}

func (c *UMEMConfig) setDefaults() error {
	if c.Frames == 0 {
		c.Frames = DefaultFrames
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.Headroom == 0 {
		c.Headroom = DefaultHeadroom
	}
	if c.FillSize == 0 {
		c.FillSize = DefaultRingSize
	}
	if c.CompletionSize == 0 {
		c.CompletionSize = DefaultRingSize
	}
	if c.FrameSize != 2048 && c.FrameSize != 4096 {
		return fmt.Errorf("afxdp: frame size must be 2048 or 4096 (got %d)", c.FrameSize)
	}
	if c.Frames < 1 || c.Frames > 1<<20 {
		return fmt.Errorf("afxdp: number of frames must be 1..%d (got %d)", 1<<20, c.Frames)
	}
	if c.Headroom < 0 || c.Headroom > c.FrameSize-minFrameTail {
		return fmt.Errorf("afxdp: headroom must be 0..%d for %d-byte frames (got %d)",
			c.FrameSize-minFrameTail, c.FrameSize, c.Headroom)
	}
	if err := checkRingSize("fill", c.FillSize); err != nil {
		return err
	}
	return checkRingSize("completion", c.CompletionSize)
}

func checkRingSize(name string, n int) error {
	if n <= 0 || n&(n-1) != 0 || n > 1<<20 {
		return fmt.Errorf("afxdp: %s ring size must be a power of two up to %d (got %d)", name, 1<<20, n)
	}
	return nil
}

// UMEM is the frame memory shared with the kernel, with the free-frame list
// of the one worker that owns it.
type UMEM struct {
	mem        []byte
	frameSize  uint64
	frameShift uint
	frameMask  uint64 // frameSize - 1
	headroom   uint64
	free       freeList

	sys umemSys // OS part: the registering socket and its rings
}

// newUMEM builds the portable part over mem, every frame free.
func newUMEM(mem []byte, cfg UMEMConfig) *UMEM {
	u := &UMEM{
		mem:        mem,
		frameSize:  uint64(cfg.FrameSize),
		frameShift: uint(bits.TrailingZeros(uint(cfg.FrameSize))),
		frameMask:  uint64(cfg.FrameSize - 1),
		headroom:   uint64(cfg.Headroom),
	}
	u.free = newFreeList(cfg.Frames, u.frameShift)
	// Pushed high to low so frames are handed out from address 0 up.
	for i := cfg.Frames - 1; i >= 0; i-- {
		u.free.push(uint64(i) << u.frameShift)
	}
	return u
}

// Frames returns the number of frames.
func (u *UMEM) Frames() int { return len(u.mem) >> u.frameShift }

// FrameSize returns the size of a frame in bytes.
func (u *UMEM) FrameSize() int { return int(u.frameSize) }

// Headroom returns the registered headroom.
func (u *UMEM) Headroom() int { return int(u.headroom) }

// DataOffset is where, from the start of a frame, the kernel puts received
// data (registered headroom + XDP_PACKET_HEADROOM, measured in copy mode on
// veth), and where DescAt puts data to transmit so that both directions share
// one layout. Everything before it may be used to prepend headers.
func (u *UMEM) DataOffset() int { return int(u.headroom) + xdpPacketHeadroom }

// MaxData is the most bytes a descriptor may carry: a frame less the
// registered headroom.
func (u *UMEM) MaxData() int { return int(u.frameSize - u.headroom) }

// FreeFrames returns how many frames are in the free list.
func (u *UMEM) FreeFrames() int { return u.free.len() }

// Alloc takes a frame from the free list and returns its address.
func (u *UMEM) Alloc() (addr uint64, ok bool) { return u.free.pop() }

// Free returns the frame holding addr (any address inside the frame, e.g. a
// descriptor's Addr) to the free list. A frame already free is ignored and
// counted in Stats.DoubleFree.
func (u *UMEM) Free(addr uint64) { u.free.push(addr) }

// Reclaim returns the frame holding addr to the free list unless it is
// there already (not counted as a double free): a worker recovering from
// a panic gives back the frames of the batch it was handling, some of
// which the pipeline had freed.
func (u *UMEM) Reclaim(addr uint64) {
	if !u.free.has(addr) {
		u.free.push(addr)
	}
}

// FrameBase returns the address of the frame holding addr.
func (u *UMEM) FrameBase(addr uint64) uint64 { return addr &^ u.frameMask }

// Frame returns the whole frame holding addr.
func (u *UMEM) Frame(addr uint64) []byte {
	b := addr &^ u.frameMask
	return u.mem[b : b+u.frameSize : b+u.frameSize]
}

// Data returns the bytes of d. The capacity runs to the end of d's frame so
// a trailer (ESP padding and ICV) can be appended in place; d must be valid
// (every descriptor from Receive is).
func (u *UMEM) Data(d Desc) []byte {
	end := (d.Addr &^ u.frameMask) + u.frameSize
	return u.mem[d.Addr : d.Addr+uint64(d.Len) : end]
}

// Metadata returns the n bytes just before d's data: where an XDP program's
// bpf_xdp_adjust_meta metadata lands (it reaches the socket in copy mode on
// Linux 6.18, TestMetadataCopyMode). It returns nil when d's frame has fewer
// than n bytes before the data. Whether the program wrote metadata at all is
// for the program and the worker to agree on (e.g. a magic value).
func (u *UMEM) Metadata(d Desc, n int) []byte {
	if n < 0 || d.Addr&u.frameMask < uint64(n) || d.Addr > uint64(len(u.mem)) {
		return nil
	}
	return u.mem[d.Addr-uint64(n) : d.Addr : d.Addr]
}

// DescAt returns the descriptor for n bytes placed at DataOffset in the frame
// holding addr.
func (u *UMEM) DescAt(addr uint64, n int) Desc {
	return Desc{Addr: (addr &^ u.frameMask) + uint64(u.DataOffset()), Len: uint32(n)}
}

// Valid reports whether d may be given to the kernel: non-empty, inside the
// UMEM, not crossing a frame boundary (the kernel drops such a descriptor
// and, measured on veth, the TX ring stalls), at most MaxData bytes, and no
// options (multi-buffer and TX metadata are not enabled).
func (u *UMEM) Valid(d Desc) bool {
	n := uint64(d.Len)
	return n != 0 && n <= u.frameSize-u.headroom && d.Options == 0 &&
		d.Addr < uint64(len(u.mem)) && // also keeps Addr+n from overflowing
		d.Addr&^u.frameMask == (d.Addr+n-1)&^u.frameMask
}

// CheckDesc explains why d is not Valid, for error messages and tests; nil
// when it is.
func (u *UMEM) CheckDesc(d Desc) error {
	switch {
	case d.Len == 0:
		return fmt.Errorf("afxdp: descriptor at %#x has length 0", d.Addr)
	case uint64(d.Len) > u.frameSize-u.headroom:
		return fmt.Errorf("afxdp: descriptor at %#x is %d bytes, more than frame size %d less headroom %d",
			d.Addr, d.Len, u.frameSize, u.headroom)
	case d.Options != 0:
		return fmt.Errorf("afxdp: descriptor at %#x has options %#x; multi-buffer and TX metadata are not enabled", d.Addr, d.Options)
	case d.Addr >= uint64(len(u.mem)):
		return fmt.Errorf("afxdp: descriptor address %#x is outside the %d-byte UMEM", d.Addr, len(u.mem))
	case d.Addr&^u.frameMask != (d.Addr+uint64(d.Len)-1)&^u.frameMask:
		return fmt.Errorf("afxdp: descriptor at %#x, %d bytes, crosses a %d-byte frame boundary", d.Addr, d.Len, u.frameSize)
	}
	return nil
}
