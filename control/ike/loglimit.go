package ike

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LogLimiter is a token bucket for log lines that input nobody
// authenticated causes (forged, replayed or malformed datagrams, unknown
// sources): a flood costs a few lines a second, not one per datagram, and
// the next line that gets through says how many were suppressed.
// The zero value lets one line a second through.
type LogLimiter struct {
	// Every is the time one token takes to come back (default 1 s).
	Every time.Duration
	// Burst is how many lines may go out at once (default 1).
	Burst int

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	started    bool
	suppressed int
}

// Allow reports whether a line may be written at now and, if so, how many
// were suppressed since the last one that was.
func (l *LogLimiter) Allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	every, burst := l.Every, l.Burst
	if every <= 0 {
		every = time.Second
	}
	if burst <= 0 {
		burst = 1
	}
	if !l.started {
		l.started, l.tokens, l.last = true, float64(burst), now
	}
	if dt := now.Sub(l.last); dt > 0 {
		l.tokens = min(l.tokens+float64(dt)/float64(every), float64(burst))
		l.last = now
	}
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	n := l.suppressed
	l.suppressed = 0
	return true, n
}

// Log writes msg at level if the bucket allows it at now, adding
// "suppressed" when lines were dropped since the last one.
func (l *LogLimiter) Log(log *slog.Logger, now time.Time, level slog.Level, msg string, args ...any) {
	ok, n := l.Allow(now)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Log(context.Background(), level, msg, args...)
}
