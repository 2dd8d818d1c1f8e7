package perf

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// record is one entry of perf/results/bench.txt (format: results/README.md).
type record struct {
	header map[string]string
	body   []string
}

var recordHeader = []string{"cgw-bench", "date", "commit", "machine", "command"}

var commitRE = regexp.MustCompile(`^([0-9a-f]{7,40}|unknown)( \(dirty\))?$`)

// parseHistory reads records and says what is wrong with each.
func parseHistory(text string) ([]record, error) {
	var recs []record
	var cur *record
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case cur == nil && l == "":
		case cur == nil:
			if l != "cgw-bench: 1" {
				return nil, fmt.Errorf("line %d: a record starts with \"cgw-bench: 1\", got %q", line, l)
			}
			recs = append(recs, record{header: map[string]string{"cgw-bench": "1"}})
			cur = &recs[len(recs)-1]
		case l == "":
			cur = nil
		case len(cur.header) < len(recordHeader):
			k, v, ok := strings.Cut(l, ": ")
			if want := recordHeader[len(cur.header)]; !ok || k != want || v == "" {
				return nil, fmt.Errorf("line %d: header line %q expected, got %q", line, want+": …", l)
			}
			cur.header[k] = v
		default:
			cur.body = append(cur.body, l)
		}
	}
	for i, r := range recs {
		if len(r.header) < len(recordHeader) {
			return nil, fmt.Errorf("record %d: header incomplete (%v)", i+1, r.header)
		}
		if _, err := time.Parse(time.RFC3339, r.header["date"]); err != nil {
			return nil, fmt.Errorf("record %d: date: %v", i+1, err)
		}
		if !commitRE.MatchString(r.header["commit"]) {
			return nil, fmt.Errorf("record %d: commit %q: want a hex hash, optionally \" (dirty)\"", i+1, r.header["commit"])
		}
	}
	return recs, sc.Err()
}

func TestResultsHistory(t *testing.T) {
	b, err := os.ReadFile("results/bench.txt")
	if os.IsNotExist(err) {
		return // no run recorded yet; TestRecordScript checks the writer
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseHistory(string(b)); err != nil {
		t.Errorf("results/bench.txt: %v (append records with perf/results/record.sh -- COMMAND; format: perf/results/README.md)", err)
	}
}

// TestRecordScript runs record.sh twice (a success, a failure) into a
// temporary history and reads it back.
func TestRecordScript(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bench.txt")
	run := func(args ...string) error {
		cmd := exec.Command("results/record.sh", append([]string{"-o", out, "--"}, args...)...)
		b, err := cmd.CombinedOutput()
		t.Logf("%s", b)
		return err
	}
	if err := run("echo", "BenchmarkSeal/1400-2", "100", "460 ns/op"); err != nil {
		t.Fatalf("record.sh: %v", err)
	}
	if err := run("sh", "-c", "echo partial; exit 3"); err == nil {
		t.Fatal("record.sh hid the command's failure")
	}
	// An empty line in the output (cgw-lab measure prints one) must not
	// end the record.
	if err := run("printf", "table\\n\\n  \\nfigure 1\\n"); err != nil {
		t.Fatalf("record.sh: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := parseHistory(string(b))
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3:\n%s", len(recs), b)
	}
	if got := recs[2].body; len(got) != 2 || got[0] != "table" || got[1] != "figure 1" {
		t.Errorf("body with empty lines kept as %q, want [table figure 1]", got)
	}
	if got := recs[0].header["command"]; got != "echo BenchmarkSeal/1400-2 100 460 ns/op" {
		t.Errorf("command %q", got)
	}
	if len(recs[0].body) != 1 || !strings.HasPrefix(recs[0].body[0], "BenchmarkSeal/1400-2") {
		t.Errorf("body %q", recs[0].body)
	}
	if len(recs[1].body) != 2 || recs[1].body[0] != "status: failed 3" || recs[1].body[1] != "partial" {
		t.Errorf("failed run body %q", recs[1].body)
	}
	if !strings.Contains(recs[0].header["machine"], "CPUs") {
		t.Errorf("machine %q", recs[0].header["machine"])
	}
	for _, bad := range []string{"cgw-bench: 1\ndate: yesterday\ncommit: abcdef1\nmachine: x\ncommand: y\n", "cgw-bench: 1\ncommit: abcdef1\n", "hello\n"} {
		if _, err := parseHistory(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
