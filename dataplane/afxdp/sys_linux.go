package afxdp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// x/sys/unix has the AF_XDP constants and structs but no typed setsockopt
// for them.
func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockopt(fd, opt int, p unsafe.Pointer, n *uint32) error {
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(n)), 0)
	if e != 0 {
		return e
	}
	return nil
}

func setRingSize(fd, opt int, name string, n int) error {
	v := int32(n)
	if err := setsockopt(fd, opt, unsafe.Pointer(&v), 4); err != nil {
		return fmt.Errorf("afxdp: setting the %s ring size to %d: %w", name, n, err)
	}
	return nil
}

func mmapOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	n := uint32(unsafe.Sizeof(off))
	if err := getsockopt(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), &n); err != nil {
		return off, fmt.Errorf("afxdp: reading ring mmap offsets: %w", err)
	}
	if n != uint32(unsafe.Sizeof(off)) {
		return off, fmt.Errorf("afxdp: kernel returned %d bytes of ring offsets, want %d (kernel older than 5.4?)", n, unsafe.Sizeof(off))
	}
	return off, nil
}

// mmapRing maps one ring and returns the mapping and its producer, consumer
// and flags words plus the address of the first entry.
func mmapRing(fd int, pgoff int64, off unix.XDPRingOffset, entries int, entrySize uintptr, name string) (mem []byte, prod, cons, flags *uint32, desc unsafe.Pointer, err error) {
	size := int(off.Desc) + entries*int(entrySize)
	mem, err = unix.Mmap(fd, pgoff, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("afxdp: mapping the %s ring (%d bytes): %w", name, size, err)
	}
	word := func(o uint64) *uint32 { return (*uint32)(unsafe.Pointer(&mem[o])) }
	return mem, word(off.Producer), word(off.Consumer), word(off.Flags), unsafe.Pointer(&mem[off.Desc]), nil
}

// queueRings is the fill and completion ring pair of one (device, queue).
// Sockets sharing a UMEM on different devices or queues each need their own
// pair (Linux ≥ 5.10); sockets on the same device and queue share one.
type queueRings struct {
	fill, comp       addrRing
	fillMem, compMem []byte
}

func newQueueRings(fd, fillSize, compSize int) (*queueRings, error) {
	if err := setRingSize(fd, unix.XDP_UMEM_FILL_RING, "fill", fillSize); err != nil {
		return nil, err
	}
	if err := setRingSize(fd, unix.XDP_UMEM_COMPLETION_RING, "completion", compSize); err != nil {
		return nil, err
	}
	off, err := mmapOffsets(fd)
	if err != nil {
		return nil, err
	}
	q := &queueRings{}
	mem, p, c, f, d, err := mmapRing(fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, fillSize, 8, "fill")
	if err != nil {
		return nil, err
	}
	q.fillMem = mem
	q.fill = addrRing{newProducerIndex(p, c, f, uint32(fillSize)), unsafe.Slice((*uint64)(d), fillSize)}
	mem, p, c, f, d, err = mmapRing(fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, compSize, 8, "completion")
	if err != nil {
		q.unmap()
		return nil, err
	}
	q.compMem = mem
	q.comp = addrRing{newConsumerIndex(p, c, f, uint32(compSize)), unsafe.Slice((*uint64)(d), compSize)}
	return q, nil
}

func (q *queueRings) unmap() {
	if q.fillMem != nil {
		unix.Munmap(q.fillMem)
		q.fillMem = nil
	}
	if q.compMem != nil {
		unix.Munmap(q.compMem)
		q.compMem = nil
	}
}
