package b2b

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cgw-project/cgw/bench/procstat"
	"github.com/cgw-project/cgw/internal/prereq"
)

// StrongSwan is the baseline of the back-to-back comparison: strongSwan
// charon with kernel-libipsec (userspace ESP over a TUN, the lab's AWS
// stand-in; this kernel has no ESP) in both sites instead of cgw, the same
// namespaces, addresses and SA algorithm (AES-GCM-16/128). libipsec always
// encapsulates in UDP 4500. The sites' kernels forward (ip_forward=1) and
// route the far LAN into ipsec0.
type StrongSwan struct {
	pids [2]int // charon of A, of B
	dirs [2]string
}

// swanPlugins is charon's plugin list: kernel-libipsec before
// kernel-netlink (DESIGN §4).
const swanPlugins = "random nonce openssl aes sha1 sha2 hmac gcm kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici"

// StartStrongSwan starts charon in both sites (B responder, A initiator)
// and waits for the Child SA. Stop ends both by pid; Down also does.
func (t *Topology) StartStrongSwan(ctx context.Context) (*StrongSwan, error) {
	if miss := prereq.Commands("swanctl", prereq.Charon, "/dev/net/tun"); len(miss) > 0 {
		return nil, fmt.Errorf("b2b: strongSwan baseline: %s", strings.Join(miss, ", "))
	}
	if err := prereq.CharonPlugins(strings.Fields(swanPlugins)...); err != nil {
		return nil, fmt.Errorf("b2b: strongSwan baseline: %w", err)
	}
	sw := &StrongSwan{}
	for i, s := range []*Site{t.B, t.A} { // the responder first
		k := 1 - i // index: A 0, B 1
		dir := filepath.Join(t.Dir, "charon-"+s.Name)
		sw.dirs[k] = dir
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return sw, err
		}
		start := "none"
		if s == t.A {
			start = "start"
		}
		files := map[string]string{
			"strongswan.conf": `charon {
    load = ` + swanPlugins + `
    install_routes = no
    install_virtual_ip = no
    filelog {
        log {
            path = /run/charon.log
            default = 1
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
`,
			"swanctl.conf": fmt.Sprintf(`connections {
    b2b {
        version = 2
        local_addrs = %s
        remote_addrs = %s
        proposals = aes128-sha256-modp2048
        local {
            auth = psk
            id = %s
        }
        remote {
            auth = psk
            id = %s
        }
        children {
            net {
                local_ts = %s
                remote_ts = %s
                esp_proposals = aes128gcm16
                start_action = %s
            }
        }
    }
}
secrets {
    ike-b2b {
        id-a = %s
        id-b = %s
        secret = "cgw.b2b.baseline_key"
    }
}
`, s.Outside, s.Peer, s.Outside, s.Peer, s.Local, s.Remote, start, AOutside, BOutside),
			"client.conf": "swanctl {\n    load = random openssl pem pkcs1 x509 pubkey\n}\n",
		}
		for n, c := range files {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o600); err != nil {
				return sw, err
			}
		}
		for _, c := range [][]string{{"sysctl", "-qw", "net.ipv4.ip_forward=1"}} {
			if _, err := t.Exec(ctx, s.Role, c...); err != nil {
				return sw, err
			}
		}
		// ip netns exec gives a private mount namespace: /run is charon's.
		cmd := exec.Command("ip", "netns", "exec", s.NS, "sh", "-c", `mount --bind "$0" /run && exec `+prereq.Charon, dir)
		cmd.Env = append(os.Environ(), "STRONGSWAN_CONF=/run/strongswan.conf")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return sw, fmt.Errorf("b2b: starting charon in %s: %w", s.NS, err)
		}
		go cmd.Wait()
		sw.pids[k] = cmd.Process.Pid
		if st, err := procstat.Read(cmd.Process.Pid); err == nil {
			t.record("proc", fmt.Sprintf("%d %d", cmd.Process.Pid, st.Start))
		}
		if err := waitUntil(ctx, 10*time.Second, func() bool { _, err := os.Stat(filepath.Join(dir, "charon.vici")); return err == nil }); err != nil {
			return sw, fmt.Errorf("b2b: charon in %s made no vici socket: %s", s.NS, sw.log(k))
		}
		if out, err := sw.swanctl(ctx, k, "--load-all", "--file", filepath.Join(dir, "swanctl.conf")); err != nil {
			return sw, fmt.Errorf("b2b: swanctl --load-all in %s: %v: %s", s.NS, err, out)
		}
	}
	if err := waitUntil(ctx, 20*time.Second, func() bool {
		out, _ := sw.swanctl(ctx, 0, "--list-sas")
		return strings.Contains(out, "INSTALLED")
	}); err != nil {
		return sw, fmt.Errorf("b2b: the strongSwan Child SA did not come up in 20 s; A's log:\n%s", sw.log(0))
	}
	for _, s := range []*Site{t.A, t.B} {
		if err := waitUntil(ctx, 5*time.Second, func() bool { _, err := t.Exec(ctx, s.Role, "ip", "link", "show", "ipsec0"); return err == nil }); err != nil {
			return sw, fmt.Errorf("b2b: no ipsec0 in %s", s.NS)
		}
		if _, err := t.Exec(ctx, s.Role, "ip", "route", "replace", s.Remote.String(), "dev", "ipsec0"); err != nil {
			return sw, err
		}
	}
	return sw, nil
}

// PIDs are the two charons' (A, B), for their CPU time.
func (sw *StrongSwan) PIDs() []int { return []int{sw.pids[0], sw.pids[1]} }

// Stop ends both charons by pid.
func (sw *StrongSwan) Stop() {
	for _, p := range sw.pids {
		if p > 0 {
			syscall.Kill(p, syscall.SIGINT)
		}
	}
	for _, p := range sw.pids {
		for i := 0; i < 100 && p > 0 && procstat.Alive(p, 0); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if p > 0 && procstat.Alive(p, 0) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

func (sw *StrongSwan) swanctl(ctx context.Context, k int, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "swanctl", append(args, "--uri", "unix://"+filepath.Join(sw.dirs[k], "charon.vici"))...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(sw.dirs[k], "client.conf"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (sw *StrongSwan) log(k int) string {
	b, _ := os.ReadFile(filepath.Join(sw.dirs[k], "charon.log"))
	return string(b)
}

func waitUntil(ctx context.Context, d time.Duration, ok func() bool) error {
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		if ok() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %v", d)
}
