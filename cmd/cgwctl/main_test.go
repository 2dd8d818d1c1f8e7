package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/config"
)

const (
	bgpXML    = "../../testdata/aws/vpn-bgp.xml"
	staticXML = "../../testdata/aws/vpn-static.xml"
	example   = "../../testdata/cgw-example.yaml"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{nil, exitUsage, "usage: cgwctl <command>"},
		{[]string{"-h"}, exitOK, "config"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"config"}, exitUsage, "usage: cgwctl config <command>"},
		{[]string{"config", "nope"}, exitUsage, `cgwctl config: unknown command "nope"`},
		{[]string{"config", "check"}, exitUsage, "want exactly one configuration file"},
		{[]string{"config", "check", "a", "b"}, exitUsage, "want exactly one"},
		{[]string{"config", "check", "-x", "a"}, exitUsage, "flag provided but not defined: -x"},
		{[]string{"config", "check", "-h"}, exitOK, "usage: cgwctl config check"},
		{[]string{"config", "import"}, exitUsage, "want one AWS XML file"},
		{[]string{"config", "import", "-name", "x", bgpXML, staticXML}, exitUsage, "-name names one connection"},
		{[]string{"config", "import", "-h"}, exitOK, "-outside-if"},
		{[]string{"config", "import", "-inside-address", "198.18.0.1", bgpXML}, exitUsage, "prefix length"},
		{[]string{"config", "import", "-ike-version", "3", bgpXML}, exitUsage, "-ike-version must be 1 or 2"},
	}
	for _, tc := range cases {
		code, _, stderr := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.err) {
			t.Errorf("cgwctl %v: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.err)
		}
	}
}

func TestCheckExample(t *testing.T) {
	// A private copy: git checks the example out world-readable, which
	// would be a warning (it holds pre-shared keys).
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cgw.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "config", "check", path)
	if code != exitOK || out != "ok: 1 connections, 2 tunnels\n" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestCheckProblems(t *testing.T) {
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "pre_shared_key: Zr4_hT8.wQ1eNc6uJa2s", "pre_shared_key: abcde", 1)
	y = strings.Replace(y, "mtu: 1399 ", "mtu: 9000 ", 1)
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCmd(t, "config", "check", path)
	if code != exitProblem {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"configuration has 2 problems:",
		`connections[0].tunnels[1].pre_shared_key: tunnel vpn-example-t2: pre_shared_key must be 8–64 characters of letters, digits, '.' or '_', not starting with '0' (AWS's rules; AWS's file holds the key) (got a key (not shown))`,
		"connections[0].tunnels[0].mtu: tunnel vpn-example-t1: mtu must be 576–1446 bytes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "abcde") {
		t.Errorf("output shows the key:\n%s", out)
	}

	// A misspelt key and a missing file are load errors.
	if err := os.WriteFile(path, []byte("gateway:\n  nmae: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd(t, "config", "check", path)
	if code != exitProblem || !strings.Contains(errOut, `line 2: unknown key "nmae" in gateway`) {
		t.Errorf("unknown key: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCmd(t, "config", "check", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != exitProblem || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}
}

// import → check: with the flags supplying what AWS's file lacks, the
// result passes; without them, check names exactly what to fill in.
func TestImportThenCheck(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "cgw.yaml")
	code, stdout, stderr := runCmd(t, "config", "import", "--outside-if", "eth0", "--inside-if", "eth1",
		"--inside-address", "198.18.0.1/24", "--outside-address", "192.0.2.10/24", "--advertise", "198.18.0.0/24,198.18.1.0/24",
		"--name", "dc1", "--gateway-name", "edge", bgpXML, "-o", out, "--ike-version", "2")
	if code != exitOK || stdout != "" || stderr != "" {
		t.Fatalf("import: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("output mode %v, want 0600 (it holds PSKs)", st.Mode().Perm())
	}
	// AWS's file asks for SHA1 and group 5 (kept, as written), and the
	// check says what to use instead.
	code, stdout, _ = runCmd(t, "config", "check", out)
	if code != exitOK || !strings.HasSuffix(stdout, "ok: 1 connections, 2 tunnels, 2 warning(s): valid, but weaker than it should be on a gateway that talks to AWS\n") ||
		!strings.Contains(stdout, "warning: connections[0].tunnels[0].phase2.integrity[0]: tunnel dc1-t1: phase2 offers SHA1") ||
		!strings.Contains(stdout, "use SHA2-256 or SHA2-384") ||
		!strings.Contains(stdout, "warning: connections[0].tunnels[1].phase2.dh_groups: tunnel dc1-t2: phase2 offers weak DH groups: group 5 (MODP-1536)") ||
		!strings.Contains(stdout, "use 20 (ECP-384), 19 (ECP-256) or 14 (MODP-2048)") {
		t.Fatalf("check: exit %d, %q", code, stdout)
	}
	c, err := config.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	cn := c.Connections[0]
	if c.Gateway.Name != "edge" || cn.Name != "dc1" || cn.Tunnels[0].IKEVersion != 2 ||
		strings.Join(cn.BGP.Advertise, ",") != "198.18.0.0/24,198.18.1.0/24" || cn.Tunnels[1].PreSharedKey != "Zr4_hT8.wQ1eNc6uJa2s" {
		t.Errorf("imported config: %+v", c)
	}

	// To stdout, without the flags: YAML out, the gaps listed on stderr.
	code, stdout, stderr = runCmd(t, "config", "import", staticXML)
	if code != exitOK || !strings.Contains(stdout, "routing: static") || !strings.Contains(stdout, "# TODO") {
		t.Fatalf("import to stdout: exit %d\n%s", code, stdout)
	}
	for _, want := range []string{"4 setting(s) still to fill in", "gateway.outside.interface", "connections[0].static_routes"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	path := filepath.Join(dir, "static.yaml")
	if err := os.WriteFile(path, []byte(stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = runCmd(t, "config", "check", path)
	if code != exitProblem || strings.Count(stdout, "\n  ") != 4 {
		t.Errorf("check of unfinished import: exit %d\n%s", code, stdout)
	}
}

func TestImportErrors(t *testing.T) {
	code, _, stderr := runCmd(t, "config", "import", example)
	if code != exitProblem || !strings.Contains(stderr, "not an AWS VPN connection configuration") {
		t.Errorf("YAML as XML: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCmd(t, "config", "import", "/nonexistent.xml")
	if code != exitProblem || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCmd(t, "config", "import", "-o", "/nonexistent/dir/x.yaml", bgpXML)
	if code != exitProblem || !strings.Contains(stderr, "no such file") {
		t.Errorf("unwritable output: exit %d, %q", code, stderr)
	}
}

// CloudHub: several AWS files make one gateway configuration.
func TestImportSeveral(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hub.yaml")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, "config", "import", "-outside-if", "eth0", "-inside-if", "eth1", "-inside-address", "198.18.0.1/24",
		"-advertise", "198.18.0.0/24", "-static-routes", "10.20.0.0/16", "-o", out, bgpXML, staticXML)
	if code != exitOK || stderr != "" {
		t.Fatalf("import: exit %d, stderr %q", code, stderr)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("existing output file not made private: %v %v", st.Mode(), err)
	}
	code, stdout, _ := runCmd(t, "config", "check", out)
	if code != exitOK || !strings.HasSuffix(stdout, "ok: 2 connections, 4 tunnels, 6 warning(s): valid, but weaker than it should be on a gateway that talks to AWS\n") {
		t.Fatalf("check: exit %d, %q", code, stdout)
	}
	c, err := config.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Connections[0].Routing != config.RoutingBGP || c.Connections[1].Routing != config.RoutingStatic ||
		c.Connections[1].Tunnels[0].LocalOutside.String() != "192.0.2.20" || c.Gateway.Outside.Address.String() != "192.0.2.10/32" {
		t.Errorf("merged: %+v", c)
	}
}

// gateway.testing passes the check but is listed as a warning.
func TestCheckTestingWarns(t *testing.T) {
	c, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	c.Gateway.Testing.ShortLifetimes = true
	b, err := config.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCmd(t, "config", "check", path)
	if code != exitOK || !strings.Contains(out, "warning: gateway.testing.short_lifetimes: FOR LABS AND TESTS ONLY") ||
		!strings.Contains(out, "ok: 1 connections, 2 tunnels, 1 warning(s)") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// A GoBGP API beyond loopback without mutual TLS fails the check, which
// says why; on loopback it is a warning.
func TestCheckGoBGPAPI(t *testing.T) {
	c, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	check := func(api string) (int, string) {
		c.Gateway.Observability.GoBGPAPI = api
		b, err := config.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "cgw.yaml")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runCmd(t, "config", "check", path)
		return code, out
	}
	if code, out := check("0.0.0.0:50051"); code != exitProblem || !strings.Contains(out, "gateway.observability.gobgp_api") ||
		!strings.Contains(out, "can add routes") || !strings.Contains(out, "mutual TLS") {
		t.Errorf("exposed API: exit %d:\n%s", code, out)
	}
	if code, out := check("127.0.0.1:50051"); code != exitOK || !strings.Contains(out, "warning: gateway.observability.gobgp_api") ||
		!strings.Contains(out, "any local user") {
		t.Errorf("loopback API: exit %d:\n%s", code, out)
	}
	if code, out := check("unix:///run/cgw/cgw/gobgp.sock"); code != exitOK || strings.Contains(out, "warning") {
		t.Errorf("unix socket API: exit %d:\n%s", code, out)
	}
}

// A configuration others can read while it holds pre-shared keys passes
// the check with a warning that says how to fix it.
func TestCheckWorldReadable(t *testing.T) {
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cgw.yaml")
	for _, mode := range []os.FileMode{0o644, 0o640, 0o600} {
		if err := os.WriteFile(path, b, 0o600); err != nil || os.Chmod(path, mode) != nil {
			t.Fatal(err)
		}
		code, out, _ := runCmd(t, "config", "check", path)
		warned := strings.Contains(out, "holds pre-shared keys and other users can read it") && strings.Contains(out, "chmod 600 "+path)
		if code != exitOK || warned != (mode != 0o600) {
			t.Errorf("mode %04o: exit %d, warned %v:\n%s", mode, code, warned, out)
		}
	}
}
