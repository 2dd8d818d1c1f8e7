package frag

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/internal/netnstest"
)

// kernelLab is two namespaces joined by one veth: "a" (198.18.240.1,
// 2001:db8:f7a::1) and "b" (.2, ::2). Raw frames are written with
// AF_PACKET so the receiving kernel, not our code, judges them.
type kernelLab struct {
	a, b       *netnstest.NS
	aMAC, bMAC net.HardwareAddr
	aIP, bIP   netip.Addr
	aIP6, bIP6 netip.Addr
	devA, devB string
	rawA, rawB int // AF_PACKET sockets on each side's veth
	idxA, idxB int
}

func newKernelLab(t *testing.T) *kernelLab {
	netnstest.Require(t)
	l := &kernelLab{
		a: netnstest.New(t, "cgwfrag-a"), b: netnstest.New(t, "cgwfrag-b"),
		aMAC: net.HardwareAddr{0x02, 0xf7, 0xa0, 0, 0, 1}, bMAC: net.HardwareAddr{0x02, 0xf7, 0xa0, 0, 0, 2},
		aIP: netip.MustParseAddr("198.18.240.1"), bIP: netip.MustParseAddr("198.18.240.2"),
		aIP6: netip.MustParseAddr("2001:db8:f7a::1"), bIP6: netip.MustParseAddr("2001:db8:f7a::2"),
		devA: "cgwfa0", devB: "cgwfb0",
	}
	ia, ib := netnstest.Veth{
		A:                netnstest.End{NS: l.a, Name: l.devA, MAC: l.aMAC, Addrs: []netip.Prefix{netip.PrefixFrom(l.aIP, 24), netip.PrefixFrom(l.aIP6, 64)}},
		B:                netnstest.End{NS: l.b, Name: l.devB, MAC: l.bMAC, Addrs: []netip.Prefix{netip.PrefixFrom(l.bIP, 24), netip.PrefixFrom(l.bIP6, 64)}},
		StaticNeighbours: true,
	}.Create(t)
	l.idxA, l.idxB = ia.Index, ib.Index
	for _, s := range []struct {
		ns  *netnstest.NS
		raw *int
	}{{l.a, &l.rawA}, {l.b, &l.rawB}} {
		if err := s.ns.Do(func() error {
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // protocol 0: send only
			if err != nil {
				return fmt.Errorf("AF_PACKET socket: %w", err)
			}
			*s.raw = fd
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(*s.raw) })
	}
	return l
}

// send writes IP packets as Ethernet frames from fd on ifindex to mac.
func sendFrames(t *testing.T, fd, ifindex int, src, dst net.HardwareAddr, pkts [][]byte) {
	t.Helper()
	frame := make([]byte, 14+65535)
	for _, p := range pkts {
		copy(frame[0:6], dst)
		copy(frame[6:12], src)
		et := uint16(unix.ETH_P_IP)
		if p[0]>>4 == 6 {
			et = unix.ETH_P_IPV6
		}
		binary.BigEndian.PutUint16(frame[12:], et)
		n := 14 + copy(frame[14:], p)
		sa := &unix.SockaddrLinklayer{Ifindex: ifindex, Protocol: htons(et), Halen: 6}
		copy(sa.Addr[:], dst)
		if err := unix.Sendto(fd, frame[:n], 0, sa); err != nil {
			t.Fatalf("AF_PACKET send of %d bytes: %v", n, err)
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// udp4 builds an IPv4 UDP datagram with a correct UDP checksum.
func udp4(src, dst netip.Addr, sport, dport uint16, id uint16, df bool, opts, data []byte) []byte {
	hl := 20 + len(opts)
	p := make([]byte, hl+8+len(data))
	p[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], id)
	if df {
		p[6] = 0x40
	}
	p[8], p[9] = 64, 17
	copy(p[12:], src.AsSlice())
	copy(p[16:], dst.AsSlice())
	copy(p[20:], opts)
	u := p[hl:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], data)
	c := ^uint16(refSum(u, refSum(p[12:20], 17+uint32(len(u)))))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	binary.BigEndian.PutUint16(p[10:], ^uint16(refSum(p[:hl], 0)))
	return p
}

// snmpReasm reads IP reassembly counters of namespace ns.
func snmpReasm(t *testing.T, ns *netnstest.NS) (oks, fails int) {
	out := ns.Run(t, "cat", "/proc/net/snmp")
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "Ip: Forwarding") {
			continue
		}
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j := range names {
			switch names[j] {
			case "ReasmOKs":
				fmt.Sscan(vals[j], &oks)
			case "ReasmFails":
				fmt.Sscan(vals[j], &fails)
			}
		}
	}
	return oks, fails
}

// TestKernelReassembles is the strongest independent check: fragments we
// make (with IP options, at several MTUs, DF cleared by policy) are
// written raw onto a veth, and the peer kernel must reassemble each
// datagram, verify its UDP checksum and deliver it intact to a socket.
func TestKernelReassembles(t *testing.T) {
	l := newKernelLab(t)
	const port = 47000
	var conn *net.UDPConn
	if err := l.b.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: l.bIP.AsSlice(), Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	oks0, fails0 := snmpReasm(t, l.b)

	r := rand.New(rand.NewPCG(51, 52))
	// Options Linux accepts on local delivery: router alert (copied),
	// record route (not copied), NOPs.
	optSets := [][]byte{nil, {0x94, 4, 0, 0}, {1, 7, 7, 4, 0, 0, 0, 0, 0x94, 4, 0, 0}}
	fr, err := New(Config{MTU: 1399, ClearDF: true})
	if err != nil {
		t.Fatal(err)
	}
	const count = 40
	buf := make([]byte, 65536)
	var frags, got int
	for i := range count {
		data := make([]byte, 1300+r.IntN(7000))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		pkt := udp4(l.aIP, l.bIP, 40000, port, uint16(7000+i), i%3 == 0, optSets[i%3], data)
		mtu := []int{1399, 576, 68 + r.IntN(1400)}[i%3]
		fr.mtu = mtu // the stage at several MTUs; New checked the config once
		out := frames(Need(pkt, mtu), mtu)
		first, n, res := fr.Packet(pkt, out)
		if res != Fragmented {
			t.Fatalf("datagram %d (%d bytes, mtu %d): %v", i, len(pkt), mtu, res)
		}
		all := append([][]byte{pkt[:first]}, out[:n]...)
		if i%4 == 1 { // out of order: the kernel must not care
			all[0], all[len(all)-1] = all[len(all)-1], all[0]
		}
		frags += len(all)
		// One datagram at a time, read back before the next, so the
		// socket's receive buffer never overflows.
		sendFrames(t, l.rawA, l.idxA, l.aMAC, l.bMAC, all)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			oks, fails := snmpReasm(t, l.b)
			t.Fatalf("datagram %d (%d bytes, mtu %d, %d fragments) not delivered: %v (peer kernel ReasmOKs +%d, ReasmFails +%d; a bad UDP checksum shows in 'ip netns exec %s nstat')",
				i, len(data)+8, mtu, len(all), err, oks-oks0, fails-fails0, l.b.Name())
		}
		if !bytes.Equal(buf[:n], data) {
			t.Fatalf("datagram %d delivered with different content (%d bytes, sent %d)", i, n, len(data))
		}
		got++
	}
	oks, fails := snmpReasm(t, l.b)
	if oks-oks0 != count || fails != fails0 {
		t.Fatalf("peer kernel ReasmOKs +%d (want %d), ReasmFails +%d (want 0)", oks-oks0, count, fails-fails0)
	}
	t.Logf("peer kernel reassembled and delivered %d of %d datagrams intact from %d fragments (ReasmOKs +%d, ReasmFails +0)", got, count, frags, oks-oks0)
}

// TestKernelHonoursICMP: our "fragmentation needed" and "packet too big",
// sent to a kernel whose connected UDP socket sent the quoted packet, must
// pass its checksum and matching checks and lower its path MTU to 1399.
func TestKernelHonoursICMP(t *testing.T) {
	l := newKernelLab(t)
	fr, err := New(Config{Gateway4: l.bIP, Gateway6: l.bIP6})
	if err != nil {
		t.Fatal(err)
	}
	const sport, dport = 41000, 42000
	var c4, c6 *net.UDPConn
	if err := l.a.Do(func() error {
		var err error
		if c4, err = net.DialUDP("udp4", &net.UDPAddr{IP: l.aIP.AsSlice(), Port: sport}, &net.UDPAddr{IP: l.bIP.AsSlice(), Port: dport}); err != nil {
			return err
		}
		c6, err = net.DialUDP("udp6", &net.UDPAddr{IP: l.aIP6.AsSlice(), Port: sport}, &net.UDPAddr{IP: l.bIP6.AsSlice(), Port: dport})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	defer c6.Close()

	// What a's socket would have sent: 1500 bytes with DF.
	orig4 := udp4(l.aIP, l.bIP, sport, dport, 99, true, nil, make([]byte, 1472))
	out := frames(1, 1280)
	if _, _, res := fr.Packet(orig4, out); res != FragNeeded {
		t.Fatalf("IPv4: %v", res)
	}
	icmp4 := out[0]
	orig6 := make([]byte, 40+8+1452)
	binary.BigEndian.PutUint32(orig6, 6<<28)
	binary.BigEndian.PutUint16(orig6[4:], 8+1452)
	orig6[6], orig6[7] = 17, 64
	copy(orig6[8:], l.aIP6.AsSlice())
	copy(orig6[24:], l.bIP6.AsSlice())
	binary.BigEndian.PutUint16(orig6[40:], sport)
	binary.BigEndian.PutUint16(orig6[42:], dport)
	binary.BigEndian.PutUint16(orig6[44:], 8+1452)
	out = frames(1, 1280)
	if _, _, res := fr.Packet(orig6, out); res != PacketTooBig {
		t.Fatalf("IPv6: %v", res)
	}
	sendFrames(t, l.rawB, l.idxB, l.bMAC, l.aMAC, [][]byte{icmp4, out[0]})

	for _, q := range []struct{ fam, dst string }{{"-4", l.bIP.String()}, {"-6", l.bIP6.String()}} {
		var route string
		for range 50 { // the frames are delivered asynchronously; poll briefly
			route = l.a.Run(t, "ip", q.fam, "route", "get", q.dst)
			if strings.Contains(route, "mtu 1399") {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(route, "mtu 1399") {
			t.Fatalf("kernel did not take our ICMP%s error: route to %s is %q (want a cached mtu 1399)", map[string]string{"-4": "", "-6": "v6"}[q.fam], q.dst, route)
		}
		t.Logf("kernel path MTU after our error: %s", strings.TrimSpace(route))
	}
}
