package afxdp

// Test scaffolding for the end-to-end tests: namespaces joined by veth, the
// XDP programs (built with cilium/ebpf's asm, no C), and frame building.

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/internal/netnstest"
)

// vethPair is one veth: the "g" end in the gateway namespace, where the
// sockets live, and the "p" end in the peer namespace, which sends and
// receives ordinary UDP.
type vethPair struct {
	gName, pName string
	gMAC, pMAC   net.HardwareAddr
	gIP, pIP     netip.Addr
	gIndex       int
	pIndex       int
}

type lab struct {
	g, p  *netnstest.NS
	pairs []vethPair
}

// newLab creates two namespaces joined by n veth pairs; pair i uses
// 198.18.(100+i).1 (gateway) and .2 (peer), with static neighbour entries so
// no ARP is needed. Everything is deleted at the end of the test.
func newLab(tb testing.TB, n int) *lab { return newLabQ(tb, n, 1) }

// newLabQ is newLab with queues receive and transmit queues on every veth.
func newLabQ(tb testing.TB, n, queues int) *lab {
	tb.Helper()
	l := &lab{g: netnstest.New(tb, "cgwafx-g"), p: netnstest.New(tb, "cgwafx-p")}
	for i := 0; i < n; i++ {
		v := vethPair{
			gName: fmt.Sprintf("xg%d", i), pName: fmt.Sprintf("xp%d", i),
			gMAC: net.HardwareAddr{0x02, 0xaf, 0, 0, byte(i), 1}, pMAC: net.HardwareAddr{0x02, 0xaf, 0, 0, byte(i), 2},
			gIP: netip.AddrFrom4([4]byte{198, 18, byte(100 + i), 1}), pIP: netip.AddrFrom4([4]byte{198, 18, byte(100 + i), 2}),
		}
		g, p := netnstest.Veth{
			A:                netnstest.End{NS: l.g, Name: v.gName, MAC: v.gMAC, Addrs: []netip.Prefix{netip.PrefixFrom(v.gIP, 24)}},
			B:                netnstest.End{NS: l.p, Name: v.pName, MAC: v.pMAC, Addrs: []netip.Prefix{netip.PrefixFrom(v.pIP, 24)}},
			Queues:           queues,
			StaticNeighbours: true,
		}.Create(tb)
		v.gIndex, v.pIndex = g.Index, p.Index
		l.pairs = append(l.pairs, v)
	}
	return l
}

// attach attaches prog in native (driver) mode to the device ifindex in ns.
func attach(tb testing.TB, ns *netnstest.NS, ifindex int, prog *ebpf.Program) {
	tb.Helper()
	var lk link.Link
	err := ns.Do(func() (err error) {
		lk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		tb.Fatalf("attaching XDP program to interface %d in %s: %v", ifindex, ns.Name(), err)
	}
	tb.Cleanup(func() { lk.Close() })
}

// newUMEMSockets makes a UMEM in the gateway namespace and one socket per
// given pair (queue 0), sharing it; all are closed at the end of the test.
func (l *lab) newUMEMSockets(tb testing.TB, cfg UMEMConfig, pairs ...int) (*UMEM, []*Socket) {
	return l.newUMEMSocketsCfg(tb, cfg, SocketConfig{}, pairs...)
}

// newUMEMSocketsCfg is newUMEMSockets with sc as the template for every
// socket (Ifindex and Queue are set per pair).
func (l *lab) newUMEMSocketsCfg(tb testing.TB, cfg UMEMConfig, sc SocketConfig, pairs ...int) (*UMEM, []*Socket) {
	tb.Helper()
	var u *UMEM
	var socks []*Socket
	err := l.g.Do(func() (err error) {
		if u, err = NewUMEM(cfg); err != nil {
			return err
		}
		for _, i := range pairs {
			c := sc
			c.Ifindex, c.Queue = l.pairs[i].gIndex, 0
			s, err := NewSocket(u, c)
			if err != nil {
				return err
			}
			socks = append(socks, s)
		}
		return nil
	})
	tb.Cleanup(func() {
		for i := len(socks) - 1; i >= 0; i-- {
			socks[i].Close()
		}
		if u != nil {
			if err := u.Close(); err != nil {
				tb.Errorf("closing UMEM: %v", err)
			}
		}
	})
	if err != nil {
		tb.Fatalf("creating UMEM and sockets: %v", err)
	}
	return u, socks
}

// peerUDP opens a UDP socket in the peer namespace bound to pair i's address
// and port (0: any).
func (l *lab) peerUDP(tb testing.TB, i int, port int) *net.UDPConn {
	tb.Helper()
	var c *net.UDPConn
	err := l.p.Do(func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.pairs[i].pIP, uint16(port))))
		return err
	})
	if err != nil {
		tb.Fatalf("opening a UDP socket in %s: %v", l.p.Name(), err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func newXSKMap(tb testing.TB) *ebpf.Map {
	tb.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "afxdp_test_xsk", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 64})
	if err != nil {
		tb.Fatalf("creating an XSKMAP: %v", err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3

	// xdp_md field offsets.
	mdData         = 0
	mdDataEnd      = 4
	mdDataMeta     = 8
	mdRxQueueIndex = 16

	metaMagic = 0x5eedc0de
)

// redirectProg returns an XDP program that redirects IPv4 UDP (IHL 5) to
// port to XSKMAP[rx_queue_index], falling back to XDP_PASS, and passes
// everything else (ARP, ICMP, IPv6, other ports) to the stack. With meta it
// first writes metaMagic as 4 bytes of XDP metadata (bpf_xdp_adjust_meta),
// to find out whether metadata reaches the socket.
func redirectProg(tb testing.TB, xsks *ebpf.Map, port uint16, meta bool) *ebpf.Program {
	tb.Helper()
	insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
	if meta {
		insns = append(insns,
			asm.Mov.Imm(asm.R2, -4),
			asm.FnXdpAdjustMeta.Call(),
			asm.JNE.Imm(asm.R0, 0, "pass"),
			asm.LoadMem(asm.R2, asm.R6, mdData, asm.Word),
			asm.LoadMem(asm.R3, asm.R6, mdDataMeta, asm.Word),
			asm.Mov.Reg(asm.R4, asm.R3),
			asm.Add.Imm(asm.R4, 4),
			asm.JGT.Reg(asm.R4, asm.R2, "pass"),
			asm.StoreImm(asm.R3, 0, metaMagic, asm.Word),
		)
	}
	portLE := int32(port>>8 | port<<8&0xff00) // loaded as a little-endian u16
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R6, mdData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14+20+8),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R4, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R4, 0x0008, "pass"), // EtherType 0x0800
		asm.LoadMem(asm.R4, asm.R2, 14, asm.Byte),
		asm.JNE.Imm(asm.R4, 0x45, "pass"), // IPv4, no options
		asm.LoadMem(asm.R4, asm.R2, 14+9, asm.Byte),
		asm.JNE.Imm(asm.R4, unix.IPPROTO_UDP, "pass"),
		asm.LoadMem(asm.R4, asm.R2, 14+20+2, asm.Half),
		asm.JNE.Imm(asm.R4, portLE, "pass"),
		asm.LoadMapPtr(asm.R1, xsks.FD()),
		asm.LoadMem(asm.R2, asm.R6, mdRxQueueIndex, asm.Word),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	)
	return loadProg(tb, "afxdp_redirect", insns)
}

// constProg returns an XDP program that returns action.
func constProg(tb testing.TB, action int32) *ebpf.Program {
	tb.Helper()
	return loadProg(tb, "afxdp_const", asm.Instructions{asm.Mov.Imm(asm.R0, action), asm.Return()})
}

func loadProg(tb testing.TB, name string, insns asm.Instructions) *ebpf.Program {
	tb.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		tb.Fatalf("loading XDP program %s: %v", name, err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// putUDP writes an Ethernet + IPv4 + UDP frame carrying payload into b and
// returns its length. The UDP checksum is left 0 (allowed for IPv4, RFC 768).
func putUDP(b []byte, srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, payload []byte) int {
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	binary.BigEndian.PutUint32(ip[4:], 0) // id, flags, fragment offset
	ip[8], ip[9] = 64, unix.IPPROTO_UDP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	setIPv4Checksum(ip)
	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	binary.BigEndian.PutUint16(udp[6:], 0)
	return 42 + copy(b[42:], payload)
}

func setIPv4Checksum(ip []byte) {
	ip[10], ip[11] = 0, 0
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
}

// udpPayload returns the UDP payload and destination port of an
// Ethernet/IPv4(IHL 5)/UDP frame, or ok false.
func udpPayload(f []byte) (payload []byte, dport uint16, ok bool) {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[14] != 0x45 || f[23] != unix.IPPROTO_UDP {
		return nil, 0, false
	}
	ulen := int(binary.BigEndian.Uint16(f[38:]))
	if ulen < 8 || 34+ulen > len(f) {
		return nil, 0, false
	}
	return f[42 : 34+ulen], binary.BigEndian.Uint16(f[36:]), true
}
