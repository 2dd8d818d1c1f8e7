package ikev2

import "github.com/cgw-project/cgw/control/ikev2/message"

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
