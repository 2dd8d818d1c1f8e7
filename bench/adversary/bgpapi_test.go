package adversary

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
// and the metrics', and on no unix socket but its status API's (issue #9:
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

	gobgp := buildGoBGP(t, t.TempDir())
	const prefix = "198.19.99.0/24"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// setpriv drops to nobody after ip netns exec (which needs root)
	// entered the gateway's namespace.
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.NS(lab.CGW), "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		gobgp, "global", "rib", "add", prefix)
	b, err := cmd.CombinedOutput()
	outText := strings.TrimSpace(string(b))
	time.Sleep(2 * time.Second) // an accepted path would reach AWS within a second
	routes, _ := l.BirdShow(ctx, "aws", "route", prefix)
	learned := strings.Contains(routes, prefix)
	if err == nil || learned {
		t.Errorf("uid nobody: gobgp global rib add %s: err %v, AWS's BIRD has it: %v; output: %s", prefix, err, learned, outText)
	}
	passLine(t, "bgp-api-unprivileged", "one `gobgp global rib add` as uid nobody",
		fmt.Sprintf("cgw-control listens on %v; gobgp as nobody: %v (%.120s); prefix at AWS: %v", ls, err, outText, learned))
}
