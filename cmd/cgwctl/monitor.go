package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cgw-project/cgw/control/status"
)

// cmdMonitor: cgwctl monitor, a client of GET /v1/events: one line per
// IKE/Child SA change, BGP session state and route change, until
// interrupted (or -count events, or -for elapsed).
func cmdMonitor(e *env, args []string) int {
	fs := flag.NewFlagSet("cgwctl monitor", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print each event as a JSON line")
	count := fs.Int("count", 0, "stop after this many events (0: no limit)")
	forDur := fs.Duration("for", 0, "stop after this long (0: until interrupted)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "cgwctl monitor: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	c, err := af.client()
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitProblem
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *forDur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *forDur)
		defer cancel()
	}
	n := 0
	dropped := false
	err = c.Events(ctx, func(ev status.Event) bool {
		if *asJSON {
			b, _ := json.Marshal(ev)
			fmt.Fprintln(e.stdout, string(b))
		} else {
			fmt.Fprintln(e.stdout, ev)
		}
		dropped = ev.Kind == "monitor" && ev.Type == "dropped"
		n++
		return *count == 0 || n < *count
	})
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(e.stderr, "cgwctl monitor: %v\n", err)
		return exitProblem
	}
	if dropped {
		return exitProblem
	}
	return exitOK
}
