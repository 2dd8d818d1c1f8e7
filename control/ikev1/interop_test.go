package ikev1

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/internal/charontest"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// swanLab is a namespace pair joined by one veth: cgw 192.0.2.10 (our
// engine) and aws 203.0.113.1 (charon with kernel-libipsec, IKEv1 main
// mode), as control/ikev2's interop tests set it up.
type swanLab struct {
	t      *testing.T
	prefix string
	*charontest.Charon
	cgwNS    *netnstest.NS
	awsNS    *netnstest.NS
	conn     string
	tunReady bool
	tap      *tapConn
}

func interopPrereqs(t *testing.T) {
	t.Helper()
	charontest.Require(t, "md5")
}

func newSwanLab(t *testing.T, tun config.Tunnel, start string) *swanLab {
	interopPrereqs(t)
	l := &swanLab{t: t, prefix: fmt.Sprintf("ikv1%d", os.Getpid()%100000), conn: "aws"}
	dir := t.TempDir()
	l.cgwNS, l.awsNS = netnstest.New(t, l.prefix+"-cgw"), netnstest.New(t, l.prefix+"-aws")
	netnstest.Veth{
		A: netnstest.End{NS: l.cgwNS, Name: l.prefix + "c", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}},
		B: netnstest.End{NS: l.awsNS, Name: l.prefix + "a", Addrs: []netip.Prefix{netip.MustParsePrefix("203.0.113.1/24")}},
	}.Create(t)
	l.cgwNS.Run(t, "ip", "route", "add", "203.0.113.0/24", "dev", l.prefix+"c")
	l.awsNS.Run(t, "ip", "route", "add", "192.0.2.0/24", "dev", l.prefix+"a")

	swan := fmt.Sprintf(`connections {
    %[1]s {
        version = 1
        aggressive = no
        local_addrs = 203.0.113.1
        remote_addrs = 192.0.2.10
        proposals = %[2]s
        rekey_time = 0
        reauth_time = 0
        dpd_delay = 2s
        local {
            auth = psk
        }
        remote {
            auth = psk
        }
        children {
            %[1]s {
                mode = tunnel
                local_ts = 0.0.0.0/0
                remote_ts = 0.0.0.0/0
                esp_proposals = %[3]s
                rekey_time = 0
                life_time = 0
                start_action = %[4]s
                dpd_action = clear
            }
        }
    }
}
secrets {
    ike-psk {
        secret = %[5]q
    }
}
`, l.conn, tun.Phase1.StrongSwanIKE(), tun.Phase2.StrongSwanESP(), start, tun.PreSharedKey)
	l.Charon = charontest.Start(t, l.awsNS, dir, charontest.Conf("md5"), swan)
	return l
}

func (l *swanLab) sas() (ikeUp bool, children []charontest.Child, text string) {
	children, text = l.SAs()
	return strings.Contains(text, "IKEv1") && strings.Contains(text, "ESTABLISHED"), children, text
}

// checkSwanMatches waits until charon lists an ESTABLISHED IKEv1 SA and an
// INSTALLED child whose SPIs are ours, mirrored.
func (l *swanLab) checkSwanMatches(c *ChildSA) {
	l.t.Helper()
	var text string
	l.WaitFor(fmt.Sprintf("charon to list the child in=%08x out=%08x", c.OutSPI, c.InSPI), 10*time.Second, func() bool {
		up, children, s := l.sas()
		text = s
		for _, sc := range children {
			if sc.State == "INSTALLED" && sc.In == c.OutSPI && sc.Out == c.InSPI {
				return up
			}
		}
		return false
	})
	l.t.Logf("charon:\n%s", text)
}

// managerInNS starts a Manager whose sockets live in the cgw namespace.
func (l *swanLab) managerInNS(n *node, o Options) {
	t := l.t
	var c500, c4500 net.PacketConn
	if err := l.cgwNS.Do(func() (err error) {
		if c500, err = net.ListenPacket("udp4", "192.0.2.10:500"); err != nil {
			return err
		}
		c4500, err = net.ListenPacket("udp4", "192.0.2.10:4500")
		return err
	}); err != nil {
		t.Fatalf("listening in the cgw namespace: %v", err)
	}
	l.tap = &tapConn{PacketConn: c4500}
	n.c500, n.c4500 = c500, l.tap
	o.Conn500, o.Conn4500 = c500, l.tap
	o.Events = func(e Event) { n.mu.Lock(); n.events = append(n.events, e); n.mu.Unlock() }
	o.Log = slog.New(slog.NewTextHandler(logW{t, n.name}, nil))
	o.Timing.RetransmitTimeout = time.Second
	o.Timing.Grace = 200 * time.Millisecond
	o.Tick = 50 * time.Millisecond
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	n.m = m
}

func swanTunnel() config.Tunnel {
	tun := testTunnel("t1")
	tun.AWSOutside, tun.LocalOutside = netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("192.0.2.10")
	tun.Phase1.Lifetime = config.Duration(8 * time.Hour)
	tun.Phase2.Lifetime = config.Duration(time.Hour)
	tun.DPD = config.DPD{Interval: config.Duration(2 * time.Second), Retries: 3, Action: config.DPDClear}
	return tun
}

func (n *node) count(typ EventType) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for _, e := range n.events {
		if e.Type == typ {
			k++
		}
	}
	return k
}

func (n *node) noFailures(t *testing.T) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range n.events {
		if e.Type == NegotiationFailed || e.Type == DPDTimeout {
			t.Errorf("unexpected event: %v", e)
		}
	}
}

// exercise runs, after the tunnel is up: a quick-mode rekey by charon and
// one by us (each must retire the old pair on our side and list the new
// one in charon), DPD both ways over a few idle intervals, then delete on
// shutdown.
func exercise(t *testing.T, l *swanLab, n *node) {
	ev := n.wait(ChildSAInstalled, 0)
	if !ev.Child.Encap || ev.Child.PeerPort != 4500 {
		t.Fatalf("libipsec forces NAT-T, yet the SA pair is not UDP-encapsulated to 4500: %+v", ev.Child)
	}
	l.checkSwanMatches(ev.Child)
	espPing(t, l, n, ev.Child, l.tap, 1)

	k := n.count(ChildSAInstalled)
	r := n.count(ChildSARetired)
	l.Swanctl("--rekey", "--child", l.conn)
	ev2 := n.wait(ChildSAInstalled, k)
	l.checkSwanMatches(ev2.Child)
	if e := n.wait(ChildSARetired, r); e.Child.InSPI != ev.Child.InSPI {
		t.Fatalf("retired %08x, want %08x", e.Child.InSPI, ev.Child.InSPI)
	}

	n.m.RekeyChild("t1")
	ev3 := n.wait(ChildSAInstalled, k+1)
	l.checkSwanMatches(ev3.Child)
	espPing(t, l, n, ev3.Child, l.tap, 1)
	if e := n.wait(ChildSARetired, r+1); e.Child.InSPI != ev2.Child.InSPI {
		t.Fatalf("retired %08x, want %08x", e.Child.InSPI, ev2.Child.InSPI)
	}

	// Idle DPD: both sides send R-U-THERE every 2 s; both must answer.
	time.Sleep(7 * time.Second)
	l.checkSwanMatches(ev3.Child)
	if b, _ := os.ReadFile(filepath.Join(l.Dir, "charon.log")); !strings.Contains(string(b), "DPD") {
		t.Errorf("charon's log shows no DPD exchange")
	}
	n.noFailures(t)
	if st := n.m.Status(); len(st) != 1 || st[0].State != "up" {
		t.Fatalf("status %+v", st)
	}

	n.m.Close(context.Background())
	l.WaitFor("charon to drop the IKEv1 SA after our Delete", 10*time.Second, func() bool {
		up, children, _ := l.sas()
		return !up && len(children) == 0
	})
}

// TestStrongSwanResponder: we initiate Main Mode and Quick Mode.
func TestStrongSwanResponder(t *testing.T) {
	tun := swanTunnel()
	l := newSwanLab(t, tun, "none")
	n := &node{t: t, name: "cgw"}
	l.managerInNS(n, Options{})
	defer n.m.Close(context.Background())
	if err := n.m.AddTunnel(tun, TunnelOptions{}); err != nil {
		t.Fatal(err)
	}
	n.wait(TunnelUp, 0)
	exercise(t, l, n)
}

// TestStrongSwanInitiator: charon initiates; we respond.
func TestStrongSwanInitiator(t *testing.T) {
	tun := swanTunnel()
	tun.StartupAction = config.StartupAdd
	l := newSwanLab(t, tun, "none")
	n := &node{t: t, name: "cgw"}
	l.managerInNS(n, Options{})
	defer n.m.Close(context.Background())
	if err := n.m.AddTunnel(tun, TunnelOptions{}); err != nil {
		t.Fatal(err)
	}
	l.Swanctl("--initiate", "--child", l.conn, "--timeout", "10")
	n.wait(TunnelUp, 0)
	if st := n.m.Status()[0]; st.IKE == nil || st.IKE.Initiator {
		t.Fatalf("we should be the responder: %+v", st)
	}
	exercise(t, l, n)
}

// TestStrongSwanSuites establishes with charon for a spread of AWS's
// IKEv1 algorithm sets (PFS in every case) and rekeys the pair from our
// side.
func TestStrongSwanSuites(t *testing.T) {
	cases := []struct {
		enc, integ string
		ike, pfs   int
		espEnc     string // phase 2 cipher when not enc (GCM: phase 2 only)
	}{
		{config.AES256, config.SHA2256, 14, 14, ""},
		{config.AES128, config.SHA2256, 19, 19, ""},
		{config.AES256, config.SHA1, 20, 5, ""},
		{config.AES128, config.SHA2512, 24, 2, ""},
		{config.AES256, config.SHA2384, 21, 15, config.AES256GCM},
		{config.AES128, config.SHA2256, 14, 14, config.AES128GCM},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s_%s_%d_%d%s", c.enc, c.integ, c.ike, c.pfs, c.espEnc), func(t *testing.T) {
			tun := swanTunnel()
			tun.Phase1.Encryption, tun.Phase1.Integrity, tun.Phase1.DHGroups = []string{c.enc}, []string{c.integ}, []int{c.ike}
			tun.Phase2.Encryption, tun.Phase2.Integrity, tun.Phase2.DHGroups = []string{c.enc}, []string{c.integ}, []int{c.pfs}
			if c.espEnc != "" {
				tun.Phase2.Encryption = []string{c.espEnc}
			}
			l := newSwanLab(t, tun, "none")
			n := &node{t: t, name: "cgw"}
			l.managerInNS(n, Options{})
			defer n.m.Close(context.Background())
			if err := n.m.AddTunnel(tun, TunnelOptions{}); err != nil {
				t.Fatal(err)
			}
			ev := n.wait(ChildSAInstalled, 0)
			l.checkSwanMatches(ev.Child)
			n.m.RekeyChild("t1")
			ev2 := n.wait(ChildSAInstalled, 1)
			l.checkSwanMatches(ev2.Child)
			espPing(t, l, n, ev2.Child, l.tap, 1)
			n.noFailures(t)
		})
	}
}

// TestStrongSwanMainModeRekey: a new Main Mode from us replaces the
// ISAKMP SA (charon keeps the SA pair); then charon terminates the tunnel
// (as AWS may) and we see it go down and initiate again.
func TestStrongSwanMainModeRekey(t *testing.T) {
	tun := swanTunnel()
	tun.DPD.Interval = config.Duration(30 * time.Second)
	l := newSwanLab(t, tun, "none")
	n := &node{t: t, name: "cgw"}
	l.managerInNS(n, Options{Timing: Timing{ReinitMin: 300 * time.Millisecond}})
	defer n.m.Close(context.Background())
	if err := n.m.AddTunnel(tun, TunnelOptions{}); err != nil {
		t.Fatal(err)
	}
	ev := n.wait(ChildSAInstalled, 0)
	l.checkSwanMatches(ev.Child)
	old := n.m.Status()[0].IKE.SPIi
	n.m.RekeyIKE("t1")
	re := n.wait(IKERekeyed, 0)
	if re.IKE.SPIi == old {
		t.Fatal("IKERekeyed names the old SA")
	}
	var text string
	l.WaitFor("charon to hold only the new ISAKMP SA", 10*time.Second, func() bool {
		_, _, s := l.sas()
		text = s
		return strings.Count(s, "ESTABLISHED, IKEv1") == 1 && strings.Contains(s, fmt.Sprintf("%x", re.IKE.SPIi[:]))
	})
	t.Logf("charon:\n%s", text)
	l.checkSwanMatches(ev.Child)
	// The pair keeps working under the new ISAKMP SA: rekey it.
	n.m.RekeyChild("t1")
	ev2 := n.wait(ChildSAInstalled, 1)
	l.checkSwanMatches(ev2.Child)

	l.Swanctl("--terminate", "--ike", l.conn)
	n.wait(TunnelDown, 0)
	n.wait(TunnelUp, 1)
	ev3 := n.wait(ChildSAInstalled, 2)
	l.checkSwanMatches(ev3.Child)
	n.noFailures(t)
}

// TestStrongSwanDPDRestart: charon stops answering (SIGSTOP); our
// R-U-THEREs go unanswered and DPD's restart action initiates again; once
// charon runs again, our INITIAL-CONTACT makes it drop the stale SAs and
// the new pair matches.
func TestStrongSwanDPDRestart(t *testing.T) {
	tun := swanTunnel()
	tun.DPD = config.DPD{Interval: config.Duration(time.Second), Retries: 2, Action: config.DPDRestart}
	l := newSwanLab(t, tun, "none")
	n := &node{t: t, name: "cgw"}
	l.managerInNS(n, Options{Timing: Timing{RetransmitTimeout: 500 * time.Millisecond, RetransmitFactor: 1.5, ReinitMin: 500 * time.Millisecond}})
	defer n.m.Close(context.Background())
	if err := n.m.AddTunnel(tun, TunnelOptions{}); err != nil {
		t.Fatal(err)
	}
	ev := n.wait(ChildSAInstalled, 0)
	l.checkSwanMatches(ev.Child)
	if err := l.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			l.Cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	n.wait(DPDTimeout, 0)
	n.wait(TunnelDown, 0)
	l.Cmd.Process.Signal(syscall.SIGCONT)
	stopped = false
	n.wait(TunnelUp, 1)
	ev2 := n.wait(ChildSAInstalled, 1)
	l.checkSwanMatches(ev2.Child)
	l.WaitFor("charon to drop the stale ISAKMP SA (INITIAL-CONTACT)", 10*time.Second, func() bool {
		_, children, s := l.sas()
		return strings.Count(s, "ESTABLISHED, IKEv1") == 1 && len(children) == 1
	})
}

// TestStrongSwanReauth: charon replaces the ISAKMP SA with a new Main Mode
// (IKEv1 "rekey" of the IKE SA is a reauthentication); we answer as
// responder, report IKERekeyed, and the pair keeps working.
func TestStrongSwanReauth(t *testing.T) {
	tun := swanTunnel()
	l := newSwanLab(t, tun, "none")
	n := &node{t: t, name: "cgw"}
	l.managerInNS(n, Options{})
	defer n.m.Close(context.Background())
	if err := n.m.AddTunnel(tun, TunnelOptions{}); err != nil {
		t.Fatal(err)
	}
	ev := n.wait(ChildSAInstalled, 0)
	l.checkSwanMatches(ev.Child)
	l.Swanctl("--rekey", "--ike", l.conn, "--reauth")
	n.wait(IKERekeyed, 0)
	l.WaitFor("charon to hold one ISAKMP SA", 10*time.Second, func() bool {
		_, _, s := l.sas()
		return strings.Count(s, "ESTABLISHED, IKEv1") == 1
	})
	// charon may re-create the pair under the new SA; use whatever is
	// active on our side now.
	time.Sleep(time.Second)
	st := n.m.Status()[0]
	if st.State != "up" || st.IKE == nil || st.IKE.Initiator {
		t.Fatalf("status after charon's reauth: %+v", st)
	}
	// The keys are in the pair's ChildSAInstalled event only (ike.Lifecycle).
	var active *ChildSA
	n.mu.Lock()
	var spi uint32
	for _, e := range n.events {
		if e.Type == OutboundSwitch {
			spi = e.Child.InSPI
		}
	}
	for _, e := range n.events {
		if e.Type == ChildSAInstalled && e.Child.InSPI == spi {
			active = e.Child
		}
	}
	n.mu.Unlock()
	l.checkSwanMatches(active)
	espPing(t, l, n, active, l.tap, 7)
	n.noFailures(t)
}
