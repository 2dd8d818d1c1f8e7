package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/internal/prereq"
)

// The man pages (packaging/man, installed gzipped by make install) are
// kept in step with the binaries: every flag a daemon's -h lists is an
// item of its page's OPTIONS, every cgwctl command (as "cgwctl -h" and
// each dispatcher's -h list them) is a .SS of COMMANDS whose items are
// exactly the command's flags, and every page renders without a warning.

var manPages = []string{"cgw-control", "cgw-dataplane", "cgwctl"}

func needTools(t *testing.T, cmds ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs groff and builds the binaries: run without -short")
	}
	if err := prereq.Join(prereq.Commands(cmds...)); err != nil {
		t.Fatal(err)
	}
}

// TestManRender fails on anything groff warns about (all warnings, as
// man --warnings and lintian ask, and more).
func TestManRender(t *testing.T) {
	needTools(t, "groff")
	for _, p := range manPages {
		cmd := exec.Command("groff", "-man", "-k", "-Tutf8", "-ww", "-z", filepath.Join("man", p+".8"))
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff -man -ww man/%s.8: %v\n%s", p, err, out)
		}
	}
}

// TestManFlags compares each page with the -h of the binary built from
// the current tree.
func TestManFlags(t *testing.T) {
	needTools(t, "go")
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/cgw-control", "./cmd/cgw-dataplane", "./cmd/cgwctl")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	help := func(args ...string) string {
		out, _ := exec.Command(filepath.Join(bin, args[0]), args[1:]...).CombinedOutput()
		return string(out)
	}
	for _, d := range []string{"cgw-control", "cgw-dataplane"} {
		page := readPage(t, d)
		out := help(d, "-h")
		if !strings.Contains(out, "See "+d+"(8)") {
			t.Errorf("%s -h does not point to its manual, %s(8):\n%s", d, d, out)
		}
		have := helpFlags(out)
		if len(have) < 5 {
			t.Fatalf("%s -h lists only the flags %q: did its format change?", d, have)
		}
		compareFlags(t, d+".8 OPTIONS", d+" -h", have, page.items["OPTIONS"])
	}

	page := readPage(t, "cgwctl")
	var cmds []string
	var walk func(path []string)
	walk = func(path []string) {
		args := append([]string{"cgwctl"}, path...)
		for _, c := range helpCommands(help(args...)) {
			p := append(slices.Clone(path), c)
			out := help(append(append([]string{"cgwctl"}, p...), "-h")...)
			if strings.Contains(out, "usage: cgwctl "+strings.Join(p, " ")+" <command>") {
				walk(p)
				continue
			}
			name := strings.Join(p, " ")
			cmds = append(cmds, name)
			items, ok := page.items["COMMANDS/"+name]
			if !ok {
				t.Errorf("cgwctl.8 lacks the command %q (cgwctl -h lists it): add .SS \"%s\" under COMMANDS with its flags as .TP items", name, name)
				continue
			}
			compareFlags(t, fmt.Sprintf("cgwctl.8 COMMANDS %q", name), "cgwctl "+name+" -h", helpFlags(out), items)
		}
	}
	walk(nil)
	if len(cmds) < 10 {
		t.Fatalf("found only the commands %q in cgwctl's help: did its format change?", cmds)
	}
	for _, s := range page.subsections["COMMANDS"] {
		if !slices.Contains(cmds, s) {
			t.Errorf("cgwctl.8 documents the command %q, which cgwctl does not have (it has %q)", s, cmds)
		}
	}
	// The top-level options are spelled out as typed: each must work.
	for _, o := range page.tags["OPTIONS"] {
		if code := exec.Command(filepath.Join(bin, "cgwctl"), o).Run(); code != nil {
			t.Errorf("cgwctl.8 OPTIONS documents %s, but cgwctl %s: %v", o, o, code)
		}
	}
}

func compareFlags(t *testing.T, where, help string, have, documented []string) {
	t.Helper()
	for _, f := range have {
		if !slices.Contains(documented, f) {
			t.Errorf("%s lacks \\-%s (%s lists -%s): document it as a .TP item", where, strings.ReplaceAll(f, "-", "\\-"), help, f)
		}
	}
	for _, f := range documented {
		if !slices.Contains(have, f) {
			t.Errorf("%s documents -%s, which %s does not list", where, f, help)
		}
	}
}

// helpFlag matches a flag line of the flag package's PrintDefaults (as
// internal/cli's completion reads it).
var helpFlag = regexp.MustCompile(`(?m)^  -([a-zA-Z0-9][-a-zA-Z0-9]*)`)

func helpFlags(out string) []string {
	var fl []string
	for _, m := range helpFlag.FindAllStringSubmatch(out, -1) {
		fl = append(fl, m[1])
	}
	return fl
}

// helpCommands reads the command list of internal/cli's usage.
func helpCommands(out string) []string {
	_, list, ok := strings.Cut(out, "\ncommands:\n")
	if !ok {
		return nil
	}
	var cmds []string
	for _, l := range strings.Split(list, "\n") {
		if !strings.HasPrefix(l, "  ") {
			break
		}
		cmds = append(cmds, strings.Fields(l)[0])
	}
	return cmds
}

// page is what the test reads of a man page: per section ("OPTIONS") and
// subsection ("COMMANDS/config import"), the flags named in the tags of
// its .TP/.TQ items (without the dash), the tags' options as typed
// ("-h", "--help"), and the subsection titles of each section.
type page struct {
	items       map[string][]string
	tags        map[string][]string
	subsections map[string][]string
}

var (
	// roffOption is an option in a tag line: \-name or \-\-name.
	roffOption = regexp.MustCompile(`((?:\\-)+)([A-Za-z0-9](?:[A-Za-z0-9]|\\-)*)`)
	roffFont   = regexp.MustCompile(`\\f[BIRP]`)
)

func plain(s string) string {
	s = strings.Trim(s, "\" ")
	return strings.ReplaceAll(roffFont.ReplaceAllString(s, ""), `\-`, "-")
}

func readPage(t *testing.T, name string) page {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("man", name+".8"))
	if err != nil {
		t.Fatal(err)
	}
	p := page{items: map[string][]string{}, tags: map[string][]string{}, subsections: map[string][]string{}}
	var sh, key string
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, ".SH "):
			sh = plain(l[4:])
			key = sh
		case strings.HasPrefix(l, ".SS "):
			ss := plain(l[4:])
			p.subsections[sh] = append(p.subsections[sh], ss)
			key = sh + "/" + ss
			if _, ok := p.items[key]; !ok {
				p.items[key] = []string{}
			}
		case (l == ".TP" || l == ".TQ") && i+1 < len(lines):
			for _, m := range roffOption.FindAllStringSubmatch(lines[i+1], -1) {
				name := strings.ReplaceAll(m[2], `\-`, "-")
				p.tags[key] = append(p.tags[key], strings.Repeat("-", len(m[1])/2)+name)
				if len(m[1]) == 2 {
					p.items[key] = append(p.items[key], name)
				}
			}
		}
	}
	return p
}
