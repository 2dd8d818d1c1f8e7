package worker

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

func readMonotonic() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}

func atomicAdd(p *uint64, d uint64) { atomic.AddUint64(p, d) }
