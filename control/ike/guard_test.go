package ike

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	var l LogLimiter // one line a second
	t0 := time.Unix(1000, 0)
	if ok, n := l.Allow(t0); !ok || n != 0 {
		t.Fatalf("first line: %v %d", ok, n)
	}
	// A flood within the second: nothing more gets through.
	for i := range 1000 {
		if ok, _ := l.Allow(t0.Add(time.Duration(i) * time.Millisecond)); ok {
			t.Fatalf("line %d of a flood within one second got through", i)
		}
	}
	ok, n := l.Allow(t0.Add(time.Second))
	if !ok || n != 1000 {
		t.Fatalf("after a second: allowed %v, suppressed %d, want true, 1000", ok, n)
	}
	// Over 10 s of a flood at 1 kHz: at most 10 (+1 burst) lines.
	lines := 0
	for i := range 10000 {
		if ok, _ := l.Allow(t0.Add(time.Second + time.Duration(i)*time.Millisecond)); ok {
			lines++
		}
	}
	if lines > 11 {
		t.Fatalf("%d lines in 10 s of flood, want at most 11", lines)
	}

	b := LogLimiter{Every: time.Second, Burst: 3}
	got := 0
	for range 10 {
		if ok, _ := b.Allow(t0); ok {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("burst 3 let %d lines through at once", got)
	}
}

func TestLogLimiterLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var l LogLimiter
	t0 := time.Unix(1000, 0)
	for range 5 {
		l.Log(log, t0, slog.LevelDebug, "dropped datagram")
	}
	l.Log(log, t0.Add(2*time.Second), slog.LevelDebug, "dropped datagram")
	out := buf.String()
	if c := strings.Count(out, "dropped datagram"); c != 2 {
		t.Fatalf("%d lines, want 2:\n%s", c, out)
	}
	if !strings.Contains(out, "suppressed=4") {
		t.Fatalf("second line does not count the 4 suppressed:\n%s", out)
	}
}

func TestPanicCounter(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var p PanicCounter
	func() {
		defer func() {
			if r := recover(); r != nil {
				p.Recovered(log, r, "tunnel", "t1")
			}
		}()
		panic("boom")
	}()
	if p.Load() != 1 {
		t.Fatalf("count %d, want 1", p.Load())
	}
	out := buf.String()
	for _, want := range []string{"panic=boom", "tunnel=t1", "TestPanicCounter"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
