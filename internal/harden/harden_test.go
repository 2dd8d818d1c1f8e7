package harden

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestProcess(t *testing.T) {
	if err := Process(); err != nil {
		t.Fatal(err)
	}
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil || d != 0 {
		t.Errorf("PR_GET_DUMPABLE = %d (err %v), want 0", d, err)
	}
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &r); err != nil || r.Cur != 0 || r.Max != 0 {
		t.Errorf("RLIMIT_CORE = %+v (err %v), want 0/0", r, err)
	}
	// The kernel's own view: /proc/self/limits says no core files.
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Max core file size") && strings.Fields(l)[4] != "0" {
			t.Errorf("/proc/self/limits: %s", l)
		}
	}
}
