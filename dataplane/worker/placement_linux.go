package worker

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Placement returns the core the worker is pinned to (-1: none) and the
// NIC queue it serves (worker_info, cgwctl dataplane).
func (w *Worker) Placement() (cpu, queue int) { return w.cfg.CPU, w.cfg.Queue }

// noteThread records the worker's OS thread, on it, after LockOSThread.
func (w *Worker) noteThread() { w.tid.Store(int32(unix.Gettid())) }

// CPUTime returns the CPU time the worker's thread has used, from
// /proc/self/task/<tid>/schedstat (nanoseconds, unlike the tick-counted
// stat); false before Run started or after it ended.
func (w *Worker) CPUTime() (time.Duration, bool) {
	tid := w.tid.Load()
	if tid == 0 {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	ns, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ns), true
}
