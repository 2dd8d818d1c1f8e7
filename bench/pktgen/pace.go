package pktgen

import "time"

// Pacer spreads a rate over time: after elapsed since the start, Due
// units (frames, or bits) may have been sent. Sending a burst only when
// what is already sent is below Due keeps the long-run rate exact
// whatever the sleep granularity; a late wake-up costs one burst of
// catch-up, never an accumulated excess.
type Pacer struct {
	PerSecond float64 // units per second; 0: unlimited
}

// Due is the units allowed by elapsed.
func (p Pacer) Due(elapsed time.Duration) float64 {
	return p.PerSecond * elapsed.Seconds()
}

// Wait is how long to wait, at elapsed, before sent+cost units are due;
// 0 when they are due now or the pacer is unlimited.
func (p Pacer) Wait(elapsed time.Duration, sent, cost float64) time.Duration {
	if p.PerSecond <= 0 {
		return 0
	}
	due := sent + cost
	at := time.Duration(due / p.PerSecond * float64(time.Second))
	if at <= elapsed {
		return 0
	}
	return at - elapsed
}
