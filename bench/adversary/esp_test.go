package adversary

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
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

// background reads a tap until stop is called, handing each frame to fn.
func background(t *testing.T, tap *Tap, fn func(Frame)) (stop func()) {
	t.Helper()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
			}
			fs, _, _ := tap.Read(100*time.Millisecond, 1<<16)
			for _, f := range fs {
				fn(f)
			}
		}
	}()
	return func() { close(quit); <-done; tap.Close() }
}

// echoKey is an echo reply by ICMP identifier and sequence number: the
// same key delivered twice to the LAN is a replay that got through.
type echoKey struct{ id, seq uint16 }

// lanReplies records the echo replies the VPC host's packets deliver to
// the LAN host, each with when it arrived.
type lanReplies struct {
	mu   sync.Mutex
	at   map[echoKey][]time.Time
	stop func()
}

func watchLAN(t *testing.T, l *lab.Lab) *lanReplies {
	t.Helper()
	tap, err := NewTap(l.NS(lab.LAN), "eth0", Match{Src: lab.VPCHost})
	if err != nil {
		t.Fatal(err)
	}
	r := &lanReplies{at: map[echoKey][]time.Time{}}
	r.stop = background(t, tap, func(f Frame) {
		ip, ok := IPv4(f.Data)
		if !ok || ip[9] != syscall.IPPROTO_ICMP {
			return
		}
		icmp := ip[int(ip[0]&0x0f)*4:]
		if len(icmp) < 8 || icmp[0] != 0 { // echo reply
			return
		}
		k := echoKey{binary.BigEndian.Uint16(icmp[4:]), binary.BigEndian.Uint16(icmp[6:])}
		r.mu.Lock()
		r.at[k] = append(r.at[k], f.At)
		r.mu.Unlock()
	})
	return r
}

// since splits the replies that arrived after from: dup were delivered
// before from too, fresh only after.
func (r *lanReplies) since(from time.Time) (dup, fresh int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ts := range r.at {
		var before, after int
		for _, at := range ts {
			if at.Before(from) {
				before++
			} else {
				after++
			}
		}
		if before > 0 {
			dup += after
		} else {
			fresh += after
		}
	}
	return dup, fresh
}

// espCapture keeps the ESP frames the AWS endpoints send the gateway, as
// seen on inet's link to it.
type espCapture struct {
	mu     sync.Mutex
	frames []Frame
	stop   func()
}

func captureESP(t *testing.T, l *lab.Lab) *espCapture {
	t.Helper()
	tap, err := NewTap(l.NS(lab.Inet), "cgw0", Match{Dst: gatewayOutside})
	if err != nil {
		t.Fatal(err)
	}
	c := &espCapture{}
	c.stop = background(t, tap, func(f Frame) {
		c.mu.Lock()
		c.frames = append(c.frames, f)
		c.mu.Unlock()
	})
	return c
}

func (c *espCapture) esp() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return espFrom(c.frames)
}

// replay sends frames again on inet's link to the gateway and waits 2 s
// for what they deliver; it returns when it began.
func replay(t *testing.T, l *lab.Lab, frames [][]byte) time.Time {
	t.Helper()
	wire, err := NewFrameSender(l.NS(lab.Inet), "cgw0")
	if err != nil {
		t.Fatal(err)
	}
	defer wire.Close()
	start := time.Now()
	for _, f := range frames {
		if err := wire.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	return start
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
// (the echo replies), captured on the wire and sent again: no echo reply
// reaches the LAN host a second time. Then cgw-dataplane is killed (-9)
// in the middle of a 100/s ping, when the last packets it delivered have
// had the least time to be recorded, and started again: its replay
// windows must come back from what the previous process accepted, and
// every frame captured in both rounds, replayed, must deliver no reply
// the LAN already had (RFC 4303 §3.4.3; issue #9, anti-replay across a
// crash). Frames that arrived while no dataplane ran were never
// delivered, so the first copy that gets through is not a replay; they
// are counted apart.
func TestESPReplay(t *testing.T) {
	l, g, _ := adversaryLab(t)
	lan := watchLAN(t, l)
	defer lan.stop()

	// Live.
	c1 := captureESP(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pr, err := l.PingEvery(ctx, lab.LAN, lab.VPCHost, 20, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	c1.stop()
	frames := c1.esp()
	if pr.Received < pr.Sent-1 || len(frames) < pr.Received {
		t.Fatalf("captured %d ESP frames during a ping answered %d of %d times; want every reply", len(frames), pr.Received, pr.Sent)
	}
	drops0 := replayDrops(t, l, g)
	from := replay(t, l, frames)
	liveDup, liveFresh := lan.since(from)
	drops1 := replayDrops(t, l, g)
	if liveDup+liveFresh != 0 {
		t.Errorf("replayed live: %d of %d captured ESP frames delivered a reply to the LAN host again (%d new)", liveDup, len(frames), liveFresh)
	}

	// kill -9 under a 100/s ping.
	p, ok := g.DataplaneProc(l)
	if !ok {
		t.Fatal("cgw-dataplane is not running")
	}
	c2 := captureESP(t, l)
	ping := make(chan lab.PingResult, 1)
	go func() {
		pr, _ := l.PingEvery(ctx, lab.LAN, lab.VPCHost, 100, 10*time.Millisecond)
		ping <- pr
	}()
	time.Sleep(500 * time.Millisecond)
	if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for i := 0; i < 100 && p.Alive(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if err := g.StartDataplane(ctx, l); err != nil {
		t.Fatal(err)
	}
	pr2 := <-ping
	for ctx.Err() == nil {
		if r, err := l.Ping(ctx, lab.LAN, lab.VPCHost, 1); err == nil && r.Received == 1 {
			break
		}
	}
	if ctx.Err() != nil {
		t.Fatal("no ping answered LAN -> VPC within 2 minutes of restarting cgw-dataplane")
	}
	back := time.Since(killed)
	time.Sleep(500 * time.Millisecond)
	c2.stop()
	frames2 := c2.esp()
	all := append(append([][]byte(nil), frames...), frames2...)
	from = replay(t, l, all)
	dup, fresh := lan.since(from)
	if dup != 0 {
		t.Errorf("replayed after kill -9 and restart of cgw-dataplane: %d of %d captured ESP frames delivered a reply the LAN host already had", dup, len(all))
	}
	passLine(t, "esp-replay", fmt.Sprintf("%d captured ESP-in-UDP frames replayed at once, live and after kill -9 during a 100/s ping", len(all)),
		fmt.Sprintf("live: %d of %d delivered again (replay drops +%d); after kill -9 + restart (ping during it %d/%d, forwarding again %v after the kill): %d of %d delivered again, %d first deliveries of frames that arrived while no dataplane ran",
			liveDup+liveFresh, len(frames), drops1-drops0, pr2.Received, pr2.Sent, back.Round(10*time.Millisecond), dup, len(all), fresh))
}
