package adversary

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
)

// Defaults of the gateway under test (control/ikev2 Options, control/ike
// Timing) the flood probes' bounds come from.
const (
	cookieThreshold = 32               // half-open IKE SAs before a COOKIE is required
	halfOpenTimeout = 30 * time.Second // a half-open SA is dropped after
)

// TestForgedCookieFlood: from inet, posing as AWS endpoint 2 (the IKEv2
// tunnel's peer, the only source whose IKE_SA_INIT the gateway answers),
// IKE_SA_INIT requests at 1000/s, each with a COOKIE the attacker made
// up: half with an all-zero secret (a responder whose previous-secret
// slot starts zeroed accepts those), half random. The gateway may
// answer the first ones before its cookie threshold; after that it must
// not create half-open SAs for forged cookies, so the half-open SAs it
// answers with a KE payload stay at the threshold. Midway a legitimate
// initiator at the same address (sends, returns the COOKIE it is given,
// retransmits after 1 s as RFC 7296 §2.1 has it) gets its IKE SA's
// responder half, and the established tunnels stay up (§2.6; issue #9).
func TestForgedCookieFlood(t *testing.T) {
	l, g, _ := adversaryLab(t)
	const rate = 1000
	d := 5 * time.Second
	if fullRun {
		d = 20 * time.Second
	}
	before := [2]string{ikeSPIs(tunnel(t, l, g, v1)), ikeSPIs(tunnel(t, l, g, v2))}
	inj, err := NewInjector(l.NS(lab.Inet))
	if err != nil {
		t.Fatal(err)
	}
	defer inj.Close()
	out, stopOut := captureGateway(t, l, d+time.Minute)
	peer := netip.AddrPortFrom(awsOutside(v2), 500)
	gw := netip.AddrPortFrom(gatewayOutside, 500)
	ke := RandomKE()

	type legit struct {
		spi       [8]byte
		took      time.Duration
		tries     int
		ok        bool
		gotCookie bool
	}
	// answer is what the gateway sent the initiator with SPI spi so far:
	// a KE (its half of the IKE SA) and the last COOKIE it asked for.
	answer := func(spi [8]byte) (ke bool, cookie []byte) {
		out.mu.Lock()
		defer out.mu.Unlock()
		for _, r := range out.to[peer.Addr()] {
			if r.SPIi == spi && r.Exchange == ExchIKESAInit && r.Flags&FlagResponse != 0 {
				ke = ke || r.HasKE
				if r.Cookie != nil {
					cookie = r.Cookie
				}
			}
		}
		return ke, cookie
	}
	legitDone := make(chan legit, 1)
	go func() {
		time.Sleep(d / 2)
		lg := legit{spi: RandomSPI()}
		nonce := RandomBytes(32)
		start := time.Now()
		var cookie []byte
		for lg.tries < 6 && !lg.ok {
			lg.tries++
			inj.Send(UDP4(peer, gw, SAInit(lg.spi, nonce, ke, cookie)))
			// Up to 1 s for the answer; a new COOKIE is returned at once.
			for wait := time.Now(); time.Since(wait) < time.Second; time.Sleep(10 * time.Millisecond) {
				ok, c := answer(lg.spi)
				if ok {
					lg.ok = true
					break
				}
				if c != nil && string(c) != string(cookie) {
					cookie, lg.gotCookie = c, true
					break
				}
			}
		}
		lg.took = time.Since(start)
		legitDone <- lg
	}()

	sent, took := flood(t, inj, rate, d, rate*int(d/time.Second), func(i int) []byte {
		spi, nonce := RandomSPI(), RandomBytes(32)
		cookie := RandomBytes(17)
		if i%2 == 0 {
			cookie = ZeroSecretCookie(0xff, nonce, peer.Addr(), spi) // the version before a new responder's first
		}
		return UDP4(peer, gw, SAInit(spi, nonce, ke, cookie))
	})
	lg := <-legitDone
	time.Sleep(time.Second)
	stopOut()

	out.mu.Lock()
	var halfOpen, cookies int
	for _, r := range out.to[peer.Addr()] {
		if r.Exchange != ExchIKESAInit || r.Flags&FlagResponse == 0 || r.SPIi == lg.spi {
			continue
		}
		if r.HasKE {
			halfOpen++
		} else if r.Cookie != nil {
			cookies++
		}
	}
	out.mu.Unlock()
	achieved := float64(sent) / took.Seconds()
	// Half-open SAs the gateway had before the flood also count against
	// the threshold, and those of the flood's start expire after 30 s.
	bound := cookieThreshold * (1 + int(took/halfOpenTimeout))
	if halfOpen > bound {
		t.Errorf("the gateway created %d half-open IKE SAs (IKE_SA_INIT responses with KE) for %d forged-cookie requests; want at most %d (its cookie threshold)", halfOpen, sent, bound)
	}
	if !lg.ok {
		t.Errorf("the legitimate IKE_SA_INIT from %s got no answer with KE in %d tries over %v (COOKIE received: %v)", peer, lg.tries, lg.took.Round(time.Millisecond), lg.gotCookie)
	}
	tunnelsOK := tunnelsUnchanged(t, l, g, before)
	passLine(t, "forged-cookie-flood", fmt.Sprintf("%.0f IKE_SA_INIT/s for %v (%d sent, forged COOKIEs, spoofed from %s)", achieved, took.Round(time.Millisecond), sent, peer.Addr()),
		fmt.Sprintf("half-open SAs created %d (bound %d), COOKIE replies %d; legitimate initiator answered with KE: %v after %d tries, %v (COOKIE round trip: %v); both tunnels up with the same IKE SAs: %v",
			halfOpen, bound, cookies, lg.ok, lg.tries, lg.took.Round(time.Millisecond), lg.gotCookie, tunnelsOK))
}
