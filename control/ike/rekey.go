package ike

import (
	"crypto/rand"
	"encoding/binary"
	"math"
	"time"
)

// RekeyAfter is when, counted from its creation, an SA with lifetime
// life is rekeyed: life − margin × (1 + fuzz% × random), as AWS and
// strongSwan spread rekeys so both ends rarely start at once. No margin
// means a tenth of the lifetime; a margin as long as the lifetime (short
// lab lifetimes) means half of it; and the result is never under a tenth
// of the lifetime, so an SA is always rekeyed before it expires and never
// in a loop. Both engines use this one rule.
func RekeyAfter(life, margin time.Duration, fuzzPercent int) time.Duration {
	switch {
	case margin <= 0:
		margin = life / 10
	case margin >= life:
		margin = life / 2
	}
	fuzz := time.Duration(0)
	if fuzzPercent > 0 {
		fuzz = time.Duration(float64(margin) * float64(fuzzPercent) / 100 * random01())
	}
	at := life - margin - fuzz
	if at < life/10 {
		at = life / 10
	}
	return at
}

// random01 is uniform in [0, 1] from crypto/rand: a peer that could
// predict our rekey times could time its own to collide with them.
func random01() float64 {
	var b [2]byte
	rand.Read(b[:])
	return float64(binary.BigEndian.Uint16(b[:])) / math.MaxUint16
}
