package main

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/control/status"
)

type fixedStatus struct{ s *status.Status }

func (f fixedStatus) Status() *status.Status { return f.s }

// status, sas and routes print what the API reports, in their layouts.
func TestStatusCommands(t *testing.T) {
	now := time.Now()
	s := &status.Status{Gateway: "gw1", Pid: 7, Started: now.Add(-time.Minute), Time: now,
		Tunnels: []status.Tunnel{{Name: "vpn-t1", ID: 1, State: "up", Uptime: status.Duration(time.Minute), NAT: true,
			Local: netip.MustParseAddrPort("192.0.2.10:4500"), Peer: netip.MustParseAddrPort("203.0.113.1:4500"),
			IKE: &status.IKESA{SPIi: "0011223344556677", SPIr: "8899aabbccddeeff", Initiator: true, Proposal: "IKE:aes128-sha256-prfsha256-modp2048"},
			Children: []status.ChildSA{{InSPI: 0xc1000001, OutSPI: 0xc2000002, Suite: "aes128gcm16", Active: true, Encap: true,
				InIndex: 1, OutIndex: 2, In: status.Counters{Bytes: 1234, Packets: 10, Idle: status.Duration(time.Second)},
				Out: status.Counters{Idle: -1}}}},
			{Name: "vpn-t2", ID: 2, State: "connecting", LastError: "NO_PROPOSAL_CHOSEN"},
			{Name: "vpn-t3", ID: 3, State: "up", IKE: &status.IKESA{Version: 1, SPIi: "0102030405060708", SPIr: "1112131415161718", Proposal: "IKE:aes128-sha1-modp2048"}}},
		Neighbors: []status.Neighbor{{Tunnel: "vpn-t1", Peer: netip.MustParseAddr("169.254.10.1"), State: "established", Routes: 1}},
		Routes: []status.Route{{Prefix: netip.MustParsePrefix("198.19.0.0/24"), Source: "bgp", Tunnel: "vpn-t1", Backup: "vpn-t2",
			Reason: "shorter AS_PATH", ASPath: []uint32{64512}}},
	}
	sock := filepath.Join(t.TempDir(), "c.sock")
	srv, err := status.Listen(sock, fixedStatus{s})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cases := []struct {
		cmd  string
		want []string
	}{
		{"status", []string{"instance gw1, pid 7", "vpn-t1  up", "udp-4500", "NO_PROPOSAL_CHOSEN", "169.254.10.1", "established", "1 route(s)"}},
		{"sas", []string{"vpn-t1: #1, ESTABLISHED, IKEv2, 0011223344556677_i* 8899aabbccddeeff_r", "TUNNEL-in-UDP, ESP:aes128gcm16",
			"in  c1000001,      1234 bytes,      10 packets, 1s ago", "out c2000002", "never", "vpn-t2: CONNECTING",
			"vpn-t3: #3, ESTABLISHED, IKEv1, 0102030405060708_i 1112131415161718_r*"}},
		{"routes", []string{"198.19.0.0/24", "vpn-t2", "64512", "shorter AS_PATH"}},
	}
	for _, c := range cases {
		code, out, errs := runCmd(t, c.cmd, "-socket", sock)
		if code != exitOK {
			t.Fatalf("%s: exit %d: %s", c.cmd, code, errs)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", c.cmd, w, out)
			}
		}
	}
	code, out, _ := runCmd(t, "routes", "-socket", sock, "-json")
	if code != exitOK || !strings.Contains(out, `"prefix": "198.19.0.0/24"`) {
		t.Errorf("routes -json: %d %s", code, out)
	}
	code, _, errs := runCmd(t, "status", "-socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != exitProblem || !strings.Contains(errs, "cgw-control is not running") {
		t.Errorf("no server: exit %d, %s", code, errs)
	}
}

// actor answers like cgw-control: 204, 404 for an unknown tunnel, 409
// when the SA is already being rekeyed.
type actor struct {
	fixedStatus
	got []string
}

type apiErr struct {
	msg            string
	notFound, busy bool
}

func (e apiErr) Error() string  { return e.msg }
func (e apiErr) NotFound() bool { return e.notFound }
func (e apiErr) Conflict() bool { return e.busy }

func (a *actor) act(what, tunnel string) error {
	switch tunnel {
	case "nope":
		return apiErr{msg: "tunnel nope: not found", notFound: true}
	case "busy":
		return apiErr{msg: "tunnel busy: child SA 0xc1000001 is already being rekeyed (started 1.2s ago)", busy: true}
	}
	a.got = append(a.got, what+" "+tunnel)
	return nil
}
func (a *actor) RekeyChild(n string) error { return a.act("child", n) }
func (a *actor) RekeyIKE(n string) error   { return a.act("ike", n) }
func (a *actor) Initiate(n string) error   { return a.act("initiate", n) }

// rekey and initiate are thin clients of the API's actions.
func TestActionCommands(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	a := &actor{fixedStatus: fixedStatus{&status.Status{}}}
	srv, err := status.Listen(sock, a)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cases := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"rekey", "-socket", sock, "vpn-t1"}, exitOK, "vpn-t1: Child SA rekey started", ""},
		{[]string{"rekey", "vpn-t1", "-ike", "-socket", sock}, exitOK, "vpn-t1: IKE SA rekey started", ""},
		{[]string{"initiate", "-socket", sock, "vpn-t2"}, exitOK, "vpn-t2: negotiation started", ""},
		{[]string{"rekey", "-socket", sock, "busy"}, exitBusy, "", "refused, nothing done: tunnel busy: child SA 0xc1000001 is already being rekeyed (started 1.2s ago)"},
		{[]string{"initiate", "-socket", sock, "nope"}, exitProblem, "", "cgwctl initiate: tunnel nope: not found"},
		{[]string{"rekey", "-socket", sock}, exitUsage, "", "want exactly one tunnel name"},
		{[]string{"rekey", "-socket", sock, "a", "b"}, exitUsage, "", "want exactly one tunnel name"},
		{[]string{"initiate", "-socket", filepath.Join(t.TempDir(), "none.sock"), "vpn-t1"}, exitProblem, "", "cgw-control is not running"},
	}
	for _, c := range cases {
		code, out, errs := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(out, c.stdout) || !strings.Contains(errs, c.stderr) || (c.stdout == "" && out != "") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", c.args, code, out, errs, c.code, c.stdout, c.stderr)
		}
	}
	if got := strings.Join(a.got, ","); got != "child vpn-t1,ike vpn-t1,initiate vpn-t2" {
		t.Errorf("actions reaching cgw-control: %s", got)
	}
}
