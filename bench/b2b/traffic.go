package b2b

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/cgw-project/cgw/bench/pktgen"
)

// PingResult is what ping printed.
type PingResult struct {
	Sent, Received int
	Output         string
}

var pingRe = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// Ping runs ping from role with extra arguments (e.g. "-s", "1472", "-M", "do")
// and parses its summary. A ping that lost packets is not an error.
func (t *Topology) Ping(ctx context.Context, from string, to netip.Addr, count int, extra ...string) (PingResult, error) {
	args := append([]string{"ping", "-n", "-c", strconv.Itoa(count), "-W", "2"}, extra...)
	args = append(args, to.String())
	out, err := t.Exec(ctx, from, args...)
	m := pingRe.FindStringSubmatch(out)
	if m == nil {
		return PingResult{Output: out}, fmt.Errorf("b2b: ping %s from %s printed no summary: %v", to, from, err)
	}
	s, _ := strconv.Atoi(m[1])
	r, _ := strconv.Atoi(m[2])
	return PingResult{Sent: s, Received: r, Output: out}, nil
}

// Iperf runs a bounded iperf3 transfer from role "from" to a server at
// addr in role "to" and returns the bytes the receiver got. args bound the
// client (-n BYTES or -t SECONDS; -u -b RATE for UDP; -R reverses).
func (t *Topology) Iperf(ctx context.Context, from, to string, addr netip.Addr, port int, args ...string) (int64, error) {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	srv := exec.CommandContext(sctx, "ip", "netns", "exec", t.NS(to), "iperf3", "-s", "-1", "-B", addr.String(), "-p", strconv.Itoa(port))
	if err := srv.Start(); err != nil {
		return 0, fmt.Errorf("b2b: iperf3 server in %s: %w", t.NS(to), err)
	}
	defer func() { cancel(); srv.Wait() }()
	var out string
	var err error
	for try := 0; try < 30; try++ { // the server needs a moment to listen
		time.Sleep(100 * time.Millisecond)
		out, err = t.Exec(sctx, from, append([]string{"iperf3", "-J", "--connect-timeout", "3000", "-c", addr.String(), "-p", strconv.Itoa(port)}, args...)...)
		if err == nil || !regexp.MustCompile(`connect|refused`).MatchString(out) {
			break
		}
	}
	var res struct {
		End struct {
			SumReceived struct{ Bytes int64 } `json:"sum_received"`
			Sum         struct {
				Bytes       int64
				LostPackets int64 `json:"lost_packets"`
			} `json:"sum"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil || res.Error != "" || err != nil {
		return 0, fmt.Errorf("b2b: iperf3 %v from %s to %s: %v %s\n%s", args, from, to, err, res.Error, out)
	}
	if res.End.SumReceived.Bytes > 0 {
		return res.End.SumReceived.Bytes, nil
	}
	// UDP: the receiver's count is sum minus what it lost.
	return res.End.Sum.Bytes, nil
}

// Capture is a running tcpdump in the wire namespace.
type Capture struct {
	Path string
	cmd  *exec.Cmd
}

// StartCapture captures everything crossing dev in the wire namespace into
// path (pcap), bounded by max packets and a minute.
func (t *Topology) StartCapture(ctx context.Context, dev, path string, max int) (*Capture, error) {
	cmd := exec.Command("ip", "netns", "exec", t.NS(Wire), "timeout", "60", "tcpdump", "-n", "-U", "--immediate-mode", "-s", "0",
		"-i", dev, "-c", strconv.Itoa(max), "-w", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("b2b: tcpdump in %s: %w", t.NS(Wire), err)
	}
	// tcpdump has started listening once the file exists.
	for i := 0; i < 100; i++ {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	return &Capture{Path: path, cmd: cmd}, nil
}

// Stop ends the capture (SIGINT to its process group, so tcpdump flushes).
func (c *Capture) Stop() error {
	time.Sleep(200 * time.Millisecond) // let the last packets land
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	return nil
}

// ReadPcap returns the IP packets (Ethernet stripped) of an Ethernet pcap.
func ReadPcap(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, errors.New("b2b: pcap too short")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("b2b: %s is not a pcap file", path)
	}
	if bo.Uint32(b[20:]) != 1 {
		return nil, fmt.Errorf("b2b: %s: link type %d, want Ethernet", path, bo.Uint32(b[20:]))
	}
	var pkts [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		f := b[off : off+n]
		off += n
		if len(f) > 14 && binary.BigEndian.Uint16(f[12:]) == 0x0800 {
			pkts = append(pkts, append([]byte(nil), f[14:]...))
		}
	}
	return pkts, nil
}

// SendRaw sends whole IPv4 packets (header included) from role's
// namespace, routed by that namespace's kernel.
func (t *Topology) SendRaw(role string, pkts ...[]byte) error {
	return pktgen.InNetns(t.NS(role), func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("b2b: raw socket: %w", err)
		}
		defer syscall.Close(fd)
		for _, p := range pkts {
			if len(p) < 20 {
				return errors.New("b2b: raw packet shorter than an IPv4 header")
			}
			sa := &syscall.SockaddrInet4{}
			copy(sa.Addr[:], p[16:20])
			if err := syscall.Sendto(fd, p, 0, sa); err != nil {
				return fmt.Errorf("b2b: sending a raw packet: %w", err)
			}
		}
		return nil
	})
}

// SeqStream sends n UDP datagrams numbered 0..n-1 from the lan host to the
// vpc host, every interval, and returns which numbers arrived. Bounded by
// n and by n*interval plus a few seconds. during runs once, after n/4
// datagrams were sent, concurrently with the stream.
func (t *Topology) SeqStream(ctx context.Context, n int, interval time.Duration, size int, during func() error) (got []bool, duringErr error, err error) {
	const port = 5400
	var rc *net.UDPConn
	err = pktgen.InNetns(t.NS(VPC), func() (err error) {
		rc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(VPCHost, port)))
		if err == nil {
			rc.SetReadBuffer(8 << 20)
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	got = make([]bool, n)
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		buf := make([]byte, 2048)
		for {
			k, err := rc.Read(buf)
			if err != nil {
				return
			}
			if k >= 8 {
				if s := binary.BigEndian.Uint64(buf); s < uint64(n) {
					got[s] = true
				}
			}
		}
	}()
	var sc *net.UDPConn
	err = pktgen.InNetns(t.NS(LAN), func() (err error) {
		sc, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(VPCHost, port)))
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	if size < 8 {
		size = 8
	}
	payload := make([]byte, size)
	dch := make(chan error, 1)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if i == n/4 && during != nil {
			go func() { dch <- during() }()
		}
		binary.BigEndian.PutUint64(payload, uint64(i))
		if _, err := sc.Write(payload); err != nil {
			return nil, nil, fmt.Errorf("b2b: UDP send %d: %w", i, err)
		}
		if d := time.Until(start.Add(time.Duration(i+1) * interval)); d > 0 {
			time.Sleep(d)
		}
	}
	if during != nil {
		duringErr = <-dch
	}
	time.Sleep(500 * time.Millisecond)
	rc.Close()
	<-rdone
	return got, duringErr, nil
}
