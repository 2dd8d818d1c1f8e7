// Package layout checks the shape of the module (DESIGN §5): which
// package may import which, how long a hand-written file may grow, and
// that the IKE engines hold no near-copy of each other's code
// (nearcopy_test.go). It reads the import graph from `go list`, so it
// checks what the compiler sees, tests included.
package layout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/cgw-project/cgw"

type pkg struct {
	ImportPath   string
	Dir          string
	Deps         []string // transitive, non-test
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func loadPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json", module+"/...")
	cmd.Dir = root(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var ps []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if len(ps) < 20 {
		t.Fatalf("go list found only %d packages", len(ps))
	}
	return ps
}

func root(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d, "go.mod")); err != nil {
		t.Fatalf("module root not at %s: %v", d, err)
	}
	return d
}

func rel(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, module), "/") }

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// engine reports whether p is one of the IKE engines (their codecs
// included: wire is whether p is one).
func engine(p string) (is, wire bool) {
	for _, e := range []string{"control/ikev1", "control/ikev2"} {
		if under(p, e) {
			return true, under(p, e+"/message")
		}
	}
	return false, false
}

// rule says whether package from may import package to (both relative to
// the module; direct: imports it itself, not through another package;
// test: only its tests do); a non-empty answer is why not.
func rule(from, to string, direct, test bool) string {
	fromEngine, fromWire := engine(from)
	toEngine, toWire := engine(to)
	switch {
	case under(from, "dataplane") && under(to, "control"):
		return "the dataplane never imports the control plane: share through bpf/maps, config or crypto"
	case under(from, "control") && under(to, "dataplane"):
		return "the control plane never imports the dataplane: share through bpf/maps, config or crypto"
	case under(from, "control/ikev1") && under(to, "control/ikev2"),
		under(from, "control/ikev2") && under(to, "control/ikev1"):
		return "the IKE engines never import each other: what they share lives in control/ike"
	case under(from, "control/ike") && toEngine && !test:
		return "control/ike is what both IKE versions share: it knows neither engine nor wire format (its tests may drive both)"
	case fromWire && under(to, "control"):
		return "an IKE codec only parses and builds messages: it stands on crypto, never on an engine or control/ike"
	case direct && toEngine && !toWire && !fromEngine && from != "control/daemon" &&
		!(test && under(from, "control/ike")) && !under(from, "bench") && !under(from, "cmd"):
		return "only control/daemon runs the IKE engines, through ike.Engine: put what others need in control/ike"
	case (under(from, "bpf") || from == "config" || under(from, "config") || under(from, "crypto")) &&
		(under(to, "control") || under(to, "dataplane") || under(to, "bench") || under(to, "cmd")):
		return "the floor (bpf, config, crypto) stands on nothing above it"
	case under(to, "bench") && !under(from, "bench") && from != "cmd/cgw-lab" && from != "cmd/cgw-pktgen":
		return "product code and its tests do not import bench/: move the fixture beside the code it serves (internal/…, …test)"
	case direct && to == "bpf" && !under(from, "bpf") && !under(from, "dataplane/gateway") && from != "cmd/cgw-dataplane" && !under(from, "bench"):
		return "the contract's types, writer and reader are in bpf/maps; only the dataplane loads and attaches programs from bpf"
	}
	return ""
}

func TestImportRules(t *testing.T) {
	var bad []string
	for _, p := range loadPackages(t) {
		from := rel(p.ImportPath)
		seen := map[string]bool{}
		check := func(kind string, imps []string, direct, test bool) {
			for _, imp := range imps {
				if !strings.HasPrefix(imp, module+"/") && imp != module {
					continue
				}
				to := rel(imp)
				if to == from || seen[kind+to] {
					continue
				}
				seen[kind+to] = true
				if why := rule(from, to, direct, test); why != "" {
					bad = append(bad, fmt.Sprintf("%s %s %s: %s", from, kind, to, why))
				}
			}
		}
		check("imports", p.Imports, true, false)
		check("test imports", append(append([]string{}, p.TestImports...), p.XTestImports...), true, true)
		check("depends on", p.Deps, false, false)
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// TestRuleCatches makes sure the rules fire: a rule that cannot fail
// checks nothing.
func TestRuleCatches(t *testing.T) {
	for _, c := range [][2]string{
		{"dataplane/worker", "control/daemon"},
		{"control/daemon", "dataplane/tables"},
		{"control/ikev1", "control/ikev2/message"},
		{"control/ikev2", "control/ikev1"},
		{"config", "control/rib"},
		{"bpf/maps", "dataplane/tables"},
		{"control/ikev2", "bench/lab"},
		{"dataplane/esp", "bench/pktgen"},
		{"control/daemon", "bpf"},
		{"control/ike", "control/ikev2/message"},
		{"control/ike/iketest", "control/ikev1"},
		{"control/ikev1/message", "control/ike"},
		{"control/ikev2/message", "control/ikev1/message"},
		{"control/metrics", "control/ikev2"},
		{"control/status", "control/ikev1"},
	} {
		if rule(c[0], c[1], true, false) == "" {
			t.Errorf("%s importing %s is allowed; the rules say it must not be", c[0], c[1])
		}
	}
	for _, c := range [][2]string{
		{"dataplane/worker", "bpf/maps"},
		{"control/daemon", "config"},
		{"control/ikev1", "control/ike"},
		{"bench/lab", "control/daemon"},
		{"cmd/cgw-pktgen", "bench/pktgen"},
		{"bpf/maps", "bpf"},
		{"control/ikev2", "control/ike"},
		{"control/ikev1/message", "crypto/prf"},
		{"control/daemon", "control/ikev1"},
		{"control/metrics", "control/ikev2/message"},
		{"bench/adversary", "control/ikev1/message"},
		{"cmd/cgw-control", "control/daemon"},
	} {
		if why := rule(c[0], c[1], true, false); why != "" {
			t.Errorf("%s importing %s is refused (%s); it is allowed", c[0], c[1], why)
		}
	}
	// control/ike's tests show both engines under the one Engine.
	if why := rule("control/ike", "control/ikev1", true, true); why != "" {
		t.Errorf("control/ike's tests importing control/ikev1 is refused (%s); it is allowed", why)
	}
}

// maxLines is how long a hand-written Go file may grow before it should
// be split by the order a packet or an exchange goes through it.
const maxLines = 600

// strictDirs may hold no file over maxLines at all.
var strictDirs = []string{"dataplane", "control/ike", "control/ikev1", "control/ikev2"}

// TestFileSizes lists hand-written files over maxLines and fails for any
// under strictDirs.
func TestFileSizes(t *testing.T) {
	r := root(t)
	var long []string
	err := filepath.WalkDir(r, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if strings.HasPrefix(name, ".") || name == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		n, generated, err := countLines(path)
		if err != nil || generated || n <= maxLines {
			return err
		}
		relPath, _ := filepath.Rel(r, path)
		long = append(long, fmt.Sprintf("%5d %s", n, relPath))
		for _, s := range strictDirs {
			if under(filepath.ToSlash(filepath.Dir(relPath)), s) {
				t.Errorf("%s has %d lines: split it (at most %d in %s/)", relPath, n, maxLines, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(long)))
	t.Logf("hand-written Go files over %d lines:\n%s", maxLines, strings.Join(long, "\n"))
}

func countLines(path string) (n int, generated bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
		// The marker `go generate` tools write (go.dev/s/generatedcode).
		if l := sc.Text(); strings.HasPrefix(l, "// Code generated ") && strings.HasSuffix(l, " DO NOT EDIT.") {
			generated = true
		}
	}
	return n, generated, sc.Err()
}
