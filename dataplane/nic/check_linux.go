package nic

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
)

// Levels of a Finding.
const (
	OK   = "ok"
	Warn = "warn" // works, but slower or less robust than it could
	Fail = "fail" // the dataplane will not work as configured
)

// Finding is one preflight result; Fix is the command that fixes it.
type Finding struct {
	Level  string `json:"level"`
	Device string `json:"device,omitempty"` // "" for host-wide checks
	Check  string `json:"check"`
	Msg    string `json:"message"`
	Fix    string `json:"fix,omitempty"`
}

// Options describe the dataplane the host is checked for.
type Options struct {
	Inside, Outside string
	// CPUs are the worker cores (gateway.dataplane.cpus or -cpus); empty:
	// workers are not pinned, and IRQ affinity and NUMA are not checked.
	CPUs []int
	// Workers is the number of workers (one per queue); 0: len(CPUs), else 1.
	Workers int
	// Root is prepended to /proc and /sys paths (tests); "" in production.
	Root string
}

// Check runs the preflight checks of both devices and the host.
func Check(o Options) []Finding {
	if o.Workers == 0 {
		o.Workers = max(len(o.CPUs), 1)
	}
	var out []Finding
	for _, d := range []struct{ role, dev string }{{"outside", o.Outside}, {"inside", o.Inside}} {
		if d.dev == "" {
			continue
		}
		out = append(out, checkDevice(o, d.role, d.dev)...)
	}
	return append(out, checkHost(o)...)
}

func checkDevice(o Options, role, dev string) []Finding {
	label := role + " " + dev
	var out []Finding
	add := func(level, check, fix, format string, a ...any) {
		out = append(out, Finding{Level: level, Device: label, Check: check, Msg: fmt.Sprintf(format, a...), Fix: fix})
	}
	l, err := netlink.LinkByName(dev)
	if err != nil {
		add(Fail, "device", "ip link show", "no such interface in this network namespace: %v", err)
		return out
	}
	drv := Driver(dev)
	add(OK, "driver", "", "driver %s", orUnknown(drv))

	f, err := DevXDPFeatures(dev)
	switch {
	case err != nil:
		add(Warn, "xdp", "", "XDP features unknown: %v", err)
	case !f.Known:
		add(Warn, "xdp", "", "the kernel does not report XDP features (netdev netlink family, Linux ≥ 6.3): native XDP and zero-copy cannot be checked")
	default:
		if f.Native {
			add(OK, "xdp", "", "native XDP supported by the driver")
		} else {
			add(Warn, "xdp", "cgw-dataplane -xdp-mode generic (or a NIC whose driver has native XDP: ice, i40e, ixgbe, mlx5_core, …)",
				"the driver has no native XDP: only generic mode, which builds an skb for every packet")
		}
		if f.ZeroCopy {
			add(OK, "zero-copy", "", "AF_XDP zero-copy supported by the driver")
		} else {
			add(Warn, "zero-copy", "none on this device: use a NIC whose driver has AF_XDP zero-copy (ice, i40e, ixgbe, igc, mlx5_core, …) for line rate",
				"no AF_XDP zero-copy: the sockets run in copy mode (one copy per packet each way)")
		}
	}
	if m, err := AttachedXDP(dev); err == nil && m != "" {
		add(OK, "xdp-attached", "", "an XDP program is attached in %s mode", m)
	}

	if q, err := RxQueues(dev); err != nil {
		add(Warn, "queues", "", "RX queues unknown (%v): the dataplane serves queue 0 only unless -queues says otherwise", err)
	} else {
		switch {
		case q < o.Workers:
			add(Fail, "queues", fmt.Sprintf("ethtool -L %s combined %d", dev, o.Workers),
				"%d RX queue(s) in use for %d worker(s): workers beyond queue %d get no socket", q, o.Workers, q-1)
		case q > o.Workers:
			add(Warn, "queues", fmt.Sprintf("ethtool -L %s combined %d", dev, o.Workers),
				"%d RX queues in use for %d worker(s): what RSS puts on queues %d..%d reaches no worker (the kernel handles it)", q, o.Workers, o.Workers, q-1)
		default:
			add(OK, "queues", "", "%d RX queue(s), one per worker", q)
		}
	}
	out = append(out, checkIRQs(o, label, dev)...)

	if n, ok := readInt(o.Root + "/sys/class/net/" + dev + "/device/numa_node"); ok && n >= 0 && len(o.CPUs) > 0 {
		var off []int
		for _, c := range o.CPUs {
			if cn := cpuNode(o.Root, c); cn >= 0 && cn != n {
				off = append(off, c)
			}
		}
		if len(off) > 0 {
			list, _ := os.ReadFile(fmt.Sprintf("%s/sys/devices/system/node/node%d/cpulist", o.Root, n))
			add(Warn, "numa", fmt.Sprintf("set gateway.dataplane.cpus to cores of node %d (%s)", n, strings.TrimSpace(string(list))),
				"the NIC is on NUMA node %d but worker CPU(s) %v are not: every packet crosses the interconnect", n, off)
		} else {
			add(OK, "numa", "", "NIC and worker CPUs on NUMA node %d", n)
		}
	}

	mtu := l.Attrs().MTU
	// Single-buffer XDP: a frame must fit a 4 KiB page with XDP's headroom
	// and the skb tail; most drivers refuse native XDP above this MTU.
	if mtu > 3498 {
		add(Fail, "mtu", fmt.Sprintf("ip link set dev %s mtu 1500", dev), "MTU %d: drivers refuse native XDP above 3498 without multi-buffer support", mtu)
	} else {
		add(OK, "mtu", "", "MTU %d", mtu)
	}
	if feats, err := Features(dev); err == nil {
		for _, ft := range []struct{ name, what string }{
			{"large-receive-offload", "LRO"}, {"rx-gro-hw", "hardware GRO"},
		} {
			if feats[ft.name] {
				add(Fail, strings.ToLower(ft.what), fmt.Sprintf("ethtool -K %s %s off", dev, ethtoolKey(ft.name)),
					"%s is on: drivers refuse native XDP with it (merged frames exceed one buffer)", ft.what)
			}
		}
	}
	return out
}

// ethtoolKey is the short name ethtool -K takes for a feature.
func ethtoolKey(feature string) string {
	if feature == "large-receive-offload" {
		return "lro"
	}
	return feature
}

// checkIRQs compares each served queue's interrupt affinity with its
// worker's core (worker q serves queue q on CPUs[q % len(CPUs)]).
func checkIRQs(o Options, label, dev string) []Finding {
	irqs := queueIRQs(o.Root, dev)
	if len(irqs) == 0 {
		return []Finding{{Level: OK, Device: label, Check: "irq-affinity", Msg: "no per-queue interrupts (a virtual device: the receive work runs on the sender's CPU)"}}
	}
	if len(o.CPUs) == 0 {
		return []Finding{{Level: Warn, Device: label, Check: "irq-affinity", Msg: "workers are not pinned: a queue's interrupts and its worker may run on different cores",
			Fix: "set gateway.dataplane.cpus (or cgw-dataplane -cpus)"}}
	}
	var out []Finding
	for q := 0; q < o.Workers && q < len(irqs); q++ {
		cpu := o.CPUs[q%len(o.CPUs)]
		b, err := os.ReadFile(fmt.Sprintf("%s/proc/irq/%d/smp_affinity_list", o.Root, irqs[q]))
		if err != nil {
			continue
		}
		aff := strings.TrimSpace(string(b))
		if aff == strconv.Itoa(cpu) {
			out = append(out, Finding{Level: OK, Device: label, Check: "irq-affinity", Msg: fmt.Sprintf("queue %d (IRQ %d) on CPU %d with its worker", q, irqs[q], cpu)})
			continue
		}
		out = append(out, Finding{Level: Warn, Device: label, Check: "irq-affinity",
			Msg: fmt.Sprintf("queue %d's IRQ %d may run on CPUs %s, its worker on CPU %d: the packets' cache lines move between cores", q, irqs[q], aff, cpu),
			Fix: fmt.Sprintf("echo %d > /proc/irq/%d/smp_affinity_list", cpu, irqs[q])})
	}
	return out
}

// queueIRQs lists dev's per-queue interrupts in queue order, from the
// names in /proc/interrupts (e.g. "eth0-TxRx-3", "ice-eth0-TxRx-3",
// "mlx5_comp3@pci:…" is not matched: only names carrying the device).
func queueIRQs(root, dev string) []int {
	b, err := os.ReadFile(root + "/proc/interrupts")
	if err != nil {
		return nil
	}
	type qi struct{ q, irq int }
	var found []qi
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		irq, err := strconv.Atoi(strings.TrimSuffix(f[0], ":"))
		if err != nil {
			continue
		}
		name := f[len(f)-1]
		if !strings.Contains(name, dev+"-") {
			continue
		}
		i := strings.LastIndexAny(name, "-")
		q, err := strconv.Atoi(name[i+1:])
		if err != nil {
			continue
		}
		found = append(found, qi{q, irq})
	}
	slices.SortFunc(found, func(a, b qi) int { return a.q - b.q })
	out := make([]int, len(found))
	for i, f := range found {
		out[i] = f.irq
	}
	return out
}

func cpuNode(root string, cpu int) int {
	m, _ := filepath.Glob(fmt.Sprintf("%s/sys/devices/system/cpu/cpu%d/node*", root, cpu))
	for _, p := range m {
		if n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "node")); err == nil {
			return n
		}
	}
	return -1
}

func checkHost(o Options) []Finding {
	var out []Finding
	add := func(level, check, fix, format string, a ...any) {
		out = append(out, Finding{Level: level, Check: check, Msg: fmt.Sprintf(format, a...), Fix: fix})
	}
	if pid := findProcess(o.Root, "irqbalance"); pid > 0 {
		add(Warn, "irqbalance", "systemctl disable --now irqbalance (or list the worker CPUs in IRQBALANCE_BANNED_CPULIST)",
			"irqbalance (pid %d) runs: it moves queue interrupts away from their workers' cores", pid)
	} else {
		add(OK, "irqbalance", "", "irqbalance is not running")
	}
	if v, ok := readInt(o.Root + "/proc/sys/net/ipv4/ip_forward"); ok && v != 1 {
		add(Fail, "ip_forward", "sysctl -w net.ipv4.ip_forward=1",
			"net.ipv4.ip_forward is %d: decrypted packets whose LAN next hop is not resolved yet go through the kernel, which must forward them", v)
	} else if ok {
		add(OK, "ip_forward", "", "net.ipv4.ip_forward is 1")
	}
	// The tunnels' TUN devices (cgw-t<id>) are created later and take
	// conf.default; the kernel uses the larger of conf.all and the device's.
	for _, k := range []string{"all", "default"} {
		if v, ok := readInt(o.Root + "/proc/sys/net/ipv4/conf/" + k + "/rp_filter"); ok && v == 1 {
			add(Warn, "rp_filter."+k, fmt.Sprintf("sysctl -w net.ipv4.conf.%s.rp_filter=2", k),
				"net.ipv4.conf.%s.rp_filter is 1 (strict): the kernel drops packets the tunnels' TUN devices hand it whose reverse route is another interface", k)
		} else if ok {
			add(OK, "rp_filter."+k, "", "net.ipv4.conf.%s.rp_filter is %d", k, v)
		}
	}
	return out
}

func findProcess(root, comm string) int {
	m, _ := filepath.Glob(root + "/proc/[0-9]*/comm")
	for _, p := range m {
		b, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(b)) == comm {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	return 0
}

func readInt(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
