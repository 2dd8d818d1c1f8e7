// Package sdnotify tells systemd how a Type=notify service is doing
// (sd_notify(3)): READY=1 once it serves, STATUS= lines that
// "systemctl status" shows, STOPPING=1 on the way out. It is the
// datagram protocol itself, a few lines over a unixgram socket named by
// $NOTIFY_SOCKET, so the daemons need no libsystemd.
package sdnotify

import (
	"net"
	"os"
	"strings"
)

// Notify sends state (newline-separated VAR=value assignments) to the
// service manager. Without $NOTIFY_SOCKET (not started by systemd, or not
// Type=notify) it does nothing and returns false, nil.
func Notify(state string) (bool, error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	// "@name" is an abstract socket; Go's net package maps the '@'.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}

// Ready says the service is up, with a status line.
func Ready(status string) (bool, error) {
	return Notify("READY=1\nSTATUS=" + oneLine(status))
}

// Status replaces the status line "systemctl status" shows.
func Status(status string) (bool, error) { return Notify("STATUS=" + oneLine(status)) }

// Stopping says the service is shutting down, and why.
func Stopping(status string) (bool, error) {
	return Notify("STOPPING=1\nSTATUS=" + oneLine(status))
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
