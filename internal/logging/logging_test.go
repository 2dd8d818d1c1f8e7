package logging

import (
	"bytes"
	"encoding/json"
	"flag"
	"log"
	"strings"
	"testing"
)

func TestJSONAndStdlog(t *testing.T) {
	var f Flags
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	f.Register(fs)
	if err := fs.Parse([]string{"-log-format", "json", "-log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	l, err := f.Logger(&buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("tunnel up", "tunnel", "t1")
	log.Printf("from the log package %d", 7)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %q", buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil || m["msg"] != "tunnel up" || m["tunnel"] != "t1" || m["level"] != "DEBUG" {
		t.Errorf("first line %s: %v", lines[0], err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil || m["msg"] != "from the log package 7" || m["level"] != "INFO" {
		t.Errorf("second line %s: %v", lines[1], err)
	}
}

func TestBadFlags(t *testing.T) {
	for _, f := range []Flags{{Format: "xml", Level: "info"}, {Format: "text", Level: "loud"}} {
		if _, err := f.Logger(&bytes.Buffer{}); err == nil {
			t.Errorf("%+v accepted", f)
		}
	}
}
