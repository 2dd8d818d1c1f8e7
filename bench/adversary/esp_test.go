package adversary

import (
	"context"
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
)

// espFrom keeps the ESP-in-UDP frames (RFC 3948: port 4500, a non-zero
// SPI where IKE has its zero marker) the AWS endpoints send the gateway.
func espFrom(frames []Frame) [][]byte {
	var out [][]byte
	for _, f := range frames {
		ip, ok := IPv4(f.Data)
		if !ok {
			continue
		}
		src, dst, pl, ok := UDPOf(ip)
		if !ok || dst.Addr() != gatewayOutside || dst.Port() != 4500 || (src.Addr() != awsOutside(v1) && src.Addr() != awsOutside(v2)) {
			continue
		}
		if len(pl) < 16 || binary.BigEndian.Uint32(pl) == 0 {
			continue // IKE or a keepalive
		}
		out = append(out, f.Data)
	}
	return out
}

// captureESP pings LAN -> VPC count times while capturing, on inet's link
// to the gateway, what the AWS endpoints send it; it returns the ESP
// frames (the echo replies among them) and the ping's outcome.
func captureESP(t *testing.T, l *lab.Lab, count int) ([][]byte, lab.PingResult) {
	t.Helper()
	tap, err := NewTap(l.NS(lab.Inet), "cgw0", Match{Dst: gatewayOutside})
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	type read struct {
		fs []Frame
	}
	got := make(chan read, 1)
	every := 50 * time.Millisecond
	go func() {
		fs, _, _ := tap.Read(time.Duration(count)*every+1500*time.Millisecond, 4096)
		got <- read{fs}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pr, err := l.PingEvery(ctx, lab.LAN, lab.VPCHost, count, every)
	if err != nil {
		t.Fatal(err)
	}
	r := <-got
	return espFrom(r.fs), pr
}

// replay sends frames again on inet's link to the gateway and returns
// how many packets from the VPC host reached the LAN host meanwhile.
func replay(t *testing.T, l *lab.Lab, frames [][]byte) int {
	t.Helper()
	lan, err := NewTap(l.NS(lab.LAN), "eth0", Match{Src: lab.VPCHost})
	if err != nil {
		t.Fatal(err)
	}
	defer lan.Close()
	wire, err := NewFrameSender(l.NS(lab.Inet), "cgw0")
	if err != nil {
		t.Fatal(err)
	}
	defer wire.Close()
	delivered := make(chan int, 1)
	go func() {
		_, n, _ := lan.Read(2*time.Second, 0)
		delivered <- n
	}()
	time.Sleep(100 * time.Millisecond)
	for _, f := range frames {
		if err := wire.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	return <-delivered
}

// replayDrops sums the gateway's inbound replay drops over both tunnels.
func replayDrops(t *testing.T, l *lab.Lab, g *lab.CGWGateway) uint64 {
	t.Helper()
	time.Sleep(1200 * time.Millisecond) // control reads the counters every 500 ms
	var n uint64
	for i := range 2 {
		tu := tunnel(t, l, g, i)
		for _, c := range tu.Children {
			n += c.In.DropReplay
		}
	}
	return n
}

// TestESPReplay: ESP that AWS sent the gateway during a LAN -> VPC ping
// (the echo replies), captured on the wire and sent again: nothing
// reaches the LAN host. Then the same right after cgw-dataplane is
// killed (-9) and started again, when its replay windows must come back
// from what the previous process had accepted: still nothing
// (RFC 4303 §3.4.3; issue #9, anti-replay across a crash).
func TestESPReplay(t *testing.T) {
	l, g, _ := adversaryLab(t)
	const pings = 20

	frames, pr := captureESP(t, l, pings)
	if pr.Received < pings-1 || len(frames) < pr.Received {
		t.Fatalf("captured %d ESP frames during a ping answered %d of %d times; want every reply", len(frames), pr.Received, pr.Sent)
	}
	drops0 := replayDrops(t, l, g)
	live := replay(t, l, frames)
	drops1 := replayDrops(t, l, g)
	if live != 0 {
		t.Errorf("replayed live: %d of %d captured ESP packets reached the LAN host", live, len(frames))
	}

	// A second capture, the dataplane killed the moment it ends: the
	// replay state of the last packets has had the least time to be kept.
	frames2, pr2 := captureESP(t, l, pings)
	p, ok := g.DataplaneProc(l)
	if !ok {
		t.Fatal("cgw-dataplane is not running")
	}
	if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && p.Alive(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := g.StartDataplane(ctx, l); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	for ctx.Err() == nil {
		if r, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 1); err == nil && r.Received == 1 {
			break
		}
	}
	if ctx.Err() != nil {
		t.Fatal("no ping answered LAN -> VPC within 60 s of restarting cgw-dataplane")
	}
	back := time.Since(restarted)
	all := append(append([][]byte(nil), frames...), frames2...)
	afterKill := replay(t, l, all)
	if afterKill != 0 {
		t.Errorf("replayed after kill -9 and restart of cgw-dataplane: %d of %d captured ESP packets reached the LAN host", afterKill, len(all))
	}
	passLine(t, "esp-replay", fmt.Sprintf("%d captured ESP-in-UDP frames replayed at once, twice", len(all)),
		fmt.Sprintf("live: %d of %d delivered to the LAN (replay drops +%d); after kill -9 + restart (forwarding again after %v; ping before kill %d/%d): %d of %d delivered",
			live, len(frames), drops1-drops0, back.Round(10*time.Millisecond), pr2.Received, pr2.Sent, afterKill, len(all)))
}
