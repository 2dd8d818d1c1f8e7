package status

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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

type actor struct {
	fixed
	got []string
}

func (a *actor) RekeyChild(n string) error { return a.note("child " + n) }
func (a *actor) RekeyIKE(n string) error   { return a.note("ike " + n) }
func (a *actor) Initiate(n string) error   { return a.note("initiate " + n) }
func (a *actor) note(s string) error {
	switch {
	case strings.HasSuffix(s, " nope"):
		return notFound{}
	case strings.HasSuffix(s, " busy"):
		return fmt.Errorf("command: %w", conflict{})
	case strings.HasSuffix(s, " broken"):
		return errors.New("tunnel broken: something else")
	}
	a.got = append(a.got, s)
	return nil
}

type notFound struct{}

func (notFound) Error() string  { return "tunnel nope: not found" }
func (notFound) NotFound() bool { return true }

type conflict struct{}

func (conflict) Error() string {
	return "tunnel busy: child SA 0x0000abcd is already being rekeyed (started 1.2s ago)"
}
func (conflict) Conflict() bool { return true }

// Commands reach an Actor source; an unknown tunnel's error comes back.
func TestActions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	a := &actor{fixed: fixed{sample()}}
	srv, err := Listen(path, a)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, ctx := NewClient(path), context.Background()
	if err := c.RekeyChild(ctx, "vpn-t1"); err != nil {
		t.Fatal(err)
	}
	if err := c.RekeyIKE(ctx, "vpn-t1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Initiate(ctx, "vpn-t2"); err != nil {
		t.Fatal(err)
	}
	// Errors keep cgw-control's text and say by their code what happened:
	// 404 no tunnel, 409 refused for now (wrapped errors too), 500 else.
	for _, e := range []struct {
		tunnel, text string
		code         int
	}{
		{"nope", "tunnel nope: not found", http.StatusNotFound},
		{"busy", "child SA 0x0000abcd is already being rekeyed (started 1.2s ago)", http.StatusConflict},
		{"broken", "tunnel broken: something else", http.StatusInternalServerError},
	} {
		err := c.RekeyChild(ctx, e.tunnel)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != e.code || !strings.Contains(err.Error(), e.text) {
			t.Errorf("rekey-child %s: %v (%+v), want %d with %q", e.tunnel, err, ae, e.code, e.text)
		}
		if IsConflict(err) != (e.code == http.StatusConflict) {
			t.Errorf("rekey-child %s: IsConflict = %v", e.tunnel, IsConflict(err))
		}
	}
	if got := strings.Join(a.got, ","); got != "child vpn-t1,ike vpn-t1,initiate vpn-t2" {
		t.Errorf("actions = %s", got)
	}
}
