package ikev2

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
	"github.com/cgw-project/cgw/control/ikev2/message"
	"github.com/cgw-project/cgw/internal/charontest"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// swanLab is a namespace pair joined by one veth: cgw 192.0.2.10 (our
// IKE instance) and aws 203.0.113.1 (charon with kernel-libipsec, as in
// DESIGN.md §4).
type swanLab struct {
	t      *testing.T
	prefix string
	*charontest.Charon
	cgwNS   *netnstest.NS
	awsNS   *netnstest.NS
	cgwAddr netip.Addr
	awsAddr netip.Addr
	conn    string
}

func interopPrereqs(t *testing.T) {
	t.Helper()
	charontest.Require(t)
}

// newSwanLab starts the namespaces and charon configured from tun (AWS's
// side of the tunnel).
func newSwanLab(t *testing.T, tun config.Tunnel) *swanLab {
	interopPrereqs(t)
	l := &swanLab{t: t, prefix: fmt.Sprintf("ikv2%d", os.Getpid()%100000), cgwAddr: netip.MustParseAddr("192.0.2.10"),
		awsAddr: netip.MustParseAddr("203.0.113.1"), conn: "aws"}
	dir := t.TempDir()
	l.cgwNS, l.awsNS = netnstest.New(t, l.prefix+"-cgw"), netnstest.New(t, l.prefix+"-aws")
	netnstest.Veth{
		A: netnstest.End{NS: l.cgwNS, Name: l.prefix + "c", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}},
		B: netnstest.End{NS: l.awsNS, Name: l.prefix + "a", Addrs: []netip.Prefix{netip.MustParsePrefix("203.0.113.1/24")}},
	}.Create(t)
	l.cgwNS.Run(t, "ip", "route", "add", "203.0.113.0/24", "dev", l.prefix+"c")
	l.awsNS.Run(t, "ip", "route", "add", "192.0.2.0/24", "dev", l.prefix+"a")

	start := "none" // the initiator test starts it with swanctl --initiate
	swan := fmt.Sprintf(`connections {
    %[1]s {
        version = 2
        local_addrs = 203.0.113.1
        remote_addrs = 192.0.2.10
        proposals = %[2]s
        rekey_time = 0
        reauth_time = 0
        mobike = no
        dpd_delay = 10s
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
	l.Charon = charontest.Start(t, l.awsNS, dir, charontest.Conf(), swan)
	return l
}

func (l *swanLab) sas() (ikeUp bool, children []charontest.Child, text string) {
	children, text = l.SAs()
	return strings.Contains(text, "ESTABLISHED"), children, text
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
	n.c500, n.c4500 = &wrapConn{PacketConn: c500}, &wrapConn{PacketConn: c4500}
	o.Conn500, o.Conn4500 = n.c500, n.c4500
	o.Events = n.record
	o.Log = slog.New(slog.NewTextHandler(testLogWriter{t, n.name}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if o.Timing.RetransmitTimeout == 0 {
		o.Timing.RetransmitTimeout = time.Second
	}
	o.Timing.Grace = 200 * time.Millisecond
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
	tun.DPD.Interval = config.Duration(10 * time.Second)
	return tun
}

// checkSwanMatches waits until charon lists an ESTABLISHED IKE SA and an
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

func TestStrongSwanResponder(t *testing.T) {
	tun := swanTunnel()
	// AWS-side rekeys offer MODP-1024 first (DESIGN.md §4): we allow only
	// group 14 for PFS, so charon's rekey must go through INVALID_KE_PAYLOAD.
	aws := tun
	aws.Phase2.DHGroups = []int{2, 14}
	tun.Phase2.DHGroups = []int{14}
	l := newSwanLab(t, aws)
	n := &node{t: t, name: "cgw", notify: make(chan struct{}, 1)}
	l.managerInNS(n, Options{})
	defer n.m.Close(context.Background())
	if err := n.m.AddTunnel(tun, TunnelOptions{}); err != nil {
		t.Fatal(err)
	}
	n.waitType(TunnelUp, 0)
	ev, _ := n.waitType(ChildSAInstalled, 0)
	if !ev.Child.Encap || ev.Child.PeerPort != 4500 {
		t.Fatalf("libipsec forces NAT-T, yet the Child SA is not UDP-encapsulated to 4500: %+v", ev.Child)
	}
	l.checkSwanMatches(ev.Child)

	// Child rekey by strongSwan (PFS: MODP-1024 offered first, INVALID_KE_PAYLOAD, then MODP-2048).
	k := n.count()
	l.Swanctl("--rekey", "--child", l.conn)
	evS, _ := n.wait("charon's rekey", k, func(e Event) bool { return e.Type == ChildSAInstalled })
	n.wait("switch to charon's new child", k, func(e Event) bool { return e.Type == OutboundSwitch && e.Child.InSPI == evS.Child.InSPI })
	n.wait("old child retired", k, func(e Event) bool { return e.Type == ChildSARetired && e.Child.InSPI == ev.Child.InSPI })
	l.checkSwanMatches(evS.Child)
	if b, _ := os.ReadFile(filepath.Join(l.Dir, "charon.log")); !strings.Contains(string(b), "N(INVAL_KE)") {
		t.Errorf("charon's MODP-1024 rekey was not answered with INVALID_KE_PAYLOAD")
	}

	// Child rekey by us.
	k = n.count()
	n.m.RekeyChild("t1")
	ev3, _ := n.wait("our rekey", k, func(e Event) bool { return e.Type == ChildSAInstalled })
	n.wait("old child retired", k, func(e Event) bool { return e.Type == ChildSARetired && e.Child.InSPI == evS.Child.InSPI })
	l.checkSwanMatches(ev3.Child)

	// IKE rekey by each side.
	k = n.count()
	n.m.RekeyIKE("t1")
	n.wait("our IKE rekey", k, func(e Event) bool { return e.Type == IKERekeyed })
	k = n.count()
	l.Swanctl("--rekey", "--ike", l.conn)
	n.wait("charon's IKE rekey", k, func(e Event) bool { return e.Type == IKERekeyed })
	l.checkSwanMatches(ev3.Child)
	if st := n.m.Status()[0]; st.State != "up" || len(st.IKE.Proposal) == 0 {
		t.Fatalf("status %+v", st)
	}

	// charon drops the tunnel (as AWS may): we see it and initiate again.
	k = n.count()
	l.Swanctl("--terminate", "--ike", l.conn)
	n.wait("down after charon's Delete", k, func(e Event) bool { return e.Type == TunnelDown })
	n.waitType(TunnelUp, k)
	ev4, _ := n.waitType(ChildSAInstalled, k)
	l.checkSwanMatches(ev4.Child)

	// Delete on shutdown.
	n.m.Close(context.Background())
	l.WaitFor("charon to drop the IKE SA after our Delete", 10*time.Second, func() bool {
		up, _, _ := l.sas()
		return !up
	})
	for _, e := range n.all() {
		if e.Type == NegotiationFailed {
			t.Errorf("unexpected failure: %v", e)
		}
	}
}

func TestStrongSwanInitiator(t *testing.T) {
	tun := swanTunnel()
	tun.StartupAction = config.StartupAdd
	l := newSwanLab(t, tun)
	n := &node{t: t, name: "cgw", notify: make(chan struct{}, 1)}
	l.managerInNS(n, Options{})
	defer n.m.Close(context.Background())
	if err := n.m.AddTunnel(tun, TunnelOptions{}); err != nil {
		t.Fatal(err)
	}
	l.Swanctl("--initiate", "--child", l.conn, "--timeout", "10")
	n.waitType(TunnelUp, 0)
	ev, _ := n.waitType(ChildSAInstalled, 0)
	if !ev.Child.Encap {
		t.Fatalf("Child SA not UDP-encapsulated: %+v", ev.Child)
	}
	l.checkSwanMatches(ev.Child)
	st := n.m.Status()[0]
	if st.IKE == nil || st.IKE.Initiator {
		t.Fatalf("we should be the responder: %+v", st)
	}
	k := n.count()
	l.Swanctl("--rekey", "--child", l.conn)
	ev2, _ := n.wait("charon's rekey", k, func(e Event) bool { return e.Type == ChildSAInstalled })
	n.wait("old child retired", k, func(e Event) bool { return e.Type == ChildSARetired && e.Child.InSPI == ev.Child.InSPI })
	l.checkSwanMatches(ev2.Child)
	k = n.count()
	n.m.RekeyChild("t1")
	ev3, _ := n.wait("our rekey", k, func(e Event) bool { return e.Type == ChildSAInstalled })
	l.checkSwanMatches(ev3.Child)
	n.m.Close(context.Background())
	l.WaitFor("charon to drop the IKE SA after our Delete", 10*time.Second, func() bool {
		up, _, _ := l.sas()
		return !up
	})
}

// TestStrongSwanSuites establishes and rekeys (PFS) with charon for a
// spread of AWS algorithm sets.
func TestStrongSwanSuites(t *testing.T) {
	cases := []struct {
		enc, integ string
		ike, pfs   int
	}{
		{config.AES256GCM, config.SHA2384, 20, 20},
		{config.AES128GCM, config.SHA2256, 19, 14},
		{config.AES256, config.SHA2512, 21, 24},
		{config.AES128, config.SHA2256, 15, 16},
		{config.AES256, config.SHA1, 14, 5},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s_%s_%d_%d", c.enc, c.integ, c.ike, c.pfs), func(t *testing.T) {
			tun := swanTunnel()
			tun.Phase1.Encryption, tun.Phase1.Integrity, tun.Phase1.DHGroups = []string{c.enc}, []string{c.integ}, []int{c.ike}
			tun.Phase2.Encryption, tun.Phase2.Integrity, tun.Phase2.DHGroups = []string{c.enc}, []string{c.integ}, []int{c.pfs}
			l := newSwanLab(t, tun)
			n := &node{t: t, name: "cgw", notify: make(chan struct{}, 1)}
			l.managerInNS(n, Options{})
			defer n.m.Close(context.Background())
			if err := n.m.AddTunnel(tun, TunnelOptions{}); err != nil {
				t.Fatal(err)
			}
			ev, _ := n.waitType(ChildSAInstalled, 0)
			l.checkSwanMatches(ev.Child)
			k := n.count()
			n.m.RekeyChild("t1")
			ev2, _ := n.wait("our rekey", k, func(e Event) bool { return e.Type == ChildSAInstalled })
			l.checkSwanMatches(ev2.Child)
			k = n.count()
			l.Swanctl("--rekey", "--child", l.conn)
			ev3, _ := n.wait("charon's rekey", k, func(e Event) bool { return e.Type == ChildSAInstalled })
			l.checkSwanMatches(ev3.Child)
			for _, e := range n.all() {
				if e.Type == NegotiationFailed {
					t.Errorf("unexpected failure: %v", e)
				}
			}
		})
	}
}

// TestStrongSwanDPDRestart: charon stops answering (SIGSTOP); our liveness
// checks go unanswered and DPD's restart action initiates again; once
// charon runs again, our INITIAL_CONTACT makes it drop the stale SAs and
// the new ones match.
func TestStrongSwanDPDRestart(t *testing.T) {
	tun := swanTunnel()
	tun.DPD = config.DPD{Interval: config.Duration(time.Second), Retries: 2, Action: config.DPDRestart}
	l := newSwanLab(t, tun)
	n := &node{t: t, name: "cgw", notify: make(chan struct{}, 1)}
	l.managerInNS(n, Options{Timing: Timing{RetransmitTimeout: 500 * time.Millisecond, RetransmitFactor: 1.5, ReinitMin: 500 * time.Millisecond}})
	defer n.m.Close(context.Background())
	if err := n.m.AddTunnel(tun, TunnelOptions{}); err != nil {
		t.Fatal(err)
	}
	ev, _ := n.waitType(ChildSAInstalled, 0)
	l.checkSwanMatches(ev.Child)
	k := n.count()
	if err := l.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			l.Cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	n.waitType(DPDTimeout, k)
	n.waitType(TunnelDown, k)
	l.Cmd.Process.Signal(syscall.SIGCONT)
	stopped = false
	n.waitType(TunnelUp, k)
	ev2, _ := n.waitType(ChildSAInstalled, k)
	l.checkSwanMatches(ev2.Child)
	l.WaitFor("charon to drop the stale IKE SA", 10*time.Second, func() bool {
		_, children, _ := l.sas()
		for _, c := range children {
			if c.In == ev.Child.OutSPI && c.State == "INSTALLED" {
				return false
			}
		}
		return true
	})
}

// TestStrongSwanErrors: what an operator sees when charon refuses us.
func TestStrongSwanErrors(t *testing.T) {
	t.Run("wrong PSK", func(t *testing.T) {
		tun := swanTunnel()
		aws := tun
		aws.PreSharedKey = "another.key_0987654321"
		l := newSwanLab(t, aws)
		n := &node{t: t, name: "cgw", notify: make(chan struct{}, 1)}
		l.managerInNS(n, Options{})
		defer n.m.Close(context.Background())
		if err := n.m.AddTunnel(tun, TunnelOptions{}); err != nil {
			t.Fatal(err)
		}
		e, _ := n.waitType(NegotiationFailed, 0)
		if e.Notify != uint16(message.AUTHENTICATION_FAILED) || !strings.Contains(e.Err.Error(), "check the pre-shared key (both sides must match)") ||
			strings.Contains(e.Err.Error(), tun.PreSharedKey) || strings.Contains(e.Err.Error(), aws.PreSharedKey) {
			t.Fatalf("got %v", e)
		}
	})
	t.Run("proposal mismatch", func(t *testing.T) {
		tun := swanTunnel()
		aws := tun
		aws.Phase1.Encryption, aws.Phase1.Integrity = []string{config.AES256}, []string{config.SHA2512}
		tun.Phase1.Encryption, tun.Phase1.Integrity = []string{config.AES128}, []string{config.SHA1}
		l := newSwanLab(t, aws)
		n := &node{t: t, name: "cgw", notify: make(chan struct{}, 1)}
		// The refusal is not authenticated: the exchange waits for a valid
		// answer until it times out (§2.21.1), here after 2 retransmissions.
		l.managerInNS(n, Options{Timing: Timing{RetransmitTries: 2}})
		defer n.m.Close(context.Background())
		if err := n.m.AddTunnel(tun, TunnelOptions{}); err != nil {
			t.Fatal(err)
		}
		e, _ := n.waitType(NegotiationFailed, 0)
		if e.Notify != uint16(message.NO_PROPOSAL_CHOSEN) || !strings.Contains(e.Err.Error(), "aes128-sha1") {
			t.Fatalf("got %v", e)
		}
		t.Log(e.Err)
	})
}
