// Package afxdp is the project's AF_XDP layer: a UMEM (frame memory shared
// with the kernel), sockets bound to one queue of one device, and the four
// single-producer/single-consumer rings between them (fill, completion, RX,
// TX), after the kernel's Documentation/networking/af_xdp.rst.
//
// The API is batch-first: Receive, Transmit, Fill and Complete each move a
// batch of descriptors with one pair of atomic index operations and no
// allocation. A UMEM and the sockets that share it belong to one worker
// goroutine (one per core and queue); nothing here is safe for concurrent
// use, by design.
//
// Frame ownership is explicit. A frame is, at any moment, in exactly one of:
// the UMEM's free list, a fill ring, the kernel (received data not yet read,
// or queued for transmission), or the caller's hands (after Receive or
// Alloc, until Transmit or Free). Receive hands frames to the caller;
// Transmit takes them back; Complete returns transmitted frames to the free
// list; Fill moves free frames to the kernel for reception.
//
// Facts measured on the project's kernel (see DESIGN.md §4) that shape the
// code: veth offers copy mode only; in copy mode received data starts at
// frame + headroom + XDP_PACKET_HEADROOM (256); a descriptor crossing a frame
// boundary stalls the TX ring, so Transmit validates in user space; every
// copy-mode TX batch needs a sendto() kick, which sends at most 32
// descriptors per call by default, so Transmit kicks in a loop (or raise the
// limit with SocketConfig.TxBudget, XDP_MAX_TX_SKB_BUDGET).
//
// Found while building this package (kernel 6.18, veth, copy mode; each has
// a test):
//   - XDP metadata written with bpf_xdp_adjust_meta reaches the socket: it
//     sits just before the descriptor's Addr (TestMetadataCopyMode).
//   - Frames sent by a veth peer's own stack carry incomplete UDP/TCP
//     checksums (transmit checksum offload leaves only the pseudo-header
//     sum), and AF_XDP hands them over as they are; "ethtool -K <peer> tx
//     off" on the sender makes them complete (TestReceive,
//     TestChecksumOffloadOff).
//   - Zero-copy on veth is refused with EOPNOTSUPP; ModeAuto falls back to
//     copy mode.
package afxdp
