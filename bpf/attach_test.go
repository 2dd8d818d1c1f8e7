package bpf_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/bpf"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// Attach the programs to a veth pair in a private namespace (native on
// one end, generic on the other) and push real frames through them.
func TestAttachOnVeth(t *testing.T) {
	netnstest.Require(t)
	o := load(t)
	outsideFixture(t, o)
	insideFixture(t, o)
	ns := netnstest.New(t, "cgwbpf")
	out, in := netnstest.Veth{A: netnstest.End{NS: ns, Name: "cgwo0"}, B: netnstest.End{NS: ns, Name: "cgwo1"}}.Create(t)

	var links []link.Link
	t.Cleanup(func() {
		for _, l := range links {
			l.Close()
		}
	})
	frames := map[string][]byte{
		"esp":   ipv4(protoESP, peer4, local4, esp(knownSPI, 64)),
		"ike":   ipv4(protoUDP, peer4, local4, udp(500, 500, make([]byte, 40))),
		"inner": ipv4(protoUDP, "198.18.0.50", "198.19.1.1", udp(1000, 2000, make([]byte, 32))),
	}
	const n = 5
	before := stats(t, o)
	err := ns.Do(func() error {
		l, err := o.AttachOutside(out.Index, bpf.Native)
		if err != nil {
			return err
		}
		links = append(links, l)
		if l, err = o.AttachInside(in.Index, bpf.Generic); err != nil {
			return err
		}
		links = append(links, l)
		// Double attach must fail with an operator-readable error.
		if l, err := o.AttachPass(out.Index, bpf.Native); err == nil {
			l.Close()
			return fmt.Errorf("a second XDP program attached to cgwo0")
		}

		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		defer unix.Close(fd)
		send := func(ifi *net.Interface, f []byte) error {
			return unix.Sendto(fd, f, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6})
		}
		for range n {
			for _, f := range [][]byte{frames["esp"], frames["ike"]} {
				if err := send(in, f); err != nil { // arrives on cgwo0
					return err
				}
			}
			if err := send(out, frames["inner"]); err != nil { // arrives on cgwo1
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[bpf.CgwStat]uint64{bpf.CgwStatOutDropNoSocket: n, bpf.CgwStatOutIke: n, bpf.CgwStatInDropNoSocket: n}
	var after [bpf.CgwStatNumStats]uint64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		after = stats(t, o)
		done := true
		for s, w := range want {
			done = done && after[s]-before[s] >= w
		}
		if done {
			break
		}
	}
	for s, w := range want {
		if d := after[s] - before[s]; d != w {
			t.Errorf("%v: %d frames counted, want %d", s, d, w)
		}
	}
}
