package adversary

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
)

// TestSpoofedMainMode1: from inet, posing as AWS endpoint 1 (its address,
// port 500), a Main Mode message 1 with a fresh initiator cookie and a
// zero responder cookie every 10 s for 2 minutes (CGW_ADVERSARY_FULL=1;
// make test sends one a second for 20 s, see probeSchedule), alternately to the
// gateway's port 500 and (with the non-ESP marker) 4500. Without the PSK
// it cannot get past message 5, so the established ISAKMP SA (its
// cookies), the peer's address and port (NAT-T, 4500) and the SA pair
// must not change, and LAN -> VPC pings through the IKEv1 tunnel keep
// being answered (issue #9: one such datagram used to replace the ISAKMP
// SA, and the tunnel died at the peer's DPD).
func TestSpoofedMainMode1(t *testing.T) {
	l, g, _ := adversaryLab(t)
	every, rounds := probeSchedule(10*time.Second, 12, time.Second, 20)
	span := every * time.Duration(rounds)
	check := min(time.Second, every/2) // time for the gateway to act on a message
	before := tunnel(t, l, g, v1)
	child, _ := before.Active()
	t.Logf("IKEv1 tunnel %s: ISAKMP SA %s, peer %s, SA pair in %08x out %08x", before.Name, ikeSPIs(before), before.Peer, child.InSPI, child.OutSPI)
	if before.IKE == nil || before.IKE.Version != 1 {
		t.Fatalf("tunnel %s is not on IKEv1: %+v", before.Name, before.IKE)
	}
	inj, err := NewInjector(l.NS(lab.Inet))
	if err != nil {
		t.Fatal(err)
	}
	defer inj.Close()
	// What the gateway sends to the spoofed address while we probe.
	out, stopOut := captureGateway(t, l, span+time.Minute)

	ping := startPing(l, int(span/(500*time.Millisecond)), 500*time.Millisecond)
	changed := 0
	var first string
	for r := 0; r < rounds; r++ {
		start := time.Now()
		src := netip.AddrPortFrom(awsOutside(v1), 500)
		dst := netip.AddrPortFrom(gatewayOutside, 500)
		msg := MainMode1(RandomSPI())
		if r%2 == 1 {
			dst = netip.AddrPortFrom(gatewayOutside, 4500)
			msg = NonESP(msg)
		}
		if err := inj.Send(UDP4(src, dst, msg)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(check)
		now := tunnel(t, l, g, v1)
		if ikeSPIs(now) != ikeSPIs(before) || now.Peer != before.Peer {
			changed++
			if first == "" {
				first = fmt.Sprintf("after message 1 #%d to %s: ISAKMP SA %s -> %s, peer %s -> %s (state %s)",
					r+1, dst, ikeSPIs(before), ikeSPIs(now), before.Peer, now.Peer, now.State)
			}
		}
		time.Sleep(every - time.Since(start))
	}
	pr := ping.wait()
	after := tunnel(t, l, g, v1)
	stopOut()
	out.mu.Lock()
	sent := len(out.to[awsOutside(v1)])
	out.mu.Unlock()
	if first != "" {
		t.Errorf("spoofed Main Mode message 1 changed the tunnel %d of %d times; first %s", changed, rounds, first)
	}
	if ikeSPIs(after) != ikeSPIs(before) || after.Peer != before.Peer || after.State != "up" {
		t.Errorf("after %v: ISAKMP SA %s -> %s, peer %s -> %s, state %s", span, ikeSPIs(before), ikeSPIs(after), before.Peer, after.Peer, after.State)
	}
	if c, ok := after.Active(); !ok || c.InSPI != child.InSPI {
		t.Errorf("the SA pair changed: %08x -> %+v", child.InSPI, c)
	}
	// strongSwan still holds the same ISAKMP SA.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if sas, err := l.SwanctlListSAs(ctx, lab.AWSEndpoint(v1)); err != nil || len(sas) != 1 || sas[0].State != "ESTABLISHED" {
		t.Errorf("charon on %s: %+v %v; want its one ISAKMP SA ESTABLISHED", lab.AWSEndpoint(v1), sas, err)
	}
	// 1 % of the pings may go to the machine's noise; a tunnel torn down
	// loses them by the dozen.
	if lost := pr.Sent - pr.Received; pr.Sent == 0 || lost > (pr.Sent+99)/100 {
		t.Errorf("LAN -> VPC ping through the IKEv1 tunnel during the probe: %d of %d answered", pr.Received, pr.Sent)
	}
	passLine(t, "ikev1-mm1-spoof", fmt.Sprintf("1/%v for %v (%d messages, ports 500 and 4500)", every, span, rounds),
		fmt.Sprintf("ISAKMP SA changed %d times (%s -> %s), peer %s -> %s, ping %d/%d answered, gateway sent %d IKE datagrams to the endpoint (its own DPD included)",
			changed, ikeSPIs(before), ikeSPIs(after), before.Peer, after.Peer, pr.Received, pr.Sent, sent))
}
