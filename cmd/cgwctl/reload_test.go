package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/control/status"
)

type fakeReloader struct {
	fixedStatus
	res *status.ReloadResult
}

func (f fakeReloader) Reload() (*status.ReloadResult, error) { return f.res, nil }

// reload prints what was applied (exit 0) or, refused, every problem
// (exit 1).
func TestReload(t *testing.T) {
	for _, c := range []struct {
		res    *status.ReloadResult
		code   int
		out    []string
		stderr []string
	}{
		{res: &status.ReloadResult{Config: "/etc/cgw/cgw.yaml", Applied: true, Added: []string{"b-t1", "b-t2"}, Changed: []string{"a-t2"}, Unchanged: []string{"a-t1"}},
			code: exitOK, out: []string{"reloaded /etc/cgw/cgw.yaml", "added      b-t1, b-t2", "changed    a-t2", "unchanged  a-t1"}},
		{res: &status.ReloadResult{Config: "/etc/cgw/cgw.yaml", Problems: []string{"connections[0].tunnels[0].pre_shared_key: too short", "gateway.outside changed: restart"}},
			code: exitProblem, stderr: []string{"refused, nothing changed", "pre_shared_key: too short", "gateway.outside changed"}},
	} {
		sock := filepath.Join(t.TempDir(), "c.sock")
		srv, err := status.Listen(sock, fakeReloader{res: c.res})
		if err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCmd(t, "reload", "-socket", sock)
		srv.Close()
		if code != c.code {
			t.Errorf("exit %d, want %d: %s %s", code, c.code, out, errs)
		}
		for _, w := range c.out {
			if !strings.Contains(out, w) {
				t.Errorf("stdout lacks %q:\n%s", w, out)
			}
		}
		for _, w := range c.stderr {
			if !strings.Contains(errs, w) {
				t.Errorf("stderr lacks %q:\n%s", w, errs)
			}
		}
	}
}
