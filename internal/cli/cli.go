// Package cli is the one command dispatcher of cgwctl, cgw-pktgen and
// cgw-lab: "prog <command> [<sub>…] [flags] [args]", with the same
// conventions everywhere:
//
//   - help (-h, --help, "help", "help CMD") goes to stderr and exits 0;
//   - a wrong command line exits 2 (Usage), saying what is wrong and, for
//     a mistyped command, which one was probably meant;
//   - -version / --version / version prints the build (internal/buildinfo);
//   - "prog __complete WORDS…" answers shell completion (Completion).
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cgw-project/cgw/internal/buildinfo"
)

// Exit codes shared by the tools.
const (
	OK     = 0
	Failed = 1 // the command ran and failed (its error says why)
	Usage  = 2 // the command line is wrong
)

// Command is one word of a command line: it runs, or dispatches to Sub.
type Command struct {
	Name    string
	Summary string                                            // one line for the command list
	Run     func(stdout, stderr io.Writer, args []string) int // nil when Sub is set
	Sub     []Command
}

// Program is a tool's command table.
type Program struct {
	Name     string
	Summary  string // what the tool is, the first line of its help
	Commands []Command
}

// Main runs args (without the program name) and returns the exit code.
func (p Program) Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "-version", "--version", "version":
			fmt.Fprintln(stdout, buildinfo.Read().Line(p.Name))
			return OK
		case "__complete":
			return p.complete(args[1:], stdout)
		}
	}
	return dispatch(p.Name, p.Summary, p.Commands, args, stdout, stderr)
}

func dispatch(prefix, summary string, table []Command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr, prefix, summary, table)
		return Usage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stderr, prefix, summary, table)
		return OK
	case "help":
		if len(args) == 1 {
			usage(stderr, prefix, summary, table)
			return OK
		}
		// "help a b" is "a b -h".
		return dispatch(prefix, summary, table, append(append([]string{}, args[1:]...), "-h"), stdout, stderr)
	}
	c := find(table, args[0])
	if c == nil {
		fmt.Fprintf(stderr, "%s: unknown command %q", prefix, args[0])
		if s := Suggest(args[0], names(table)); s != "" {
			fmt.Fprintf(stderr, "; did you mean %q?", s)
		}
		fmt.Fprintf(stderr, "\nRun '%s -h' for the list of commands.\n", prefix)
		return Usage
	}
	if c.Sub != nil {
		return dispatch(prefix+" "+c.Name, c.Summary, c.Sub, args[1:], stdout, stderr)
	}
	return c.Run(stdout, stderr, args[1:])
}

func find(table []Command, name string) *Command {
	for i := range table {
		if table[i].Name == name {
			return &table[i]
		}
	}
	return nil
}

func names(table []Command) []string {
	var n []string
	for _, c := range table {
		n = append(n, c.Name)
	}
	return n
}

func usage(w io.Writer, prefix, summary string, table []Command) {
	if summary != "" {
		fmt.Fprintf(w, "%s: %s\n\n", prefix, summary)
	}
	fmt.Fprintf(w, "usage: %s <command> [arguments]\n\ncommands:\n", prefix)
	width := 8
	for _, c := range table {
		width = max(width, len(c.Name))
	}
	for _, c := range table {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for a command's flags and arguments.\n", prefix)
}

// Suggest returns the candidate closest to word by edit distance when it
// is close enough to be a typo (at most 2 edits, and at most half the
// word), else "".
func Suggest(word string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		d := Levenshtein(word, c)
		if d < bestD && d*2 <= max(len(word), len(c)) {
			best, bestD = c, d
		}
	}
	return best
}

// Levenshtein is the edit distance between a and b (insertions,
// deletions and substitutions of bytes).
func Levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Flags returns a flag set for the command "prog cmd" that reports to
// stderr and never exits the process; its -h prints synopsis (e.g.
// "[flags] TUNNEL"), the description (paragraphs, as in a man page) and
// the flags.
func Flags(name, synopsis, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s %s\n", name, synopsis)
		if description != "" {
			fmt.Fprintf(stderr, "\n%s\n", strings.TrimRight(description, "\n"))
		}
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(stderr, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// Parse parses flags that may come before or after the positional
// arguments ("import aws.xml -o out.yaml" and "import -o out.yaml
// aws.xml" both work) and returns the positional arguments. When it
// returns ok false the command should return code: OK after -h, Usage
// after a bad flag (the flag package has said why).
func Parse(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	pos, err := ParseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, OK, false
	}
	if err != nil {
		return nil, Usage, false
	}
	return pos, OK, true
}

// ParseInterspersed is Parse returning the flag package's error.
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// Parse stopped at a non-flag: take it and go on.
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
