package pktgen

import "time"

// Pacer spreads a rate over time: after elapsed since the start, Due
// units (frames, or bits) may have been sent. Sending a burst only when
// what is already sent is below Due keeps the long-run rate exact
// whatever the sleep granularity, never running ahead. A late wake-up is
// caught up with by at most two bursts back to back (Late): a longer
// catch-up would be a burst the device under test never asked for, and
// counting its loss against the device would be wrong.
type Pacer struct {
	PerSecond float64 // units per second; 0: unlimited
}

// Due is the units allowed by elapsed.
func (p Pacer) Due(elapsed time.Duration) float64 {
	return p.PerSecond * elapsed.Seconds()
}

// Late is what a sender that has sent `sent` units by elapsed is behind
// by beyond two bursts of cost: units it should count as sent without
// sending them (the offered rate then says what was offered).
func (p Pacer) Late(elapsed time.Duration, sent, cost float64) float64 {
	if p.PerSecond <= 0 {
		return 0
	}
	return max(0, p.Due(elapsed)-sent-2*cost)
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
