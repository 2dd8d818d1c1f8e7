package prereq

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// labPlugins is the lab's charon plugin list (bench/lab's charonPlugins).
var labPlugins = strings.Fields("random nonce openssl aes sha1 sha2 hmac gcm kdf pem pkcs1 x509 pubkey curve25519 kernel-libipsec kernel-netlink socket-default vici")

// A fresh Debian 12 machine with strongswan-charon but not
// libstrongswan-standard-plugins: charon starts without gcm and openssl.
const freshLog = `00[DMN] Starting IKE charon daemon (strongSwan 5.9.8, Linux 6.1.0, x86_64)
00[LIB] plugin 'openssl': failed to load - openssl_plugin_create not found and no plugin file available
00[LIB] plugin 'gcm': failed to load - gcm_plugin_create not found and no plugin file available
00[DMN] loaded plugins: charon random nonce aes sha1 sha2 hmac kdf pem pkcs1 x509 pubkey curve25519 kernel-libipsec kernel-netlink socket-default vici
`

func TestMissingPluginsNamesThePackage(t *testing.T) {
	err := MissingPlugins(labPlugins, freshLog)
	if err == nil {
		t.Fatal("no error for a charon without openssl and gcm")
	}
	for _, want := range []string{"plugin openssl (Debian package libstrongswan-standard-plugins)", "plugin gcm (Debian package libstrongswan-standard-plugins)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	t.Logf("what the checker prints: %v", err)

	all := strings.Replace(freshLog, "plugins: charon random", "plugins: charon random openssl gcm", 1)
	if err := MissingPlugins(labPlugins, all); err != nil {
		t.Errorf("every plugin loaded, yet: %v", err)
	}
}

// Without socket-default charon gives up (a critical feature) and logs no
// "loaded plugins:" line: the failed plugin is still named.
func TestMissingPluginsCharonGaveUp(t *testing.T) {
	log := `00[LIB] plugin 'socket-default': failed to load - socket_default_plugin_create not found and no plugin file available
00[LIB] feature CUSTOM:libcharon-receiver in critical plugin 'charon' has unmet dependency: CUSTOM:socket
00[DMN] initialization failed - aborting charon
`
	err := MissingPlugins(labPlugins, log)
	if err == nil || !strings.Contains(err.Error(), "plugin socket-default (Debian package strongswan-libcharon)") {
		t.Errorf("got %v", err)
	}
	if err := MissingPlugins(labPlugins, "00[DMN] initialization failed\n"); err == nil {
		t.Error("a log without plugins passed")
	}
}

func TestBIRDVersion(t *testing.T) {
	for out, ok := range map[string]bool{
		"BIRD version 2.0.12\n": true,
		"BIRD version 3.0.1\n":  true,
		"BIRD version 1.6.8\n":  false,
		"bird: command garbled": false,
	} {
		err := birdVersion(out)
		if (err == nil) != ok {
			t.Errorf("%q: got %v", out, err)
		}
		if err != nil && !strings.Contains(err.Error(), "bird2") {
			t.Errorf("%q: error %q does not name bird2", out, err)
		}
	}
}

func TestCommandNamesThePackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := Command("tshark")
	if err == nil || !strings.Contains(err.Error(), "Debian package tshark") {
		t.Errorf("got %v", err)
	}
}

// Every package a check names is one scripts/install-deps.sh installs
// (or one Debian always has).
func TestInstallDepsHasEveryPackage(t *testing.T) {
	b, err := os.ReadFile("../../scripts/install-deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	essential := map[string]bool{"util-linux": true, "mount": true, "dpkg": true, "python3": true}
	pkgRE := regexp.MustCompile(`Debian packages? ([a-z0-9][a-z0-9.+-]+)`)
	var named []string
	for _, fix := range commands {
		for _, m := range pkgRE.FindAllStringSubmatch(fix, -1) {
			named = append(named, m[1])
		}
	}
	for _, p := range pluginPackages {
		named = append(named, strings.Fields(p)[0])
	}
	for _, p := range named {
		if essential[p] || p == "libstrongswan" || p == "strongswan-libcharon" {
			// libstrongswan and strongswan-libcharon come with strongswan-charon.
			continue
		}
		if !regexp.MustCompile(`[\s(]` + regexp.QuoteMeta(p) + `[\s)]`).MatchString(script) {
			t.Errorf("a check names the Debian package %s, but scripts/install-deps.sh does not install it", p)
		}
	}
}

// The probe against a fake charon that loads what a fresh machine's does.
func TestProbeFakeCharon(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: needs root and namespaces; run without -short")
	}
	if r := Root("mount namespaces"); r != "" {
		t.Fatal(r)
	}
	fake := filepath.Join(t.TempDir(), "charon")
	script := "#!/bin/sh\ncat > /run/charon.log <<'END'\n" + freshLog + "END\nexec sleep 30\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	err := probeCharon(fake, labPlugins)
	if err == nil || !strings.Contains(err.Error(), "plugin gcm (Debian package libstrongswan-standard-plugins)") {
		t.Fatalf("got %v", err)
	}
	t.Logf("fake fresh-machine charon: %v", err)
}

// The real charon under the lab's plugin list (and a plugin nobody has).
func TestProbeCharon(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: needs root and strongSwan; run without -short")
	}
	if err := CharonPlugins(labPlugins...); err != nil {
		t.Fatal(err)
	}
	err := probeCharon(Charon, append(labPlugins[:len(labPlugins):len(labPlugins)], "nosuch"))
	if err == nil || !strings.Contains(err.Error(), "plugin nosuch") {
		t.Errorf("a plugin that does not exist passed the probe: %v", err)
	}
}
