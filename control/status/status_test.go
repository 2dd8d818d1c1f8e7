package status

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type fixed struct{ s *Status }

func (f fixed) Status() *Status { return f.s }

func sample() *Status {
	return &Status{Gateway: "t", Pid: 42, Maps: "open",
		Tunnels: []Tunnel{{Name: "vpn-t1", ID: 1, State: "up", Uptime: Duration(90 * time.Second),
			Peer: netip.MustParseAddrPort("203.0.113.1:4500"), NAT: true,
			Children: []ChildSA{{InSPI: 0xc0ffee01, OutSPI: 0xc0ffee02, Active: true, Suite: "aes128gcm16",
				In: Counters{Packets: 3, Bytes: 300, Idle: -1}}}}},
		Routes: []Route{{Prefix: netip.MustParsePrefix("198.19.0.0/24"), Source: "bgp", Tunnel: "vpn-t1", Reason: "only path"}},
	}
}

// The client reads back exactly what the server's source reports, the
// socket is 0600, and a second server on a live socket is refused.
func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "control.sock")
	srv, err := Listen(path, fixed{sample()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o600 {
		t.Errorf("socket mode %o, want 600", m)
	}
	if _, err := Listen(path, fixed{sample()}); err == nil || !strings.Contains(err.Error(), "another cgw-control") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	got, err := NewClient(path).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tu, ok := got.Tunnel("vpn-t1")
	if !ok || tu.Uptime.D() != 90*time.Second || !tu.NAT || tu.Peer.Port() != 4500 {
		t.Fatalf("tunnel = %+v", tu)
	}
	a, ok := tu.Active()
	if !ok || a.InSPI != 0xc0ffee01 || a.In.Idle != -1 || a.In.Bytes != 300 {
		t.Fatalf("active child = %+v", a)
	}
	if len(got.Routes) != 1 || got.Routes[0].Prefix.String() != "198.19.0.0/24" {
		t.Fatalf("routes = %+v", got.Routes)
	}
}

// A socket left by a dead process is replaced; a missing server gives an
// error that says what to do.
func TestStaleSocketAndNoServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	srv, err := Listen(path, fixed{sample()})
	if err != nil {
		t.Fatal(err)
	}
	ul := srv.ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	ul.Close() // the file stays, nobody answers: as after a crash
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	srv2, err := Listen(path, fixed{sample()})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	srv2.Close()
	_, err = NewClient(path).Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cgw-control is not running") {
		t.Fatalf("no server: %v", err)
	}
}
