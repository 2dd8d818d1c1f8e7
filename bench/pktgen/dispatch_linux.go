package pktgen

import (
	"fmt"
	"os"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// parking keeps the generator's program attached (native XDP) to a veth
// in a private, anonymous network namespace, for a reason of speed:
// BPF_PROG_RUN with a repeat count puts the program into the kernel's XDP
// dispatcher for the call and takes it out after, two RCU grace periods
// per call (≈25 ms here, measured: calls of 32 frames reached 1 200
// frames/s). A program already in the dispatcher (attached somewhere) is
// only reference-counted, so calls cost microseconds and a paced
// generator can send small bursts. The namespace lives as long as the fd
// held here: closing it (or the process ending) removes the namespace and
// its veth, so nothing is left behind.
type parking struct {
	ns   *os.File
	link link.Link
}

func park(prog *ebpf.Program) (*parking, error) {
	type res struct {
		p   *parking
		err error
	}
	c := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine, namespace and all
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			c <- res{err: fmt.Errorf("pktgen: private network namespace for the generator (needs root): %w", err)}
			return
		}
		ns, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			c <- res{err: err}
			return
		}
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "pgpark0"}, PeerName: "pgpark1"}
		if err := netlink.LinkAdd(v); err != nil {
			ns.Close()
			c <- res{err: fmt.Errorf("pktgen: veth for the generator's program: %w", err)}
			return
		}
		ifi, err := netlink.LinkByName("pgpark0")
		if err != nil {
			ns.Close()
			c <- res{err: err}
			return
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi.Attrs().Index, Flags: link.XDPDriverMode})
		if err != nil {
			ns.Close()
			c <- res{err: fmt.Errorf("pktgen: attaching the generator's program to its parking veth: %w", err)}
			return
		}
		c <- res{p: &parking{ns: ns, link: l}}
	}()
	r := <-c
	return r.p, r.err
}

func (p *parking) close() {
	if p == nil {
		return
	}
	p.link.Close()
	p.ns.Close()
}
