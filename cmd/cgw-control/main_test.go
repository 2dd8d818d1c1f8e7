package main

import "testing"

// TestGuardStatePath: under systemd (StateDirectory=cgw sets
// STATE_DIRECTORY) the guarded prefixes are kept by default; -guard-state
// overrides or turns it off; elsewhere (a lab) nothing is written.
func TestGuardStatePath(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/cgw")
	for _, c := range []struct{ flag, want string }{
		{"", "/var/lib/cgw/cgw.guards"}, {"off", ""}, {"/tmp/g", "/tmp/g"},
	} {
		if got := guardStatePath(c.flag, "cgw"); got != c.want {
			t.Errorf("-guard-state %q under systemd: %q, want %q", c.flag, got, c.want)
		}
	}
	t.Setenv("STATE_DIRECTORY", "")
	if got := guardStatePath("", "cgw"); got != "" {
		t.Errorf("without STATE_DIRECTORY: %q, want none", got)
	}
}
