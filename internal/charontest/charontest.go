// Package charontest runs a strongSwan charon (kernel-libipsec, as the
// lab's AWS side: DESIGN.md §4) in a test's network namespace, for the IKE
// engines' interop tests: its own strongswan.conf, vici socket and log in
// a private /run, swanctl against it, and its SAs as swanctl lists them.
package charontest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cgw-project/cgw/internal/netnstest"
	"github.com/cgw-project/cgw/internal/prereq"
)

// Require fails the test naming what is missing (or skips under -short):
// swanctl, charon, and every plugin of Conf(extra...) as charon loads it
// (internal/prereq starts charon once to see).
func Require(t *testing.T, extra ...string) {
	t.Helper()
	netnstest.Require(t, "swanctl", prereq.Charon, "unshare", "/dev/net/tun")
	if err := prereq.CharonPlugins(Plugins(extra...)...); err != nil {
		t.Fatalf("end-to-end: %v", err)
	}
}

// Plugins is Conf's plugin list, in load order.
func Plugins(extra ...string) []string {
	return strings.Fields("random nonce openssl aes sha1 sha2 " + strings.Join(extra, " ") +
		" hmac gcm kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici")
}

// Conf is a strongswan.conf for charon in a private /run: vici socket and
// log there, kernel-libipsec before kernel-netlink, and a fwmark nobody
// uses so libipsec's table-220 route stays out of the way. extra names
// plugins to load besides the standard list (e.g. md5 for IKEv1).
func Conf(extra ...string) string {
	return `charon {
    load = ` + strings.Join(Plugins(extra...), " ") + `
    port = 500
    port_nat_t = 4500
    install_routes = no
    install_virtual_ip = no
    retransmit_tries = 3
    retransmit_timeout = 1.0
    syslog {
        daemon {
            default = -1
        }
    }
    filelog {
        test {
            path = /run/charon.log
            default = 1
            ike = 2
            flush_line = yes
        }
    }
    plugins {
        vici {
            socket = unix:///run/charon.vici
        }
        kernel-netlink {
            fwmark = 0x4c41
        }
    }
}
`
}

// Charon is one charon process started by Start.
type Charon struct {
	t      *testing.T
	Dir    string    // its /run: configuration, vici socket, logs
	Cmd    *exec.Cmd // the process (tests stop and continue it for DPD)
	exited chan struct{}
}

// Start writes conf and swanctl into dir, starts charon in ns with dir
// bound on /run, waits for its vici socket and loads swanctl. The process
// is stopped when the test ends, before ns is deleted (call Start after
// creating the namespaces), and its log is shown if the test failed.
func Start(t *testing.T, ns *netnstest.NS, dir, conf, swanctl string) *Charon {
	t.Helper()
	c := &Charon{t: t, Dir: dir, exited: make(chan struct{})}
	for n, s := range map[string]string{"strongswan.conf": conf, "swanctl.conf": swanctl,
		"client.conf": "swanctl {\n    load = random openssl pem pkcs1 x509 pubkey\n}\n"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(dir, 0o755)
	cmd := ns.Command("sh", "-c", `mount --bind "$0" /run && exec /usr/lib/ipsec/charon`, dir)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF=/run/strongswan.conf")
	logf, _ := os.Create(filepath.Join(dir, "stdout.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting charon: %v", err)
	}
	c.Cmd = cmd
	go func() { cmd.Wait(); logf.Close(); close(c.exited) }()
	t.Cleanup(c.Close)
	c.WaitFor("charon's vici socket", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "charon.vici"))
		return err == nil
	})
	c.Swanctl("--load-all", "--file", filepath.Join(dir, "swanctl.conf"))
	return c
}

// Close ends charon (SIGINT, then SIGKILL after 5 s).
func (c *Charon) Close() {
	if c.Cmd == nil || c.Cmd.Process == nil {
		return
	}
	c.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		c.Cmd.Process.Kill()
		<-c.exited
	}
	if c.t.Failed() {
		c.t.Logf("charon.log:\n%s", c.Log())
	}
}

// Log returns charon's log so far.
func (c *Charon) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "charon.log"))
	return string(b)
}

// WaitFor polls ok until it holds, failing the test after d or if charon
// exits meanwhile.
func (c *Charon) WaitFor(what string, d time.Duration, ok func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		select {
		case <-c.exited:
			b, _ := os.ReadFile(filepath.Join(c.Dir, "stdout.log"))
			c.t.Fatalf("charon exited while waiting for %s: %s", what, b)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Swanctl runs swanctl against this charon and returns its output.
func (c *Charon) Swanctl(args ...string) string {
	c.t.Helper()
	args = append(args, "--uri", "unix://"+filepath.Join(c.Dir, "charon.vici"))
	cmd := exec.Command("swanctl", args...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(c.Dir, "client.conf"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("swanctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Child is one Child SA as swanctl --list-sas shows it.
type Child struct {
	State   string
	In, Out uint32
}

var (
	childRE = regexp.MustCompile(`^\s+\S+: #\d+, reqid \d+, (\w+),`)
	spiRE   = regexp.MustCompile(`^\s+(in|out)\s+([0-9a-f]{8})`)
)

// SAs returns the Child SAs swanctl --list-sas shows and its whole output.
func (c *Charon) SAs() ([]Child, string) {
	s := c.Swanctl("--list-sas")
	var children []Child
	for _, line := range strings.Split(s, "\n") {
		if m := childRE.FindStringSubmatch(line); m != nil {
			children = append(children, Child{State: m[1]})
			continue
		}
		if m := spiRE.FindStringSubmatch(line); m != nil && len(children) > 0 {
			var v uint32
			fmt.Sscanf(m[2], "%x", &v)
			if m[1] == "in" {
				children[len(children)-1].In = v
			} else {
				children[len(children)-1].Out = v
			}
		}
	}
	return children, s
}
