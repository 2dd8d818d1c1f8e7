package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOperatorErrors: mistakes an operator makes get an error that says
// what to fix (no root needed: they are found before any map is opened).
func TestOperatorErrors(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "cgw.yaml")
	if err := os.WriteFile(cfg, []byte("gateway:\n  name: lab\n  outside:\n    interface: eth9\n  inside:\n    interface: lo\n  dataplane:\n    batch_size: 32\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		o    options
		want string
	}{
		{"no interfaces", options{}, "give -outside-if and -inside-if"},
		{"bad cpus", options{outside: "a", inside: "b", cpus: "x"}, "-cpus \"x\""},
		{"bad batch", options{outside: "a", inside: "b", batch: 1000}, "batch size 1000"},
		{"bad xdp mode", options{outside: "a", inside: "b", xdpMode: "fast"}, "-xdp-mode \"fast\""},
		{"missing interface from config", options{config: cfg, xdpMode: "native"}, "outside interface eth9 not found"},
		{"missing config file", options{config: filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := run(c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("run = %v, want an error containing %q", err, c.want)
			}
		})
	}
	s, err := resolve(options{config: cfg, xdpMode: "native", cpus: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.instance != "lab" || s.batch != 32 || s.metrics != "127.0.0.1:9472" || len(s.cpuList) != 1 || s.cpuList[0] != 1 {
		t.Fatalf("settings from config + flags: %+v", s)
	}
}
