package pktgen

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/cgw-project/cgw/internal/netnstest"
)

// pair makes namespaces a and b joined by veth ga—gb and returns the MAC
// of gb.
func pair(t *testing.T) (nsA, nsB *netnstest.NS, macB net.HardwareAddr) {
	nsA, nsB = netnstest.New(t, "cgwpgt-a"), netnstest.New(t, "cgwpgt-b")
	_, gb := netnstest.Veth{A: netnstest.End{NS: nsA, Name: "ga"}, B: netnstest.End{NS: nsB, Name: "gb"}}.Create(t)
	return nsA, nsB, gb.HardwareAddr
}

// TestGeneratorIntoSink sends a bounded burst from one namespace into a
// sink in the other and checks the sink counted the frames and bytes.
func TestGeneratorIntoSink(t *testing.T) {
	netnstest.Require(t)
	nsA, nsB, mac := pair(t)
	var sink *Sink
	if err := InNetns(nsB.Name(), func() (err error) { sink, err = NewSink("gb"); return err }); err != nil {
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
	if err := InNetns(nsA.Name(), func() error {
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
	if err := InNetns(nsA.Name(), func() (err error) {
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

	// Frames of the pass length go to the stack uncounted (latency
	// probes); others are still counted.
	if err := sink.SetPass(len(frame)); err != nil {
		t.Fatal(err)
	}
	p0, _, _ := sink.Count()
	other := testFrame(100)
	other.DstMAC = mac
	of, _ := other.Build()
	if err := InNetns(nsA.Name(), func() error {
		if _, err := g.Run(context.Background(), frame, RunConfig{Dev: "ga", Count: 50, CPU: -1}); err != nil {
			return err
		}
		_, err := g.Run(context.Background(), of, RunConfig{Dev: "ga", Count: 30, CPU: -1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if p1, _, _ := sink.Count(); p1-p0 != 30 {
		t.Errorf("with the pass length set to %d the sink counted %d of 50 such frames and 30 others, want only the 30", len(frame), p1-p0)
	}
	sink.SetPass(0)

	// The generator refuses to run unbounded.
	if _, err := g.Run(context.Background(), frame, RunConfig{Dev: "ga", CPU: -1}); err == nil {
		t.Error("Run with Count 0 succeeded")
	}
}
