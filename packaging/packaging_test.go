// Package packaging holds the systemd units (systemd/) and the man pages
// (man/), and checks what make install and make deb produce:
// systemd-analyze verify accepts the units as installed, the Debian
// package has the documented layout with /etc/cgw/cgw.yaml as a conffile,
// and the man pages match the binaries' flags and commands (man_test.go).
package packaging

import (
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/internal/prereq"
)

func need(t *testing.T, cmds ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds every binary and runs make: run without -short")
	}
	if err := prereq.Join(prereq.Commands(append([]string{"make"}, cmds...)...)); err != nil {
		t.Fatal(err)
	}
}

// makeTarget runs make in the module root with vars, building into a
// temporary bin directory so the developer's bin/ is left alone.
func makeTarget(t *testing.T, target string, vars ...string) {
	t.Helper()
	args := append([]string{"-C", "..", target, "BIN=" + filepath.Join(t.TempDir(), "bin")}, vars...)
	out, err := exec.Command("make", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestUnitsVerify installs into a temporary prefix (so ExecStart names
// binaries that exist) and fails on anything systemd-analyze verify says
// about our units.
func TestUnitsVerify(t *testing.T) {
	need(t, "systemd-analyze")
	root := t.TempDir()
	makeTarget(t, "install", "PREFIX="+root, "SYSCONFDIR="+filepath.Join(root, "etc"))
	units, _ := filepath.Glob(filepath.Join(root, "lib/systemd/system/*.service"))
	if len(units) != 3 {
		t.Fatalf("installed units: %v; want cgw-control.service, cgw-dataplane.service and cgw-guards.service", units)
	}
	cmd := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, units...)...)
	out, err := cmd.CombinedOutput()
	t.Logf("systemd-analyze verify %s:\n%s", strings.Join(units, " "), out)
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, u := range units {
		b, _ := os.ReadFile(u)
		if !strings.Contains(string(b), "ExecStart="+filepath.Join(root, "bin")+"/cgw-") ||
			// cgw-guards.service reads no configuration, only the state files.
			!strings.Contains(string(b), "-config "+filepath.Join(root, "etc/cgw/cgw.yaml")) && filepath.Base(u) != "cgw-guards.service" {
			t.Errorf("%s: ExecStart not rewritten to the install prefix:\n%s", u, b)
		}
	}
}

// TestUnitsPolicy keeps the properties the service depends on.
func TestUnitsPolicy(t *testing.T) {
	for unit, wants := range map[string][]string{
		"systemd/cgw-dataplane.service": {"Type=notify", "Restart=on-failure", "RuntimeDirectory=cgw", "RuntimeDirectoryPreserve=yes",
			"ProtectSystem=strict", "ReadWritePaths=/sys/fs/bpf/cgw", "NoNewPrivileges=yes", "LimitCORE=0",
			"CAP_NET_ADMIN", "CAP_BPF", "CAP_NET_RAW", "CAP_IPC_LOCK", "Before=cgw-control.service"},
		"systemd/cgw-control.service": {"Type=notify", "Restart=on-failure", "RuntimeDirectory=cgw", "RuntimeDirectoryPreserve=yes",
			"ProtectSystem=strict", "ReadWritePaths=/sys/fs/bpf/cgw", "NoNewPrivileges=yes", "LimitCORE=0",
			"CAP_NET_BIND_SERVICE", "After=network-online.target cgw-dataplane.service cgw-guards.service",
			"Wants=network-online.target cgw-dataplane.service cgw-guards.service", "StateDirectory=cgw"},
		// At early boot, before the network: the guards from the state
		// files cgw-control keeps in its StateDirectory (/var/lib/cgw).
		"systemd/cgw-guards.service": {"Type=oneshot", "RemainAfterExit=yes", "DefaultDependencies=no",
			"RequiresMountsFor=/var/lib/cgw", "Wants=network-pre.target", "Before=network-pre.target",
			"ExecStart=/usr/bin/cgw-control -restore-guards -guard-state /var/lib/cgw", "CapabilityBoundingSet=CAP_NET_ADMIN\n",
			"ProtectSystem=strict", "NoNewPrivileges=yes", "LimitCORE=0"},
	} {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wants {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %q", unit, w)
			}
		}
		if strings.Contains(string(b), "CAP_SYS_ADMIN") {
			t.Errorf("%s grants CAP_SYS_ADMIN; bpffs is mounted by the privileged ExecStartPre", unit)
		}
	}
}

// TestDeb builds the package, unpacks it into a fresh tree and checks the
// layout and the conffiles.
func TestDeb(t *testing.T) {
	need(t, "dpkg-deb")
	out := t.TempDir()
	makeTarget(t, "deb", "OUT="+out)
	debs, _ := filepath.Glob(filepath.Join(out, "cgw_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v", debs)
	}
	root := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, b)
	}
	var got []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			got = append(got, "/"+rel)
		}
		return nil
	})
	sort.Strings(got)
	want := []string{
		"/etc/cgw/cgw.yaml",
		"/usr/bin/cgw-control", "/usr/bin/cgw-dataplane", "/usr/bin/cgwctl",
		"/usr/lib/systemd/system/cgw-control.service", "/usr/lib/systemd/system/cgw-dataplane.service", "/usr/lib/systemd/system/cgw-guards.service",
		"/usr/share/bash-completion/completions/cgwctl",
		"/usr/share/doc/cgw/README.md", "/usr/share/doc/cgw/cgw-example.yaml",
		"/usr/share/man/man8/cgw-control.8.gz", "/usr/share/man/man8/cgw-dataplane.8.gz", "/usr/share/man/man8/cgwctl.8.gz",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("package files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	t.Logf("%s:\n%s", filepath.Base(debs[0]), strings.Join(got, "\n"))
	if st, err := os.Stat(filepath.Join(root, "etc/cgw/cgw.yaml")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("/etc/cgw/cgw.yaml: %v, %v; want mode 0600 (it holds pre-shared keys)", st.Mode(), err)
	}
	for _, p := range manPages {
		if got, err := gunzip(filepath.Join(root, "usr/share/man/man8", p+".8.gz")); err != nil || got != readFile(t, "man/"+p+".8") {
			t.Errorf("/usr/share/man/man8/%s.8.gz is not packaging/man/%s.8 gzipped: %v", p, p, err)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/cgw-dataplane.service"))
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/cgw-dataplane -config /etc/cgw/cgw.yaml") {
		t.Errorf("cgw-dataplane.service ExecStart:\n%s", unit)
	}
	guards, _ := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/cgw-guards.service"))
	if !strings.Contains(string(guards), "ExecStart=/usr/bin/cgw-control -restore-guards -guard-state /var/lib/cgw\n") {
		t.Errorf("cgw-guards.service ExecStart:\n%s", guards)
	}
	ctrl := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-e", debs[0], ctrl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, b)
	}
	conf, _ := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if strings.TrimSpace(string(conf)) != "/etc/cgw/cgw.yaml" {
		t.Errorf("conffiles: %q; want /etc/cgw/cgw.yaml", conf)
	}
	v, err := exec.Command(filepath.Join(root, "usr/bin/cgwctl"), "-version").Output()
	if err != nil || !strings.HasPrefix(string(v), "cgwctl version v") || strings.Contains(string(v), "commit unknown") {
		t.Errorf("packaged cgwctl -version: %q, %v", v, err)
	}
}

func gunzip(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(z)
	return string(b), err
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
