package kernelguard_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/control/kernelguard"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// TestRestoreAtBoot: what a process guarded before a reboot is guarded
// again by Restore alone (cgw-guards.service at early boot, before
// cgw-control) in a fresh namespace standing for the rebooted host:
// exactly the state file's prefixes, configured ones included, nothing
// else touched, and the same again on a second run.
func TestRestoreAtBoot(t *testing.T) {
	netnstest.Require(t)
	state := filepath.Join(t.TempDir(), "cgw.guards")
	before := netnstest.New(t, "cgwbh")
	var r *kernelguard.Routes
	if err := before.Do(func() (err error) { r, err = kernelguard.Open(kernelguard.Options{State: state}); return err }); err != nil {
		t.Fatal(err)
	}
	if err := r.Configure([]netip.Prefix{inside, vpc, vpc6}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Learn(bgp); err != nil {
		t.Fatal(err)
	}
	r.Close()

	after := netnstest.New(t, "cgwbh")
	// Early boot: no interface is up yet, not even lo.
	after.Run(t, "ip", "link", "set", "lo", "down")
	// An operator's route, and another daemon's: Restore leaves them be.
	after.Run(t, "ip", "route", "add", "unreachable", "198.18.7.0/24", "metric", "10")
	after.Run(t, "ip", "route", "add", "blackhole", "198.18.8.0/24", "proto", "203")
	for run := range 2 {
		var res kernelguard.Restored
		if err := after.Do(func() (err error) { res, err = kernelguard.Restore(state); return err }); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		wantInstalled := 4
		if run == 1 {
			wantInstalled = 0
		}
		if res.Listed != 4 || res.Installed != wantInstalled {
			t.Errorf("run %d: %+v; want 4 listed, %d installed", run, res, wantInstalled)
		}
		if got, w := kernel(t, after), sorted(inside, vpc, vpc6, bgp); !slices.Equal(got, w) {
			t.Fatalf("run %d: guards %v; want the state file's %v", run, got, w)
		}
	}
	all := after.Run(t, "ip", "route", "show", "table", "all")
	for _, w := range []string{"unreachable 198.18.7.0/24 metric 10", "blackhole 198.18.8.0/24 proto 203"} {
		if !strings.Contains(all, w) {
			t.Errorf("Restore touched %q:\n%s", w, all)
		}
	}
	if n := strings.Count(all, "proto 203"); n != 5 {
		t.Errorf("%d routes of proto 203; want the 4 guards and the blackhole:\n%s", n, all)
	}
}

// TestRestoreBadState: a missing state file restores nothing, without
// error (a first boot); a corrupt one is an error naming the file and the
// line, and the lines that are prefixes are guarded all the same.
func TestRestoreBadState(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t, "cgwbh")
	dir := t.TempDir()
	var res kernelguard.Restored
	if err := ns.Do(func() (err error) { res, err = kernelguard.Restore(filepath.Join(dir, "none.guards")); return err }); err != nil || res != (kernelguard.Restored{}) {
		t.Fatalf("missing state file: %+v, %v; want nothing done, no error", res, err)
	}
	if k := kernel(t, ns); len(k) != 0 {
		t.Fatalf("missing state file: guards %v", k)
	}

	bad := filepath.Join(dir, "cgw.guards")
	if err := os.WriteFile(bad, []byte(vpc.String()+"\n198.19.0.0/33\n\n"+vpc6.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := ns.Do(func() (err error) { res, err = kernelguard.Restore(bad); return err })
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), `line 2 "198.19.0.0/33"`) {
		t.Fatalf("corrupt state file: %v; want an error naming %s, line 2", err, bad)
	}
	t.Logf("corrupt state file: %v", err)
	if got, w := kernel(t, ns), sorted(vpc, vpc6); !slices.Equal(got, w) || res.Installed != 2 {
		t.Fatalf("corrupt state file: guards %v (%+v); want the valid lines' %v", got, res, w)
	}
}

func sorted(ps ...netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}
