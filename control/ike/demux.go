package ike

import (
	"errors"
	"net"
	"sync"
	"time"
)

// isakmpV1 is the version byte of an IKEv1 (ISAKMP) header: major 1, minor 0.
const isakmpV1 = 0x10

// SplitVersions lets the IKEv1 and IKEv2 engines share one UDP socket
// (500 or 4500; nat says which: on 4500 IKE follows the 4-byte non-ESP
// marker, RFC 3948 §2.2). Datagrams whose ISAKMP header says version 1.0
// go to v1; everything else (IKEv2, keepalives) to v2. Writes go straight
// to c. c is closed when both halves are.
func SplitVersions(c net.PacketConn, nat bool) (v1, v2 net.PacketConn) {
	s := &split{c: c, nat: nat, open: 2}
	a := &half{s: s, in: make(chan pkt, 256), closed: make(chan struct{})}
	b := &half{s: s, in: make(chan pkt, 256), closed: make(chan struct{})}
	s.v1, s.v2 = a, b
	go s.read()
	return a, b
}

type pkt struct {
	b    []byte
	from net.Addr
}

type split struct {
	c      net.PacketConn
	nat    bool
	v1, v2 *half
	mu     sync.Mutex
	open   int
}

func (s *split) read() {
	buf := make([]byte, 65536)
	for {
		n, a, err := s.c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.v1.fail()
				s.v2.fail()
				return
			}
			continue
		}
		off := 17
		if s.nat {
			off += 4
		}
		h := s.v2
		if n > off && buf[off] == isakmpV1 && (!s.nat || buf[0]|buf[1]|buf[2]|buf[3] == 0) {
			h = s.v1
		}
		select {
		case h.in <- pkt{append([]byte(nil), buf[:n]...), a}:
		default: // that engine is not keeping up: drop, as a full socket buffer would
		}
	}
}

type half struct {
	s      *split
	in     chan pkt
	closed chan struct{}
	once   sync.Once
}

// fail ends reads once the shared socket is closed.
func (h *half) fail() {
	h.once.Do(func() {
		close(h.closed)
		h.s.mu.Lock()
		h.s.open--
		h.s.mu.Unlock()
	})
}

func (h *half) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-h.in:
		return copy(b, p.b), p.from, nil
	case <-h.closed:
		return 0, nil, net.ErrClosed
	}
}

func (h *half) WriteTo(b []byte, a net.Addr) (int, error) {
	select {
	case <-h.closed:
		return 0, net.ErrClosed
	default:
	}
	return h.s.c.WriteTo(b, a)
}

func (h *half) Close() error {
	first := false
	h.once.Do(func() { close(h.closed); first = true })
	if !first {
		return nil
	}
	h.s.mu.Lock()
	h.s.open--
	last := h.s.open == 0
	h.s.mu.Unlock()
	if last {
		return h.s.c.Close()
	}
	return nil
}

func (h *half) LocalAddr() net.Addr { return h.s.c.LocalAddr() }

// Deadlines are not supported on a half; the engines do not use them.
func (h *half) SetDeadline(time.Time) error        { return errors.ErrUnsupported }
func (h *half) SetReadDeadline(time.Time) error    { return errors.ErrUnsupported }
func (h *half) SetWriteDeadline(t time.Time) error { return h.s.c.SetWriteDeadline(t) }
