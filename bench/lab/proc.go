package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a process the lab started. It is identified by pid AND its start
// time (field 22 of /proc/<pid>/stat), so a crashed lab's pid that the
// kernel has since reused for somebody else's process is never signalled.
type Proc struct {
	Name  string `json:"name"`
	NS    string `json:"ns"`
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
	Log   string `json:"log"`
}

// procStart returns the start time of pid in clock ticks since boot, or
// an error if the process does not exist.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// comm (field 2) may hold spaces; fields after the last ')' are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("pid %d: malformed /proc stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, fmt.Errorf("pid %d: short /proc stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// procState returns the one-letter state of pid ("R", "S", "Z", ...).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+3 > len(b) {
		return ""
	}
	return string(b[i+2 : i+3])
}

// Alive reports whether the process still runs (a zombie counts as gone).
func (p Proc) Alive() bool {
	st, err := procStart(p.Pid)
	if err != nil || st != p.Start {
		return false
	}
	s := procState(p.Pid)
	return s != "" && s != "Z" && s != "X"
}

// stop ends the process by pid: SIGTERM, then SIGKILL after grace.
func (p Proc) stop(grace time.Duration) error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s (pid %d): %w", p.Name, p.Pid, err)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.Alive() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p.Alive() {
		if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("%s (pid %d): %w", p.Name, p.Pid, err)
		}
	}
	for i := 0; i < 40 && p.Alive(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if p.Alive() {
		return fmt.Errorf("%s (pid %d) survived SIGKILL", p.Name, p.Pid)
	}
	return nil
}

// startProc starts args inside namespace ns in its own session (so it
// outlives `cgw-lab up`), with stdout and stderr appended to logPath. A
// goroutine reaps it if it ends while this process still runs.
func startProc(name, ns, logPath string, env []string, args ...string) (Proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Proc{}, err
	}
	defer lf.Close()
	full := append([]string{"netns", "exec", ns}, args...)
	cmd := exec.Command("ip", full...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("start %s in %s: %w", name, ns, err)
	}
	st, err := procStart(cmd.Process.Pid)
	if err != nil {
		return Proc{}, fmt.Errorf("start %s in %s: exited at once (see %s)", name, ns, logPath)
	}
	go cmd.Wait() //nolint:errcheck // reaping only; liveness is checked by pid
	return Proc{Name: name, NS: ns, Pid: cmd.Process.Pid, Start: st, Log: logPath}, nil
}

// run runs a command (on the host, e.g. "ip -n ns ...") and returns its
// stdout; a failure carries stderr so the operator sees why.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
