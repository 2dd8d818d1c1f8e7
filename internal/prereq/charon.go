package prereq

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// pluginPackages says which Debian 12 package holds each charon plugin the
// project loads. A fresh machine with only strongswan-charon lacks openssl
// and gcm (libstrongswan-standard-plugins): charon then starts, but refuses
// MODP-2048 and AES-GCM, and tunnels never come up (issue #10).
var pluginPackages = map[string]string{
	"random": "libstrongswan", "nonce": "libstrongswan", "aes": "libstrongswan",
	"sha1": "libstrongswan", "sha2": "libstrongswan", "hmac": "libstrongswan",
	"kdf": "libstrongswan", "pem": "libstrongswan", "pkcs1": "libstrongswan",
	"x509": "libstrongswan", "pubkey": "libstrongswan", "md5": "libstrongswan",
	"kernel-netlink":  "libstrongswan",
	"openssl":         "libstrongswan-standard-plugins",
	"gcm":             "libstrongswan-standard-plugins",
	"curve25519":      "libstrongswan-extra-plugins",
	"kernel-libipsec": "libcharon-extra-plugins (its TUN device also needs /dev/net/tun: modprobe tun)",
	"socket-default":  "strongswan-libcharon",
	"vici":            "strongswan-swanctl",
}

// PluginPackage is the Debian package that provides charon plugin name.
func PluginPackage(name string) string {
	if p, ok := pluginPackages[name]; ok {
		return p
	}
	return "the strongSwan plugin package that holds libstrongswan-" + name + ".so"
}

// MissingPlugins compares the plugins charon was asked to load with the
// "loaded plugins:" line of its log and names, for each one that did not
// load, the Debian package to install.
func MissingPlugins(want []string, log string) error {
	failed := map[string]bool{}
	for _, m := range failedRE.FindAllStringSubmatch(log, -1) {
		failed[m[1]] = true
	}
	line, ok := loadedLine(log)
	if !ok && len(failed) == 0 {
		return fmt.Errorf("charon logged no \"loaded plugins:\" line; its log:\n%s", strings.TrimSpace(log))
	}
	loaded := map[string]bool{}
	for _, p := range strings.Fields(line) {
		loaded[p] = true
	}
	var miss []string
	for _, p := range want {
		// Without the line (charon gave up: a critical feature's plugin is
		// missing) only the plugins it said failed are known to be missing.
		if ok && !loaded[p] || !ok && failed[p] {
			miss = append(miss, fmt.Sprintf("plugin %s (Debian package %s)", p, PluginPackage(p)))
		}
	}
	switch {
	case len(miss) > 0:
		return fmt.Errorf("charon did not load %s", strings.Join(miss, ", "))
	case !ok:
		return fmt.Errorf("charon gave up before loading its plugins; its log:\n%s", strings.TrimSpace(log))
	}
	return nil
}

var failedRE = regexp.MustCompile(`plugin '([^']+)': failed to load`)

func loadedLine(log string) (string, bool) {
	for _, l := range strings.Split(log, "\n") {
		if i := strings.Index(l, "loaded plugins: "); i >= 0 {
			return l[i+len("loaded plugins: "):], true
		}
	}
	return "", false
}

// probeConf is a strongswan.conf that loads plugins and logs what loaded,
// with every path in the private /run the probe binds.
func probeConf(plugins []string) string {
	return `charon {
    load = ` + strings.Join(plugins, " ") + `
    syslog {
        daemon {
            default = -1
        }
    }
    filelog {
        probe {
            path = /run/charon.log
            default = 1
            flush_line = yes
        }
    }
    plugins {
        vici {
            socket = unix:///run/charon.vici
        }
    }
}
`
}

var (
	probeMu    sync.Mutex
	probeCache = map[string]error{}
)

// CharonPlugins starts charon once with plugins as its explicit load list,
// in fresh mount and network namespaces (its own /run, no effect on the
// host or other charons), reads its "loaded plugins:" line and stops it.
// The error names the Debian package of each plugin that did not load.
// Results are cached per plugin list for the life of the process.
func CharonPlugins(plugins ...string) error {
	key := strings.Join(plugins, " ")
	probeMu.Lock()
	defer probeMu.Unlock()
	if err, ok := probeCache[key]; ok {
		return err
	}
	err := probeCharon(Charon, plugins)
	probeCache[key] = err
	return err
}

// probeCharon runs the charon at path (a fake one in tests).
func probeCharon(path string, plugins []string) error {
	if miss := Commands(path, "unshare"); len(miss) > 0 {
		return Join(miss)
	}
	if r := Root("charon's probe runs it in its own namespaces"); r != "" {
		return fmt.Errorf("%s", r)
	}
	dir, err := os.MkdirTemp("", "cgw-charon-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(probeConf(plugins)), 0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// unshare execs sh, sh execs charon: the pid is charon's.
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--net", "sh", "-c", `mount --bind "$0" /run && exec "$1"`, dir, path)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF=/run/strongswan.conf")
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting charon's probe: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	logPath := filepath.Join(dir, "charon.log")
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			log := readLog()
			if _, ok := loadedLine(log); ok || failedRE.MatchString(log) {
				return MissingPlugins(plugins, log)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
			return fmt.Errorf("charon (%s) exited before loading its plugins: %v\n%s%s", path, err, b, readLog())
		case <-tick.C:
			if _, ok := loadedLine(readLog()); !ok {
				continue
			}
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
			return MissingPlugins(plugins, readLog())
		}
	}
}
