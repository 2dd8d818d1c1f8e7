package adversary

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
)

// listeners returns the TCP and unix sockets process pid listens on, as
// "tcp 127.0.0.1:9471" / "unix /path", from its /proc entries (its own
// network namespace's tables).
func listeners(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d", pid)
	inodes := map[string]bool{}
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	scan := func(file string, each func(f []string)) {
		fh, err := os.Open(file)
		if err != nil {
			return
		}
		defer fh.Close()
		s := bufio.NewScanner(fh)
		s.Scan()
		for s.Scan() {
			each(strings.Fields(s.Text()))
		}
	}
	for _, f := range []string{"/net/tcp", "/net/tcp6"} {
		scan(dir+f, func(f []string) {
			if len(f) > 9 && f[3] == "0A" && inodes[f[9]] { // TCP_LISTEN
				out = append(out, "tcp "+hexAddr(f[1]))
			}
		})
	}
	scan(dir+"/net/unix", func(f []string) {
		if len(f) > 6 && f[3] == "00010000" && inodes[f[6]] { // __SO_ACCEPTCON
			out = append(out, "unix "+strings.Join(f[7:], " "))
		}
	})
	return out
}

// hexAddr turns /proc/net/tcp's "0100007F:24FF" into "127.0.0.1:9471"
// (IPv4; IPv6 is left as it is).
func hexAddr(s string) string {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 8 {
		return s
	}
	var b [4]byte
	var port int
	for i := range 4 {
		fmt.Sscanf(a[2*i:2*i+2], "%02X", &b[3-i])
	}
	fmt.Sscanf(p, "%X", &port)
	return fmt.Sprintf("%d.%d.%d.%d:%d", b[0], b[1], b[2], b[3], port)
}

// buildGoBGP builds the stock gobgp CLI of the GoBGP version cgw embeds.
func buildGoBGP(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/osrg/gobgp/v3").Output()
	if err != nil {
		t.Fatalf("finding GoBGP's module: %v", err)
	}
	bin := filepath.Join(dir, "gobgp")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/gobgp")
	cmd.Dir = strings.TrimSpace(string(out))
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod -buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the gobgp CLI (needs its dependencies in the module cache or GOPROXY reachable): %v\n%s", err, b)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // uid nobody runs it
		t.Fatal(err)
	}
	return bin
}

// TestBGPAPIUnprivileged: a local user (uid nobody, in the gateway's
// namespace) runs the stock `gobgp global rib add` against GoBGP's
// default API address: refused, and AWS never hears of the prefix. With
// the default configuration cgw-control listens on no TCP port but BGP's
// and the metrics', and on no unix socket but its status API's. Then the
// API switched on as an operator would (-gobgp-api unix:///…): nobody's
// add is refused, also with the socket's and its directory's modes
// loosened (the handshake checks the uid), while root's lands in cgw's
// RIB, which shows the probe sees a path that gets in (issue #9:
// GoBGP's gRPC API let any local user add paths or stop BGP).
func TestBGPAPIUnprivileged(t *testing.T) {
	l, g, _ := adversaryLab(t)
	p, ok := g.ControlProc(l)
	if !ok {
		t.Fatal("cgw-control is not running")
	}
	ls := listeners(t, p.Pid)
	var unexpected []string
	for _, s := range ls {
		switch {
		case strings.HasPrefix(s, "tcp ") && (strings.HasSuffix(s, ":179") || strings.HasSuffix(s, ":9471")):
		case s == "unix "+g.SocketPath(l):
		default:
			unexpected = append(unexpected, s)
		}
	}
	if len(unexpected) > 0 {
		t.Errorf("cgw-control listens on %v with the default configuration (all: %v); only BGP, metrics and the status socket are expected", unexpected, ls)
	}

	const python3 = "/usr/bin/python3"
	if _, err := os.Stat(python3); err != nil {
		t.Fatalf("%s: %v (Debian package python3)", python3, err)
	}
	gobgp := buildGoBGP(t, t.TempDir())
	const prefix = "198.19.99.0/24"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// gobgpAs runs the CLI in the gateway's namespace; setpriv drops to
	// nobody after ip netns exec (which needs root) entered it.
	gobgpAs := func(nobody bool, args ...string) (string, error) {
		cmd := []string{"ip", "netns", "exec", l.NS(lab.CGW)}
		if nobody {
			cmd = append(cmd, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
		}
		b, err := exec.CommandContext(ctx, cmd[0], append(append(cmd[1:], gobgp), args...)...).CombinedOutput()
		return strings.TrimSpace(string(b)), err
	}
	outText, offErr := gobgpAs(true, "global", "rib", "add", prefix)
	time.Sleep(2 * time.Second) // an accepted path would reach AWS within a second
	routes, _ := l.BirdShow(ctx, "aws", "route", prefix)
	learned := strings.Contains(routes, prefix)
	if offErr == nil || learned {
		t.Errorf("uid nobody: gobgp global rib add %s: err %v, AWS's BIRD has it: %v; output: %s", prefix, offErr, learned, outText)
	}

	// The API on, at a unix socket. Its parent is traversable by anyone,
	// so only the socket's directory (0700, made by cgw-control), its
	// mode (0600) and the handshake's uid check guard it.
	open, err := os.MkdirTemp("", "cgw-adversary-api-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(open)
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(open, "gobgp", "api.sock")
	args := g.ControlArgs
	restartControl(t, l, g, append(append([]string(nil), args...), "-gobgp-api", "unix://"+sock))
	defer restartControl(t, l, g, args)
	target := []string{"--target", "unix://" + sock}
	inRIB := func(p string) bool {
		out, err := gobgpAs(false, append(target, "global", "rib")...)
		if err != nil {
			t.Fatalf("root: gobgp global rib through %s: %v: %s", sock, err, out)
		}
		return strings.Contains(out, p)
	}
	// gobgp hides connect's error behind its dial timeout: ask connect(2).
	connectAsNobody := func() string {
		out, _ := exec.CommandContext(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python3, "-c",
			"import socket,sys\ntry:\n socket.socket(socket.AF_UNIX).connect(sys.argv[1]); print('connected')\nexcept OSError as e: print(e.strerror)", sock).CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	nobodyConn := connectAsNobody()
	if nobodyConn != "Permission denied" {
		t.Errorf("uid nobody: connect to %s: %q; want Permission denied", sock, nobodyConn)
	}
	nobodyOut, nobodyErr := gobgpAs(true, append(target, "global", "rib", "add", prefix)...)
	nobodyIn := inRIB(prefix)
	if nobodyErr == nil || nobodyIn {
		t.Errorf("uid nobody, API at %s: gobgp global rib add %s: err %v, in cgw's RIB: %v; output: %s", sock, prefix, nobodyErr, nobodyIn, nobodyOut)
	}
	// Loosened modes: only the handshake's uid check is left.
	const prefix2 = "198.19.98.0/24"
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{filepath.Dir(sock), 0o755}, {sock, 0o666}} {
		if err := os.Chmod(c.path, c.mode); err != nil {
			t.Fatal(err)
		}
	}
	looseConn := connectAsNobody()
	if looseConn != "connected" {
		t.Errorf("uid nobody: connect to %s made 0666 in a 0755 directory: %q; want connected (else the handshake's check is not what is probed)", sock, looseConn)
	}
	looseOut, looseErr := gobgpAs(true, append(target, "global", "rib", "add", prefix2)...)
	looseIn := inRIB(prefix2)
	if looseErr == nil || looseIn {
		t.Errorf("uid nobody, API at %s made 0666 in a 0755 directory: gobgp global rib add %s: err %v, in cgw's RIB: %v; output: %s", sock, prefix2, looseErr, looseIn, looseOut)
	}
	// Root's add gets in: what the probe would see of an accepted path.
	const prefix3 = "198.19.97.0/24"
	rootOut, rootErr := gobgpAs(false, append(target, "global", "rib", "add", prefix3)...)
	rootIn := inRIB(prefix3)
	if rootErr != nil || !rootIn {
		t.Errorf("root, API at %s: gobgp global rib add %s: err %v, in cgw's RIB: %v; output: %s (the probe cannot tell a refused add from one that got in)", sock, prefix3, rootErr, rootIn, rootOut)
	}
	gobgpAs(false, append(target, "global", "rib", "del", prefix3)...)

	passLine(t, "bgp-api-unprivileged", "`gobgp global rib add` as uid nobody: API off (default); unix socket 0600 in 0700; socket 0666 in 0755",
		fmt.Sprintf("cgw-control listens on %v; API off: nobody %v (%.80s), prefix at AWS %v; socket: nobody's connect %q, add %v (%.80s), in RIB %v; loosened: connect %q, add %v (%.80s), in RIB %v; root's add in RIB %v",
			ls, offErr, outText, learned, nobodyConn, nobodyErr, nobodyOut, nobodyIn, looseConn, looseErr, looseOut, looseIn, rootIn))
}

// restartControl restarts cgw-control with args and waits for a healthy
// lab.
func restartControl(t *testing.T, l *lab.Lab, g *lab.CGWGateway, args []string) {
	t.Helper()
	g.ControlArgs = args
	if err := g.StopControl(l, syscall.SIGTERM); err != nil {
		t.Fatalf("stopping cgw-control: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.StartControl(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := healthy(t, l, g, 90*time.Second); err != nil {
		t.Fatalf("lab not healthy after restarting cgw-control with %v: %v", args, err)
	}
}
