// Package procstat reads the few fields of /proc/<pid>/stat that the lab
// harnesses need to track the processes they start: the state, the start
// time (which tells a recorded process from a later one that reused its
// pid) and the CPU time consumed.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Stat is a process's entry in /proc/<pid>/stat (proc(5)).
type Stat struct {
	State string        // field 3: "R", "S", "Z", …
	Start uint64        // field 22: start time, clock ticks since boot
	CPU   time.Duration // fields 14+15: user + system time
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// Read returns pid's stat fields, or an error if the process is gone.
func Read(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	return parse(pid, b)
}

func parse(pid int, b []byte) (Stat, error) {
	// comm (field 2) may hold spaces and parentheses; the fields after the
	// last ')' are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("pid %d: malformed /proc stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3.
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("pid %d: short /proc stat", pid)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("pid %d: start time %q: %w", pid, f[19], err)
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return Stat{State: f[0], Start: start, CPU: time.Duration(u+s) * clockTick}, nil
}

// Alive reports whether pid runs and is the process that started at start
// (0: any); a zombie or dead process counts as gone.
func Alive(pid int, start uint64) bool {
	st, err := Read(pid)
	if err != nil || (start != 0 && st.Start != start) {
		return false
	}
	return st.State != "Z" && st.State != "X"
}

// CPUTime is the CPU time all of pid's threads have run, in nanoseconds
// from the scheduler's accounting (/proc/<pid>/task/*/schedstat), not
// rounded to clock ticks as Stat.CPU is: a benchmark trial of a second
// is read to better than a microsecond. Threads that ended before the
// call are not counted, so read it around a run of a steady process.
func CPUTime(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if err != nil {
			continue // the thread ended meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			continue
		}
		ns, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("pid %d: schedstat %q: %w", pid, b, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// CPUTicks is one CPU's line of /proc/stat: ticks busy and idle
// (idle + iowait) since boot.
type CPUTicks struct{ Busy, Idle uint64 }

// CPUs reads the per-CPU lines of /proc/stat, by CPU number.
func CPUs() (map[int]CPUTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return parseCPUs(string(b))
}

func parseCPUs(s string) (map[int]CPUTicks, error) {
	m := map[int]CPUTicks{}
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil {
			continue
		}
		var t CPUTicks
		// user nice system idle iowait irq softirq steal (guest time is
		// already in user)
		for i, v := range f[1:min(len(f), 9)] {
			x, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/stat %s: %q: %w", f[0], v, err)
			}
			if i == 3 || i == 4 {
				t.Idle += x
			} else {
				t.Busy += x
			}
		}
		m[n] = t
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("/proc/stat: no cpuN lines")
	}
	return m, nil
}

// Busy is the fraction of the ticks between a and b that the CPUs listed
// were busy.
func Busy(a, b map[int]CPUTicks, cpus []int) float64 {
	var busy, all uint64
	for _, c := range cpus {
		x, y := a[c], b[c]
		busy += y.Busy - x.Busy
		all += y.Busy - x.Busy + y.Idle - x.Idle
	}
	if all == 0 {
		return 0
	}
	return float64(busy) / float64(all)
}
