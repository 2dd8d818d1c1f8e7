package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// listen is a fake service manager: a unixgram socket at $NOTIFY_SOCKET.
func listen(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", addr)
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestNotify(t *testing.T) {
	for _, addr := range []string{filepath.Join(t.TempDir(), "notify"), "@cgw-sdnotify-test-" + t.Name()} {
		c := listen(t, addr)
		if ok, err := Ready("2/2 tunnels up\nsecond line"); !ok || err != nil {
			t.Fatalf("%s: Ready: %v, %v", addr, ok, err)
		}
		if got := recv(t, c); got != "READY=1\nSTATUS=2/2 tunnels up second line" {
			t.Errorf("%s: got %q", addr, got)
		}
		Status("1/2 tunnels up")
		if got := recv(t, c); got != "STATUS=1/2 tunnels up" {
			t.Errorf("%s: got %q", addr, got)
		}
		Stopping("SIGTERM")
		if got := recv(t, c); got != "STOPPING=1\nSTATUS=SIGTERM" {
			t.Errorf("%s: got %q", addr, got)
		}
	}
}

func TestNoSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if ok, err := Ready("x"); ok || err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v, %v", ok, err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	if _, err := Ready("x"); err == nil {
		t.Error("a missing socket was not reported")
	}
}
