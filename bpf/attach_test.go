package bpf_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/bpf"
)

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNamedNetns runs fn on a thread inside /var/run/netns/<ns>; the thread
// dies with the goroutine. Sockets and XDP links made there stay valid.
func inNamedNetns(ns string, fn func() error) error {
	ch := make(chan error)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ch <- fn()
	}()
	return <-ch
}

// Attach the programs to a veth pair in a private namespace (native on
// one end, generic on the other) and push real frames through them.
func TestAttachOnVeth(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: needs root and namespaces; run without -short")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2 (ip) is needed: %v", err)
	}
	o := load(t)
	outsideFixture(t, o)
	insideFixture(t, o)
	ns := fmt.Sprintf("cgwbpf-%d", os.Getpid())
	ip(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ip(t, "-n", ns, "link", "add", "cgwo0", "type", "veth", "peer", "name", "cgwo1")
	ip(t, "-n", ns, "link", "set", "cgwo0", "up")
	ip(t, "-n", ns, "link", "set", "cgwo1", "up")

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
	err := inNamedNetns(ns, func() error {
		out, err := net.InterfaceByName("cgwo0")
		if err != nil {
			return err
		}
		in, err := net.InterfaceByName("cgwo1")
		if err != nil {
			return err
		}
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
	want := map[bpf.CgwStat]uint64{bpf.CgwStatOutNoSocket: n, bpf.CgwStatOutIke: n, bpf.CgwStatInNoSocket: n}
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
