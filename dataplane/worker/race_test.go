//go:build race

package worker

// raceEnabled: the race detector makes sync.Pool drop items, so the
// transform package allocates; allocation counts are checked without it.
const raceEnabled = true
