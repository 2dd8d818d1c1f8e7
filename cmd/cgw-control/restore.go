package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cgw-project/cgw/control/kernelguard"
)

// restoreGuards is -restore-guards: cgw-guards.service runs it at early
// boot, before the network is up, to put back the guards of the state
// file path, or of every <instance>.guards file in the directory path
// (default $STATE_DIRECTORY), then exits (kernelguard.Restore). A missing
// file or directory is a first boot: nothing to do.
func restoreGuards(log *slog.Logger, path string) error {
	if path == "" {
		path, _, _ = strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	}
	if path == "" || path == "off" {
		return errors.New("-restore-guards: give -guard-state with the state file or its directory (e.g. /var/lib/cgw; the default, $STATE_DIRECTORY, is set only under systemd)")
	}
	files := []string{path}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		files = nil
	case err != nil:
		return fmt.Errorf("-restore-guards: %w", err)
	case st.IsDir():
		files, _ = filepath.Glob(filepath.Join(path, "*.guards"))
	}
	if len(files) == 0 {
		log.Info("no kernel guard state to restore (a first boot, or cgw-control never guarded anything)", "path", path)
		return nil
	}
	var errs []error
	for _, f := range files {
		res, err := kernelguard.Restore(f)
		if err != nil {
			errs = append(errs, err)
		}
		if res.Listed > 0 {
			log.Info("kernel guards restored: unreachable routes for the prefixes cgw routes into tunnels, until cgw-control adopts them",
				"state", f, "listed", res.Listed, "installed", res.Installed, "metric", kernelguard.Metric, "proto", int(kernelguard.Protocol))
		}
	}
	return errors.Join(errs...)
}
