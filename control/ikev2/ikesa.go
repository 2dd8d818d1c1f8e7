package ikev2

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/ikev2/message"
	"github.com/cgw-project/cgw/crypto/dh"
	"github.com/cgw-project/cgw/crypto/prf"
)

// keyExchange makes our half of group g and the shared secret with the
// peer's KE data (nil peer: only generate).
func keyExchange(g uint16) (dh.Private, []byte, error) {
	grp, err := dh.Lookup(dh.ID(g))
	if err != nil {
		return nil, nil, err
	}
	return grp.Generate(rand.Reader)
}

func allowed(groups []int, g uint16) bool { return slices.Contains(groups, int(g)) }

// deriveIKE computes an IKE SA's keys from SKEYSEED (§2.14), which it
// then zeroes.
func deriveIKE(sa *ikeSA, skeyseed []byte) error {
	defer clear(skeyseed)
	p, err := prfOf(sa.prop)
	if err != nil {
		return err
	}
	e, a, err := message.SKLengths(sa.prop)
	if err != nil {
		return err
	}
	sk, err := p.IKESAKeys(skeyseed, sa.ni, sa.nr, sa.spiI[:], sa.spiR[:], prf.KeyLens{Encr: e, Integ: a})
	if err != nil {
		return err
	}
	keys, err := message.NewKeys(sa.prop, sk.SKei, sk.SKai, sk.SKer, sk.SKar)
	if err != nil {
		return err
	}
	sa.prf, sa.sk, sa.keys = p, sk, keys
	return nil
}

func prfOf(p message.Proposal) (*prf.PRF, error) {
	t, ok := p.Chosen(message.TransformPRF)
	if !ok {
		return nil, fmt.Errorf("IKE proposal %s has no PRF", p)
	}
	return prf.Lookup(prf.ID(t.ID))
}

func (t *Tunnel) establish(sa *ikeSA) {
	now := t.now()
	sa.state = saEstablished
	sa.created = now
	sa.lastHeard = now
	t.countHalfOpen(sa, false)
	if life := t.cfg.Phase1.Lifetime.D(); life > 0 {
		sa.rekeyAt = t.rekeyTime(now, life)
		sa.expireAt = now.Add(life)
	}
	t.nextKA = now.Add(t.m.tim.Keepalive)
}

// adopt makes a newly established sa the tunnel's IKE SA and reports
// whether it did. A new IKE SA replaces an older one: the peer set it up
// afresh (after a restart it also says INITIAL_CONTACT, and then the old
// one is forgotten silently, §2.4; otherwise it is deleted with a Delete).
// When both ends set up an IKE SA at the same time (the old one was
// established after the new one started), the one created with the
// lowest nonce goes, as §2.8.1 decides for rekeys, so both ends keep the
// same one.
func (t *Tunnel) adopt(sa *ikeSA, initialContact bool) bool {
	t.contacted = true
	for _, x := range slices.Clone(t.sas) {
		if x != sa && x.state == saInitSent {
			x.pend, x.queue = nil, nil
			t.removeSA(x, "superseded", nil) // an attempt of ours nobody answered yet
		}
	}
	old := t.ike
	if old == nil || old == sa {
		t.ike = sa
		return true
	}
	concurrent := !old.created.Before(sa.started)
	if concurrent && bytes.Compare(lowestNonce(sa), lowestNonce(old)) < 0 {
		t.log.Info("both ends set up an IKE SA at once; deleting the redundant one", "spi_i", sa.spiI)
		t.deleteIKE(sa)
		return false
	}
	t.ike = sa
	for _, c := range t.children {
		if c.owner == old && (!c.deleting || !c.tellPeerAt.IsZero()) {
			t.peerGone(c) // they go with old at the peer
		}
	}
	if initialContact && !concurrent {
		t.removeSA(old, "replaced after the peer's INITIAL_CONTACT", nil)
	} else {
		t.deleteIKE(old)
	}
	return true
}

func lowestNonce(sa *ikeSA) []byte {
	if bytes.Compare(sa.ni, sa.nr) < 0 {
		return sa.ni
	}
	return sa.nr
}

// moveChildren hands the Child SAs of IKE SAs that a rekey replaced to
// the current one (§2.18: they belong to the new IKE SA).
func (t *Tunnel) moveChildren(from ...*ikeSA) {
	for _, c := range t.children {
		if slices.Contains(from, c.owner) {
			c.owner = t.ike
		}
	}
}

// countHalfOpen counts sa as half-open (on) in the Socket's and the
// tunnel's totals, or no longer.
func (t *Tunnel) countHalfOpen(sa *ikeSA, on bool) {
	if sa.halfOpen == on {
		return
	}
	sa.halfOpen = on
	d := int64(1)
	if !on {
		d = -1
	}
	t.m.sock.halfOpen.Add(d)
	t.halfOpen.Add(int32(d))
}

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
	defer sa.wipe() // after the pending exchanges' onFail, which may read them
	t.countHalfOpen(sa, false)
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
		if c.owner == sa && (!c.deleting || !c.tellPeerAt.IsZero()) {
			t.peerGone(c)
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
	t.lc.Down(reason, err)
	if len(t.sas) == 0 {
		t.contacted = false // the next IKE SA starts afresh: INITIAL_CONTACT (§2.4)
	}
	if t.stopping {
		return
	}
	switch {
	case restart:
		t.reinit.At = t.now()
	case t.cfg.StartupAction != config.StartupAdd:
		t.scheduleReinit()
	}
}

func (t *Tunnel) failed(n message.NotifyType, err error) {
	t.log.Error(err.Error(), "notify", n)
	t.emit(Event{Type: NegotiationFailed, Notify: uint16(n), Err: err, Reason: notifyReason(n)})
}

// failedUnauth is failed for what input nobody authenticated caused (an
// IKE_SA_INIT anyone could send from the peer's address): a flood of it
// costs a few log lines and events a second, not one each.
func (t *Tunnel) failedUnauth(n message.NotifyType, err error) {
	ok, sup := t.unauth.Allow(t.now())
	if !ok {
		return
	}
	t.log.Error(err.Error(), "notify", n, "suppressed", sup)
	t.emit(Event{Type: NegotiationFailed, Notify: uint16(n), Err: err, Reason: notifyReason(n)})
}

// logUnauth checks whether a line at level on what input nobody
// authenticated caused may go out (rate-limited). Callers build the line
// only when ok, so a flood's refused lines allocate nothing.
func (t *Tunnel) logUnauth(level slog.Level) (ike.Line, bool) {
	return t.unauth.Check(t.log, t.now(), level)
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
