package adversary

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/control/status"
)

// spis returns the IKEv2 tunnel's IKE SA SPIs from its status and the
// flags the peer's requests carry (Initiator when the peer began the SA).
func spis(t *testing.T, tu status.Tunnel) (spii, spir [8]byte, peerFlags uint8) {
	t.Helper()
	if tu.IKE == nil || tu.IKE.Version != 2 {
		t.Fatalf("tunnel %s has no IKEv2 SA: %+v", tu.Name, tu.IKE)
	}
	for _, c := range []struct {
		s   string
		out *[8]byte
	}{{tu.IKE.SPIi, &spii}, {tu.IKE.SPIr, &spir}} {
		b, err := hex.DecodeString(c.s)
		if err != nil || len(b) != 8 {
			t.Fatalf("tunnel %s: IKE SPI %q in the status is not 8 bytes of hex", tu.Name, c.s)
		}
		copy(c.out[:], b)
	}
	if !tu.IKE.Initiator {
		peerFlags = FlagInitiator
	}
	return spii, spir, peerFlags
}

// peerRekey has strongSwan (endpoint i) rekey its Child SA, a request
// the gateway must answer, waits until the gateway's active SA pair has
// changed, and returns the message IDs strongSwan's requests carried
// during the rekey (swanctl only queues it).
func peerRekey(t *testing.T, l *lab.Lab, g *lab.CGWGateway, i int, seen func() map[uint32]bool) ([]uint32, error) {
	t.Helper()
	tu := tunnel(t, l, g, i)
	old, _ := tu.Active()
	had := seen()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := l.Swanctl(ctx, lab.AWSEndpoint(i), "--rekey", "--child", lab.BGPProtocol(i)); err != nil {
		return nil, fmt.Errorf("swanctl --rekey --child %s on %s: %v: %s", lab.BGPProtocol(i), lab.AWSEndpoint(i), err, out)
	}
	for {
		tu := tunnel(t, l, g, i)
		if c, ok := tu.Active(); ok && c.InSPI != old.InSPI {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the gateway's SA pair is still in %08x 30 s after strongSwan began a Child SA rekey", old.InSPI)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // the old pair's Delete follows
	var ids []uint32
	for id := range seen() {
		if !had[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) == 0 {
		return nil, fmt.Errorf("the tap saw none of strongSwan's rekey requests")
	}
	return ids, nil
}

func mapKeys(m map[uint32]bool) []uint32 {
	var k []uint32
	for v := range m {
		k = append(k, v)
	}
	return k
}

// TestMalformedSK: requests on the established IKEv2 SA (its SPIs, read
// from the status as an on-path observer reads them off the wire) that
// fail before or at the integrity check — bad ICV, SK too short, padding,
// an unknown critical payload, header and SK lengths — with the message
// ID strongSwan used last (a retransmission look-alike) and the next
// ones, from a third address on both ports and spoofed from the peer.
// The gateway must send nothing back (no INVALID_SYNTAX, no cached
// response) and its message IDs must not move: strongSwan's next request
// (a Child SA rekey) is answered under the ID that follows its last one
// (RFC 7296 §2.21, §3.14; issue #9).
func TestMalformedSK(t *testing.T) {
	l, g, _ := adversaryLab(t)
	before := tunnel(t, l, g, v2)
	spii, spir, flags := spis(t, before)
	seen, stopSeen := peerRequests(t, l, v2, 3*time.Minute)
	defer stopSeen()
	ids, err := peerRekey(t, l, g, v2, seen)
	if err != nil {
		t.Fatal(err)
	}
	last := ids[len(ids)-1]
	t.Logf("IKEv2 tunnel %s: IKE SA %s, peer %s, strongSwan's last request ID %d", before.Name, ikeSPIs(before), before.Peer, last)
	seenBefore := len(seen())

	inj, err := NewInjector(l.NS(lab.Inet))
	if err != nil {
		t.Fatal(err)
	}
	defer inj.Close()
	out, stopOut := captureGateway(t, l, time.Minute)
	peer := before.Peer
	var sent, kinds int
	for _, mid := range []uint32{last, last + 1, last + 2} {
		for name, msg := range MalformedSK(spii, spir, flags, mid) {
			kinds++
			for _, to := range []struct {
				src, dst netip.AddrPort
			}{
				{netip.AddrPortFrom(thirdParty, 500), netip.AddrPortFrom(gatewayOutside, 500)},
				{netip.AddrPortFrom(thirdParty, 4500), netip.AddrPortFrom(gatewayOutside, 4500)},
				{peer, netip.AddrPortFrom(gatewayOutside, peer.Port())},
			} {
				b := msg
				if to.dst.Port() != 500 {
					b = NonESP(msg)
				}
				if err := inj.Send(UDP4(to.src, to.dst, b)); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				sent++
			}
		}
	}
	time.Sleep(2 * time.Second)
	stopOut()
	out.mu.Lock()
	toThird := out.bytes[thirdParty]
	var responses []IKEv2Reply
	for _, r := range out.to[awsOutside(v2)] {
		if r.Flags&FlagResponse != 0 {
			responses = append(responses, r)
		}
	}
	out.mu.Unlock()
	if toThird != 0 {
		t.Errorf("the gateway sent %d bytes to the third address %s", toThird, thirdParty)
	}
	// strongSwan sent nothing meanwhile (checked below), so any response
	// to the peer answered a forged request.
	if peerSent := len(seen()) - seenBefore; len(responses) > 0 && peerSent == 0 {
		t.Errorf("the gateway sent %d responses to the peer while only forged requests reached it (first: message ID %d, exchange %d)",
			len(responses), responses[0].MessageID, responses[0].Exchange)
	}
	mid := tunnel(t, l, g, v2)
	if ikeSPIs(mid) != ikeSPIs(before) || mid.State != "up" || mid.Peer != before.Peer {
		t.Errorf("after the malformed requests: IKE SA %s -> %s, peer %s -> %s, state %s", ikeSPIs(before), ikeSPIs(mid), before.Peer, mid.Peer, mid.State)
	}

	// The message IDs: strongSwan's next rekey goes out as last+1 and
	// succeeds only if the gateway still expects that ID.
	ids, err = peerRekey(t, l, g, v2, seen)
	rekey := "failed"
	if err != nil {
		t.Errorf("strongSwan's Child SA rekey after the probe: %v", err)
	} else if rekey = fmt.Sprintf("completed under request ID %d after %d", ids[0], last); ids[0] != last+1 {
		t.Errorf("strongSwan's request IDs went from %d to %d", last, ids[0])
	}
	passLine(t, "ikev2-malformed-sk", fmt.Sprintf("%d datagrams (%d malformed requests × 3 sources/ports, IDs %d..%d)", sent, kinds, last, last+2),
		fmt.Sprintf("bytes to %s: %d; responses to the peer during the probe: %d; IKE SA %s -> %s; strongSwan's next rekey %s",
			thirdParty, toThird, len(responses), ikeSPIs(before), ikeSPIs(mid), rekey))
}
