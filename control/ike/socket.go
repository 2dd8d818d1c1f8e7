package ike

import (
	"errors"
	"net"
	"net/netip"
	"sync"
)

// UDP is an engine's pair of IKE sockets: port 500, and port 4500 where
// IKE follows the 4-byte non-ESP marker (RFC 3948 §2.2). It reads both
// and hands each datagram to the engine; it writes with the marker on
// 4500. Both engines use it, on real sockets or on SplitVersions halves.
type UDP struct {
	c500, c4500       net.PacketConn
	Port500, Port4500 uint16 // our local ports
	wg                sync.WaitGroup
	closeOnce         sync.Once
}

// Deliver receives one datagram as read: b holds the UDP payload (on 4500
// with its marker, or an ESP or keepalive datagram that reached us) and is
// reused after the call returns, so keep a copy. from's address is
// unmapped (an IPv4 peer on a dual-stack socket reads as IPv4).
type Deliver func(b []byte, from netip.AddrPort, nat bool)

// NewUDP starts reading c500 and c4500 into deliver, one goroutine each.
func NewUDP(c500, c4500 net.PacketConn, deliver Deliver) (*UDP, error) {
	if c500 == nil || c4500 == nil {
		return nil, errors.New("both IKE UDP sockets (port 500 and port 4500) are required")
	}
	u := &UDP{c500: c500, c4500: c4500, Port500: PortOf(c500.LocalAddr()), Port4500: PortOf(c4500.LocalAddr())}
	u.wg.Add(2)
	go u.read(c500, false, deliver)
	go u.read(c4500, true, deliver)
	return u, nil
}

func (u *UDP) read(c net.PacketConn, nat bool, deliver Deliver) {
	defer u.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// ICMP errors surface as read errors on Linux (ECONNREFUSED):
			// the socket stays usable. Closed sockets end the loop above.
			continue
		}
		if ap, ok := AddrPortOf(from); ok {
			deliver(buf[:n], ap, nat)
		}
	}
}

// Send writes b (an IKE message) to to, on port 4500 with the non-ESP
// marker when nat is set.
func (u *UDP) Send(b []byte, to netip.AddrPort, nat bool) error {
	ua := net.UDPAddrFromAddrPort(to)
	if nat {
		_, err := u.c4500.WriteTo(append(make([]byte, 4, len(b)+4), b...), ua)
		return err
	}
	_, err := u.c500.WriteTo(b, ua)
	return err
}

// Keepalive sends a NAT-T keepalive (RFC 3948 §2.3) to to from port 4500.
func (u *UDP) Keepalive(to netip.AddrPort) error {
	_, err := u.c4500.WriteTo([]byte{0xff}, net.UDPAddrFromAddrPort(to))
	return err
}

// LocalPort is our port 500 or, with nat, 4500.
func (u *UDP) LocalPort(nat bool) uint16 {
	if nat {
		return u.Port4500
	}
	return u.Port500
}

// Close closes both sockets and waits for the read loops to end.
func (u *UDP) Close() {
	u.closeOnce.Do(func() {
		u.c500.Close()
		u.c4500.Close()
	})
	u.wg.Wait()
}

// PortOf is the UDP port of a local or remote address (0 if none).
func PortOf(a net.Addr) uint16 {
	ap, _ := AddrPortOf(a)
	return ap.Port()
}

// AddrPortOf converts a net.Addr from a UDP socket, with the address
// unmapped.
func AddrPortOf(a net.Addr) (netip.AddrPort, bool) {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
	if a == nil {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), err == nil
}
