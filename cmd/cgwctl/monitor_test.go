package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/control/status"
)

type eventSource struct {
	fixedStatus
	*status.Hub
}

// monitor prints each event as a line; sas TUNNEL shows that tunnel only.
func TestMonitorAndSAsOfOneTunnel(t *testing.T) {
	s := &status.Status{Tunnels: []status.Tunnel{{Name: "vpn-t1", ID: 1, State: "up"}, {Name: "vpn-t2", ID: 2, State: "connecting"}}}
	hub := &status.Hub{}
	sock := filepath.Join(t.TempDir(), "c.sock")
	srv, err := status.Listen(sock, eventSource{fixedStatus{s}, hub})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		for hub.Subscribers() == 0 {
			time.Sleep(time.Millisecond)
		}
		hub.Publish(status.Event{Kind: "ike", Type: "child-sa-installed", Tunnel: "vpn-t1", Detail: "in c1000001 out c2000002 aes128gcm16"})
		hub.Publish(status.Event{Kind: "bgp", Type: "established", Tunnel: "vpn-t1", Detail: "neighbor 169.254.10.1, was openconfirm"})
	}()
	code, out, errs := runCmd(t, "monitor", "-socket", sock, "-count", "2", "-for", "5s")
	if code != exitOK {
		t.Fatalf("monitor: exit %d: %s", code, errs)
	}
	for _, w := range []string{"ike child-sa-installed vpn-t1: in c1000001 out c2000002", "bgp established vpn-t1: neighbor 169.254.10.1"} {
		if !strings.Contains(out, w) {
			t.Errorf("monitor output lacks %q:\n%s", w, out)
		}
	}

	code, out, _ = runCmd(t, "sas", "vpn-t2", "-socket", sock)
	if code != exitOK || !strings.Contains(out, "vpn-t2: CONNECTING") || strings.Contains(out, "vpn-t1") {
		t.Errorf("sas vpn-t2: exit %d:\n%s", code, out)
	}
	code, _, errs = runCmd(t, "sas", "-socket", sock, "nope")
	if code != exitProblem || !strings.Contains(errs, "no tunnel \"nope\" (tunnels: vpn-t1, vpn-t2)") {
		t.Errorf("sas nope: exit %d: %s", code, errs)
	}
}
