package ikev2

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgw-project/cgw/control/ikev2/message"
)

// datagram is one received IKE message routed to a tunnel.
type datagram struct {
	b    []byte
	from netip.AddrPort
	nat  bool // arrived on the NAT-T socket (port 4500)
}

// Socket is the UDP layer shared by every tunnel: port 500 and port 4500
// (with the non-ESP marker, RFC 3948 §2.2). It routes a message to its
// tunnel by our IKE SPI, and an IKE_SA_INIT request by the peer's address.
// It also answers IKE_SA_INIT with a COOKIE when too many SAs are half
// open (§2.6), before any tunnel spends a DH computation.
type Socket struct {
	c500, c4500 net.PacketConn
	port500     uint16
	port4500    uint16
	log         *slog.Logger
	clock       Clock

	mu     sync.RWMutex
	bySPI  map[message.SPI]*Tunnel
	byPeer map[netip.Addr]*Tunnel

	halfOpen        atomic.Int64
	cookieThreshold int
	maxHalfOpen     int

	cookieMu   sync.Mutex
	secret     [2][32]byte // current, previous
	secretVer  byte
	secretTime time.Time

	wg sync.WaitGroup
}

func newSocket(c500, c4500 net.PacketConn, clock Clock, log *slog.Logger, cookieThreshold int) (*Socket, error) {
	if c500 == nil || c4500 == nil {
		return nil, errors.New("ikev2: both UDP sockets (port 500 and port 4500) are required")
	}
	s := &Socket{c500: c500, c4500: c4500, clock: clock, log: log,
		bySPI: map[message.SPI]*Tunnel{}, byPeer: map[netip.Addr]*Tunnel{}, cookieThreshold: cookieThreshold}
	s.port500 = portOf(c500.LocalAddr())
	s.port4500 = portOf(c4500.LocalAddr())
	if _, err := rand.Read(s.secret[0][:]); err != nil {
		return nil, err
	}
	s.secretTime = clock.Now()
	s.wg.Add(2)
	go s.read(c500, false)
	go s.read(c4500, true)
	return s, nil
}

func portOf(a net.Addr) uint16 {
	if u, ok := a.(*net.UDPAddr); ok {
		return uint16(u.Port)
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Port()
	}
	return 0
}

func addrPortOf(a net.Addr) (netip.AddrPort, bool) {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
	ap, err := netip.ParseAddrPort(a.String())
	return ap, err == nil
}

func (s *Socket) read(c net.PacketConn, nat bool) {
	defer s.wg.Done()
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
			s.log.Debug("ikev2: socket read", "err", err)
			return
		}
		ap, ok := addrPortOf(from)
		if !ok {
			continue
		}
		s.Deliver(buf[:n], ap, nat)
	}
}

// Deliver routes one received UDP payload (as read from port 500, or from
// port 4500 when nat is set) to its tunnel. The read loops call it; it is
// exported so a fuzz target or another receive path can feed datagrams in.
func (s *Socket) Deliver(b []byte, from netip.AddrPort, nat bool) {
	if nat {
		kind, ike := message.Classify4500(b)
		if kind != message.Datagram4500IKE {
			return // keepalives and ESP that reached us are not ours
		}
		b = ike
	}
	h, err := message.DecodeHeader(b)
	if err != nil {
		return
	}
	var t *Tunnel
	if h.Exchange == message.IKE_SA_INIT && !h.IsResponse() && h.SPIr.IsZero() {
		s.mu.RLock()
		t = s.byPeer[from.Addr()]
		if t2, ok := s.bySPI[h.SPIi]; ok && t == nil {
			t = t2
		}
		s.mu.RUnlock()
		if t == nil {
			s.log.Info("ikev2: IKE_SA_INIT from an unknown peer ignored", "peer", from)
			return
		}
		if s.halfOpen.Load() >= int64(s.maxHalfOpen) {
			return // beyond any legitimate load: not even a cookie (§2.6)
		}
		if !s.cookieOK(b, h, from, nat) {
			return
		}
	} else {
		ours := h.SPIi
		if h.FromInitiator() {
			ours = h.SPIr
		}
		s.mu.RLock()
		t = s.bySPI[ours]
		s.mu.RUnlock()
		if t == nil {
			return
		}
	}
	d := datagram{b: append([]byte(nil), b...), from: from, nat: nat}
	select {
	case t.in <- d:
	default: // the tunnel is overloaded: drop, the peer retransmits
	}
}

func (s *Socket) send(b []byte, to netip.AddrPort, nat bool) error {
	ua := net.UDPAddrFromAddrPort(to)
	if nat {
		_, err := s.c4500.WriteTo(message.AppendMarked(make([]byte, 0, len(b)+4), b), ua)
		return err
	}
	_, err := s.c500.WriteTo(b, ua)
	return err
}

func (s *Socket) sendKeepalive(to netip.AddrPort) {
	s.c4500.WriteTo([]byte{0xff}, net.UDPAddrFromAddrPort(to))
}

func (s *Socket) register(spi message.SPI, t *Tunnel) {
	s.mu.Lock()
	s.bySPI[spi] = t
	s.mu.Unlock()
}

func (s *Socket) unregister(spi message.SPI) {
	s.mu.Lock()
	delete(s.bySPI, spi)
	s.mu.Unlock()
}

func (s *Socket) close() {
	s.c500.Close()
	s.c4500.Close()
	s.wg.Wait()
}

// cookieSecretRotation: §2.6 recommends changing the secret often; a
// cookie made with the previous secret is still accepted.
const cookieSecretRotation = 2 * time.Minute

// cookieOK reports whether an IKE_SA_INIT request may go on to its tunnel.
// Under load (half-open SAs at the threshold) it must carry a valid
// COOKIE; otherwise the Socket answers with one and drops the request.
func (s *Socket) cookieOK(raw []byte, h message.Header, from netip.AddrPort, nat bool) bool {
	if s.cookieThreshold >= 0 && s.halfOpen.Load() < int64(s.cookieThreshold) {
		return true
	}
	m, err := message.Decode(raw)
	if err != nil {
		return false
	}
	nonce := message.Find[*message.Nonce](m)
	if nonce == nil {
		return false
	}
	if n := m.Notify(message.COOKIE); n != nil && len(m.Payloads) > 0 && m.Payloads[0] == message.Payload(n) {
		if s.validCookie(n.Data, nonce.Data, from.Addr(), h.SPIi) {
			return true
		}
	}
	resp := h.ErrorReply(message.Notify{NotifyType: message.COOKIE, Data: s.makeCookie(nonce.Data, from.Addr(), h.SPIi)})
	if b, err := message.Encode(resp); err == nil {
		s.send(b, from, nat)
	}
	return false
}

// makeCookie is §2.6's Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>).
func (s *Socket) makeCookie(ni []byte, ip netip.Addr, spi message.SPI) []byte {
	s.cookieMu.Lock()
	defer s.cookieMu.Unlock()
	if now := s.clock.Now(); now.Sub(s.secretTime) > cookieSecretRotation {
		s.secret[1] = s.secret[0]
		rand.Read(s.secret[0][:])
		s.secretVer++
		s.secretTime = now
	}
	return cookieWith(s.secretVer, s.secret[0][:], ni, ip, spi)
}

func cookieWith(ver byte, secret, ni []byte, ip netip.Addr, spi message.SPI) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(ni)
	mac.Write(ip.AsSlice())
	mac.Write(spi[:])
	return append([]byte{ver}, mac.Sum(nil)[:16]...)
}

func (s *Socket) validCookie(c, ni []byte, ip netip.Addr, spi message.SPI) bool {
	if len(c) != 17 {
		return false
	}
	s.cookieMu.Lock()
	defer s.cookieMu.Unlock()
	for i, ver := range []byte{s.secretVer, s.secretVer - 1} {
		if c[0] == ver && hmac.Equal(c, cookieWith(ver, s.secret[i][:], ni, ip, spi)) {
			return true
		}
	}
	return false
}
