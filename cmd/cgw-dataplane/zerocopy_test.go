package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/internal/netnstest"
)

// TestZeroCopyRefused: -zero-copy on devices without AF_XDP zero-copy
// (veth) stops the dataplane before it pins or attaches anything, with an
// error naming the device and the way out; without the flag the same
// devices run in copy mode (TestSmokeBackToBack).
func TestZeroCopyRefused(t *testing.T) {
	netnstest.Require(t, "nsenter")
	bin := buildBinary(t)
	ns := netnstest.New(t, "cdz")
	end := func(name, addr string) netnstest.End {
		return netnstest.End{NS: ns, Name: name, Addrs: []netip.Prefix{netip.MustParsePrefix(addr)}}
	}
	netnstest.Veth{A: end("in0", "198.18.0.1/24"), B: end("l0", "198.18.0.2/24")}.Create(t)
	netnstest.Veth{A: end("out0", "192.0.2.10/24"), B: end("o0", "192.0.2.11/24")}.Create(t)
	instance := fmt.Sprintf("cdz%d", os.Getpid())
	pins := filepath.Join("/sys/fs/bpf/cgw", instance)
	t.Cleanup(func() { os.RemoveAll(pins) }) // what a dataplane that did start left
	for _, c := range []struct {
		name string
		args []string
		cfg  string
	}{
		{"flag", []string{"-zero-copy"}, ""},
		{"config", nil, "gateway:\n  outside:\n    interface: out0\n  inside:\n    interface: in0\n  dataplane:\n    zero_copy: true\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"--net=/run/netns/" + ns.Name(), bin, "-instance", instance, "-metrics", "off"}
			if c.cfg != "" {
				f := filepath.Join(t.TempDir(), "cgw.yaml")
				if err := os.WriteFile(f, []byte(c.cfg), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-config", f)
			} else {
				args = append(args, "-inside-if", "in0", "-outside-if", "out0")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "nsenter", append(args, c.args...)...).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("cgw-dataplane %v on veths was still running after 20 s (it ran in copy mode); output:\n%s", c.args, out)
			}
			if err == nil {
				t.Fatalf("cgw-dataplane %v on veths exited 0; output:\n%s", c.args, out)
			}
			for _, want := range []string{"-zero-copy: ", "has no AF_XDP zero-copy", "driver veth", "without -zero-copy"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("error output lacks %q:\n%s", want, out)
				}
			}
			if _, err := os.Stat(pins); err == nil {
				t.Errorf("a refused start left pinned objects in %s", pins)
			}
		})
	}
}
