package slowpath

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgw-project/cgw/dataplane/packet"
	"github.com/cgw-project/cgw/internal/netnstest"
)

var (
	gwAddr  = netip.MustParsePrefix("169.254.44.90/30")
	awsAddr = netip.MustParseAddr("169.254.44.89")
)

func newDevice(tb testing.TB, ns *netnstest.NS, name string) *Device {
	tb.Helper()
	d, err := Create(ns.Name(), Config{Name: name, Addrs: []netip.Prefix{gwAddr}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// readPackets reads from d until pred has accepted want packets, or fails
// the test after 5 s (a failure bound, not a measurement).
func readPackets(tb testing.TB, d *Device, want int, pred func([]byte) bool) {
	tb.Helper()
	done := make(chan error, 1)
	go func() {
		bufs, sizes := makeBufs(8, 0)
		got := 0
		for got < want {
			n, err := d.Read(bufs, sizes, 0)
			if err != nil {
				done <- err
				return
			}
			for i := range n {
				if pred(bufs[i][:sizes[i]]) {
					got++
				}
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			tb.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		tb.Fatalf("timed out reading %d matching packets from %s", want, d.Name())
	}
}

func makeBufs(n, offset int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, offset+MTU)
	}
	return bufs, make([]int, n)
}

func ipv4(p []byte) (src, dst netip.Addr, proto byte, payload []byte, ok bool) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return src, dst, 0, nil, false
	}
	ihl := int(p[0]&0xf) * 4
	if len(p) < ihl || int(binary.BigEndian.Uint16(p[2:])) != len(p) {
		return src, dst, 0, nil, false
	}
	return netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20])), p[9], p[ihl:], true
}

// echoReply turns an ICMP echo request (RFC 792) into its reply in place:
// addresses swapped, type 0, checksums recomputed. It reports whether p
// was an echo request.
func echoReply(p []byte) bool {
	_, _, proto, icmp, ok := ipv4(p)
	if !ok || proto != 1 || len(icmp) < 8 || icmp[0] != 8 {
		return false
	}
	var a [4]byte
	copy(a[:], p[12:16])
	copy(p[12:16], p[16:20])
	copy(p[16:20], a[:])
	p[8] = 64
	packet.IPv4HeaderChecksum(p[:int(p[0]&0xf)*4])
	icmp[0], icmp[2], icmp[3] = 0, 0, 0
	binary.BigEndian.PutUint16(icmp[2:], packet.Checksum(icmp, 0))
	return true
}

// TestPing: the kernel routes a ping to the AWS inside address into the
// TUN; replies written back complete it.
func TestPing(t *testing.T) {
	netnstest.Require(t, "ping", "/dev/net/tun")
	ns := netnstest.New(t, "cgwsp")
	d := newDevice(t, ns, "cgwsp-ping")

	out, err := ns.Command("ip", "-o", "addr", "show", "dev", d.Name()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "169.254.44.90/30") || strings.Contains(string(out), "inet6") {
		t.Fatalf("addresses of %s: want 169.254.44.90/30 and no IPv6 (%v):\n%s", d.Name(), err, out)
	}
	out, _ = ns.Command("ip", "-o", "link", "show", "dev", d.Name()).CombinedOutput()
	if !strings.Contains(string(out), "mtu 1399") || !strings.Contains(string(out), "UP") {
		t.Fatalf("link %s: want mtu 1399 and UP:\n%s", d.Name(), out)
	}

	ping := ns.Command("ping", "-c", "3", "-W", "1", "-i", "0.2", awsAddr.String())
	var pingOut strings.Builder
	ping.Stdout, ping.Stderr = &pingOut, &pingOut
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	pingDone := make(chan error, 1)
	go func() { pingDone <- ping.Wait() }()
	t.Cleanup(func() {
		if ping.ProcessState == nil {
			ping.Process.Kill()
		}
	})

	var requests atomic.Int32
	bufs, sizes := makeBufs(d.BatchSize(), 16)
	readErr := make(chan error, 1)
	go func() {
		for requests.Load() < 3 {
			n, err := d.Read(bufs, sizes, 16)
			if err != nil {
				readErr <- err
				return
			}
			var replies [][]byte
			for i := range n {
				p := bufs[i][16 : 16+sizes[i]]
				src, dst, proto, _, ok := ipv4(p)
				if !ok || proto != 1 || src != gwAddr.Addr() || dst != awsAddr {
					continue // e.g. nothing else is expected, but be lenient
				}
				if echoReply(p) {
					requests.Add(1)
					replies = append(replies, bufs[i][:16+sizes[i]])
				}
			}
			if _, err := d.Write(replies, 16); err != nil {
				readErr <- err
				return
			}
		}
		readErr <- nil
	}()
	select {
	case err := <-readErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out: %d echo requests from 169.254.44.90 to 169.254.44.89 read", requests.Load())
	}
	select {
	case err := <-pingDone:
		if err != nil {
			t.Fatalf("ping through the TUN failed (%v):\n%s", err, pingOut.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("ping did not finish:\n%s", pingOut.String())
	}
	if !strings.Contains(pingOut.String(), "3 received") {
		t.Fatalf("ping: want 3 replies received:\n%s", pingOut.String())
	}
}

// TestBGPSyn: a TCP connection to the AWS inside address on port 179 (BGP)
// shows up as a SYN on Read.
func TestBGPSyn(t *testing.T) {
	netnstest.Require(t, "ping", "/dev/net/tun")
	ns := netnstest.New(t, "cgwsp")
	d := newDevice(t, ns, "cgwsp-bgp")
	go ns.Do(func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(awsAddr, 179).String(), 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	readPackets(t, d, 1, func(p []byte) bool {
		src, dst, proto, tcp, ok := ipv4(p)
		return ok && proto == 6 && src == gwAddr.Addr() && dst == awsAddr && len(tcp) >= 20 &&
			binary.BigEndian.Uint16(tcp[2:]) == 179 && tcp[13]&0x12 == 0x02 // SYN, not ACK
	})
}

// TestClose: Close removes the interface and wakes a blocked Read.
func TestClose(t *testing.T) {
	netnstest.Require(t, "ping", "/dev/net/tun")
	ns := netnstest.New(t, "cgwsp")
	d, err := Create(ns.Name(), Config{Name: "cgwsp-close", Addrs: []netip.Prefix{gwAddr}})
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		bufs, sizes := makeBufs(4, 0)
		_, err := d.Read(bufs, sizes, 0)
		readErr <- err
	}()
	time.Sleep(50 * time.Millisecond) // let Read park (it is correct either way)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Read after Close: %v; want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked 5 s after Close")
	}
	waitGone(t, ns, "cgwsp-close")
	d.Close() // twice is fine
}

func waitGone(tb testing.TB, ns *netnstest.NS, name string) {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ns.Command("ip", "link", "show", "dev", name).Run() != nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("interface %s still exists 5 s after Close", name)
		}
	}
}

func linkExists(ns *netnstest.NS, name string) bool {
	return ns.Command("ip", "link", "show", "dev", name).Run() == nil
}

func TestCreateErrors(t *testing.T) {
	netnstest.Require(t, "ping", "/dev/net/tun")
	ns := netnstest.New(t, "cgwsp")
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "cgwsp-a-name-too-long", Addrs: []netip.Prefix{gwAddr}}, "1–15 bytes"},
		{Config{Name: "cgwsp/x", Addrs: []netip.Prefix{gwAddr}}, "must not contain"},
		{Config{Name: "cgwsp-noaddr"}, "needs an inside address"},
		{Config{Name: "cgwsp-mtu", Addrs: []netip.Prefix{gwAddr}, MTU: 20}, "MTU 20"},
	} {
		if _, err := Create(ns.Name(), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Create(%+v): %v; want an error containing %q", c.cfg, err, c.want)
		}
	}
	if _, err := Create("cgwsp-no-such-ns", Config{Name: "cgwsp-x", Addrs: []netip.Prefix{gwAddr}}); err == nil || !strings.Contains(err.Error(), "cgwsp-no-such-ns") {
		t.Errorf("missing namespace: %v; want an error naming it", err)
	}
	d := newDevice(t, ns, "cgwsp-dup")
	if _, err := Create(ns.Name(), Config{Name: d.Name(), Addrs: []netip.Prefix{gwAddr}}); err == nil || !strings.Contains(err.Error(), "cgwsp-dup") {
		t.Errorf("second device with the same name: %v; want an error naming it", err)
	}
	if !linkExists(ns, "cgwsp-dup") {
		t.Error("a failed duplicate Create removed the first device")
	}
}

// TestManager: Reconcile creates, updates in place and removes devices.
func TestManager(t *testing.T) {
	netnstest.Require(t, "ping", "/dev/net/tun")
	ns := netnstest.New(t, "cgwsp")
	m := NewManager(ns.Name())
	defer m.Close()
	t1 := Config{Name: "cgwsp-t1", Addrs: []netip.Prefix{netip.MustParsePrefix("169.254.44.90/30")}}
	t2 := Config{Name: "cgwsp-t2", Addrs: []netip.Prefix{netip.MustParsePrefix("169.254.45.2/30")}}
	added, err := m.Reconcile([]Config{t1, t2})
	if err != nil || len(added) != 2 {
		t.Fatalf("first Reconcile: %d added, %v; want 2, nil", len(added), err)
	}
	if !linkExists(ns, "cgwsp-t1") || !linkExists(ns, "cgwsp-t2") {
		t.Fatal("Reconcile did not create both interfaces")
	}
	d1 := m.Device("cgwsp-t1")
	if added, err := m.Reconcile([]Config{t1, t2}); err != nil || len(added) != 0 {
		t.Fatalf("same Reconcile again: %d added, %v; want 0, nil (idempotent)", len(added), err)
	}
	// t1 gets a new address and MTU: same device, new settings.
	t1.Addrs = []netip.Prefix{netip.MustParsePrefix("169.254.46.2/30")}
	t1.MTU = 1300
	if added, err := m.Reconcile([]Config{t1}); err != nil || len(added) != 0 {
		t.Fatalf("update Reconcile: %d added, %v; want 0, nil", len(added), err)
	}
	if m.Device("cgwsp-t1") != d1 {
		t.Error("an address change replaced the device; want it updated in place")
	}
	out, _ := ns.Command("ip", "-o", "addr", "show", "dev", "cgwsp-t1").CombinedOutput()
	if !strings.Contains(string(out), "169.254.46.2/30") || strings.Contains(string(out), "169.254.44.90") {
		t.Errorf("cgwsp-t1 addresses after update: want only 169.254.46.2/30:\n%s", out)
	}
	out, _ = ns.Command("ip", "-o", "link", "show", "dev", "cgwsp-t1").CombinedOutput()
	if !strings.Contains(string(out), "mtu 1300") {
		t.Errorf("cgwsp-t1 after update: want mtu 1300:\n%s", out)
	}
	waitGone(t, ns, "cgwsp-t2")
	if got := len(m.Devices()); got != 1 {
		t.Errorf("Devices: %d; want 1", got)
	}
	// A bad entry does not stop the others.
	bad := Config{Name: "cgwsp-bad-name-too-long", Addrs: t2.Addrs}
	if added, err := m.Reconcile([]Config{t1, bad, t2}); err == nil || len(added) != 1 || !linkExists(ns, "cgwsp-t2") {
		t.Errorf("Reconcile with a bad entry: %d added, %v; want t2 added and an error", len(added), err)
	}
	m.Close()
	waitGone(t, ns, "cgwsp-t1")
	waitGone(t, ns, "cgwsp-t2")
}

func TestNoAllocs(t *testing.T) {
	netnstest.Require(t, "ping", "/dev/net/tun")
	ns := netnstest.New(t, "cgwsp")
	d := newDevice(t, ns, "cgwsp-alloc")
	pkt := udpPacket(awsAddr, gwAddr.Addr(), 9, 9, 64)
	wbufs := [][]byte{pkt, pkt, pkt, pkt}
	if n := testing.AllocsPerRun(100, func() { d.Write(wbufs, 0) }); n != 0 {
		t.Errorf("Write: %v allocations per batch; want 0", n)
	}
	// Each Read finds the one datagram a connected socket sent.
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(awsAddr, 9)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rbufs, sizes := makeBufs(4, 0)
	msg := []byte("x")
	if n := testing.AllocsPerRun(100, func() {
		c.Write(msg)
		d.Read(rbufs, sizes, 0)
	}); n != 0 {
		t.Errorf("Read: %v allocations per batch; want 0", n)
	}
}

// udpPacket builds an IPv4/UDP packet (RFC 768) with a payload of n bytes.
func udpPacket(src, dst netip.Addr, sport, dport uint16, n int) []byte {
	p := make([]byte, 28+n)
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	copy(p[12:], src.AsSlice())
	copy(p[16:], dst.AsSlice())
	packet.IPv4HeaderChecksum(p[:20])
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], dport)
	binary.BigEndian.PutUint16(p[24:], uint16(8+n))
	return p // UDP checksum 0: none (RFC 768)
}

// BenchmarkEcho: a UDP socket in the namespace sends batches of datagrams to
// the AWS inside address; the benchmark Reads them from the TUN, swaps
// addresses and ports, Writes them back, and the socket receives them.
// Reports packets per second through the slow path both ways.
func BenchmarkEcho(b *testing.B) {
	netnstest.Require(b, "ping", "/dev/net/tun")
	ns := netnstest.New(b, "cgwsp")
	d := newDevice(b, ns, "cgwsp-bench")
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(awsAddr, 9999)))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetReadBuffer(1 << 20)
	const batch = 32
	bufs, sizes := makeBufs(batch, 0)
	out := make([][]byte, batch)
	payload := make([]byte, 64)
	rbuf := make([]byte, 2048)
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		k := min(batch, b.N-sent)
		for range k {
			if _, err := c.Write(payload); err != nil {
				b.Fatal(err)
			}
		}
		for got := 0; got < k; {
			n, err := d.Read(bufs[got:k], sizes[got:k], 0)
			if err != nil {
				b.Fatal(err)
			}
			for i := got; i < got+n; i++ {
				p := bufs[i][:sizes[i]]
				var a [4]byte
				copy(a[:], p[12:16])
				copy(p[12:16], p[16:20])
				copy(p[16:20], a[:])
				sp := binary.BigEndian.Uint16(p[20:])
				binary.BigEndian.PutUint16(p[20:], binary.BigEndian.Uint16(p[22:]))
				binary.BigEndian.PutUint16(p[22:], sp)
				p[26], p[27] = 0, 0 // no UDP checksum (IPv4 allows it, RFC 768)
				out[i] = p
			}
			got += n
		}
		if n, err := d.Write(out[:k], 0); err != nil || n != k {
			b.Fatalf("Write: %d of %d, %v", n, k, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range k {
			if _, err := c.Read(rbuf); err != nil {
				b.Fatalf("echo not received: %v", err)
			}
		}
		sent += k
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "echoes/s")
}

// TestTruncated: a packet longer than the read buffer is dropped and
// counted, not handed on cut short.
func TestTruncated(t *testing.T) {
	netnstest.Require(t, "ping", "/dev/net/tun")
	ns := netnstest.New(t, "cgwsp")
	d := newDevice(t, ns, "cgwsp-trunc")
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(awsAddr, 9)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(make([]byte, 1000))
	c.Write(make([]byte, 10))
	bufs := [][]byte{make([]byte, 200), make([]byte, 200)}
	sizes := make([]int, 2)
	got := 0
	for got == 0 {
		n, err := d.Read(bufs, sizes, 0)
		if err != nil {
			t.Fatal(err)
		}
		got = n
	}
	if got != 1 || sizes[0] != 20+8+10 || d.Truncated() != 1 {
		t.Fatalf("read %d packets (first %d bytes), %d truncated; want the 38-byte one and 1 truncated", got, sizes[0], d.Truncated())
	}
}

// TestIPv6: an IPv6 inside address is configured without a link-local one.
func TestIPv6(t *testing.T) {
	netnstest.Require(t, "ping", "/dev/net/tun")
	ns := netnstest.New(t, "cgwsp")
	d, err := Create(ns.Name(), Config{Name: "cgwsp-v6", Addrs: []netip.Prefix{gwAddr, netip.MustParsePrefix("2001:db8:44::2/126")}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out, err := ns.Command("ip", "-o", "addr", "show", "dev", "cgwsp-v6").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2001:db8:44::2/126") || !strings.Contains(string(out), "169.254.44.90/30") || strings.Contains(string(out), "fe80") {
		t.Fatalf("addresses of cgwsp-v6: want 169.254.44.90/30 and 2001:db8:44::2/126, no link-local (%v):\n%s", err, out)
	}
	// The kernel routes traffic for the /126 into the TUN too.
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort("[2001:db8:44::1]:9")))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("v6"))
	readPackets(t, d, 1, func(p []byte) bool {
		return len(p) >= 40 && p[0]>>4 == 6 && p[6] == 17 && netip.AddrFrom16([16]byte(p[24:40])) == netip.MustParseAddr("2001:db8:44::1")
	})
}
