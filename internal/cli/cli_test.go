package cli

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func testProgram() Program {
	leaf := func(name string) func(stdout, stderr io.Writer, args []string) int {
		return func(stdout, stderr io.Writer, args []string) int {
			fs := Flags("tool "+name, "[flags] THING", "Does "+name+" to THING.", stderr)
			fs.Bool("force", false, "do it anyway")
			fs.String("socket", "", "the `path`")
			pos, code, ok := Parse(fs, args)
			if !ok {
				return code
			}
			if len(pos) != 1 {
				fmt.Fprintf(stderr, "tool %s: want one THING\n", name)
				return Usage
			}
			fmt.Fprintf(stdout, "%s %s\n", name, pos[0])
			return OK
		}
	}
	return Program{Name: "tool", Summary: "a test tool", Commands: []Command{
		{Name: "status", Summary: "show it", Run: leaf("status")},
		{Name: "config", Summary: "configuration", Sub: []Command{
			{Name: "import", Summary: "import one", Run: leaf("import")},
			{Name: "check", Summary: "check one", Run: leaf("check")},
		}},
		CompletionCommand("tool"),
	}}
}

func TestDispatch(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{nil, Usage, "", "usage: tool <command>"},
		{[]string{"-h"}, OK, "", "tool: a test tool"},
		{[]string{"--help"}, OK, "", "config"},
		{[]string{"help"}, OK, "", "status"},
		{[]string{"help", "config", "import"}, OK, "", "usage: tool import [flags] THING"},
		{[]string{"config", "-h"}, OK, "", "usage: tool config <command>"},
		{[]string{"config"}, Usage, "", "usage: tool config <command>"},
		{[]string{"staus"}, Usage, "", `tool: unknown command "staus"; did you mean "status"?`},
		{[]string{"config", "imprt"}, Usage, "", `tool config: unknown command "imprt"; did you mean "import"?`},
		{[]string{"zzzzzz"}, Usage, "", `unknown command "zzzzzz"` + "\n"},
		{[]string{"status", "-h"}, OK, "", "-force"},
		{[]string{"status", "-nope", "x"}, Usage, "", "flag provided but not defined: -nope"},
		{[]string{"status"}, Usage, "", "want one THING"},
		{[]string{"status", "x", "-force"}, OK, "status x\n", ""},
		{[]string{"config", "check", "y"}, OK, "check y\n", ""},
		{[]string{"-version"}, OK, "tool version ", ""},
		{[]string{"version"}, OK, "tool version ", ""},
	} {
		var o, e bytes.Buffer
		code := testProgram().Main(tc.args, &o, &e)
		if code != tc.code || !strings.Contains(o.String(), tc.out) || !strings.Contains(e.String(), tc.errs) {
			t.Errorf("tool %q: exit %d, stdout %q, stderr %q; want exit %d, %q, %q", tc.args, code, o.String(), e.String(), tc.code, tc.out, tc.errs)
		}
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"status", "sas", "routes", "rekey", "initiate", "config"}
	for word, want := range map[string]string{
		"staus": "status", "sa": "sas", "route": "routes", "rekye": "rekey", "confg": "config",
		"x": "", "reload": "", "initate": "initiate", "": "",
	} {
		if got := Suggest(word, cands); got != want {
			t.Errorf("Suggest(%q) = %q; want %q", word, got, want)
		}
	}
	if d := Levenshtein("kitten", "sitting"); d != 3 {
		t.Errorf("Levenshtein(kitten, sitting) = %d", d)
	}
}

func TestComplete(t *testing.T) {
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{""}, "status\nconfig\ncompletion\nhelp\n"},
		{[]string{"co"}, "config\ncompletion\n"},
		{[]string{"config", ""}, "import\ncheck\nhelp\n"},
		{[]string{"config", "import", "-"}, "-force\n-socket\n"},
		{[]string{"status", "-s"}, "-socket\n"},
		{[]string{"nosuch", ""}, ""},
	} {
		var o bytes.Buffer
		testProgram().Main(append([]string{"__complete"}, tc.words...), &o, io.Discard)
		if o.String() != tc.want {
			t.Errorf("__complete %q: %q; want %q", tc.words, o.String(), tc.want)
		}
	}
}

// The bash script, run by bash, completes through __complete.
func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatalf("bash: %v", err)
	}
	dir := t.TempDir()
	// A stand-in "tool" answering __complete like testProgram does.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tool := filepath.Join(dir, "tool")
	os.WriteFile(tool, []byte("#!/bin/sh\nCLI_TEST_TOOL=1 exec "+self+" -test.run=TestHelperTool -- \"$@\"\n"), 0o755)
	var script bytes.Buffer
	if code := testProgram().Main([]string{"completion", "bash"}, &script, io.Discard); code != OK {
		t.Fatalf("completion bash: exit %d", code)
	}
	test := script.String() + `
COMP_WORDS=(tool config im); COMP_CWORD=2; _tool; echo "${COMPREPLY[*]}"
`
	cmd := exec.Command("bash", "-c", test)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "import" {
		t.Errorf("bash completion of 'tool config im': %q, %v", out, err)
	}
}

func TestHelperTool(t *testing.T) {
	if os.Getenv("CLI_TEST_TOOL") == "" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(testProgram().Main(args, os.Stdout, os.Stderr))
}

func TestRunE(t *testing.T) {
	run := RunE("tool x", func(args []string) error {
		fs := Flags("tool x", "[flags]", "", io.Discard)
		fail := fs.Bool("fail", false, "fail")
		if err := ParseFlags(fs, args); err != nil {
			return err
		}
		if *fail {
			return fmt.Errorf("it failed")
		}
		return nil
	})
	for _, tc := range []struct {
		args []string
		code int
		errs string
	}{
		{nil, OK, ""}, {[]string{"-h"}, OK, ""}, {[]string{"-bad"}, Usage, ""},
		{[]string{"stray"}, Usage, `tool x: unexpected arguments ["stray"]`},
		{[]string{"-fail"}, Failed, "tool x: it failed\n"},
	} {
		var e bytes.Buffer
		if code := run(io.Discard, &e, tc.args); code != tc.code || e.String() != tc.errs && !strings.HasPrefix(e.String(), tc.errs) || tc.errs == "" && e.Len() > 0 {
			t.Errorf("%q: exit %d, stderr %q; want %d, %q", tc.args, code, e.String(), tc.code, tc.errs)
		}
	}
}

// TestManUsage: a daemon's -h says what it is, how to call it, its
// flags and where the manual is.
func TestManUsage(t *testing.T) {
	fs := flag.NewFlagSet("cgw-thing", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.String("config", "", "YAML configuration `file`")
	ManUsage(fs, "-config cgw.yaml [flags]", "does the thing.\n", "cgw-thing(8)")
	if err := fs.Parse([]string{"-h"}); err != flag.ErrHelp {
		t.Fatalf("-h: %v", err)
	}
	want := "cgw-thing: does the thing.\n\nusage: cgw-thing -config cgw.yaml [flags]\n\nflags:\n  -config file\n    \tYAML configuration file\n\nSee cgw-thing(8): every flag in full, signals, files, exit status.\n"
	if out.String() != want {
		t.Errorf("-h printed:\n%s\nwant:\n%s", out.String(), want)
	}
}
