package ikev1

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/ikev1/message"
)

// Informational exchanges (RFC 2408 §4.8): Delete, DPD R-U-THERE/ACK
// (RFC 3706), and the HASH(1)-protected messages they share with Quick
// Mode.

func msgIDBytes(id uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], id)
	return b[:]
}

func newMsgID() uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		if v := binary.BigEndian.Uint32(b[:]); v != 0 {
			return v
		}
	}
}

// sealHashed builds HDR*, HASH(x), ps with HASH(x) = prf(SKEYID_a,
// pre | payloads after HASH) (RFC 2409 §5.5, §5.7).
func (sa *p1SA) sealHashed(exch uint8, msgID uint32, iv []byte, pre [][]byte, ps []message.Payload) (pkt, next []byte) {
	rest := message.EncodePayloads(ps)
	h := sa.hash.Sum(sa.keys.SKEYIDa, append(pre, rest)...)
	all := append([]message.Payload{{Type: message.PayloadHash, Body: h}}, ps...)
	return sa.crypt.Seal(message.Header{CkyI: sa.ckyI, CkyR: sa.ckyR, Exchange: exch, MsgID: msgID}, all, iv)
}

// checkHash verifies that m starts with HASH(x) over pre | the rest.
func (sa *p1SA) checkHash(m message.Message, pre ...[]byte) bool {
	if len(m.Payloads) == 0 || m.Payloads[0].Type != message.PayloadHash {
		return false
	}
	h := sa.hash.Sum(sa.keys.SKEYIDa, append(pre, m.Raw[m.Payloads[0].End:])...)
	return hmac.Equal(h, m.Payloads[0].Body)
}

func (t *Tunnel) sendInfo(sa *p1SA, ps []message.Payload) {
	if sa == nil || sa.state != mmDone {
		return
	}
	id := newMsgID()
	iv := sa.crypt.ExchangeIV(sa.p1last, id)
	pkt, _ := sa.sealHashed(message.ExchInformation, id, iv, [][]byte{msgIDBytes(id)}, ps)
	t.m.send(pkt, t.peer, t.nat)
}

func (t *Tunnel) handleInfo(d datagram) {
	sa := t.findP1(d.h)
	if sa == nil {
		return
	}
	if d.h.Flags&message.FlagEncryption == 0 {
		if m, err := message.Decode(d.b); err == nil && sa.state != mmDone {
			err := t.notifyErr(m, "main mode failed")
			t.failed(0, err)
			t.dropP1(sa)
			if sa.initiator {
				t.scheduleReinit()
			}
		}
		return
	}
	if sa.state != mmDone || sa.infoSeen[d.h.MsgID] {
		return
	}
	if len(sa.infoSeen) > 1024 {
		clear(sa.infoSeen) // only replays of recent ones matter
	}
	m, _, err := sa.crypt.Open(d.h, d.b, sa.crypt.ExchangeIV(sa.p1last, d.h.MsgID))
	if err != nil || !sa.checkHash(m, msgIDBytes(d.h.MsgID)) {
		if line, ok := t.m.unauth(); ok {
			line.Write("informational with bad hash dropped", "tunnel", t.name, "from", d.from)
		}
		return
	}
	sa.infoSeen[d.h.MsgID] = true
	t.heard(d)
	for _, p := range m.Payloads[1:] {
		switch p.Type {
		case message.PayloadNotify:
			n, err := message.ParseNotify(p.Body)
			if err != nil {
				continue
			}
			switch n.Type {
			case message.NotifyRUThere:
				t.sendInfo(sa, []message.Payload{{Type: message.PayloadNotify, Body: message.Notify{Protocol: message.ProtoISAKMP, Type: message.NotifyRUThereAck, SPI: n.SPI, Data: n.Data}.Encode()}})
			case message.NotifyRUThereAck:
				if len(n.Data) == 4 && binary.BigEndian.Uint32(n.Data) == sa.dpdSeq {
					sa.dpdSince = time.Time{}
				}
			}
		case message.PayloadDelete:
			del, err := message.ParseDelete(p.Body)
			if err != nil {
				continue
			}
			t.peerDelete(sa, del)
		}
	}
}

func (t *Tunnel) peerDelete(sa *p1SA, d message.Delete) {
	switch d.Protocol {
	case message.ProtoISAKMP:
		t.m.log.Info("peer deleted the ISAKMP SA", "tunnel", t.name)
		t.dropP1(sa)
		if t.p1 == nil && t.out == nil {
			t.down("deleted by peer", nil, true)
		}
	case message.ProtoESP:
		for _, s := range d.SPIs {
			if len(s) != 4 {
				continue
			}
			spi := binary.BigEndian.Uint32(s)
			for _, c := range t.children {
				if c.sa.OutSPI == spi || c.sa.InSPI == spi {
					c.deleted = true
					t.retire(c)
					break
				}
			}
		}
		if t.out == nil {
			t.down("child SA deleted by peer", nil, true)
		}
	}
}

// dpd sends R-U-THERE when neither IKE nor ESP was heard for the interval
// (RFC 3706 §5.3) and acts after interval × retries without an answer.
func (t *Tunnel) dpd(now time.Time) {
	sa := t.p1
	iv := time.Duration(t.cfg.DPD.Interval)
	if sa == nil || sa.state != mmDone || iv <= 0 || t.cfg.DPD.Action == config.DPDNone {
		return
	}
	if !sa.dpdSince.IsZero() && now.Sub(sa.dpdSince) >= iv*time.Duration(max(t.cfg.DPD.Retries, 1)) {
		err := fmt.Errorf("tunnel %s: dead peer: %s answered no R-U-THERE for %s (DPD %s × %d)", t.name, t.peer,
			now.Sub(sa.dpdSince), iv, t.cfg.DPD.Retries)
		t.emit(Event{Type: DPDTimeout, Err: err})
		t.m.log.Warn("peer is not answering", "err", err, "action", t.cfg.DPD.Action)
		t.down("dead peer", err, false)
		if t.cfg.DPD.Action == config.DPDRestart {
			t.initiate()
		} else {
			t.scheduleReinit()
		}
		return
	}
	if now.Before(sa.dpdNext) {
		return
	}
	if sa.dpdSince.IsZero() && now.Sub(t.lastInbound) < iv {
		sa.dpdNext = t.lastInbound.Add(iv)
		return
	}
	sa.dpdSeq++
	if sa.dpdSince.IsZero() {
		sa.dpdSince = now
	}
	sa.dpdNext = now.Add(iv)
	t.sendInfo(sa, []message.Payload{{Type: message.PayloadNotify, Body: message.Notify{Protocol: message.ProtoISAKMP, Type: message.NotifyRUThere,
		SPI: append(sa.ckyI[:], sa.ckyR[:]...), Data: binary.BigEndian.AppendUint32(nil, sa.dpdSeq)}.Encode()}})
}
