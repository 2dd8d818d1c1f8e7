package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/internal/netnstest"
)

// TestRestoreGuardsCommand runs cgw-control -restore-guards as
// cgw-guards.service does at early boot, in a fresh namespace standing for
// the rebooted host (lo still down): it installs exactly the guards of
// the state files in the directory, again without change on a second run;
// with no state it does nothing and succeeds (a first boot); a corrupt
// file fails with an error naming it.
func TestRestoreGuardsCommand(t *testing.T) {
	netnstest.Require(t, "go")
	bin := filepath.Join(t.TempDir(), "cgw-control")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ns := netnstest.New(t, "cgwrg")
	ns.Run(t, "ip", "link", "set", "lo", "down")
	dir := t.TempDir()
	restore := func(args ...string) (string, error) {
		out, err := ns.Command(bin, append([]string{"-restore-guards"}, args...)...).CombinedOutput()
		return string(out), err
	}
	guards := func() string {
		return strings.TrimSpace(ns.Run(t, "ip", "route", "show", "proto", "203") + ns.Run(t, "ip", "-6", "route", "show", "proto", "203"))
	}

	if out, err := restore("-guard-state", dir); err != nil || !strings.Contains(out, "no kernel guard state to restore") || guards() != "" {
		t.Fatalf("empty state directory: %v\n%s\nguards: %s", err, out, guards())
	}
	if out, err := restore("-guard-state", filepath.Join(dir, "missing")); err != nil || guards() != "" {
		t.Fatalf("missing state file: %v\n%s", err, out)
	}

	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cgw.guards", "169.254.10.0/30\n198.19.0.0/16\n")
	write("other.guards", "2001:db8:19::/48\n")
	write("notes.txt", "198.18.99.0/24\n") // not a state file
	want := "unreachable 169.254.10.0/30 metric 4000000000 \nunreachable 198.19.0.0/16 metric 4000000000 \nunreachable 2001:db8:19::/48 dev lo metric 4000000000 pref medium"
	for run := range 2 {
		out, err := restore("-guard-state", dir)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
		if g := guards(); g != want {
			t.Fatalf("run %d: guards\n%s\nwant\n%s\n(output: %s)", run, g, want, out)
		}
		t.Logf("run %d:\n%s", run, out)
	}

	write("cgw.guards", "169.254.10.0/30\nfrobnicate\n")
	out, err := restore("-guard-state", filepath.Join(dir, "cgw.guards"))
	if err == nil || !strings.Contains(out, filepath.Join(dir, "cgw.guards")) || !strings.Contains(out, `line 2 \"frobnicate\"`) {
		t.Fatalf("corrupt state file: %v\n%s\nwant a failure naming the file and its line 2", err, out)
	}
	t.Logf("corrupt state file:\n%s", out)
}
