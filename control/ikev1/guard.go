package ikev1

import (
	"bytes"
	"sync"
	"time"
)

// logLimiter lets through one log line per interval for input that
// failed before authentication (forged, replayed, for no tunnel), so a
// flood costs a line a second, not one per datagram; it counts the rest.
// (A stand-in until control/ike has a shared one.)
type logLimiter struct {
	mu         sync.Mutex
	every      time.Duration
	next       time.Time
	suppressed int
}

// allow reports whether a line may be written now and how many were
// suppressed since the last one.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	l.next = now.Add(l.every)
	n := l.suppressed
	l.suppressed = 0
	return true, n
}

// unauth logs (rate-limited, at debug level) why unauthenticated input was
// dropped.
func (m *Manager) unauth(msg string, args ...any) {
	ok, n := m.unauthLog.allow(m.clock.Now())
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	m.log.Debug(msg, args...)
}

// wipe zeroes an ISAKMP SA's secrets when it is deleted or replaced and
// marks it dead, so nothing sends with it again. (The DH private key and
// the AES key schedule are opaque to us: dropping them is all Go allows.)
func (sa *p1SA) wipe() {
	for _, b := range [][]byte{sa.keys.SKEYID, sa.keys.SKEYIDd, sa.keys.SKEYIDa, sa.keys.SKEYIDe} {
		clear(b)
	}
	sa.priv, sa.state, sa.req = nil, 0, nil
	for _, q := range sa.qms {
		q.priv = nil
	}
}

// keymatCopy is c for an event: the receiver gets its own KEYMAT, so
// the engine can zero its copy when the pair goes (wipeKeymat) whatever
// the receiver still holds.
func keymatCopy(c ChildSA) ChildSA {
	c.InKeymat, c.OutKeymat = bytes.Clone(c.InKeymat), bytes.Clone(c.OutKeymat)
	return c
}

func wipeKeymat(c *ChildSA) {
	clear(c.InKeymat)
	clear(c.OutKeymat)
}
