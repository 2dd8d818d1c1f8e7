package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cgw-project/cgw/config"
)

// WaitTunnels waits until every AWS endpoint has an established IKE_SA
// with an installed CHILD_SA (what AWS's console shows as tunnel UP).
// With several connections (CloudHub) it waits for every connection's.
func (l *Lab) WaitTunnels(ctx context.Context) error {
	for c := range l.Cfg.Connections {
		for i := range l.conn(c).Tunnels {
			if err := l.WaitTunnelOf(ctx, c, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// WaitTunnel waits until AWS's endpoint of tunnel i has an established
// IKE_SA with an installed CHILD_SA.
func (l *Lab) WaitTunnel(ctx context.Context, i int) error { return l.WaitTunnelOf(ctx, 0, i) }

// WaitTunnelOf waits until AWS's endpoint of connection c's tunnel i has
// an established IKE_SA with an installed CHILD_SA.
func (l *Lab) WaitTunnelOf(ctx context.Context, c, i int) error {
	var last string
	ep := AWSEndpointOf(c, i)
	err := waitFor(ctx, fmt.Sprintf("%s's tunnel to be established", ep), 60*time.Second, func() bool {
		sas, err := l.SwanctlListSAs(ctx, ep)
		if err != nil {
			last = err.Error()
			return false
		}
		for _, s := range sas {
			if s.Up() {
				return true
			}
		}
		last = fmt.Sprintf("%s has no established IKE_SA with an installed CHILD_SA (%d SAs)", ep, len(sas))
		return false
	})
	if err != nil {
		return fmt.Errorf("%w: %s", err, last)
	}
	return nil
}

// BGPSessions returns the state ("Established", "Active", "Connect", ...
// or "down" for a disabled protocol) of every BGP protocol of a BIRD
// speaker ("aws", or "cgw" for the stand-in).
func (l *Lab) BGPSessions(ctx context.Context, speaker string) (map[string]string, error) {
	out, err := l.BirdShow(ctx, speaker, "protocols")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[1] == "BGP" {
			if f[3] != "up" {
				m[f[0]] = f[3]
			} else {
				m[f[0]] = f[len(f)-1]
			}
		}
	}
	return m, nil
}

// WaitBGP waits until both sessions are Established on the AWS side (of
// every BGP connection, with several).
func (l *Lab) WaitBGP(ctx context.Context) error {
	for c := range l.Cfg.Connections {
		if l.conn(c).Routing != config.RoutingBGP || l.conn(c).BGP == nil {
			continue
		}
		if err := l.WaitBGPOf(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// WaitBGPOf waits until both of connection c's sessions are Established
// on its AWS side (BIRD speaker AWSRole(c)).
func (l *Lab) WaitBGPOf(ctx context.Context, c int) error {
	var last map[string]string
	sp := AWSRole(c)
	err := waitFor(ctx, "both BGP sessions of "+sp+" to be Established", 90*time.Second, func() bool {
		m, err := l.BGPSessions(ctx, sp)
		if err != nil {
			return false
		}
		last = m
		for i := range l.conn(c).Tunnels {
			if m[BGPProtocol(i)] != "Established" {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("%w (AWS side %s: %v)", err, sp, last)
	}
	return nil
}

// WaitRoute waits until role's kernel routes prefix through dev.
func (l *Lab) WaitRoute(ctx context.Context, role string, prefix netip.Prefix, dev string) error {
	var last string
	err := waitFor(ctx, fmt.Sprintf("%s to route %s via %s", l.NS(role), prefix, dev), 60*time.Second, func() bool {
		out, err := run(ctx, "ip", "-n", l.NS(role), "-4", "route", "show", prefix.String())
		last = strings.TrimSpace(out)
		return err == nil && strings.Contains(out, "dev "+dev)
	})
	if err != nil {
		return fmt.Errorf("%w (now: %q)", err, last)
	}
	return nil
}

// SetBGP enables or disables tunnel i's BGP session on the AWS side, so
// traffic fails over to (or back from) the other tunnel whatever the
// gateway is (RFC 4271: a closed session withdraws its routes).
func (l *Lab) SetBGP(ctx context.Context, i int, on bool) error {
	cmd := "disable"
	if on {
		cmd = "enable"
	}
	_, err := l.Birdc(ctx, "aws", cmd, BGPProtocol(i))
	return err
}

// PingResult is the outcome of Ping.
type PingResult struct {
	Sent, Received int
}

var pingRe = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// Ping sends count echo requests (0.2 s apart) from role's namespace.
func (l *Lab) Ping(ctx context.Context, from string, to netip.Addr, count int) (PingResult, error) {
	out, err := l.Exec(ctx, from, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "2", to.String())
	m := pingRe.FindStringSubmatch(out)
	if m == nil {
		return PingResult{}, fmt.Errorf("ping %s from %s: %v: %s", to, l.NS(from), err, out)
	}
	r := PingResult{Sent: atoi(m[1]), Received: atoi(m[2])}
	return r, nil
}

// PingEvery sends count echo requests interval apart (below 0.2 s ping
// needs root) from role's namespace, each waiting at most a second for
// its reply: with a fixed rate, lost × interval is the outage.
func (l *Lab) PingEvery(ctx context.Context, from string, to netip.Addr, count int, interval time.Duration) (PingResult, error) {
	out, err := l.Exec(ctx, from, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64), "-W", "1", to.String())
	m := pingRe.FindStringSubmatch(out)
	if m == nil {
		return PingResult{}, fmt.Errorf("ping %s from %s: %v: %s", to, l.NS(from), err, out)
	}
	return PingResult{Sent: atoi(m[1]), Received: atoi(m[2])}, nil
}

// PingTrace is a fixed-rate ping's outcome with the longest silence.
type PingTrace struct {
	PingResult
	// LostRun is the longest run of consecutive unanswered requests.
	LostRun int
	// ReplyGap is the longest wall-clock time between two consecutive
	// replies (ping -D timestamps): the outage as the sender saw it, even
	// if ping sent more slowly while nothing came back.
	ReplyGap time.Duration
}

var pingReplyRe = regexp.MustCompile(`^\[(\d+)\.(\d+)\] \d+ bytes from .*icmp_seq=(\d+)`)

// PingTraced is PingEvery with every reply's timestamp (ping -D), to
// measure an outage as the longest gap between replies.
func (l *Lab) PingTraced(ctx context.Context, from string, to netip.Addr, count int, interval time.Duration) (PingTrace, error) {
	out, err := l.Exec(ctx, from, "ping", "-n", "-D", "-c", strconv.Itoa(count), "-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64), "-W", "1", to.String())
	m := pingRe.FindStringSubmatch(out)
	if m == nil {
		return PingTrace{}, fmt.Errorf("ping %s from %s: %v: %.300s", to, l.NS(from), err, out)
	}
	tr := PingTrace{PingResult: PingResult{Sent: atoi(m[1]), Received: atoi(m[2])}}
	var last time.Time
	prevSeq := 0
	for _, line := range strings.Split(out, "\n") {
		r := pingReplyRe.FindStringSubmatch(line)
		if r == nil {
			continue
		}
		frac := (r[2] + "000000000")[:9]
		at := time.Unix(int64(atoi(r[1])), int64(atoi(frac)))
		seq := atoi(r[3])
		if !last.IsZero() && at.Sub(last) > tr.ReplyGap {
			tr.ReplyGap = at.Sub(last)
		}
		if seq-prevSeq-1 > tr.LostRun {
			tr.LostRun = seq - prevSeq - 1
		}
		last, prevSeq = at, seq
	}
	if tr.Sent-prevSeq > tr.LostRun {
		tr.LostRun = tr.Sent - prevSeq
	}
	return tr, nil
}

// TransferOptions bound an iperf3 run.
type TransferOptions struct {
	Duration time.Duration // -t (default 3 s); ignored when Bytes is set
	Bytes    int64         // -n: stop after this many bytes
	Reverse  bool          // -R: the server (to) sends
	UDP      bool          // -u with Length-byte payloads at Rate
	Length   int           // -l (UDP payload size)
	Rate     string        // -b, e.g. "100M" (UDP needs a bound)
}

// TransferResult is what iperf3 measured at the receiver.
type TransferResult struct {
	Bytes       int64
	Seconds     float64
	BitsPerSec  float64
	Packets     int64 // UDP: datagrams sent
	Lost        int64 // UDP: datagrams lost
	PacketsPerS float64
}

var iperfPort atomic.Int32

// Transfer runs iperf3 from role from to the server at addr in role to.
// Both ends are bounded: the client by -t/-n, the server by -1 and ctx.
func (l *Lab) Transfer(ctx context.Context, from, to string, addr netip.Addr, o TransferOptions) (TransferResult, error) {
	if o.Duration <= 0 {
		o.Duration = 3 * time.Second
	}
	port := 5201 + int(iperfPort.Add(1)%200)
	limit := o.Duration + 30*time.Second
	sctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	srv := exec.CommandContext(sctx, "ip", "netns", "exec", l.NS(to), "iperf3", "-s", "-1", "-B", addr.String(), "-p", strconv.Itoa(port))
	if err := srv.Start(); err != nil {
		return TransferResult{}, fmt.Errorf("iperf3 server in %s: %w", l.NS(to), err)
	}
	defer func() { cancel(); srv.Wait() }() //nolint:errcheck // killed on purpose
	args := []string{"iperf3", "-c", addr.String(), "-p", strconv.Itoa(port), "-J"}
	if o.Bytes > 0 {
		args = append(args, "-n", strconv.FormatInt(o.Bytes, 10))
	} else {
		args = append(args, "-t", strconv.Itoa(int(o.Duration/time.Second)))
	}
	if o.Reverse {
		args = append(args, "-R")
	}
	if o.UDP {
		if o.Rate == "" {
			o.Rate = "50M"
		}
		args = append(args, "-u", "-b", o.Rate)
		if o.Length > 0 {
			args = append(args, "-l", strconv.Itoa(o.Length))
		}
	}
	var out string
	var err error
	// The server needs a moment to listen. iperf3 3.12 with -J exits 0
	// even when it could not connect, so look at the output.
	for try := 0; try < 50; try++ {
		out, err = l.Exec(sctx, from, args...)
		if !strings.Contains(out, "Connection refused") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return parseIperf(out, o.UDP, err)
}

func parseIperf(out string, udp bool, runErr error) (TransferResult, error) {
	var j struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				Bytes   int64   `json:"bytes"`
				Seconds float64 `json:"seconds"`
				BPS     float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			Sum struct {
				Bytes       int64   `json:"bytes"`
				Seconds     float64 `json:"seconds"`
				BPS         float64 `json:"bits_per_second"`
				Packets     int64   `json:"packets"`
				LostPackets int64   `json:"lost_packets"`
			} `json:"sum"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		return TransferResult{}, fmt.Errorf("iperf3: %v (output %.200q)", runErr, out)
	}
	if j.Error != "" {
		return TransferResult{}, fmt.Errorf("iperf3: %s", j.Error)
	}
	if udp {
		s := j.End.Sum
		r := TransferResult{Bytes: s.Bytes, Seconds: s.Seconds, BitsPerSec: s.BPS, Packets: s.Packets, Lost: s.LostPackets}
		if s.Seconds > 0 {
			r.PacketsPerS = float64(s.Packets-s.LostPackets) / s.Seconds
		}
		return r, nil
	}
	s := j.End.SumReceived
	if s.Bytes == 0 {
		return TransferResult{}, fmt.Errorf("iperf3 moved no bytes (%v)", runErr)
	}
	return TransferResult{Bytes: s.Bytes, Seconds: s.Seconds, BitsPerSec: s.BPS}, nil
}

// ChildCounters returns the bytes in/out of the installed CHILD_SA of an
// endpoint's charon.
func (l *Lab) ChildCounters(ctx context.Context, endpoint string) (ChildSA, error) {
	sas, err := l.SwanctlListSAs(ctx, endpoint)
	if err != nil {
		return ChildSA{}, err
	}
	for _, s := range sas {
		if c, ok := s.InstalledChild(); ok {
			return c, nil
		}
	}
	return ChildSA{}, fmt.Errorf("%s: no installed CHILD_SA", endpoint)
}

// CharonLog returns an endpoint's charon log so far.
func (l *Lab) CharonLog(endpoint string) (string, error) {
	dir, err := l.charonDir(endpoint)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, "charon.log"))
	return string(b), err
}
