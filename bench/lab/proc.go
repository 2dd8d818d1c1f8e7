package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/cgw-project/cgw/bench/procstat"
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

// Alive reports whether the process still runs (a zombie counts as gone).
func (p Proc) Alive() bool { return procstat.Alive(p.Pid, p.Start) }

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
	st, err := procstat.Read(cmd.Process.Pid)
	if err != nil {
		return Proc{}, fmt.Errorf("start %s in %s: exited at once (see %s)", name, ns, logPath)
	}
	go cmd.Wait() //nolint:errcheck // reaping only; liveness is checked by pid
	return Proc{Name: name, NS: ns, Pid: cmd.Process.Pid, Start: st.Start, Log: logPath}, nil
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
