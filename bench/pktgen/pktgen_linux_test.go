package pktgen

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: needs root and namespaces; run without -short")
	}
	if os.Geteuid() != 0 {
		t.Fatal("end-to-end: needs root (network namespaces, XDP, BPF_PROG_RUN); run as root or pass -short")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("end-to-end: needs the iproute2 'ip' command: %v", err)
	}
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// pair makes namespaces a and b joined by veth ga—gb and returns the MAC
// of gb.
func pair(t *testing.T) (nsA, nsB string, macB net.HardwareAddr) {
	nsA, nsB = fmt.Sprintf("pgt%d-a", os.Getpid()), fmt.Sprintf("pgt%d-b", os.Getpid())
	for _, ns := range []string{nsA, nsB} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	sh(t, "ip", "-n", nsA, "link", "add", "ga", "type", "veth", "peer", "name", "gb", "netns", nsB)
	sh(t, "ip", "-n", nsA, "link", "set", "ga", "up")
	sh(t, "ip", "-n", nsB, "link", "set", "gb", "up")
	err := InNetns(nsB, func() error {
		ifi, err := net.InterfaceByName("gb")
		if err == nil {
			macB = ifi.HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return nsA, nsB, macB
}

// TestGeneratorIntoSink sends a bounded burst from one namespace into a
// sink in the other and checks the sink counted the frames and bytes.
func TestGeneratorIntoSink(t *testing.T) {
	requireRoot(t)
	nsA, nsB, mac := pair(t)
	var sink *Sink
	if err := InNetns(nsB, func() (err error) { sink, err = NewSink("gb"); return err }); err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	g, err := NewGenerator()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	f := testFrame(64)
	f.DstMAC = mac
	frame, err := f.Build()
	if err != nil {
		t.Fatal(err)
	}
	// A small burst first: every frame must arrive (the veth ring holds it).
	const small = 200
	if err := InNetns(nsA, func() error {
		_, err := g.Run(context.Background(), frame, RunConfig{Dev: "ga", Count: small, CPU: -1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	p, b, err := sink.Count()
	if err != nil {
		t.Fatal(err)
	}
	if p != small || b != small*uint64(len(frame)) {
		t.Fatalf("sink counted %d frames, %d bytes; want %d, %d", p, b, small, small*len(frame))
	}

	// A bounded run with the sink measuring: a rate comes out and no more
	// arrives than was sent.
	const n = 300000
	mc := make(chan Measurement, 1)
	go func() {
		m, _ := sink.Measure(context.Background(), 20*time.Second, 200*time.Millisecond)
		mc <- m
	}()
	var res GenResult
	if err := InNetns(nsA, func() (err error) {
		res, err = g.Run(context.Background(), frame, RunConfig{Dev: "ga", Count: n, Timeout: 15 * time.Second, CPU: -1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	m := <-mc
	if res.Sent != n {
		t.Errorf("generator sent %d, want %d", res.Sent, n)
	}
	if m.Packets == 0 || m.Packets > n || m.PPS() <= 0 {
		t.Errorf("sink measured %d packets at %.0f pps, want 1..%d and a rate", m.Packets, m.PPS(), n)
	}
	t.Logf("generated %d in %v (%.2f Mpps offered); sink got %d (%.2f Mpps)", res.Sent, res.Elapsed, res.PPS()/1e6, m.Packets, m.PPS()/1e6)

	// The generator refuses to run unbounded.
	if _, err := g.Run(context.Background(), frame, RunConfig{Dev: "ga", CPU: -1}); err == nil {
		t.Error("Run with Count 0 succeeded")
	}
}
