package main

import (
	"os"
	"path/filepath"
	"slices"
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
	g, m, err := resolve(options{config: cfg, xdpMode: "native", cpus: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Instance != "lab" || g.Batch != 32 || m != "127.0.0.1:9472" || len(g.CPUs) != 1 || g.CPUs[0] != 1 {
		t.Fatalf("settings from config + flags: %+v, metrics %s", g, m)
	}
}

// TestDefaultNoPinning: without -cpus or gateway.dataplane.cpus the
// workers are not pinned (gateway.Options.CPUs empty: the gateway bounds
// their number by the CPUs the process may use); -cpus pins.
func TestDefaultNoPinning(t *testing.T) {
	g, _, err := resolve(options{outside: "a", inside: "b", xdpMode: "native"})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.CPUs) != 0 {
		t.Fatalf("default: CPUs %v, want none (unpinned)", g.CPUs)
	}
	g, _, err = resolve(options{outside: "a", inside: "b", xdpMode: "native", cpus: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.CPUs, []int{1}) {
		t.Fatalf("-cpus 1: CPUs %v", g.CPUs)
	}
}
