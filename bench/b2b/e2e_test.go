package b2b

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/dataplane/esp/esptest"
	"github.com/cgw-project/cgw/dataplane/gateway"
)

// dataplaneBinary builds cmd/cgw-dataplane (or takes $CGW_DATAPLANE).
func dataplaneBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CGW_DATAPLANE"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "cgw-dataplane")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/cgw-dataplane").CombinedOutput()
	if err != nil {
		t.Fatalf("end-to-end: cgw-dataplane does not build (go build ./cmd/cgw-dataplane): %v\n%s", err, out)
	}
	return bin
}

// upPair builds the topology and starts both dataplanes.
func upPair(t *testing.T, ctx context.Context, o Options) *Topology {
	t.Helper()
	requireE2E(t)
	o.Dataplane = dataplaneBinary(t)
	if o.CPU == nil {
		// One core each, so neither site's worker waits for the other's.
		o.CPU = map[string]string{"A": "0", "B": "1"}
	}
	o.LogDir = t.TempDir()
	tp := New(o)
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range []*Site{tp.A, tp.B} {
				m, err := tp.Metrics(context.Background(), s)
				t.Logf("dataplane %s log:\n%s\nmetrics (%v):\n%s", s.Name, s.DataplaneLog(), err, m)
			}
		}
		if err := tp.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	if err := tp.Up(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Site{tp.A, tp.B} {
		if _, err := tp.RunDataplane(ctx, s, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// First packets may meet neighbour resolution; warm the path.
	tp.Ping(ctx, LAN, VPCHost, 3, "-i", "0.2")
	return tp
}

// checkESP decodes a capture with every SA the test used and requires
// every ESP packet to decrypt with a good ICV to an intact inner packet.
func checkESP(t *testing.T, ctx context.Context, pcap string, sas []esptest.SA) []esptest.Packet {
	t.Helper()
	ps, err := esptest.Decode(ctx, t.TempDir(), pcap, sas, "")
	if err != nil {
		t.Fatal(err)
	}
	s := esptest.Summarize(ps)
	if s.ESP == 0 {
		t.Fatalf("no ESP on the wire in %s", pcap)
	}
	if s.Decrypted != s.ESP {
		for i, p := range s.Bad {
			if i == 5 {
				break
			}
			t.Errorf("ESP frame %d not cleanly decrypted: tshark %q", p.Frame, p.Raw)
		}
		t.Fatalf("tshark decrypted %d of %d ESP packets", s.Decrypted, s.ESP)
	}
	t.Logf("%d ESP packets on the wire, all decrypted by tshark; inner protocols %v", s.ESP, s.ByProto)
	return ps
}

func saList(p ...SAPair) []esptest.SA {
	var l []esptest.SA
	for _, x := range p {
		l = append(l, x.AB, x.BA)
	}
	return l
}

func (tp *Topology) capture(t *testing.T, ctx context.Context, name string) *Capture {
	t.Helper()
	c, err := tp.StartCapture(ctx, WireA, filepath.Join(t.TempDir(), name+".pcap"), 200000)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBackToBack runs traffic between lan and vpc through two cgw
// dataplanes and checks the outcome on the wire with tshark, in the
// dataplanes' counters and at the hosts.
func TestBackToBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tp := upPair(t, ctx, Options{Prefix: "b2be"})
	first := tp.SAs

	t.Run("TrafficDecryptsOnTheWire", func(t *testing.T) {
		c := tp.capture(t, ctx, "traffic")
		r, err := tp.Ping(ctx, LAN, VPCHost, 5, "-i", "0.1")
		if err != nil || r.Received != 5 {
			t.Errorf("ping lan→vpc: %d/%d received (%v)\n%s", r.Received, r.Sent, err, r.Output)
		}
		// TCP is reliable: a transfer that completes delivered it all, but
		// iperf3's receiver total may stop short of -n; it must see data.
		for _, dir := range [][]string{{"-n", "2M"}, {"-n", "2M", "-R"}} {
			if n, err := tp.Iperf(ctx, LAN, VPC, VPCHost, 5301, dir...); err != nil || n == 0 {
				t.Errorf("TCP %v lan↔vpc: %d bytes received (%v)", dir, n, err)
			}
		}
		if n, err := tp.Iperf(ctx, LAN, VPC, VPCHost, 5303, "-u", "-b", "10M", "-l", "1200", "-t", "1"); err != nil || n == 0 {
			t.Errorf("UDP lan→vpc: %d bytes (%v)", n, err)
		}
		if n, err := tp.Iperf(ctx, LAN, VPC, VPCHost, 5304, "-u", "-b", "10M", "-l", "1200", "-t", "1", "-R"); err != nil || n == 0 {
			t.Errorf("UDP vpc→lan: %d bytes (%v)", n, err)
		}
		c.Stop()
		ps := checkESP(t, ctx, c.Path, saList(first))
		s := esptest.Summarize(ps)
		for _, proto := range []int{1, 6, 17} {
			if s.ByProto[proto] == 0 {
				t.Errorf("no inner IP protocol %d among the decrypted packets (%v)", proto, s.ByProto)
			}
		}
		dirs := map[uint32]int{}
		for _, p := range ps {
			dirs[p.SPI]++
		}
		if dirs[first.AB.SPI] == 0 || dirs[first.BA.SPI] == 0 {
			t.Errorf("ESP per SPI %v: want both directions", dirs)
		}

	})

	t.Run("MSSClamp", func(t *testing.T) {
		// lan0's MTU is 1500, so a SYN leaves lan with MSS 1460 (once no
		// path MTU is cached: flush it, earlier transfers learnt 1399);
		// inside the tunnel it must carry 1379 (AWS tcp_mss_adjustment),
		// the SYN-ACK from vpc too (clamped by B).
		for _, r := range []string{LAN, VPC} {
			tp.Exec(ctx, r, "ip", "route", "flush", "cache")
		}
		c := tp.capture(t, ctx, "mss")
		// Only the handshakes matter here (a 64 KiB transfer is too short
		// for iperf3's receiver summary to be reliable).
		if _, err := tp.Iperf(ctx, LAN, VPC, VPCHost, 5305, "-n", "64K"); err != nil {
			t.Errorf("TCP lan→vpc: %v", err)
		}
		c.Stop()
		ps := checkESP(t, ctx, c.Path, saList(first))
		per := map[uint32]int{}
		for _, p := range ps {
			for _, m := range p.MSS {
				per[p.SPI]++
				if m != TunnelMSS {
					t.Errorf("ESP frame %d (SPI %#x): inner SYN with MSS %d, want %d", p.Frame, p.SPI, m, TunnelMSS)
				}
			}
		}
		if per[first.AB.SPI] == 0 || per[first.BA.SPI] == 0 {
			t.Errorf("SYNs with an MSS option per SPI %v: want the SYNs A→B and the SYN-ACKs B→A", per)
		}
	})

	t.Run("Fragmentation", func(t *testing.T) {
		c := tp.capture(t, ctx, "frag")
		// 1500-byte packets, DF clear: fragmented before encryption
		// (RFC 4459), two ESP packets each, reassembled by vpc.
		r, err := tp.Ping(ctx, LAN, VPCHost, 3, "-i", "0.2", "-s", "1472", "-M", "dont")
		if err != nil || r.Received != 3 {
			t.Errorf("ping -s 1472 -M dont: %d/%d (%v)\n%s", r.Received, r.Sent, err, r.Output)
		}
		c.Stop()
		ps := checkESP(t, ctx, c.Path, saList(first))
		frags := 0
		for _, p := range ps {
			if p.SPI == first.AB.SPI && p.InnerProt == 1 && (p.InnerMF || p.InnerOff > 0) {
				frags++
				if p.InnerLen > TunnelMTU {
					t.Errorf("ESP frame %d carries an inner fragment of %d bytes > MTU %d", p.Frame, p.InnerLen, TunnelMTU)
				}
			}
		}
		if frags < 6 {
			t.Errorf("%d inner fragments A→B for 3 1500-byte requests, want 6 (two ESP packets each)", frags)
		}

		// DF set, clear_df off: ICMP fragmentation needed, MTU 1399.
		tp.Exec(ctx, LAN, "ip", "route", "flush", "cache")
		r, _ = tp.Ping(ctx, LAN, VPCHost, 2, "-i", "0.3", "-s", "1472", "-M", "do")
		if r.Received != 0 || !strings.Contains(strings.ReplaceAll(r.Output, " ", ""), "mtu=1399") {
			t.Errorf("ping -M do -s 1472 with clear_df off: %d received, want 0 and \"mtu = 1399\" in:\n%s", r.Received, r.Output)
		}
		// clear_df on: gets through.
		if err := tp.SetClearDF(true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		tp.Exec(ctx, LAN, "ip", "route", "flush", "cache")
		r, err = tp.Ping(ctx, LAN, VPCHost, 3, "-i", "0.2", "-s", "1472", "-M", "do")
		if err != nil || r.Received != 3 {
			t.Errorf("ping -M do -s 1472 with clear_df on: %d/%d (%v)\n%s", r.Received, r.Sent, err, r.Output)
		}
		if err := tp.SetClearDF(false); err != nil {
			t.Fatal(err)
		}
		tp.Exec(ctx, LAN, "ip", "route", "flush", "cache")
	})

	t.Run("ReplayTamperUnknownSPI", func(t *testing.T) {
		c := tp.capture(t, ctx, "replay")
		tp.Ping(ctx, LAN, VPCHost, 3, "-i", "0.1")
		c.Stop()
		pkts, err := ReadPcap(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		var esp []byte
		for _, p := range pkts {
			if len(p) > 28 && p[9] == 50 && binary.BigEndian.Uint32(p[20:]) == first.AB.SPI {
				esp = p
			}
		}
		if esp == nil {
			t.Fatalf("no A→B ESP packet captured")
		}
		before, err := tp.B.Reader.ReadSACounters(first.IndexAB)
		if err != nil {
			t.Fatal(err)
		}
		stBefore, err := tp.B.Objs.Stats()
		if err != nil {
			t.Fatal(err)
		}
		// Replayed: the very same packet again.
		replayed := append([]byte(nil), esp...)
		// Tampered: a fresh sequence number (so the replay check passes)
		// and one flipped ciphertext bit: only the ICV can catch it.
		tampered := append([]byte(nil), esp...)
		binary.BigEndian.PutUint32(tampered[24:], binary.BigEndian.Uint32(esp[24:])+100)
		tampered[len(tampered)-20] ^= 0x40
		// Unknown SPI.
		unknown := append([]byte(nil), esp...)
		binary.BigEndian.PutUint32(unknown[20:], 0xdeadbeef)
		if err := tp.SendRaw(Wire, replayed, tampered, unknown); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		after, err := tp.B.Reader.ReadSACounters(first.IndexAB)
		if err != nil {
			t.Fatal(err)
		}
		stAfter, err := tp.B.Objs.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if d := after.DropReplay - before.DropReplay; d != 1 {
			t.Errorf("site B replay drops +%d, want +1 (counters before %+v after %+v)", d, before, after)
		}
		if d := after.DropAuth - before.DropAuth; d != 1 {
			t.Errorf("site B ICV (auth) drops +%d, want +1", d)
		}
		if d := stAfter[maps.StatOutUnknownSPI] - stBefore[maps.StatOutUnknownSPI]; d != 1 {
			t.Errorf("site B out_unknown_spi +%d, want +1", d)
		}
		// And the tunnel still works.
		if r, err := tp.Ping(ctx, LAN, VPCHost, 3, "-i", "0.1"); err != nil || r.Received != 3 {
			t.Errorf("ping after the injections: %d/3 (%v)", r.Received, err)
		}
	})

	t.Run("GatewayAddressesAndARP", func(t *testing.T) {
		for _, p := range []struct {
			from, dev string
			to        string
		}{{Wire, WireA, AOutside.String()}, {LAN, LANDev, AInside.String()}, {Wire, WireB, BOutside.String()}, {VPC, VPCDev, BInside.String()}} {
			tp.Exec(ctx, p.from, "ip", "neigh", "flush", "dev", p.dev)
			if out, err := tp.Exec(ctx, p.from, "ping", "-n", "-c", "3", "-i", "0.1", "-W", "2", p.to); err != nil {
				t.Errorf("ping %s (the gateway) from %s with its sockets bound: %v\n%s", p.to, p.from, err, out)
			}
			if out, _ := tp.Exec(ctx, p.from, "ip", "neigh", "show", p.to); !strings.Contains(out, "lladdr") {
				t.Errorf("%s did not resolve %s by ARP: %q", p.from, p.to, out)
			}
		}
	})

	t.Run("OutboundSASwitchLosesNothing", func(t *testing.T) {
		c := tp.capture(t, ctx, "rekey")
		next, err := NewSAPair(tp.Opts.Suite, 0x0a000002, 0x0b000002, 3, 4)
		if err != nil {
			t.Fatal(err)
		}
		const n = 8000
		got, rerr, err := tp.SeqStream(ctx, n, 250*time.Microsecond, 200, func() error {
			return tp.Rekey(ctx, next, 300*time.Millisecond)
		})
		if err != nil {
			t.Fatal(err)
		}
		if rerr != nil {
			t.Fatalf("rekey: %v", rerr)
		}
		var missing []int
		for i, ok := range got {
			if !ok {
				missing = append(missing, i)
			}
		}
		if len(missing) > 0 {
			t.Errorf("receiver missed %d of %d datagrams across the SA switch (first %v)", len(missing), n, missing[:min(10, len(missing))])
		}
		c.Stop()
		ps := checkESP(t, ctx, c.Path, saList(first, next))
		per := map[uint32]int{}
		for _, p := range ps {
			per[p.SPI]++
		}
		if per[first.AB.SPI] == 0 || per[next.AB.SPI] == 0 {
			t.Errorf("ESP A→B per SPI %v: want both the old and the new SA used", per)
		}
		for _, s := range []*Site{tp.A, tp.B} {
			tb, err := s.Reader.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if len(tb.Inbound) != 1 {
				t.Errorf("site %s: %d inbound SAs after the grace period, want 1", s.Name, len(tb.Inbound))
			}
		}
	})

	t.Run("HitlessRestart", func(t *testing.T) {
		gen := tp.A.Writer.Generation()
		c0, err := tp.A.Writer.ReadSACounters(tp.SAs.IndexAB)
		if err != nil {
			t.Fatal(err)
		}
		seqBefore := c0.Seq
		// The XDP links are pinned: steering outlives the process, and the
		// restarted one updates the same links (compared afterwards: looking
		// at the devices between the kill and the start would delay it).
		out0, in0, err := gateway.LinkIDs(tp.A.Instance)
		if err != nil || out0 == 0 || in0 == 0 {
			t.Fatalf("site A's pinned XDP links: outside %d, inside %d (%v); want both pinned", out0, in0, err)
		}
		x0, err := tp.A.Objs.Stats()
		if err != nil {
			t.Fatal(err)
		}
		wire := tp.capture(t, ctx, "restart")
		type res struct {
			r   PingResult
			err error
		}
		done := make(chan res, 1)
		go func() {
			r, err := tp.Ping(ctx, LAN, VPCHost, 500, "-i", "0.01", "-W", "1", "-D")
			done <- res{r, err}
		}()
		time.Sleep(1500 * time.Millisecond)
		pid := tp.A.DataplanePid()
		killed := time.Now()
		if err := tp.StopDataplane(tp.A, true); err != nil {
			t.Fatal(err)
		}
		exited := time.Now()
		tries, err := tp.RunDataplane(ctx, tp.A, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if tries > 1 {
			t.Logf("restart took %d attempts (the killed process's sockets still held the queue)", tries)
		}
		if out1, in1, err := gateway.LinkIDs(tp.A.Instance); err != nil || out1 != out0 || in1 != in0 {
			t.Errorf("site A's pinned XDP links after kill -9 and restart: outside %d, inside %d (%v); want the same links as before, %d and %d (steering must outlive the process)",
				out1, in1, err, out0, in0)
		}
		r := <-done
		if r.err != nil {
			t.Fatal(r.err)
		}
		wire.Stop()
		t.Logf("killed dataplane A (pid %d) and started it again (pid %d) under a 100/s ping flood: %d of %d echo replies lost",
			pid, tp.A.DataplanePid(), r.r.Sent-r.r.Received, r.r.Sent)
		// In time: ping -i 0.01 sends every 12–16 ms on this VM, not 10.
		if gap, every, a, b := replyGap(r.r.Output); gap > 0 {
			t.Logf("longest gap between echo replies: %.1f ms (icmp_seq %d → %d), one every %.1f ms otherwise: traffic stopped for about %.0f ms",
				ms(gap), a, b, ms(every), ms(gap-every))
		}
		// Where the time goes: the kernel releasing the killed process's
		// sockets and TUN devices (until it has exited), then the new
		// process's own start-up (its start line).
		started := ""
		if i := strings.LastIndex(tp.A.DataplaneLog(), "; sockets steered"); i >= 0 {
			started, _, _ = strings.Cut(tp.A.DataplaneLog()[i+2:], "\"")
		}
		t.Logf("kill -9 until the process had exited: %.1f ms; the new process: %s", ms(exited.Sub(killed)), started)
		x1, err := tp.A.Objs.Stats()
		if err != nil {
			t.Fatal(err)
		}
		// A lost ping the XDP counters do not explain was steered into the
		// killed process's rings: to its second socket in the grace period
		// the kernel spends releasing the first, or waiting there unread.
		in, out := x1[maps.StatInDropNoSocket]-x0[maps.StatInDropNoSocket], x1[maps.StatOutDropNoSocket]-x0[maps.StatOutDropNoSocket]
		t.Logf("XDP drops while no socket served the queue: in_drop_no_socket %d, out_drop_no_socket %d; lost pings not counted there: %d",
			in, out, max(0, int64(r.r.Sent-r.r.Received)-int64(in+out)))
		pkts, err := ReadPcap(wire.Path)
		if err != nil {
			t.Fatal(err)
		}
		if n := clearTo(pkts, tp.A.Remote); n > 0 {
			t.Errorf("%d of %d packets on A's outside link during the restart went to %v without ESP: in clear", n, len(pkts), tp.A.Remote)
		}
		if after, err := tp.Ping(ctx, LAN, VPCHost, 5, "-i", "0.1"); err != nil || after.Received < 4 {
			t.Errorf("traffic did not resume after the restart: %d/5 (%v)", after.Received, err)
		}
		if g := tp.A.Writer.Generation(); g != gen {
			t.Errorf("table generation moved %d → %d across the restart: something rewrote the tables", gen, g)
		}
		c, _ := tp.A.Writer.ReadSACounters(tp.SAs.IndexAB)
		if c.Seq <= seqBefore {
			t.Errorf("outbound sequence %d after the restart, was %d: it must continue (never reuse a GCM nonce)", c.Seq, seqBefore)
		}
	})

	// Anti-replay across a crash (issue #9): ESP captured on the wire
	// before a kill -9 of B's dataplane and replayed at B after its
	// restart is not delivered, and B's outbound SA never reuses a
	// sequence number across the crash.
	t.Run("ReplayAfterCrash", func(t *testing.T) {
		c := tp.capture(t, ctx, "replay-before")
		if r, err := tp.Ping(ctx, LAN, VPCHost, 5, "-i", "0.1"); err != nil || r.Received != 5 {
			t.Fatalf("ping lan→vpc before the crash: %d/%d (%v)", r.Received, r.Sent, err)
		}
		c.Stop()
		before, err := ReadPcap(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		ab, baSeqs := espOf(before, tp.SAs.AB.SPI), espSeqs(before, tp.SAs.BA.SPI)
		if len(ab) < 5 || len(baSeqs) < 5 {
			t.Fatalf("captured %d ESP packets A→B and %d B→A, want 5 each", len(ab), len(baSeqs))
		}
		if err := tp.StopDataplane(tp.B, true); err != nil {
			t.Fatal(err)
		}
		if _, err := tp.RunDataplane(ctx, tp.B, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		c0, err := tp.B.Writer.ReadSACounters(tp.SAs.IndexAB)
		if err != nil {
			t.Fatal(err)
		}
		if err := tp.SendRaw(Wire, ab...); err != nil {
			t.Fatal(err)
		}
		c1 := c0
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if c1, _ = tp.B.Writer.ReadSACounters(tp.SAs.IndexAB); c1.DropReplay-c0.DropReplay >= uint64(len(ab)) {
				break
			}
		}
		if c1.Packets != c0.Packets || c1.DropReplay-c0.DropReplay != uint64(len(ab)) {
			t.Errorf("%d captured ESP packets replayed at B after kill -9 and restart: %d accepted, %d refused as replays; want none accepted, all refused",
				len(ab), c1.Packets-c0.Packets, c1.DropReplay-c0.DropReplay)
		}

		c = tp.capture(t, ctx, "replay-after")
		if r, err := tp.Ping(ctx, LAN, VPCHost, 5, "-i", "0.1"); err != nil || r.Received < 4 {
			t.Errorf("ping lan→vpc after the restart: %d/%d (%v)", r.Received, r.Sent, err)
		}
		c.Stop()
		after, err := ReadPcap(c.Path)
		if err != nil {
			t.Fatal(err)
		}
		last := slices.Max(baSeqs)
		for _, q := range espSeqs(after, tp.SAs.BA.SPI) {
			if q <= last {
				t.Errorf("B sent sequence number %d after its restart, at or below %d sent before the crash: reused", q, last)
			}
		}
	})
}

// espAt returns where the ESP header of an IPv4 packet starts (raw ESP
// or ESP in UDP 4500), or -1.
func espAt(p []byte) int {
	if len(p) < 20 {
		return -1
	}
	hl := int(p[0]&0x0f) * 4
	switch {
	case p[9] == 50 && len(p) >= hl+8:
		return hl
	case p[9] == 17 && len(p) >= hl+16 && binary.BigEndian.Uint16(p[hl+2:]) == 4500 && binary.BigEndian.Uint32(p[hl+8:]) != 0:
		return hl + 8
	}
	return -1
}

var replyRe = regexp.MustCompile(`(?m)^\[(\d+\.\d+)\] .* icmp_seq=(\d+) `)

// replyGap reads ping -D output: the longest time between two replies in
// a row (and their sequence numbers), and the median time between replies.
func replyGap(out string) (gap, median time.Duration, from, to int) {
	var prev float64
	var prevSeq int
	var steps []time.Duration
	for i, m := range replyRe.FindAllStringSubmatch(out, -1) {
		ts, _ := strconv.ParseFloat(m[1], 64)
		seq, _ := strconv.Atoi(m[2])
		if i > 0 {
			d := time.Duration((ts - prev) * float64(time.Second))
			steps = append(steps, d)
			if d > gap {
				gap, from, to = d, prevSeq, seq
			}
		}
		prev, prevSeq = ts, seq
	}
	if len(steps) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(steps)
	return gap, steps[len(steps)/2], from, to
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// clearTo counts the IPv4 packets to dst that are not ESP.
func clearTo(pkts [][]byte, dst netip.Prefix) int {
	n := 0
	for _, p := range pkts {
		if len(p) >= 20 && p[0]>>4 == 4 && espAt(p) < 0 && dst.Contains(netip.AddrFrom4([4]byte(p[16:20]))) {
			n++
		}
	}
	return n
}

// espOf returns the captured ESP packets of one SPI.
func espOf(pkts [][]byte, spi uint32) [][]byte {
	var out [][]byte
	for _, p := range pkts {
		if o := espAt(p); o >= 0 && binary.BigEndian.Uint32(p[o:]) == spi {
			out = append(out, p)
		}
	}
	return out
}

// espSeqs returns the sequence numbers (low 32 bits) of one SPI's
// captured ESP packets.
func espSeqs(pkts [][]byte, spi uint32) []uint32 {
	var out []uint32
	for _, p := range espOf(pkts, spi) {
		out = append(out, binary.BigEndian.Uint32(p[espAt(p)+4:]))
	}
	return out
}
