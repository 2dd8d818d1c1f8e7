package ikev2

import (
	"bytes"
	"log/slog"

	"github.com/cgw-project/cgw/control/ikev2/message"
)

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
	if d.from.Addr() != t.cfg.AWSOutside {
		return // Deliver checked it; a fuzzer or another path may not
	}
	if h.Exchange == message.IKE_SA_INIT && !h.IsResponse() {
		if !h.SPIr.IsZero() {
			return // §3.1: zero in IKE_SA_INIT; one of ours would skip the cookie check
		}
		for _, sa := range t.sas {
			if !sa.initiator && sa.spiI == h.SPIi {
				if h.MessageID == 0 {
					t.resend(sa, d, sa.peerInit, sa.ourInit)
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
	if h.Exchange == message.IKE_SA_INIT {
		m, err := message.Decode(d.b)
		if err != nil {
			if line, ok := t.logUnauth(slog.LevelDebug); ok {
				line.Write("dropping undecodable response", "exchange", h.Exchange, "from", d.from, "err", err)
			}
			return
		}
		t.initResponse(sa, m, d.b)
		return
	}
	m, err := message.DecodeEncrypted(d.b, sa.keys)
	if err != nil {
		if line, ok := t.logUnauth(slog.LevelDebug); ok {
			line.Write("dropping undecodable response", "exchange", h.Exchange, "from", d.from, "err", err)
		}
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
	if h.MessageID+1 == sa.expectMID {
		t.resend(sa, d, sa.lastReq, sa.lastResp)
		return
	}
	if h.MessageID != sa.expectMID || sa.keys == nil {
		return // §2.3: outside our window of one
	}
	m, err := message.DecodeEncrypted(d.b, sa.keys)
	if err != nil {
		if !message.Verified(err) {
			// Anyone could have sent it: no answer, no message ID used.
			if line, ok := t.logUnauth(slog.LevelDebug); ok {
				line.Write("dropping a request that fails its integrity check", "exchange", h.Exchange, "from", d.from, "err", err)
			}
			return
		}
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
	sa.lastResp, sa.lastReq = raw, d.b
	sa.expectMID = h.MessageID + 1
	t.m.sock.send(raw, d.from, d.nat)
}

// resendBurst responses to retransmitted requests may go out at once;
// then one a second (a peer retransmits after seconds, §2.4).
const resendBurst = 3

// resend answers a retransmission of request req, already answered with
// resp (§2.1): only for the very same bytes (anything else with its
// message ID is a forgery or a stale copy), only to the SA's peer, and
// rate-limited, so a replayed request cannot make us a reflector.
func (t *Tunnel) resend(sa *ikeSA, d datagram, req, resp []byte) {
	if resp == nil || d.from.Addr() != sa.peer.Addr() || !bytes.Equal(d.b, req) {
		return
	}
	sa.resends.Burst = resendBurst
	if ok, _ := sa.resends.Allow(t.now()); !ok {
		return
	}
	t.m.sock.send(resp, sa.peer, sa.nat)
}
