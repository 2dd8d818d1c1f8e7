package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/control/status"
)

// Child SA rekeys under a LAN→VPC ping every 10 ms (ping manages about
// 65/s on the 2-core VM; the test logs the rate achieved): how many are
// made, how far apart, and how long the ping runs before the first and
// after the last.
const (
	rekeyRounds = 10
	rekeyEvery  = 2 * time.Second
	pingRate    = 10 * time.Millisecond
	pingMargin  = 3 * time.Second
)

// TestLabCGWIKEv2RekeyLoss: IKEv2 Child SA rekeys under a LAN→VPC ping
// every 10 ms, ten made by cgw (cgwctl rekey: we initiate) and ten by
// strongSwan (swanctl --rekey --child: we respond). Make-before-break
// loses no reply; the outside link carries ESP on every old and new SPI,
// both ways, and nothing to or from the LAN, the VPC or an inside /30
// in clear. AWS's charons drop a rekeyed SA's inbound half as soon as it
// is deleted (lab.Overrides.DropRekeyed): with strongSwan's default 5 s
// delay a Delete sent while cgw still encrypts with the old SA is
// hidden, and another peer need not keep it.
func TestLabCGWIKEv2RekeyLoss(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, g, cgwctl := upLab(t, ctx, lab.Options{Overrides: lab.Overrides{DropRekeyed: true}})
	names := []string{l.Conn.Tunnels[0].Name, l.Conn.Tunnels[1].Name}
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	defer wcancel()
	if err := l.WaitTunnels(wctx); err != nil {
		t.Fatalf("AWS side: %v", err)
	}
	if s, err := g.WaitStatus(wctx, l, "both IKEv2 tunnels up in cgw-control", allUp); err != nil {
		t.Fatalf("%v; last status: %+v", err, s)
	}
	if err := l.WaitBGP(wctx); err != nil {
		t.Fatalf("BGP: %v", err)
	}
	primary, pi := primaryTunnel(t, wctx, l, g, names)
	if _, err := g.WaitRouteInstalled(wctx, l, lab.VPCPrefix); err != nil {
		t.Fatal(err)
	}
	ep := lab.AWSEndpoint(pi)

	t.Run("rekeys by cgw", func(t *testing.T) {
		rekeysUnderPing(t, ctx, l, g, primary, pi, true, func() error {
			out, err := exec.CommandContext(ctx, cgwctl, "rekey", "-socket", g.SocketPath(l), primary).CombinedOutput()
			if err != nil {
				return fmt.Errorf("cgwctl rekey %s: %v\n%s", primary, err, out)
			}
			return nil
		})
	})
	t.Run("rekeys by strongSwan", func(t *testing.T) {
		sas, err := l.SwanctlListSAs(ctx, ep)
		if err != nil || len(sas) != 1 || len(sas[0].Children) == 0 {
			t.Fatalf("%s: %v %+v", ep, err, sas)
		}
		child := sas[0].Children[0].Name
		rekeysUnderPing(t, ctx, l, g, primary, pi, false, func() error {
			if out, err := l.Swanctl(ctx, ep, "--rekey", "--child", child); err != nil {
				return fmt.Errorf("swanctl --rekey --child %s: %v\n%s", child, err, out)
			}
			return nil
		})
	})
}

// rekeysUnderPing pings LAN→VPC every 10 ms through tunnel name (index i)
// while rekey makes rekeyRounds Child SA rekeys, rekeyEvery apart, each
// waited for in cgw's status; then checks that no reply was lost and
// what the outside link carried. ours: cgw initiates the rekeys, so it
// sends the Deletes of the old pairs (else it answers the peer's).
func rekeysUnderPing(t *testing.T, ctx context.Context, l *lab.Lab, g *lab.CGWGateway, name string, i int, ours bool, rekey func() error) {
	c := g.Client(l)
	s, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	children := []status.ChildSA{activeOf(t, s, name)}
	w := startWire(t, ctx, l, i)
	n := int((time.Duration(rekeyRounds)*rekeyEvery + 2*pingMargin) / pingRate)
	pingDone := make(chan lab.PingTrace, 1)
	began := time.Now()
	go func() {
		tr, err := l.PingTraced(ctx, lab.LAN, lab.VPCHost, n, pingRate)
		if err != nil {
			t.Errorf("ping: %v", err)
		}
		pingDone <- tr
	}()
	time.Sleep(pingMargin)
	for r := 0; r < rekeyRounds; r++ {
		start := time.Now()
		prev := children[len(children)-1]
		if err := rekey(); err != nil {
			t.Fatalf("rekey %d: %v", r+1, err)
		}
		rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
		s, err := g.WaitStatus(rctx, l, fmt.Sprintf("rekey %d: a new active Child SA", r+1), func(st *status.Status) bool {
			tu, ok := st.Tunnel(name)
			a, ok2 := tu.Active()
			return ok && ok2 && tu.State == "up" && a.InSPI != prev.InSPI
		})
		rcancel()
		if err != nil {
			t.Fatalf("%v; last %+v", err, s)
		}
		children = append(children, activeOf(t, s, name))
		time.Sleep(rekeyEvery - time.Since(start))
	}
	tr := <-pingDone
	took := time.Since(began)
	pk, clear := w.stop(t, ctx)
	lost := tr.Sent - tr.Received
	t.Logf("ping LAN→VPC every %v (%.0f/s achieved) across %d Child SA rekeys: %d sent, %d lost (longest run %d, longest gap between replies %v)",
		pingRate, float64(tr.Sent)/took.Seconds(), rekeyRounds, tr.Sent, lost, tr.LostRun, tr.ReplyGap.Round(time.Millisecond))
	if tr.Sent < n {
		t.Errorf("ping sent %d of %d requests", tr.Sent, n)
	}
	if lost != 0 {
		t.Errorf("%d of %d pings lost across %d Child SA rekeys (make-before-break should lose none)", lost, tr.Sent, rekeyRounds)
	}
	// Every generation carried traffic both ways on its own SPIs, and
	// none left on a pair after cgw's Delete for it (or its answer to the
	// peer's) went: a peer may drop the pair's inbound SA on it. The k-th
	// of cgw's INFORMATIONAL requests (answers) is the Delete for the k-th
	// pair: nothing else is sent while the ping keeps the tunnel busy.
	dels := pk.informational(!ours)
	var seen []string
	for k, ch := range children {
		out, in, late := 0, 0, 0
		var del time.Time
		if k < len(dels) {
			del = dels[k]
		}
		for _, p := range pk {
			switch {
			case p.out && p.spi == ch.OutSPI:
				out++
				if !del.IsZero() && p.at.After(del) {
					late++
				}
			case !p.out && p.spi == ch.InSPI:
				in++
			}
		}
		seen = append(seen, fmt.Sprintf("in %08x out %08x: %d out, %d in, %d out after the Delete", ch.InSPI, ch.OutSPI, out, in, late))
		if out == 0 || in == 0 {
			t.Errorf("Child SA in %08x out %08x: %d ESP packets out, %d in on the outside link; want both", ch.InSPI, ch.OutSPI, out, in)
		}
		if late > 0 {
			t.Errorf("Child SA in %08x out %08x: %d ESP packets sent on it after cgw's Delete for it (or its answer to the peer's)", ch.InSPI, ch.OutSPI, late)
		}
	}
	t.Logf("ESP packets per Child SA on the outside link:\n%s", strings.Join(seen, "\n"))

	if len(clear) > 0 {
		t.Errorf("%d packets to or from the LAN, the VPC or an inside /30 in clear on the outside link, e.g.:\n%s",
			len(clear), strings.Join(clear[:min(len(clear), 5)], "\n"))
	}
}

// espWire is a capture on inet's link towards the gateway.
type espWire struct {
	c      *lab.Capture
	peer   netip.Addr
	inside []netip.Prefix // addresses that may only cross it encrypted
}

// wirePacket is an ESP or IKE packet between the gateway and the peer.
type wirePacket struct {
	at   time.Time // time of day only
	out  bool      // gateway → peer
	spi  uint32    // ESP
	exch string    // IKE: tcpdump's name of the exchange and flags, e.g. "inf2[IR]"
}

type wirePackets []wirePacket

// informational returns when cgw sent its INFORMATIONAL requests (or,
// resp, its answers), in order.
func (pk wirePackets) informational(resp bool) []time.Time {
	var at []time.Time
	for _, p := range pk {
		if p.out && strings.HasPrefix(p.exch, "inf2[") && strings.Contains(p.exch, "R]") == resp {
			at = append(at, p.at)
		}
	}
	return at
}

func startWire(t *testing.T, ctx context.Context, l *lab.Lab, i int) *espWire {
	t.Helper()
	w := &espWire{peer: l.Conn.Tunnels[i].AWSOutside, inside: []netip.Prefix{lab.VPCPrefix, l.Cfg.Gateway.Inside.Address.Masked()}}
	for _, tu := range l.Conn.Tunnels {
		w.inside = append(w.inside, tu.InsideCIDR.Masked())
	}
	// Two ESP packets per ping, BGP, IKE: bounded well above that.
	n := 4*int((time.Duration(rekeyRounds)*rekeyEvery+2*pingMargin)/pingRate) + 2000
	c, err := l.StartCapture(ctx, lab.Inet, "cgw0", "ip", fmt.Sprintf("rekey-%d", time.Now().UnixNano()), n)
	if err != nil {
		t.Fatal(err)
	}
	w.c = c
	return w
}

var (
	wireLineRe = regexp.MustCompile(`^(\d+):(\d+):(\d+)\.(\d+) IP (\d+\.\d+\.\d+\.\d+)(?:\.\d+)? > (\d+\.\d+\.\d+\.\d+)(?:\.\d+)?: (.*)`)
	espSPIRe   = regexp.MustCompile(`ESP\(spi=0x([0-9a-f]+),`)
	ikeExchRe  = regexp.MustCompile(`isakmp: child_sa +(\S+)`)
)

// stop ends the capture and returns the ESP and IKE packets to and from
// the tunnel's peer, in order, and the lines in clear.
func (w *espWire) stop(t *testing.T, ctx context.Context) (wirePackets, []string) {
	t.Helper()
	out, err := w.c.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pk wirePackets
	var clear []string
	for _, line := range strings.Split(out, "\n") {
		m := wireLineRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		src, err1 := netip.ParseAddr(m[5])
		dst, err2 := netip.ParseAddr(m[6])
		if err1 != nil || err2 != nil {
			continue
		}
		if w.isInside(src) || w.isInside(dst) {
			clear = append(clear, line)
			continue
		}
		if src != w.peer && dst != w.peer {
			continue
		}
		us, _ := strconv.Atoi((m[4] + "000000")[:6])
		at := time.Date(0, 1, 1, atoi(m[1]), atoi(m[2]), atoi(m[3]), us*1000, time.UTC)
		if n := len(pk); n > 0 && pk[n-1].at.Sub(at) > 12*time.Hour {
			at = at.Add(24 * time.Hour) // past midnight
		}
		p := wirePacket{at: at, out: dst == w.peer}
		if sm := espSPIRe.FindStringSubmatch(m[7]); sm != nil {
			v, _ := strconv.ParseUint(sm[1], 16, 32)
			p.spi = uint32(v)
		} else if im := ikeExchRe.FindStringSubmatch(m[7]); im != nil {
			p.exch = im[1]
		} else {
			continue
		}
		pk = append(pk, p)
	}
	return pk, clear
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func (w *espWire) isInside(a netip.Addr) bool {
	for _, p := range w.inside {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
