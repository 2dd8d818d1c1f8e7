package ikev2

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cgw-project/cgw/control/ikev2/message"
)

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
