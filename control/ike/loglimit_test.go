package ike

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lineCounter is a slog handler that counts the lines written, from any
// goroutine, and keeps them.
type lineCounter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	level slog.Level
}

func (c *lineCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= c.level }
func (c *lineCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		c.buf.WriteString(" " + a.String())
		return true
	})
	c.buf.WriteByte('\n')
	return nil
}
func (c *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *lineCounter) WithGroup(string) slog.Handler      { return c }

func (c *lineCounter) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Split(strings.TrimSuffix(c.buf.String(), "\n"), "\n")
}

// tunnels are the limiters of n IKEv2 tunnels (burst 5 each, as
// ikev2.Tunnel's) and one IKEv1 engine's (the zero value), drawing on b.
func tunnels(n int, b *LogBudget) []*LogLimiter {
	ls := []*LogLimiter{{Budget: b}}
	for range n {
		ls = append(ls, &LogLimiter{Burst: 5, Budget: b})
	}
	return ls
}

// TestLogBudgetManyTunnels: 50 tunnels of both engines flooded at once
// with unauthenticated input for 5 s write at most the budget's burst and
// a line a second in all (each tunnel's own limit alone lets 50 × (5 + 5)
// lines through).
func TestLogBudgetManyTunnels(t *testing.T) {
	c := &lineCounter{level: slog.LevelDebug}
	log := slog.New(c)
	b := &LogBudget{Every: time.Second, Burst: 5}
	ls := tunnels(50, b)
	t0 := time.Unix(5000, 0)
	for ms := range 5000 {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		for i, l := range ls {
			l.Log(log, now, slog.LevelInfo, "IKE_SA_INIT dropped", "tunnel", i)
		}
	}
	lines := c.lines()
	if len(lines) > 5+5 {
		t.Fatalf("%d lines in 5 s from 50 flooded tunnels; want at most 10 (burst 5 + 1/s):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	t.Logf("%d lines for %d datagrams over 5 s", len(lines), 5000*len(ls))
}

// TestLogBudgetConcurrent: the same with every tunnel's goroutine
// flooding at once, on the real clock and the process-wide budget (the
// default), for 2 s: at most the burst and a line a second (run it with
// -race).
func TestLogBudgetConcurrent(t *testing.T) {
	c := &lineCounter{level: slog.LevelDebug}
	log := slog.New(c)
	ls := tunnels(50, nil)
	const d = 2 * time.Second
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for now := time.Now(); now.Before(end); now = time.Now() {
				l.Log(log, now, slog.LevelInfo, "IKE_SA_INIT dropped", "tunnel", i)
			}
		}()
	}
	wg.Wait()
	if lines := c.lines(); len(lines) > 5+int(d/time.Second) {
		t.Fatalf("%d lines in %v from 50 concurrently flooded tunnels; want at most %d:\n%s", len(lines), d, 5+int(d/time.Second), strings.Join(lines, "\n"))
	}
}

var suppressedAttr = regexp.MustCompile(`suppressed=(\d+)`)

// TestLogBudgetSummary: every 10 s of a flood one line, in place of a
// flooded one, counts every line suppressed since the last summary over
// all tunnels, at info level though the lines are debug ones; the rate
// stays the budget's.
func TestLogBudgetSummary(t *testing.T) {
	c := &lineCounter{level: slog.LevelDebug}
	log := slog.New(c)
	b := &LogBudget{Every: time.Second, Burst: 5, SummaryEvery: 10 * time.Second}
	ls := tunnels(3, b)
	t0 := time.Unix(7000, 0)
	calls, written, summaries, seen := 0, 0, 0, 0
	for ms := range 25_000 {
		for _, l := range ls {
			l.Log(log, t0.Add(time.Duration(ms)*time.Millisecond), slog.LevelDebug, "dropped datagram")
			calls++
			lines := c.lines()
			if lines[0] == "" || len(lines) == seen {
				continue
			}
			seen = len(lines)
			last := lines[len(lines)-1]
			if !strings.Contains(last, "suppressed, over every tunnel") {
				written++
				continue
			}
			summaries++
			m := suppressedAttr.FindStringSubmatch(last)
			n, _ := strconv.Atoi(m[1])
			// The calls since the last summary, less the lines written.
			if want := calls - written; n != want || !strings.HasPrefix(last, "INFO ") || !strings.Contains(last, "last=dropped datagram") {
				t.Fatalf("summary at %d ms: %q; want INFO, suppressed=%d", ms, last, want)
			}
			t.Logf("at %d ms: %s", ms, last)
			calls, written = 0, 0
		}
	}
	if summaries != 2 {
		t.Fatalf("%d summaries in 25 s; want 2 (every 10 s)", summaries)
	}
	if n := len(c.lines()); n > 5+25 {
		t.Fatalf("%d lines in 25 s; want at most 30 (summaries included)", n)
	}
}

// TestLogLimiterLevelOff: lines at a level the logger does not write cost
// no token: an IKEv1 debug flood leaves the budget to the info lines.
func TestLogLimiterLevelOff(t *testing.T) {
	c := &lineCounter{level: slog.LevelInfo}
	log := slog.New(c)
	b := &LogBudget{}
	v1, v2 := &LogLimiter{Budget: b, Burst: 100}, &LogLimiter{Budget: b}
	t0 := time.Unix(8000, 0)
	for range 100 {
		v1.Log(log, t0, slog.LevelDebug, "main mode message 1 dropped")
	}
	v2.Log(log, t0, slog.LevelInfo, "IKE_SA_INIT from an unknown peer ignored")
	if l := c.lines(); len(l) != 1 || !strings.Contains(l[0], "unknown peer") {
		t.Fatalf("lines %q; want the info line only", l)
	}
}

// TestTokenBucketNoBudget: a TokenBucket (answers to retransmitted
// requests) does not draw on the log budget, so a flood on one tunnel
// cannot starve another tunnel's retransmissions.
func TestTokenBucketNoBudget(t *testing.T) {
	b := &LogBudget{}
	t0 := time.Unix(8000, 0)
	flood := LogLimiter{Burst: 100, Budget: b}
	for range 100 {
		flood.Allow(t0)
	}
	if ok, _ := (&LogLimiter{Budget: b}).Allow(t0); ok {
		t.Fatal("the budget is not spent by the flood")
	}
	resends := TokenBucket{Burst: 3}
	for i := range 3 {
		if ok, _ := resends.Allow(t0); !ok {
			t.Fatalf("answer %d refused: the token bucket drew on the spent log budget", i)
		}
	}
}

// TestLogLimiterDropAllocs: the drop path allocates nothing.
func TestLogLimiterDropAllocs(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	l := &LogLimiter{Budget: &LogBudget{}}
	t0 := time.Unix(8000, 0)
	l.Allow(t0)
	if n := testing.AllocsPerRun(1000, func() { l.Allow(t0) }); n != 0 {
		t.Errorf("Allow refusing: %v allocations", n)
	}
	if n := testing.AllocsPerRun(1000, func() { l.Log(log, t0, slog.LevelInfo, "dropped") }); n != 0 {
		t.Errorf("Log refusing: %v allocations", n)
	}
}

// TestLogLimiterCheckAllocs: a refused line whose arguments are built
// after Check (strings, an address, an error boxed into any) allocates
// nothing, whereas building them for Log first does (issue #9).
func TestLogLimiterCheckAllocs(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := &LogLimiter{Budget: &LogBudget{}}
	t0 := time.Unix(8000, 0)
	l.Allow(t0)
	name, from, err := "t1", netip.MustParseAddrPort("192.0.2.1:500"), errors.New("bad hash")
	if n := testing.AllocsPerRun(1000, func() {
		if line, ok := l.Check(log, t0, slog.LevelDebug); ok {
			line.Write("quick mode message dropped", "tunnel", name, "from", from, "err", err)
		}
	}); n != 0 {
		t.Errorf("Check refusing: %v allocations", n)
	}
	if _, ok := l.Check(log, t0.Add(time.Hour), slog.LevelDebug-1); ok {
		t.Error("Check let a line through at a level the logger does not write")
	}
	if line, ok := l.Check(log, t0.Add(time.Hour), slog.LevelDebug); !ok || line.suppressed != 1001 {
		t.Errorf("Check after an hour: ok %v, suppressed %d; want true, 1001 (AllocsPerRun's runs; the level-off one takes no token and counts nothing)", ok, line.suppressed)
	}
}

// BenchmarkLogLimiterRefusedArgs is a refused line with a call site's
// arguments: built before Log asks the limiter (as every call site did),
// or only once Check let the line through.
func BenchmarkLogLimiterRefusedArgs(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t0 := time.Unix(8000, 0)
	name, from, err := "t1", netip.MustParseAddrPort("192.0.2.1:500"), errors.New("bad hash")
	b.Run("Log", func(b *testing.B) {
		l := &LogLimiter{Budget: &LogBudget{}}
		l.Allow(t0)
		b.ReportAllocs()
		for b.Loop() {
			l.Log(log, t0, slog.LevelDebug, "quick mode message dropped", "tunnel", name, "from", from, "err", err)
		}
	})
	b.Run("Check", func(b *testing.B) {
		l := &LogLimiter{Budget: &LogBudget{}}
		l.Allow(t0)
		b.ReportAllocs()
		for b.Loop() {
			if line, ok := l.Check(log, t0, slog.LevelDebug); ok {
				line.Write("quick mode message dropped", "tunnel", name, "from", from, "err", err)
			}
		}
	})
}

// BenchmarkLogLimiterDrop is the cost of a refused line (the flood's
// case): one limiter, then 50 tunnels' limiters on all CPUs at once on
// one budget.
func BenchmarkLogLimiterDrop(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t0 := time.Unix(8000, 0)
	b.Run("one", func(b *testing.B) {
		l := &LogLimiter{Burst: 5, Budget: &LogBudget{}}
		b.ReportAllocs()
		for b.Loop() {
			l.Log(log, t0, slog.LevelInfo, "dropped")
		}
	})
	b.Run("50-parallel", func(b *testing.B) {
		ls := tunnels(50, &LogBudget{})
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			l := ls[next.Add(1)%int64(len(ls))]
			for pb.Next() {
				l.Log(log, t0, slog.LevelInfo, "dropped")
			}
		})
	})
}

// TestLogBudgetLateCaller: a caller that read time.Now long before it got
// to the budget (descheduled under load) comes back in time; that must not
// refill the budget, whereas a fake clock set back (another test's) starts
// it afresh.
func TestLogBudgetLateCaller(t *testing.T) {
	b := &LogBudget{Burst: 5}
	now := time.Now()
	for i := range 5 {
		if ok, _ := (&LogLimiter{Budget: b}).Allow(now.Add(5 * time.Second)); !ok {
			t.Fatalf("line %d of the burst refused", i)
		}
	}
	if ok, _ := (&LogLimiter{Budget: b}).Allow(now); ok {
		t.Fatal("a line read from the clock 5 s before the last one refilled the spent budget")
	}
	fake := time.Unix(1_800_000_000, 0)
	for range 5 {
		(&LogLimiter{Budget: b}).Allow(fake.Add(time.Minute))
	}
	if ok, _ := (&LogLimiter{Budget: b}).Allow(fake); !ok {
		t.Fatal("a fake clock set back a minute (another test's) did not start the budget afresh")
	}
}
