package ikev1

import (
	"log/slog"
)

// unauth logs why unauthenticated input (forged, replayed, for no
// tunnel) was dropped: at debug level, a line a second at most for the
// whole engine, with the count of those suppressed (ike.LogLimiter).
func (m *Manager) unauth(msg string, args ...any) {
	m.unauthLog.Log(m.log, m.clock.Now(), slog.LevelDebug, msg, args...)
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
