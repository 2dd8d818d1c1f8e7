package ikev1

import (
	"log/slog"

	"github.com/cgw-project/cgw/control/ike"
)

// unauth checks whether a line on why unauthenticated input (forged,
// replayed, for no tunnel) was dropped may go out: at debug level, a line
// a second at most for the whole engine, with the count of those
// suppressed (ike.LogLimiter). Callers build the line only when ok, so a
// flood's refused lines allocate nothing.
func (m *Manager) unauth() (ike.Line, bool) {
	return m.unauthLog.Check(m.log, m.clock.Now(), slog.LevelDebug)
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
