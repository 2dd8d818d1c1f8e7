package ike

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// TokenBucket lets Burst events through at once and then one every Every,
// counting those it refuses. The zero value lets one a second through.
// LogLimiter is one for log lines; a TokenBucket limits other things
// (answers to retransmitted requests) and draws on no shared budget.
type TokenBucket struct {
	// Every is the time one token takes to come back (default 1 s).
	Every time.Duration
	// Burst is how many may go at once (default 1).
	Burst int

	mu sync.Mutex
	c  counted
}

// Allow reports whether one more may go at now and, if so, how many were
// refused since the last one that went.
func (t *TokenBucket) Allow(now time.Time) (bool, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c.allow(now, t.Every, t.Burst, nil)
}

// counted is a token bucket that counts what it refuses: TokenBucket's
// and LogLimiter's state; its owner's mutex guards it.
type counted struct {
	b          bucket
	suppressed int
}

// allow takes a token at now and returns how many were refused since the
// last one taken. With a budget, the budget must also have a token: it is
// spent only when this bucket has one, and this bucket's only when the
// budget gave its own.
func (c *counted) allow(now time.Time, every time.Duration, burst int, budget *LogBudget) (bool, int) {
	c.b.refill(now, every, burst)
	if c.b.tokens < 1 || budget != nil && !budget.take(now) {
		c.suppressed++
		if budget != nil {
			budget.suppressed.Add(1)
		}
		return false, 0
	}
	c.b.tokens--
	n := c.suppressed
	c.suppressed = 0
	return true, n
}

// bucket is the state of a token bucket; its owner's mutex guards it.
type bucket struct {
	tokens  float64
	last    time.Time
	started bool
}

// refill adds the tokens that came back since the last call: one every
// every (default 1 s), up to burst (default 1).
func (b *bucket) refill(now time.Time, every time.Duration, burst int) {
	if every <= 0 {
		every = time.Second
	}
	if burst <= 0 {
		burst = 1
	}
	if !b.started {
		b.started, b.tokens, b.last = true, float64(burst), now
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(b.tokens+float64(dt)/float64(every), float64(burst))
		b.last = now
	}
}

// LogLimiter limits the log lines that input nobody authenticated causes
// (forged, replayed or malformed datagrams, unknown sources): a flood
// costs a few lines a second, not one per datagram, and the next line
// that gets through says how many were suppressed. Each limiter (a
// tunnel's, an engine's) is a token bucket of its own, and every line
// also draws on a LogBudget shared by all of them (by default
// UnauthLogs, process-wide): with many tunnels flooded at once the
// process still writes at most the budget's lines. The zero value lets
// one line a second through.
type LogLimiter struct {
	// Every is the time one token takes to come back (default 1 s).
	Every time.Duration
	// Burst is how many lines may go out at once (default 1).
	Burst int
	// Budget is the shared budget (nil: UnauthLogs).
	Budget *LogBudget

	mu sync.Mutex
	c  counted
}

// LogBudget is a token bucket shared by LogLimiters. The lines refused,
// by a limiter or by the budget, are summed up at most every
// SummaryEvery in one line ("N log lines suppressed") that takes the place
// of the next line let through: a tunnel that never gets a line through
// again would otherwise never report what it dropped.
type LogBudget struct {
	// Every is the time one line takes to come back (default 1 s).
	Every time.Duration
	// Burst is how many lines may go out at once (default 5).
	Burst int
	// SummaryEvery is the least time between summaries (default 10 s).
	SummaryEvery time.Duration

	suppressed atomic.Int64 // since the last summary: the drop path only adds

	mu         sync.Mutex
	b          bucket
	mono       bool      // the last time had a monotonic clock reading
	summarized time.Time // the last summary, or the start
}

// UnauthLogs is the process-wide budget of log lines about
// unauthenticated input, over every tunnel of both IKE engines: a line a
// second, 5 at once (issue #9: at most a line a second under a flood).
var UnauthLogs = &LogBudget{Every: time.Second, Burst: 5}

// Allow reports whether a line may be written at now, by this limiter and
// by its budget, and if so how many of this limiter's lines were
// suppressed since the last one that was. Refused lines cost a lock and
// an atomic add, no allocation.
func (l *LogLimiter) Allow(now time.Time) (bool, int) {
	b := l.budget()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.allow(now, l.Every, l.Burst, b)
}

// Line is a log line a LogLimiter let through (Check), to be written
// with Write.
type Line struct {
	l          *LogLimiter
	log        *slog.Logger
	now        time.Time
	level      slog.Level
	suppressed int
}

// Check takes a line's token at now if the logger writes level and the
// limiter and its budget allow it. The caller builds the line's
// arguments only when ok, so a refused line costs no allocation:
//
//	if line, ok := l.Check(log, now, slog.LevelDebug); ok {
//		line.Write("dropped", "from", from, "err", err)
//	}
//
// A level the logger does not write costs nothing from either bucket.
func (l *LogLimiter) Check(log *slog.Logger, now time.Time, level slog.Level) (line Line, ok bool) {
	if !log.Enabled(context.Background(), level) {
		return Line{}, false
	}
	ok, n := l.Allow(now)
	if !ok {
		return Line{}, false
	}
	return Line{l: l, log: log, now: now, level: level, suppressed: n}, true
}

// Write writes msg with args, adding "suppressed" when the limiter
// dropped lines since its last one. When the budget's summary is due,
// the summary takes the line's place (it names msg as "last"), so
// summaries never add to the rate.
func (line Line) Write(msg string, args ...any) {
	ctx := context.Background()
	b := line.l.budget()
	if total, since := b.summary(line.now); total > 0 {
		line.log.Log(ctx, max(line.level, slog.LevelInfo), "log lines about unauthenticated input suppressed, over every tunnel "+
			"(forged or malformed IKE datagrams, unknown sources: the process logs them at a bounded rate)",
			"suppressed", total+1, "during", since.Round(time.Second), "every", b.every(), "burst", b.burst(), "last", msg)
		return
	}
	if line.suppressed > 0 {
		args = append(args, "suppressed", line.suppressed)
	}
	line.log.Log(ctx, line.level, msg, args...)
}

// Log is Check then Write. Its arguments are built before the limiter is
// asked: on a path a flood can reach, use Check.
func (l *LogLimiter) Log(log *slog.Logger, now time.Time, level slog.Level, msg string, args ...any) {
	if line, ok := l.Check(log, now, level); ok {
		line.Write(msg, args...)
	}
}

func (l *LogLimiter) budget() *LogBudget {
	if l.Budget != nil {
		return l.Budget
	}
	return UnauthLogs
}

func (b *LogBudget) every() time.Duration {
	if b.Every <= 0 {
		return time.Second
	}
	return b.Every
}

func (b *LogBudget) burst() int {
	if b.Burst <= 0 {
		return 5
	}
	return b.Burst
}

// take takes a line's token if there is one. Callers racing to the lock
// may come a little back in time: that adds nothing. A time more than a
// second back where one of the two has no monotonic clock reading (a
// test's fake clock; time.Now always has one) is another clock, on which
// the budget starts afresh.
func (b *LogBudget) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	mono := now != now.Round(0) // Round(0) strips the monotonic reading
	if !b.b.started || !(mono && b.mono) && now.Before(b.b.last.Add(-time.Second)) {
		b.b = bucket{}
		b.summarized = now
	}
	b.mono = mono
	b.b.refill(now, b.every(), b.burst())
	if b.b.tokens < 1 {
		return false
	}
	b.b.tokens--
	return true
}

// summary returns how many lines were suppressed since the last summary,
// and over how long, when one is due at now.
func (b *LogBudget) summary(now time.Time) (int64, time.Duration) {
	every := b.SummaryEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.summarized) < every || b.suppressed.Load() == 0 {
		return 0, 0
	}
	since := now.Sub(b.summarized)
	b.summarized = now
	return b.suppressed.Swap(0), since
}
