package netnstest

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/internal/prereq"
)

// SkipMessage is what a -short run says for every test that needs root and
// namespaces.
const SkipMessage = "end-to-end: needs root and namespaces; run without -short"

// Require skips the test under -short with SkipMessage; otherwise it fails
// the test, naming every missing prerequisite and the Debian package that
// brings it (internal/prereq), unless it runs as root and the iproute2 ip
// command and each of needs is there. A need is a command looked up on
// PATH, or an absolute path that must exist (/dev/net/tun).
func Require(tb testing.TB, needs ...string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip(SkipMessage)
	}
	var missing []string
	if r := prereq.Root("network namespaces; or pass -short"); r != "" {
		missing = append(missing, r)
	}
	missing = append(missing, prereq.Commands(append([]string{"ip", "sysctl"}, needs...)...)...)
	if len(missing) > 0 {
		tb.Fatalf("end-to-end: needs %s", strings.Join(missing, "; and "))
	}
}

// NS is a network namespace made by New.
type NS struct{ name string }

var seq atomic.Uint32

// New creates a network namespace named prefix-<pid>-<n> (unique among
// parallel test binaries and within this one) with lo up. When the test
// ends it is deleted, after everything the test registered later, and the
// test fails if it is still there.
func New(tb testing.TB, prefix string) *NS {
	tb.Helper()
	ns := &NS{name: fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", ns.name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v\n%s", ns.name, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v\n%s", ns.name, err, out)
		}
		if _, err := os.Stat(ns.path()); !errors.Is(err, fs.ErrNotExist) {
			tb.Errorf("network namespace %s is still there after ip netns del (%v)", ns.name, err)
		}
	})
	ns.Run(tb, "ip", "link", "set", "lo", "up")
	return ns
}

// Name is the namespace's name, as ip netns and /run/netns know it.
func (ns *NS) Name() string { return ns.name }

func (ns *NS) path() string { return filepath.Join("/run/netns", ns.name) }

// Command returns a command that runs name inside the namespace. ip itself
// runs as "ip -n <ns>", which iproute2 documents as the same as "ip netns
// exec <ns> ip" but costs one process fewer.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	if name == "ip" {
		return exec.Command("ip", append([]string{"-n", ns.name}, args...)...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
}

// Run runs name inside the namespace and returns its combined output; it
// fails the test, with that output, if the command fails.
func (ns *NS) Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	cmd := ns.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// Do runs fn on a fresh OS thread switched into the namespace. The thread
// is never unlocked, so Go ends it with fn's goroutine and nothing else
// ever runs in the namespace by accident. Sockets, links and XDP
// attachments made by fn stay in the namespace wherever they are used
// later.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		f, err := os.Open(ns.path())
		if err != nil {
			errc <- fmt.Errorf("network namespace %s: %w", ns.name, err)
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("entering network namespace %s: %w", ns.name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// iface looks up the interface called name inside the namespace.
func (ns *NS) iface(tb testing.TB, name string) *net.Interface {
	tb.Helper()
	var ifi *net.Interface
	if err := ns.Do(func() (err error) { ifi, err = net.InterfaceByName(name); return err }); err != nil {
		tb.Fatalf("interface %s in %s: %v", name, ns.name, err)
	}
	return ifi
}

// End is one end of a veth pair.
type End struct {
	NS    *NS
	Name  string
	MAC   net.HardwareAddr // nil: the kernel picks one
	Addrs []netip.Prefix   // IPv6 ones without duplicate address detection
}

// Veth is a veth pair to create between two namespaces (or within one).
type Veth struct {
	A, B End
	// Queues is the number of receive and transmit queues on each end
	// (0: the kernel's default, one).
	Queues int
	// StaticNeighbours gives each end permanent neighbour entries for the
	// other end's addresses, so no ARP or neighbour discovery happens.
	StaticNeighbours bool
}

// Create makes the pair, adds the addresses, sets both ends up and returns
// them as seen inside their namespaces. Deleting a namespace deletes its
// end, and with it the pair.
func (v Veth) Create(tb testing.TB) (a, b *net.Interface) {
	tb.Helper()
	end := func(e End) []string {
		args := []string{"name", e.Name, "netns", e.NS.name}
		if e.MAC != nil {
			args = append(args, "address", e.MAC.String())
		}
		if v.Queues > 0 {
			q := fmt.Sprint(v.Queues)
			args = append(args, "numrxqueues", q, "numtxqueues", q)
		}
		return args
	}
	// Both ends are made directly in their namespaces: no name is ever
	// taken in the caller's namespace.
	args := append([]string{"link", "add"}, end(v.A)...)
	args = append(append(args, "type", "veth", "peer"), end(v.B)...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, e := range []End{v.A, v.B} {
		for _, p := range e.Addrs {
			if p.Addr().Is4() {
				e.NS.Run(tb, "ip", "addr", "add", p.String(), "dev", e.Name)
			} else {
				e.NS.Run(tb, "ip", "addr", "add", p.String(), "dev", e.Name, "nodad")
			}
		}
		e.NS.Run(tb, "ip", "link", "set", e.Name, "up")
	}
	a, b = v.A.NS.iface(tb, v.A.Name), v.B.NS.iface(tb, v.B.Name)
	if v.StaticNeighbours {
		for _, s := range []struct {
			e    End
			peer End
			mac  net.HardwareAddr
		}{{v.A, v.B, b.HardwareAddr}, {v.B, v.A, a.HardwareAddr}} {
			for _, p := range s.peer.Addrs {
				s.e.NS.Run(tb, "ip", "neigh", "replace", p.Addr().String(), "lladdr", s.mac.String(), "dev", s.e.Name, "nud", "permanent")
			}
		}
	}
	return a, b
}
