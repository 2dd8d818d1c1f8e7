package afxdp

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// umemSys is the Linux side of a UMEM: the AF_XDP socket the memory is
// registered on (XDP_UMEM_REG), which also becomes the first Socket, and the
// fill and completion rings made on it.
type umemSys struct {
	fd    int
	rings *queueRings
	first *Socket // the socket bound on fd, once there is one
	users int     // sockets not yet closed
}

// NewUMEM maps and registers a UMEM. Call it on a thread in the network
// namespace of the device its first socket will bind to: that socket is
// the UMEM's own, made here, and binds in the namespace it was made in.
func NewUMEM(cfg UMEMConfig) (*UMEM, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	size := cfg.Frames * cfg.FrameSize
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("afxdp: mapping %d bytes for the UMEM: %w", size, err)
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("afxdp: creating an AF_XDP socket: %w (needs Linux with CONFIG_XDP_SOCKETS and CAP_NET_RAW)", err)
	}
	reg := unix.XDPUmemReg{
		Addr:     uint64(uintptr(unsafe.Pointer(&mem[0]))),
		Len:      uint64(size),
		Size:     uint32(cfg.FrameSize),
		Headroom: uint32(cfg.Headroom),
	}
	if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		unix.Close(fd)
		unix.Munmap(mem)
		hint := ""
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.ENOBUFS) {
			hint = " (locked-memory limit: run as root or with CAP_IPC_LOCK, or raise RLIMIT_MEMLOCK)"
		}
		return nil, fmt.Errorf("afxdp: registering a UMEM of %d frames of %d bytes, headroom %d: %w%s",
			cfg.Frames, cfg.FrameSize, cfg.Headroom, err, hint)
	}
	q, err := newQueueRings(fd, cfg.FillSize, cfg.CompletionSize)
	if err != nil {
		unix.Close(fd)
		unix.Munmap(mem)
		return nil, err
	}
	u := newUMEM(mem, cfg)
	u.sys = umemSys{fd: fd, rings: q}
	return u, nil
}

// Close releases the UMEM. Close its sockets first: the memory is unmapped
// and every slice from Frame or Data becomes invalid.
func (u *UMEM) Close() error {
	if u.mem == nil {
		return nil
	}
	if u.sys.users > 0 {
		return fmt.Errorf("afxdp: closing a UMEM still used by %d sockets; close them first", u.sys.users)
	}
	u.sys.rings.unmap()
	err := unix.Close(u.sys.fd)
	if e := unix.Munmap(u.mem); err == nil {
		err = e
	}
	u.mem = nil
	return err
}
