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

// randomSource is an address from the documentation ranges the lab may
// use, away from every address the lab gives out (.1, .2, .10, .66, .254).
func randomSource(b []byte) netip.Addr {
	nets := [3][3]byte{{192, 0, 2}, {198, 51, 100}, {203, 0, 113}}
	n := nets[int(b[0])%3]
	return netip.AddrFrom4([4]byte{n[0], n[1], n[2], 100 + b[1]%100})
}

// logLines returns the lines added to a log file after offset that
// keep(line) selects, the others' count, and the highest count of kept
// lines that fell in one second (by their time= field).
func logLines(t *testing.T, path string, offset int64, keep func(string) bool) (lines []string, others, perSecond int) {
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
		if !keep(s.Text()) {
			others++
			continue
		}
		lines = append(lines, s.Text())
		if ts, ok := strings.CutPrefix(strings.Fields(s.Text() + " x")[0], "time="); ok && len(ts) >= 19 {
			bySecond[ts[:19]]++
			perSecond = max(perSecond, bySecond[ts[:19]])
		}
	}
	return lines, others, perSecond
}

// TestSAInitFlood: IKE_SA_INIT requests from random sources of the
// documentation ranges (none a configured peer), to ports 500 and 4500,
// as fast as the generator goes, bounded in count and time. Unknown
// sources get no state and no answer; what they cause in cgw-control's
// log stays at one line a second or less (rate-limited, with a count of
// what was suppressed; lines about a configured tunnel are counted
// apart), and LAN -> VPC pings through the established tunnels keep
// being answered (issue #9).
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
	// A line that names a tunnel is about a configured peer's SAs (say an
	// earlier probe's half-open SA timing out), not an unknown source;
	// had the flood reached a tunnel, it would have been answered.
	lines, tunnelLines, perSecond := logLines(t, logPath, st.Size(), func(s string) bool { return !strings.Contains(s, " tunnel=") })

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
		t.Errorf("cgw-control logged %d lines not about a tunnel during a %v flood (%d in its busiest second); want at most one a second. The first %d:\n%s",
			len(lines), took.Round(time.Millisecond), perSecond, min(40, len(lines)), strings.Join(lines[:min(40, len(lines))], "\n"))
	}
	if answered != 0 {
		t.Errorf("the gateway answered %d datagrams to the flood's sources", answered)
	}
	if lost := pr.Sent - pr.Received; pr.Sent == 0 || lost > (pr.Sent+99)/100 {
		t.Errorf("LAN -> VPC ping during the flood: %d of %d answered", pr.Received, pr.Sent)
	}
	tunnelsOK := tunnelsUnchanged(t, l, g, before)
	passLine(t, "ikev2-sa-init-flood", fmt.Sprintf("%.0f IKE_SA_INIT/s for %v (%d sent from 300 random addresses, ports 500 and 4500)", achieved, took.Round(time.Millisecond), sent),
		fmt.Sprintf("cgw-control log lines %d (busiest second %d; %d more about tunnels), datagrams answered to the sources %d, ping %d/%d answered, both tunnels up with the same IKE SAs: %v",
			len(lines), perSecond, tunnelLines, answered, pr.Received, pr.Sent, tunnelsOK))
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
