package ikev2

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgw-project/cgw/control/ike"
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
	udp      *ike.UDP
	port500  uint16
	port4500 uint16
	log      *slog.Logger
	clock    Clock

	// tunnels routes IKE_SA_INIT requests by the peer's address.
	tunnels *ike.Tunnels[*Tunnel, datagram]
	mu      sync.RWMutex
	bySPI   map[message.SPI]*Tunnel

	halfOpen        atomic.Int64
	cookieThreshold int
	maxHalfOpen     int
	unknown         ike.LogLimiter // IKE_SA_INIT from unknown addresses

	cookieMu   sync.Mutex
	secret     [2][32]byte // current, previous
	secretVer  byte
	secretTime time.Time
}

func newSocket(c500, c4500 net.PacketConn, tunnels *ike.Tunnels[*Tunnel, datagram], clock Clock, log *slog.Logger, cookieThreshold int) (*Socket, error) {
	s := &Socket{tunnels: tunnels, clock: clock, log: log,
		bySPI: map[message.SPI]*Tunnel{}, cookieThreshold: cookieThreshold}
	// Both slots random: validCookie accepts the previous secret too, and
	// one known (say all-zero) would let forged cookies validate.
	for i := range s.secret {
		if _, err := rand.Read(s.secret[i][:]); err != nil {
			return nil, err
		}
	}
	s.secretTime = clock.Now()
	u, err := ike.NewUDP(c500, c4500, s.Deliver)
	if err != nil {
		return nil, fmt.Errorf("ikev2: %v", err)
	}
	s.udp, s.port500, s.port4500 = u, u.Port500, u.Port4500
	return s, nil
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
		// Only a configured peer's address: an SPI names no tunnel here,
		// or anyone could start a negotiation in another's name.
		t, _ = s.tunnels.ByPeer(from.Addr())
		if t == nil {
			if line, ok := s.unknown.Check(s.log, s.clock.Now(), slog.LevelInfo); ok {
				line.Write("ikev2: IKE_SA_INIT from an unknown peer ignored (no tunnel has this aws_outside_address)", "peer", from)
			}
			return
		}
		if s.halfOpen.Load() >= int64(s.maxHalfOpen) {
			return // beyond any legitimate load: not even a cookie (§2.6)
		}
		if !s.cookieOK(b, h, from, nat, t) {
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
		// Our SPI is on the wire for anyone to copy: it counts only from
		// the tunnel's peer (AWS endpoints keep their address; a NAT
		// may change the port, §2.23).
		if t == nil || from.Addr() != t.cfg.AWSOutside {
			return
		}
	}
	// Dropped when the tunnel is overloaded: the peer retransmits.
	t.loop.Post(datagram{b: append([]byte(nil), b...), from: from, nat: nat})
}

func (s *Socket) send(b []byte, to netip.AddrPort, nat bool) error { return s.udp.Send(b, to, nat) }

func (s *Socket) sendKeepalive(to netip.AddrPort) { s.udp.Keepalive(to) }

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

func (s *Socket) close() { s.udp.Close() }

// cookieSecretRotation: §2.6 recommends changing the secret often; a
// cookie made with the previous secret is still accepted, so one lives
// at most two periods.
const cookieSecretRotation = 2 * time.Minute

// cookiePerPeer is how many half-open SAs one peer may have before its
// IKE_SA_INIT must carry a COOKIE, whatever the total: a peer starts one
// or two at a time, and a spoofer of its address who cannot read our
// answers cannot return one.
const cookiePerPeer = 2

// cookieOK reports whether an IKE_SA_INIT request for t may go on to it.
// Under load (half-open SAs at the threshold, in total or for t's peer)
// it must carry a valid COOKIE; otherwise the Socket answers with one
// and drops the request.
func (s *Socket) cookieOK(raw []byte, h message.Header, from netip.AddrPort, nat bool, t *Tunnel) bool {
	if s.cookieThreshold >= 0 && s.halfOpen.Load() < int64(s.cookieThreshold) && t.halfOpen.Load() < cookiePerPeer {
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

// rotateLocked replaces the secret every cookieSecretRotation, as a timer
// would, by the clock: a cookie validates for at most two periods even
// when no new one is made in between.
func (s *Socket) rotateLocked() {
	now := s.clock.Now()
	n := now.Sub(s.secretTime) / cookieSecretRotation
	if n <= 0 {
		return
	}
	for range min(n, 2) {
		s.secret[1] = s.secret[0]
		rand.Read(s.secret[0][:])
		s.secretVer++
	}
	s.secretTime = s.secretTime.Add(n * cookieSecretRotation)
}

// makeCookie is §2.6's Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>).
func (s *Socket) makeCookie(ni []byte, ip netip.Addr, spi message.SPI) []byte {
	s.cookieMu.Lock()
	defer s.cookieMu.Unlock()
	s.rotateLocked()
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
	s.rotateLocked()
	for i, ver := range []byte{s.secretVer, s.secretVer - 1} {
		if c[0] == ver && hmac.Equal(c, cookieWith(ver, s.secret[i][:], ni, ip, spi)) {
			return true
		}
	}
	return false
}
