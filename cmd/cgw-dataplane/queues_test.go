package main

import (
	"errors"
	"slices"
	"testing"

	"github.com/cgw-project/cgw/bench/netnstest"
)

// TestChannelsInUse: the worker count follows the RX queues in use
// (`ethtool -l` current settings), not the most the veth was made with,
// and it is asked in the dataplane's own network namespace.
func TestChannelsInUse(t *testing.T) {
	netnstest.Require(t, "ethtool")
	ns := netnstest.New(t, "cgwq")
	netnstest.Veth{A: netnstest.End{NS: ns, Name: "cgwq-a"}, B: netnstest.End{NS: ns, Name: "cgwq-b"}, Queues: 4}.Create(t)
	ns.Run(t, "ethtool", "-L", "cgwq-a", "rx", "3", "tx", "3")
	ns.Run(t, "ethtool", "-L", "cgwq-b", "rx", "1", "tx", "1")
	var a, b, none int
	var errNone error
	if err := ns.Do(func() error {
		var err error
		if a, err = channelsInUse("cgwq-a"); err != nil {
			return err
		}
		if b, err = channelsInUse("cgwq-b"); err != nil {
			return err
		}
		none, errNone = channelsInUse("cgwq-none")
		if rxQueues("cgwq-none") != 1 {
			return errors.New("rxQueues of a missing device is not 1")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if a != 3 || b != 1 {
		t.Fatalf("RX queues in use on two 4-queue veths: %d and %d, want 3 and 1 (ethtool -L rx 3, rx 1)", a, b)
	}
	if errNone == nil {
		t.Fatalf("a missing device reports %d queues, want an error", none)
	}
}

// TestDefaultNoPinning: without -cpus or gateway.dataplane.cpus the
// workers are not pinned and their number is bounded by the CPUs the
// process may use; -cpus pins.
func TestDefaultNoPinning(t *testing.T) {
	s, err := resolve(options{outside: "a", inside: "b", xdpMode: "native"})
	if err != nil {
		t.Fatal(err)
	}
	if s.pinned || !slices.Equal(s.cpuList, allowedCPUs()) {
		t.Fatalf("default: pinned %v, CPUs %v; want unpinned over %v", s.pinned, s.cpuList, allowedCPUs())
	}
	s, err = resolve(options{outside: "a", inside: "b", xdpMode: "native", cpus: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.pinned || !slices.Equal(s.cpuList, []int{1}) {
		t.Fatalf("-cpus 1: pinned %v, CPUs %v", s.pinned, s.cpuList)
	}
}
