package ikev2

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
)

// Tunnel runs the IKE and Child SAs of one configured tunnel in its own
// goroutine; every field below the channels belongs to that goroutine.
type Tunnel struct {
	name string
	cfg  config.Tunnel
	opt  TunnelOptions
	m    *Manager
	log  *slog.Logger

	in   chan datagram
	cmd  chan func()
	quit chan struct{}
	done chan struct{}

	ikeProps, espProps, espPFS []message.Proposal
	ikeGroup, pfsGroup         uint16

	sas         []*ikeSA
	ike         *ikeSA // the current IKE SA, once established
	children    []*child
	out         *child // the child whose outbound SA carries traffic
	up          bool
	contacted   bool // INITIAL_CONTACT sent once (§2.4)
	lastInbound time.Time
	reinitAt    time.Time
	backoff     time.Duration
	nextKA      time.Time
	stopping    bool
	stopped     chan struct{} // closed when the shutdown Delete is answered
}

var errSAGone = errors.New("IKE SA deleted")

func newTunnel(m *Manager, c config.Tunnel, o TunnelOptions) (*Tunnel, error) {
	t := &Tunnel{name: c.Name, cfg: c, opt: o, m: m, log: m.log.With("tunnel", c.Name),
		in: make(chan datagram, 64), cmd: make(chan func(), 16), quit: make(chan struct{}), done: make(chan struct{}),
		stopped: make(chan struct{})}
	t.ikeProps = ikeProposals(c.Phase1)
	t.espProps = espProposals(c.Phase2, false)
	t.espPFS = espProposals(c.Phase2, true)
	if len(t.ikeProps) == 0 || len(t.espProps) == 0 {
		return nil, fmt.Errorf("tunnel %s: no usable phase 1 or phase 2 algorithms (phase1 %v, phase2 %v)", c.Name, c.Phase1, c.Phase2)
	}
	if len(c.Phase1.DHGroups) == 0 {
		return nil, fmt.Errorf("tunnel %s: phase 1 needs at least one DH group", c.Name)
	}
	t.ikeGroup = uint16(c.Phase1.DHGroups[0])
	if len(c.Phase2.DHGroups) > 0 {
		t.pfsGroup = uint16(c.Phase2.DHGroups[0])
	}
	return t, nil
}

// do runs f in the tunnel's goroutine.
func (t *Tunnel) do(f func()) bool {
	select {
	case t.cmd <- f:
		return true
	case <-t.done:
		return false
	}
}

// Name is the tunnel's name.
func (t *Tunnel) Name() string { return t.name }

func (t *Tunnel) now() time.Time { return t.m.clock.Now() }

func (t *Tunnel) emit(e Event) {
	e.Tunnel = t.name
	e.Time = t.now()
	t.m.emit(e)
}

func (t *Tunnel) run() {
	defer close(t.done)
	if t.cfg.StartupAction != config.StartupAdd {
		t.initiate()
	}
	for {
		wait := time.Hour
		if next := t.nextWake(); !next.IsZero() {
			wait = max(next.Sub(t.now()), 0)
		}
		tm := t.m.clock.NewTimer(wait)
		select {
		case d := <-t.in:
			t.handle(d)
		case f := <-t.cmd:
			f()
		case <-tm.C():
		case <-t.quit:
			tm.Stop()
			return
		}
		tm.Stop()
		t.tick()
	}
}

// nextWake is the earliest deadline of any timer the tunnel keeps.
func (t *Tunnel) nextWake() time.Time {
	var next time.Time
	at := func(x time.Time) {
		if !x.IsZero() && (next.IsZero() || x.Before(next)) {
			next = x
		}
	}
	for _, sa := range t.sas {
		if sa.pend != nil {
			at(sa.pend.next)
		}
		if sa.state == saEstablished && !sa.deleting {
			at(sa.rekeyAt)
			at(sa.expireAt)
		}
		if sa.state == saResponderInit {
			at(sa.created.Add(t.m.tim.HalfOpenTimeout))
		}
	}
	for _, c := range t.children {
		at(c.retireAt)
		if !c.deleting {
			at(c.rekeyAt)
			at(c.expireAt)
		}
	}
	at(t.reinitAt)
	at(t.dpdDue())
	if t.ike != nil && t.ike.natSelf {
		at(t.nextKA)
	}
	return next
}

func (t *Tunnel) dpdEnabled() bool {
	return t.cfg.DPD.Interval > 0 && t.cfg.DPD.Action != config.DPDNone
}

func (t *Tunnel) dpdDue() time.Time {
	sa := t.ike
	if sa == nil || !t.dpdEnabled() || sa.pend != nil || len(sa.queue) > 0 {
		return time.Time{}
	}
	last := sa.lastHeard
	if t.lastInbound.After(last) {
		last = t.lastInbound
	}
	return last.Add(t.cfg.DPD.Interval.D())
}

func (t *Tunnel) tick() {
	now := t.now()
	for _, sa := range slices.Clone(t.sas) {
		if p := sa.pend; p != nil && !now.Before(p.next) {
			t.retransmit(sa, p)
		}
	}
	for _, sa := range slices.Clone(t.sas) {
		if !slices.Contains(t.sas, sa) {
			continue
		}
		if sa.state == saResponderInit && now.Sub(sa.created) >= t.m.tim.HalfOpenTimeout {
			t.log.Info("half-open IKE SA timed out", "spi", sa.spiI)
			t.removeSA(sa, "half-open timeout", nil)
			continue
		}
		if sa.state != saEstablished || sa.deleting {
			continue
		}
		if !sa.expireAt.IsZero() && !now.Before(sa.expireAt) {
			t.log.Warn("IKE SA reached its hard lifetime without a rekey; deleting it", "spi", sa.spiI)
			t.deleteIKE(sa)
			if sa == t.ike {
				t.down("IKE SA lifetime expired", nil, true)
			}
			continue
		}
		if !sa.rekeyAt.IsZero() && !now.Before(sa.rekeyAt) && sa == t.ike {
			sa.rekeyAt = time.Time{}
			t.rekeyIKE(sa)
		}
	}
	for _, c := range slices.Clone(t.children) {
		switch {
		case !c.retireAt.IsZero() && !now.Before(c.retireAt):
			t.retire(c)
		case c.deleting:
		case !c.expireAt.IsZero() && !now.Before(c.expireAt):
			t.log.Warn("Child SA reached its hard lifetime; deleting it", "spi_in", fmt.Sprintf("%08x", c.InSPI))
			t.deleteChild(c)
		case !c.rekeyAt.IsZero() && !now.Before(c.rekeyAt):
			c.rekeyAt = time.Time{}
			t.rekeyChild(c)
		}
	}
	if due := t.dpdDue(); !due.IsZero() && !now.Before(due) {
		t.sendLiveness(t.ike)
	}
	if t.ike != nil && t.ike.natSelf && !now.Before(t.nextKA) {
		t.m.sock.sendKeepalive(t.ike.peer)
		t.nextKA = now.Add(t.m.tim.Keepalive)
	}
	if !t.reinitAt.IsZero() && !now.Before(t.reinitAt) {
		t.reinitAt = time.Time{}
		if t.ike == nil && !t.connecting() && !t.stopping {
			t.initiate()
		}
	}
}

// upState is the tunnel's state as the status API names it.
func (t *Tunnel) upState() string {
	switch {
	case t.up:
		return "up"
	case t.connecting():
		return "connecting"
	}
	return "down"
}

// connecting reports whether an IKE SA is being negotiated.
func (t *Tunnel) connecting() bool {
	for _, sa := range t.sas {
		if sa.state != saEstablished {
			return true
		}
	}
	return false
}

// --- requests, responses, retransmission (§2.1–2.3) ---

// request sends p on sa, or queues it behind the outstanding request.
func (t *Tunnel) request(sa *ikeSA, p *pending) {
	if sa.pend != nil {
		sa.queue = append(sa.queue, p)
		return
	}
	t.transmit(sa, p)
}

func (t *Tunnel) transmit(sa *ikeSA, p *pending) {
	p.mid = sa.nextMID
	sa.nextMID++
	if p.raw == nil {
		h := message.Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: p.exch, MessageID: p.mid}
		if sa.initiator {
			h.Flags |= message.FlagInitiator
		}
		raw, err := message.EncodeEncrypted(&message.Message{Header: h, Payloads: p.payloads}, sa.keys)
		if err != nil {
			t.log.Error("encoding request", "exchange", p.exch, "err", err)
			if p.onFail != nil {
				p.onFail(err)
			}
			return
		}
		p.raw = raw
	}
	if p.wait == 0 {
		p.wait = t.m.tim.RetransmitTimeout
	}
	if p.maxTries == 0 && !p.dpd {
		p.maxTries = t.m.tim.RetransmitTries
	}
	p.next = t.now().Add(p.wait)
	sa.pend = p
	t.m.sock.send(p.raw, sa.peer, sa.nat)
}

func (t *Tunnel) retransmit(sa *ikeSA, p *pending) {
	if p.tries >= p.maxTries {
		sa.pend = nil
		err := fmt.Errorf("tunnel %s: no answer from %s to %s after %d tries; check that the peer is reachable on UDP %d/%d and has this tunnel configured",
			t.name, sa.peer, p.exch, p.tries+1, t.opt.PeerPort, t.opt.PeerNATPort)
		if p.onFail != nil {
			p.onFail(err)
		}
		t.next(sa)
		return
	}
	p.tries++
	if !p.dpd {
		p.wait = time.Duration(math.Min(float64(p.wait)*t.m.tim.RetransmitFactor, float64(time.Hour)))
	}
	p.next = t.now().Add(p.wait)
	t.emit(Event{Type: Retransmit, Count: p.tries, Reason: p.exch.String()})
	t.m.sock.send(p.raw, sa.peer, sa.nat)
}

// next sends the first queued request once the window is free.
func (t *Tunnel) next(sa *ikeSA) {
	if sa.pend == nil && len(sa.queue) > 0 && slices.Contains(t.sas, sa) {
		p := sa.queue[0]
		sa.queue = sa.queue[1:]
		t.transmit(sa, p)
	}
}

func (t *Tunnel) findSA(h message.Header) *ikeSA {
	for _, sa := range t.sas {
		if sa.spiI == h.SPIi && (sa.spiR == h.SPIr || (h.Exchange == message.IKE_SA_INIT && sa.state == saInitSent)) {
			return sa
		}
	}
	return nil
}

func (t *Tunnel) handle(d datagram) {
	h, err := message.DecodeHeader(d.b)
	if err != nil {
		return
	}
	if h.Exchange == message.IKE_SA_INIT && !h.IsResponse() {
		for _, sa := range t.sas {
			if !sa.initiator && sa.spiI == h.SPIi && sa.peer.Addr() == d.from.Addr() {
				if sa.hasLastResp && h.MessageID == 0 {
					t.m.sock.send(sa.lastResp, d.from, d.nat) // retransmitted request (§2.1)
				}
				return
			}
		}
		t.respondInit(d)
		return
	}
	sa := t.findSA(h)
	if sa == nil {
		return
	}
	// The I flag must say the other side is what it is (§3.1).
	if h.FromInitiator() == sa.initiator {
		return
	}
	if h.IsResponse() {
		t.handleResponse(sa, d, h)
	} else {
		t.handleRequest(sa, d, h)
	}
}

func (t *Tunnel) handleResponse(sa *ikeSA, d datagram, h message.Header) {
	p := sa.pend
	if p == nil || h.MessageID != p.mid || h.Exchange != p.exch {
		return // not what we wait for: a late retransmission's answer, or forged
	}
	var m *message.Message
	var err error
	if h.Exchange == message.IKE_SA_INIT {
		m, err = message.Decode(d.b)
	} else {
		m, err = message.DecodeEncrypted(d.b, sa.keys)
	}
	if err != nil {
		t.log.Debug("dropping undecodable response", "exchange", h.Exchange, "err", err)
		return
	}
	sa.lastHeard = t.now()
	sa.pend = nil
	if p.onResp != nil {
		p.onResp(m, d.b)
	}
	t.next(sa)
}

func (t *Tunnel) handleRequest(sa *ikeSA, d datagram, h message.Header) {
	if sa.hasLastResp && h.MessageID+1 == sa.expectMID {
		t.m.sock.send(sa.lastResp, d.from, d.nat) // retransmitted request (§2.1)
		return
	}
	if h.MessageID != sa.expectMID || sa.keys == nil {
		return // §2.3: outside our window of one
	}
	m, err := message.DecodeEncrypted(d.b, sa.keys)
	if err != nil {
		if n, ok := message.NotifyFor(err); ok {
			t.respond(sa, d, h, []message.Payload{&n})
		}
		return
	}
	sa.lastHeard = t.now()
	if d.nat && (d.from != sa.peer || !sa.nat) {
		// The peer floated to 4500 or its NAT mapping changed (§2.23):
		// send where its authentic requests come from; never float back.
		sa.peer, sa.nat = d.from, true
	}
	var resp []message.Payload
	var after func()
	switch h.Exchange {
	case message.IKE_AUTH:
		if sa.state != saResponderInit {
			return
		}
		resp, after = t.respAuth(sa, m)
	case message.CREATE_CHILD_SA:
		if sa.state != saEstablished {
			return
		}
		resp, after = t.respCreateChild(sa, m)
	case message.INFORMATIONAL:
		if sa.state != saEstablished && sa.state != saResponderInit {
			return
		}
		resp, after = t.respInformational(sa, m)
	default:
		return
	}
	t.respond(sa, d, h, resp)
	if after != nil {
		after()
	}
}

func (t *Tunnel) respond(sa *ikeSA, d datagram, h message.Header, payloads []message.Payload) {
	// handle matched h's SPIs to sa and its I flag to the peer's role.
	rh := h.Reply()
	raw, err := message.EncodeEncrypted(&message.Message{Header: rh, Payloads: payloads}, sa.keys)
	if err != nil {
		t.log.Error("encoding response", "exchange", h.Exchange, "err", err)
		return
	}
	sa.lastResp, sa.hasLastResp = raw, true
	sa.expectMID = h.MessageID + 1
	t.m.sock.send(raw, d.from, d.nat)
}

// --- SA bookkeeping ---

func (t *Tunnel) addSA(sa *ikeSA) {
	t.sas = append(t.sas, sa)
	t.m.sock.register(sa.ourSPI(), t)
}

// removeSA forgets sa. If it was the current IKE SA the tunnel goes down.
func (t *Tunnel) removeSA(sa *ikeSA, reason string, err error) {
	i := slices.Index(t.sas, sa)
	if i < 0 {
		return
	}
	t.sas = slices.Delete(t.sas, i, i+1)
	t.m.sock.unregister(sa.ourSPI())
	if sa.halfOpen {
		sa.halfOpen = false
		t.m.sock.halfOpen.Add(-1)
	}
	fails := sa.queue
	if sa.pend != nil {
		fails = append([]*pending{sa.pend}, fails...)
	}
	sa.pend, sa.queue = nil, nil
	for _, p := range fails {
		if p.onFail != nil {
			p.onFail(errSAGone)
		}
	}
	if sa == t.ike {
		t.ike = nil
		t.down(reason, err, false)
		return
	}
	// Its Child SAs went with it at the peer (§1.4.1).
	for _, c := range t.children {
		if c.owner == sa && !c.deleting {
			c.deleting = true
			c.retireAt = t.now().Add(t.m.tim.Grace)
			if t.out == c {
				t.switchOut(t.successor())
			}
		}
	}
}

// down retires every Child SA, reports the tunnel down and schedules a
// new attempt: at once for restart, after a back-off when the tunnel is
// configured to start by itself.
func (t *Tunnel) down(reason string, err error, restart bool) {
	if sa := t.ike; sa != nil {
		t.ike = nil
		t.removeSA(sa, reason, nil)
	}
	for _, c := range slices.Clone(t.children) {
		t.retire(c)
	}
	t.out = nil
	for _, sa := range slices.Clone(t.sas) {
		if sa.state == saEstablished {
			t.removeSA(sa, reason, nil)
		}
	}
	if t.up {
		t.up = false
		t.emit(Event{Type: TunnelDown, Reason: reason, Err: err})
	}
	if len(t.sas) == 0 {
		t.contacted = false // the next IKE SA starts afresh: INITIAL_CONTACT (§2.4)
	}
	if t.stopping {
		return
	}
	switch {
	case restart:
		t.reinitAt = t.now()
	case t.cfg.StartupAction != config.StartupAdd:
		t.scheduleReinit()
	}
}

func (t *Tunnel) scheduleReinit() {
	if t.backoff == 0 {
		t.backoff = t.m.tim.ReinitMin
	} else {
		t.backoff = min(t.backoff*2, t.m.tim.ReinitMax)
	}
	t.reinitAt = t.now().Add(t.backoff)
}

func (t *Tunnel) failed(n message.NotifyType, err error) {
	t.log.Error(err.Error(), "notify", n)
	t.emit(Event{Type: NegotiationFailed, Notify: uint16(n), Err: err, Reason: notifyReason(n)})
}

func notifyReason(n message.NotifyType) string {
	if n == 0 {
		return "timeout or local error"
	}
	return n.String()
}

// peerDead acts as DPD's configured action says (RFC 7296 §2.4: a peer
// that answers nothing is gone).
func (t *Tunnel) peerDead(err error) {
	if t.stopping {
		return
	}
	t.emit(Event{Type: DPDTimeout, Err: err})
	t.log.Warn("peer is not answering", "err", err, "action", t.cfg.DPD.Action)
	restart := t.cfg.DPD.Action == config.DPDRestart
	sa := t.ike
	t.ike = nil
	if sa != nil {
		t.removeSA(sa, "dead peer", err)
	}
	t.down("dead peer", err, restart)
}

func (t *Tunnel) newChildSPI() uint32 {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	for {
		var b [4]byte
		rand.Read(b[:])
		spi := binary.BigEndian.Uint32(b[:])
		if spi < 256 { // 1–255 are reserved (RFC 4303 §2.1)
			continue
		}
		if _, used := t.m.childSPI[spi]; !used {
			t.m.childSPI[spi] = t
			return spi
		}
	}
}

func (t *Tunnel) releaseSPI(spis ...uint32) {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	for _, s := range spis {
		if t.m.childSPI[s] == t {
			delete(t.m.childSPI, s)
		}
	}
}

// rekeyTime is lifetime − margin × (1 + fuzz% × random), as strongSwan
// spreads rekeys so both ends rarely start at once.
func (t *Tunnel) rekeyTime(created time.Time, life time.Duration) time.Time {
	margin := t.cfg.RekeyMargin.D()
	if margin >= life {
		margin = life / 2
	}
	fuzz := time.Duration(float64(margin) * float64(t.cfg.RekeyFuzz) / 100 * mrand.Float64())
	at := life - margin - fuzz
	if at < life/10 {
		at = life / 10
	}
	return created.Add(at)
}

// --- Child SA installation and make-before-break ---

func (t *Tunnel) newChild(sa *ikeSA) *child {
	now := t.now()
	c := &child{created: now, owner: sa}
	c.Local, c.Peer = t.cfg.LocalOutside, sa.peer.Addr()
	c.Encap = sa.nat
	if sa.nat {
		c.LocalPort, c.PeerPort = t.m.sock.port4500, sa.peer.Port()
	}
	c.ReplayWindow = t.cfg.ReplayWindow
	life := t.cfg.Phase2.Lifetime.D()
	c.Lifetime = life
	if life > 0 {
		c.rekeyAt = t.rekeyTime(now, life)
		c.expireAt = now.Add(life)
	}
	return c
}

// preinstall hands c's inbound SA to Options.InstallInbound before the
// peer may send on it (make-before-break, DESIGN §2).
func (t *Tunnel) preinstall(c *child) {
	if c == nil || t.m.opt.InstallInbound == nil {
		return
	}
	if err := t.m.opt.InstallInbound(t.name, c.ChildSA); err != nil {
		t.log.Warn("inbound SA not confirmed in the dataplane before the peer may use it", "spi_in", fmt.Sprintf("%08x", c.InSPI), "err", err)
	}
}

func (t *Tunnel) install(c *child) {
	t.children = append(t.children, c)
	t.m.mu.Lock()
	t.m.childSPI[c.InSPI] = t
	t.m.childSPI[c.OutSPI] = t
	t.m.mu.Unlock()
	info := c.ChildSA
	t.emit(Event{Type: ChildSAInstalled, Child: &info})
}

func (t *Tunnel) switchOut(c *child) {
	if c == nil || c == t.out || c.retired {
		return
	}
	t.out = c
	info := c.ChildSA
	t.emit(Event{Type: OutboundSwitch, Child: &info})
	if !t.up && t.ike != nil {
		t.up = true
		t.backoff = 0
		t.emit(Event{Type: TunnelUp, IKE: t.ike.info()})
	}
}

func (t *Tunnel) retire(c *child) {
	if c.retired {
		return
	}
	c.retired = true
	i := slices.Index(t.children, c)
	if i >= 0 {
		t.children = slices.Delete(t.children, i, i+1)
	}
	t.releaseSPI(c.InSPI, c.OutSPI)
	info := c.ChildSA
	t.emit(Event{Type: ChildSARetired, Child: &info})
	if t.out == c {
		t.out = nil
		if s := t.successor(); s != nil {
			t.switchOut(s)
		}
	}
}

// successor is the newest Child SA that is not being deleted.
func (t *Tunnel) successor() *child {
	for i := len(t.children) - 1; i >= 0; i-- {
		if c := t.children[i]; !c.deleting && !c.retired {
			return c
		}
	}
	return nil
}

func (t *Tunnel) childByOut(spi uint32) *child {
	for _, c := range t.children {
		if c.OutSPI == spi {
			return c
		}
	}
	return nil
}

// deleteChild tells the peer to delete c (§1.4.1) and retires it a grace
// period after the answer, so packets already in flight still decrypt.
func (t *Tunnel) deleteChild(c *child) {
	if c.deleting {
		return
	}
	c.deleting = true
	if t.out == c {
		if s := t.successor(); s != nil {
			t.switchOut(s)
		}
	}
	graceful := func() {
		if c.retireAt.IsZero() {
			c.retireAt = t.now().Add(t.m.tim.Grace)
		}
	}
	if t.ike == nil {
		graceful()
		return
	}
	t.request(t.ike, &pending{exch: message.INFORMATIONAL,
		payloads: []message.Payload{&message.Delete{Protocol: message.ProtoESP, SPIs: []uint32{c.InSPI}}},
		onResp:   func(*message.Message, []byte) { graceful() },
		onFail:   func(error) { graceful() }})
}

// deleteIKE sends a Delete for sa and forgets it once answered.
func (t *Tunnel) deleteIKE(sa *ikeSA) {
	if sa.deleting {
		return
	}
	sa.deleting = true
	done := func() {
		t.removeSA(sa, "deleted", nil)
	}
	t.request(sa, &pending{exch: message.INFORMATIONAL,
		payloads: []message.Payload{&message.Delete{Protocol: message.ProtoIKE}},
		onResp:   func(*message.Message, []byte) { done() },
		onFail:   func(error) { done() }})
}

// sendLiveness sends the first liveness check one DPD interval after the
// peer was last heard; the peer is dead interval × retries after that
// (AWS's "DPD timeout", 10 s × 3 = 30 s; RFC 7296 §2.4 leaves the timing
// to us), so retries − 1 checks one interval apart, at least one.
func (t *Tunnel) sendLiveness(sa *ikeSA) {
	t.request(sa, &pending{exch: message.INFORMATIONAL, dpd: true,
		wait: t.cfg.DPD.Interval.D(), maxTries: max(t.cfg.DPD.Retries-2, 0),
		onFail: func(err error) {
			if err == errSAGone || sa != t.ike {
				return
			}
			t.peerDead(fmt.Errorf("tunnel %s: dead peer: %s answered no liveness check for %s (DPD %s × %d)",
				t.name, sa.peer, t.cfg.DPD.Interval.D()*time.Duration(max(t.cfg.DPD.Retries, 1)), t.cfg.DPD.Interval.D(), t.cfg.DPD.Retries))
		}})
}

// stop deletes the IKE SA, waits for the answer (briefly) and ends the
// goroutine.
func (t *Tunnel) stop(ctx context.Context) {
	ok := t.do(func() {
		t.stopping = true
		t.reinitAt = time.Time{}
		sa := t.ike
		if sa == nil {
			close(t.stopped)
			return
		}
		sa.pend, sa.queue = nil, nil // nothing else matters now
		sa.deleting = true
		finish := func() {
			select {
			case <-t.stopped:
			default:
				close(t.stopped)
			}
		}
		t.request(sa, &pending{exch: message.INFORMATIONAL,
			payloads: []message.Payload{&message.Delete{Protocol: message.ProtoIKE}},
			onResp:   func(*message.Message, []byte) { finish() },
			onFail:   func(error) { finish() }})
	})
	if ok {
		tm := time.NewTimer(t.m.tim.DeleteWait)
		select {
		case <-t.stopped:
		case <-tm.C:
		case <-ctx.Done():
		}
		tm.Stop()
		t.do(func() {
			for _, sa := range slices.Clone(t.sas) {
				sa.pend, sa.queue = nil, nil
				t.removeSA(sa, "shutdown", nil)
			}
			t.down("shutdown", nil, false)
		})
		close(t.quit)
	}
	<-t.done
}

// --- status ---

// Status returns a snapshot of the tunnel.
func (t *Tunnel) Status() TunnelStatus {
	ch := make(chan TunnelStatus, 1)
	if !t.do(func() { ch <- t.status() }) {
		return TunnelStatus{Name: t.name, State: "stopped"}
	}
	return <-ch
}

func (t *Tunnel) status() TunnelStatus {
	now := t.now()
	left := func(x time.Time) time.Duration {
		if x.IsZero() {
			return 0
		}
		return max(x.Sub(now), 0)
	}
	s := TunnelStatus{Name: t.name, State: t.upState()}
	if sa := t.ike; sa != nil {
		s.Peer, s.Encap = sa.peer, sa.nat
		s.IKE = &IKEStatus{SPIi: ike.SPI(sa.spiI), SPIr: ike.SPI(sa.spiR), Initiator: sa.initiator, Proposal: sa.prop.String(),
			Age: now.Sub(sa.created), LifetimeLeft: left(sa.expireAt), RekeyIn: left(sa.rekeyAt)}
	}
	for _, c := range t.children {
		s.Children = append(s.Children, ChildStatus{InSPI: c.InSPI, OutSPI: c.OutSPI, Suite: c.Suite.String(),
			Active: c == t.out, Deleting: c.deleting, Age: now.Sub(c.created), LifetimeLeft: left(c.expireAt), RekeyIn: left(c.rekeyAt)})
	}
	return s
}
