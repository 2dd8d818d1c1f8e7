// Package prereq checks, by what each can do rather than by package
// presence, the outside programs the lab and the end-to-end tests use:
// commands on PATH, the plugins charon actually loads under our
// strongswan.conf, BIRD's major version, scapy importable by Debian's
// python3. Every problem names the Debian package (or step) that fixes it,
// and scripts/install-deps.sh installs each package named here (a test
// keeps the two in step).
//
// It is the one place such checks live: internal/netnstest and
// internal/charontest (tests) and bench/lab (the lab, also from cgw-lab)
// call it. It does not import testing, so commands may use it.
package prereq

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// commands says where each command or file the project runs comes from on
// Debian 12.
var commands = map[string]string{
	"ip":              "Debian package iproute2",
	"ping":            "Debian package iputils-ping",
	"ethtool":         "Debian package ethtool",
	"nsenter":         "Debian package util-linux",
	"unshare":         "Debian package util-linux",
	"setpriv":         "Debian package util-linux",
	"mount":           "Debian package mount",
	"sysctl":          "Debian package procps",
	"iperf3":          "Debian package iperf3",
	"curl":            "Debian package curl",
	"bird":            "Debian package bird2",
	"birdc":           "Debian package bird2",
	"swanctl":         "Debian package strongswan-swanctl",
	"tshark":          "Debian package tshark",
	"tcpdump":         "Debian package tcpdump",
	"nft":             "Debian package nftables",
	"promtool":        "Debian package prometheus",
	"prometheus":      "Debian package prometheus",
	"python3":         "Debian package python3",
	"systemd-analyze": "Debian package systemd",
	"dpkg-deb":        "Debian package dpkg",
	"groff":           "Debian package groff-base",
	"go":              "the Go toolchain on PATH",
	Charon:            "Debian package strongswan-charon",
	"/dev/net/tun":    "load the tun module: modprobe tun",
}

// Charon is the daemon the lab and the interop tests run.
const Charon = "/usr/lib/ipsec/charon"

// Command checks that name is a command on PATH, or, for an absolute
// path, that the file exists; the error says how to get it.
func Command(name string) error {
	var err error
	what := fmt.Sprintf("the %q command", name)
	if filepath.IsAbs(name) {
		_, err = os.Stat(name)
		what = name
	} else {
		_, err = exec.LookPath(name)
	}
	if err == nil {
		return nil
	}
	if fix, ok := commands[name]; ok {
		return fmt.Errorf("%s (%s): %w", what, fix, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Commands checks each name with Command and returns every problem.
func Commands(names ...string) []string {
	var miss []string
	for _, n := range names {
		if err := Command(n); err != nil {
			miss = append(miss, err.Error())
		}
	}
	return miss
}

// Root is the problem of not running as root, or "".
func Root(why string) string {
	if os.Geteuid() == 0 {
		return ""
	}
	return "root (" + why + "); run as root"
}

var birdVersionRE = regexp.MustCompile(`BIRD version (\d+)\.(\d+)`)

// BIRD checks that bird is BIRD 2 or later (the lab's configuration is
// BIRD 2 syntax; Debian's bird package is 1.6).
func BIRD() error {
	if err := Command("bird"); err != nil {
		return err
	}
	out, err := exec.Command("bird", "--version").CombinedOutput()
	if err != nil && len(out) == 0 {
		return fmt.Errorf("bird --version: %v (Debian package bird2)", err)
	}
	return birdVersion(string(out))
}

func birdVersion(out string) error {
	m := birdVersionRE.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("bird --version printed %q, not \"BIRD version 2.x\": install the Debian package bird2", strings.TrimSpace(out))
	}
	if major, _ := strconv.Atoi(m[1]); major < 2 {
		return fmt.Errorf("bird is BIRD %s.%s; the lab needs BIRD 2: install the Debian package bird2 (it replaces bird)", m[1], m[2])
	}
	return nil
}

// Scapy checks that Debian's python3 imports scapy and that its ESP can
// do the suites the cross-check uses: scapy offers AES-GCM, AES-CBC and
// the HMACs only when python3-cryptography is installed (a Recommends of
// python3-scapy, so --no-install-recommends leaves it out and scapy falls
// back to NULL).
func Scapy() error {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		return fmt.Errorf("%s: %v (Debian packages python3 and python3-scapy)", py, err)
	}
	out, err := exec.Command(py, "-c", "import scapy.layers.ipsec").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s cannot import scapy (Debian package python3-scapy): %v: %s", py, err, strings.TrimSpace(string(out)))
	}
	const probe = `from scapy.layers.ipsec import CRYPT_ALGOS as C, AUTH_ALGOS as A
need = ["AES-GCM", "AES-CBC", "HMAC-SHA1-96", "SHA2-256-128", "SHA2-384-192", "SHA2-512-256"]
print(" ".join(n for n in need if n not in C and n not in A))`
	out, err = exec.Command(py, "-c", probe).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: asking scapy for its ESP algorithms: %v: %s", py, err, strings.TrimSpace(string(out)))
	}
	if miss := strings.TrimSpace(string(out)); miss != "" {
		return fmt.Errorf("scapy's ESP lacks %s: install the Debian package python3-cryptography", miss)
	}
	return nil
}

// Join turns a list of problems into one error (nil when empty).
func Join(miss []string) error {
	if len(miss) == 0 {
		return nil
	}
	return errors.New("missing prerequisites: " + strings.Join(miss, "; and "))
}
