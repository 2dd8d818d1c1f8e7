package nic

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/internal/netnstest"
)

// TestCheckVeth: the preflight on two veths in a namespace of its own
// (the lab's case): native XDP but no zero-copy (copy mode), one RX queue
// for two workers, no per-queue interrupts, LRO/GRO not in the way, and
// the host-wide sysctls with the command that fixes each finding.
func TestCheckVeth(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t, fmt.Sprintf("cgwnic%d", os.Getpid()))
	netnstest.Veth{A: netnstest.End{NS: ns, Name: "wan0"}, B: netnstest.End{NS: ns, Name: "lan0"}}.Create(t)
	ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	ns.Run(t, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")
	var fs []Finding
	if err := ns.Do(func() error {
		fs = Check(Options{Inside: "lan0", Outside: "wan0", Workers: 2})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := map[string]Finding{}
	for _, f := range fs {
		t.Logf("%-4s %-14s %-12s %s  [%s]", f.Level, f.Device, f.Check, f.Msg, f.Fix)
		got[f.Device+"/"+f.Check] = f
	}
	want := []struct {
		key, level, msg, fix string
	}{
		{"outside wan0/driver", OK, "veth", ""},
		{"outside wan0/zero-copy", Warn, "copy mode", "zero-copy"},
		{"inside lan0/queues", Fail, "1 RX queue(s) in use for 2 worker(s)", "ethtool -L lan0 combined 2"},
		{"inside lan0/irq-affinity", OK, "virtual device", ""},
		{"outside wan0/mtu", OK, "MTU 1500", ""},
		{"/ip_forward", Fail, "is 0", "sysctl -w net.ipv4.ip_forward=1"},
		{"/rp_filter.all", Warn, "strict", "sysctl -w net.ipv4.conf.all.rp_filter=2"},
		{"/irqbalance", OK, "not running", ""},
	}
	for _, w := range want {
		f, ok := got[w.key]
		if !ok {
			t.Errorf("no %s finding", w.key)
			continue
		}
		if f.Level != w.level || !strings.Contains(f.Msg, w.msg) || !strings.Contains(f.Fix, w.fix) {
			t.Errorf("%s: %s %q fix %q, want %s ~%q fix ~%q", w.key, f.Level, f.Msg, f.Fix, w.level, w.msg, w.fix)
		}
	}
	if f := got["outside wan0/xdp"]; f.Level != OK || !strings.Contains(f.Msg, "native XDP supported") {
		t.Errorf("veth has native XDP (netdev family, Linux ≥ 6.3): got %s %q", f.Level, f.Msg)
	}
}
