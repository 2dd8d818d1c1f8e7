// Package harden keeps a daemon's memory — IKE and ESP keys, pre-shared
// keys — from leaving the process through a core file or a debugger.
package harden

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Process is called first thing by cgw-control and cgw-dataplane:
//   - RLIMIT_CORE 0 (soft and hard): a crash writes no core file, whatever
//     GOTRACEBACK or the system's core_pattern say;
//   - PR_SET_DUMPABLE 0: no core either, and only root with
//     CAP_SYS_PTRACE may ptrace the process or read /proc/<pid>/mem,
//     environ and the like (proc(5)); it holds for every thread.
//
// execve resets the dumpable flag, so a helper the daemon starts is not
// covered (they start none that holds keys).
func Process() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("harden: setting RLIMIT_CORE to 0 (no core dumps holding keys): %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("harden: prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}
