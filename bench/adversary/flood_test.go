package adversary

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strings"
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

// flood sends the packets next returns, round after round, at rate per
// second (0: as fast as the socket takes them) until d has passed or max
// have gone; it returns how many were sent and over how long.
func flood(t *testing.T, inj *Injector, rate int, d time.Duration, max int, next func(i int) []byte) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	n := 0
	for n < max && time.Since(start) < d {
		if rate > 0 {
			// Send what is due by now, in 1 ms steps.
			due := int(time.Since(start).Seconds() * float64(rate))
			if n >= due {
				time.Sleep(time.Millisecond)
				continue
			}
		}
		if err := inj.Send(next(n)); err != nil {
			t.Fatalf("flood packet %d: %v", n, err)
		}
		n++
	}
	return n, time.Since(start)
}

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

// randomSource is an address from the documentation ranges the lab may
// use, away from every address the lab gives out (.1, .2, .10, .66, .254).
func randomSource(b []byte) netip.Addr {
	nets := [3][3]byte{{192, 0, 2}, {198, 51, 100}, {203, 0, 113}}
	n := nets[int(b[0])%3]
	return netip.AddrFrom4([4]byte{n[0], n[1], n[2], 100 + b[1]%100})
}

// logLines returns the lines added to a log file after offset, and the
// highest count that fell in one second (by their time= field).
func logLines(t *testing.T, path string, offset int64) (lines []string, perSecond int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		t.Fatal(err)
	}
	bySecond := map[string]int{}
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
		if ts, ok := strings.CutPrefix(strings.Fields(s.Text() + " x")[0], "time="); ok && len(ts) >= 19 {
			bySecond[ts[:19]]++
			perSecond = max(perSecond, bySecond[ts[:19]])
		}
	}
	return lines, perSecond
}

// TestSAInitFlood: IKE_SA_INIT requests from random sources of the
// documentation ranges (none a configured peer), to ports 500 and 4500,
// as fast as the generator goes, bounded in count and time. Unknown
// sources get no state and no answer; what they cause in cgw-control's
// log stays at one line a second or less (rate-limited, with a count of
// what was suppressed), and LAN -> VPC pings through the established
// tunnels keep being answered (issue #9).
func TestSAInitFlood(t *testing.T) {
	l, g, _ := adversaryLab(t)
	d, max := 5*time.Second, 2_000_000
	if fullRun {
		d, max = 30*time.Second, 20_000_000
	}
	before := [2]string{ikeSPIs(tunnel(t, l, g, v1)), ikeSPIs(tunnel(t, l, g, v2))}
	inj, err := NewInjector(l.NS(lab.Inet))
	if err != nil {
		t.Fatal(err)
	}
	defer inj.Close()
	// 4096 distinct requests, sent round after round.
	pkts := make([][]byte, 4096)
	ke := RandomKE()
	for i := range pkts {
		r := RandomBytes(2)
		src := netip.AddrPortFrom(randomSource(r), 500)
		dst := netip.AddrPortFrom(gatewayOutside, 500)
		msg := SAInit(RandomSPI(), RandomBytes(32), ke, nil)
		if i%2 == 1 {
			src, dst, msg = netip.AddrPortFrom(src.Addr(), 4500), netip.AddrPortFrom(gatewayOutside, 4500), NonESP(msg)
		}
		pkts[i] = UDP4(src, dst, msg)
	}
	logPath := l.Dir + "/cgw-control.log"
	st, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	out, stopOut := captureGateway(t, l, d+time.Minute)
	pingEvery := 100 * time.Millisecond
	ping := startPing(l, int(d/pingEvery), pingEvery)
	sent, took := flood(t, inj, 0, d, max, func(i int) []byte { return pkts[i%len(pkts)] })
	pr := ping.wait()
	time.Sleep(time.Second) // what the flood left in the socket buffers
	stopOut()
	lines, perSecond := logLines(t, logPath, st.Size())

	out.mu.Lock()
	answered := 0
	for a, rs := range out.to {
		if a != awsOutside(v1) && a != awsOutside(v2) {
			answered += len(rs)
		}
	}
	out.mu.Unlock()
	achieved := float64(sent) / took.Seconds()
	// One line a second, and one more for a second boundary the window
	// cuts.
	if allowed := int(took/time.Second) + 2; len(lines) > allowed || perSecond > 1 {
		t.Errorf("cgw-control logged %d lines during a %v flood (%d in its busiest second); want at most one a second. First: %.200s",
			len(lines), took.Round(time.Millisecond), perSecond, strings.Join(lines[:min(3, len(lines))], " | "))
	}
	if answered != 0 {
		t.Errorf("the gateway answered %d datagrams to the flood's sources", answered)
	}
	if lost := pr.Sent - pr.Received; pr.Sent == 0 || lost > (pr.Sent+99)/100 {
		t.Errorf("LAN -> VPC ping during the flood: %d of %d answered", pr.Received, pr.Sent)
	}
	tunnelsOK := tunnelsUnchanged(t, l, g, before)
	passLine(t, "ikev2-sa-init-flood", fmt.Sprintf("%.0f IKE_SA_INIT/s for %v (%d sent from 300 random addresses, ports 500 and 4500)", achieved, took.Round(time.Millisecond), sent),
		fmt.Sprintf("cgw-control log lines %d (busiest second %d), datagrams answered to the sources %d, ping %d/%d answered, both tunnels up with the same IKE SAs: %v",
			len(lines), perSecond, answered, pr.Received, pr.Sent, tunnelsOK))
}

// tunnelsUnchanged checks both tunnels are up on the IKE SAs they had.
func tunnelsUnchanged(t *testing.T, l *lab.Lab, g *lab.CGWGateway, before [2]string) bool {
	t.Helper()
	ok := true
	for i, want := range before {
		if now := tunnel(t, l, g, i); ikeSPIs(now) != want || now.State != "up" {
			t.Errorf("tunnel %s: IKE SA %s -> %s, state %s", now.Name, want, ikeSPIs(now), now.State)
			ok = false
		}
	}
	return ok
}
