package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/status"
	"github.com/cgw-project/cgw/internal/prereq"
)

// CGWGateway runs cgw itself as the gateway: cgw-dataplane on the cgw namespace's
// inside and outside veths and cgw-control with the configuration the lab
// generates. Each instance's pinned maps are named after the lab prefix
// (Instance), so labs with different prefixes never share maps.
//
// No veth peer needs an XDP program here: the dataplane transmits with
// AF_XDP (not XDP_REDIRECT/XDP_TX), which veth delivers without one
// (DESIGN §4).
//
// Both processes are started with "nsenter --mount=<our mount namespace>"
// after ip netns exec: ip netns exec remounts /sys, which hides
// /sys/fs/bpf, and the two processes must see the same pinned maps.
type CGWGateway struct {
	// Dataplane and Control are the binaries; empty means "cgw-dataplane"
	// and "cgw-control" next to the running executable, else in $PATH.
	Dataplane, Control string
	// CPUs for the dataplane's workers (-cpus); default "0,1" capped
	// to the machine. Queues (-queues) defaults to 1: the lab's veths
	// have one RX queue.
	CPUs   string
	Queues int
	// DataplaneArgs and ControlArgs are appended to each command line.
	DataplaneArgs, ControlArgs []string
	// ControlEnv is added to cgw-control's environment.
	ControlEnv []string
	// Connections, when > 0, starts cgw with only the first Connections
	// of the lab's VPN connections, the AWS side emulating them all (a
	// configuration reload adds the others: WriteConfig, cgwctl reload).
	Connections int

	controls, dataplanes int
}

// Name implements Gateway.
func (*CGWGateway) Name() string { return "cgw" }

// Instance is the pinned-map instance of the lab's gateway.
func (*CGWGateway) Instance(l *Lab) string { return "lab-" + l.Prefix }

// SocketPath is the status API socket of the lab's cgw-control.
func (*CGWGateway) SocketPath(l *Lab) string { return filepath.Join(l.Dir, "control.sock") }

// Client returns a status API client of the lab's cgw-control.
func (g *CGWGateway) Client(l *Lab) *status.Client { return status.NewClient(g.SocketPath(l)) }

// binary finds a cgw command.
func binary(given, name string) (string, error) {
	if given != "" {
		return given, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("lab: %s not found next to this program or in $PATH (run make build)", name)
	}
	return p, nil
}

// Up implements Gateway: checksum offload off where veths feed AF_XDP,
// then the dataplane, then control.
func (g *CGWGateway) Up(ctx context.Context, l *Lab) error {
	if _, err := binary(g.Dataplane, "cgw-dataplane"); err != nil {
		return err
	}
	if _, err := binary(g.Control, "cgw-control"); err != nil {
		return err
	}
	if err := prereq.Command("ethtool"); err != nil {
		return fmt.Errorf("lab: the cgw gateway needs %w", err)
	}
	cfg := *l.Cfg
	if n := g.Connections; n > 0 && n < len(cfg.Connections) {
		cfg.Connections = cfg.Connections[:n]
	}
	if err := g.WriteConfig(l, &cfg); err != nil {
		return err
	}
	// A veth whose own stack sends a frame leaves its checksum to be
	// completed by "hardware" (transmit offload); AF_XDP gets the frame
	// raw, so the senders into cgw's NICs must finish checksums in
	// software: the LAN host and inet's link towards cgw (which forwards
	// what the AWS endpoints send).
	for _, s := range [][2]string{{LAN, "eth0"}, {Inet, "cgw0"}} {
		if _, err := l.Exec(ctx, s[0], "ethtool", "-K", s[1], "tx", "off"); err != nil {
			return fmt.Errorf("lab: turning transmit checksum offload off on %s %s: %w", l.NS(s[0]), s[1], err)
		}
	}
	// Pinned maps of an earlier lab with this prefix would hold its SAs.
	maps.Remove(g.Instance(l))
	if err := g.StartDataplane(ctx, l); err != nil {
		return err
	}
	return g.StartControl(ctx, l)
}

// WriteConfig writes the configuration both cgw processes read at start
// and cgw-control reads again on a reload.
func (g *CGWGateway) WriteConfig(l *Lab, cfg *config.Config) error {
	b, err := config.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(l.GatewayConfigPath(), b, 0o600)
}

// DataplaneProc returns the running cgw-dataplane process.
func (g *CGWGateway) DataplaneProc(l *Lab) (Proc, bool) { return g.proc(l, "cgw-dataplane") }

// StartDataplane starts cgw-dataplane and waits for its start line.
func (g *CGWGateway) StartDataplane(ctx context.Context, l *Lab) error {
	dp, err := binary(g.Dataplane, "cgw-dataplane")
	if err != nil {
		return err
	}
	g.dataplanes++
	cpus := g.CPUs
	if cpus == "" {
		cpus = "0"
		if n := numCPU(); n > 1 {
			cpus = "0,1"
		}
	}
	queues := g.Queues
	if queues == 0 {
		queues = 1
	}
	gw := l.Cfg.Gateway
	args := append([]string{dp, "-config", l.GatewayConfigPath(), "-instance", g.Instance(l),
		"-inside-if", gw.Inside.Name, "-outside-if", gw.Outside.Name, "-cpus", cpus, "-queues", fmt.Sprint(queues),
		"-metrics", "127.0.0.1:9472"}, g.DataplaneArgs...)
	logPath := filepath.Join(l.Dir, "cgw-dataplane.log")
	l.Progressf("cgw: starting cgw-dataplane (instance %s)", g.Instance(l))
	p, err := l.StartProcess(fmt.Sprintf("cgw-dataplane-%d", g.dataplanes), CGW, logPath, nil, g.inHostMounts(args)...)
	if err != nil {
		return err
	}
	return waitLogCount(ctx, p, "worker(s) on CPUs", g.dataplanes, 20*time.Second)
}

// StopDataplane ends cgw-dataplane (SIGTERM: XDP detached, maps kept).
func (g *CGWGateway) StopDataplane(l *Lab) error {
	p, ok := g.proc(l, "cgw-dataplane")
	if !ok {
		return errors.New("lab: cgw-dataplane is not running")
	}
	return p.stop(5 * time.Second)
}

// inHostMounts prefixes a command so that, started by ip netns exec, it
// runs in this process's mount namespace (with /sys/fs/bpf) while keeping
// the lab namespace's network.
func (*CGWGateway) inHostMounts(args []string) []string {
	return append([]string{"nsenter", fmt.Sprintf("--mount=/proc/%d/ns/mnt", os.Getpid()), "--"}, args...)
}

// StartControl starts cgw-control and waits until its status API answers.
func (g *CGWGateway) StartControl(ctx context.Context, l *Lab) error {
	ctl, err := binary(g.Control, "cgw-control")
	if err != nil {
		return err
	}
	g.controls++
	args := append([]string{ctl, "-config", l.GatewayConfigPath(), "-instance", g.Instance(l), "-socket", g.SocketPath(l)}, g.ControlArgs...)
	logPath := filepath.Join(l.Dir, "cgw-control.log")
	l.Progressf("cgw: starting cgw-control (status socket %s)", g.SocketPath(l))
	p, err := l.StartProcess(fmt.Sprintf("cgw-control-%d", g.controls), CGW, logPath, g.ControlEnv, g.inHostMounts(args)...)
	if err != nil {
		return err
	}
	c := g.Client(l)
	deadline := time.Now().Add(20 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := c.Status(cctx)
		cancel()
		if err == nil && s.Pid == p.Pid {
			return nil
		}
		if !p.Alive() {
			return fmt.Errorf("lab: cgw-control exited; see %s:\n%s", logPath, tail(logPath, 20))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("lab: cgw-control's status API did not answer on %s within 20 s (%v); see %s", g.SocketPath(l), err, logPath)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ControlProc returns the running cgw-control process.
func (g *CGWGateway) ControlProc(l *Lab) (Proc, bool) { return g.proc(l, "cgw-control") }

func (g *CGWGateway) proc(l *Lab, name string) (Proc, bool) {
	st := l.State()
	for i := len(st.Procs) - 1; i >= 0; i-- {
		if p := st.Procs[i]; strings.HasPrefix(p.Name, name) && p.Alive() {
			return p, true
		}
	}
	return Proc{}, false
}

// StopControl ends cgw-control with sig: SIGTERM deletes the SAs and
// waits for the peer; SIGKILL (a crash) and SIGUSR1 (an upgrade) leave
// them in the maps so the dataplane keeps forwarding.
func (g *CGWGateway) StopControl(l *Lab, sig syscall.Signal) error {
	p, ok := g.ControlProc(l)
	if !ok {
		return errors.New("lab: cgw-control is not running")
	}
	if err := syscall.Kill(p.Pid, sig); err != nil {
		return fmt.Errorf("lab: signalling cgw-control (pid %d): %w", p.Pid, err)
	}
	for i := 0; i < 200 && p.Alive(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if p.Alive() {
		return p.stop(time.Second)
	}
	return nil
}

// Cleanup removes the gateway's pinned maps; call it after Lab.Down.
func (g *CGWGateway) Cleanup(l *Lab) error { return maps.Remove(g.Instance(l)) }

// waitLogCount waits until a process's log (shared by its restarts)
// contains marker n times.
func waitLogCount(ctx context.Context, p Proc, marker string, n int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(p.Log)
		if strings.Count(string(b), marker) >= n {
			return nil
		}
		if !p.Alive() {
			return fmt.Errorf("lab: %s exited; see %s:\n%s", p.Name, p.Log, tail(p.Log, 20))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("lab: %s did not log %q within %v; see %s", p.Name, marker, d, p.Log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

func numCPU() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 1
	}
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexAny(s, "-,"); i >= 0 {
		var n int
		fmt.Sscanf(s[i+1:], "%d", &n)
		return n + 1
	}
	return 1
}

// RemoveCGWMaps removes the pinned maps of the cgw gateway of the lab
// with prefix (cgw-lab down).
func RemoveCGWMaps(prefix string) error { return maps.Remove("lab-" + prefix) }

// WaitStatus polls cgw-control's status until ok accepts it.
func (g *CGWGateway) WaitStatus(ctx context.Context, l *Lab, what string, ok func(*status.Status) bool) (*status.Status, error) {
	c := g.Client(l)
	var last *status.Status
	var lastErr error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := c.Status(cctx)
		cancel()
		if err == nil {
			last = s
			if ok(s) {
				return s, nil
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
			if last == nil {
				return nil, fmt.Errorf("lab: waiting for %s: %w (status API: %v)", what, ctx.Err(), lastErr)
			}
			return last, fmt.Errorf("lab: waiting for %s: %w", what, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// WaitRouteInstalled waits until cgw-control has put prefix into the
// dataplane's route table.
func (g *CGWGateway) WaitRouteInstalled(ctx context.Context, l *Lab, prefix netip.Prefix) (*status.Status, error) {
	return g.WaitStatus(ctx, l, "route "+prefix.String()+" in cgw's route map", func(s *status.Status) bool {
		for _, r := range s.Routes {
			if r.Prefix == prefix && !r.Pending {
				return true
			}
		}
		return false
	})
}

// BuildCGW builds cgw-dataplane, cgw-control and cgwctl into dir (from
// this module, as go test runs inside it) and returns a gateway using
// them; cgwctl's path is returned too. With race, cgw-control is built
// with the race detector (its log then names any data race: RaceReports).
func BuildCGW(ctx context.Context, dir string, race bool) (*CGWGateway, string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	build := func(args ...string) error {
		cmd := exec.CommandContext(ctx, goBin, append([]string{"build", "-o", dir + "/"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building the cgw commands: %v\n%s", err, out)
		}
		return nil
	}
	ctl := []string{"github.com/cgw-project/cgw/cmd/cgw-control"}
	if race {
		ctl = append([]string{"-race"}, ctl...)
	}
	if err := build("github.com/cgw-project/cgw/cmd/cgw-dataplane", "github.com/cgw-project/cgw/cmd/cgwctl"); err != nil {
		return nil, "", err
	}
	if err := build(ctl...); err != nil {
		return nil, "", err
	}
	return &CGWGateway{Dataplane: filepath.Join(dir, "cgw-dataplane"), Control: filepath.Join(dir, "cgw-control")},
		filepath.Join(dir, "cgwctl"), nil
}

// RaceReports returns the data races cgw-control's log reports (a
// race-detector build), each as the detector printed it.
func (g *CGWGateway) RaceReports(l *Lab) []string {
	b, _ := os.ReadFile(filepath.Join(l.Dir, "cgw-control.log"))
	var out []string
	for _, part := range strings.Split(string(b), "WARNING: DATA RACE")[1:] {
		if i := strings.Index(part, "=================="); i >= 0 {
			part = part[:i]
		}
		out = append(out, "WARNING: DATA RACE"+part)
	}
	return out
}

// Maps opens the gateway's pinned maps for reading, as the dataplane
// does (tests check what control wrote); call the returned func to close.
func (g *CGWGateway) Maps(l *Lab) (*maps.Reader, func(), error) {
	objs, err := maps.Load(g.Instance(l))
	if err != nil {
		return nil, nil, err
	}
	r, err := maps.NewReader(objs)
	if err != nil {
		objs.Close()
		return nil, nil, err
	}
	return r, func() { r.Close(); objs.Close() }, nil
}
