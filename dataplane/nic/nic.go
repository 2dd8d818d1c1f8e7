// Package nic reads what the dataplane needs to know about a network
// device through ethtool (github.com/safchain/ethtool, no hand-laid ioctl
// structs) and sysfs: its driver, the RX queues in use, its offloads, and
// the preflight checks (Check) cgwctl verify prints and cgw-dataplane logs
// at start. Every call looks the device up in the caller's network
// namespace.
package nic

import (
	"fmt"

	"github.com/safchain/ethtool"
)

// RxQueues returns how many RX queues of dev are in use: the RX-only plus
// combined channels the driver reports (ETHTOOL_GCHANNELS, what `ethtool
// -l` prints under "Current hardware settings"). An AF_XDP socket binds
// only to one of those, not up to the maximum the device was created with.
func RxQueues(dev string) (int, error) {
	e, err := ethtool.NewEthtool()
	if err != nil {
		return 0, err
	}
	defer e.Close()
	ch, err := e.GetChannels(dev)
	if err != nil {
		return 0, fmt.Errorf("ETHTOOL_GCHANNELS on %s: %w", dev, err)
	}
	n := int(ch.RxCount + ch.CombinedCount)
	if n < 1 {
		return 0, fmt.Errorf("%s reports no RX or combined channels in use", dev)
	}
	return n, nil
}

// Driver returns dev's driver name as ethtool -i reports it ("" when the
// device has none that ethtool knows).
func Driver(dev string) string {
	d, err := ethtool.DriverName(dev)
	if err != nil {
		return ""
	}
	return d
}

// Features returns dev's offloads by ethtool's names (e.g.
// "rx-gro-hw", "large-receive-offload"), on or off.
func Features(dev string) (map[string]bool, error) {
	e, err := ethtool.NewEthtool()
	if err != nil {
		return nil, err
	}
	defer e.Close()
	return e.Features(dev)
}
