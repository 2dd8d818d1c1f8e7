package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/cgw-project/cgw/control/status"
)

// cmdReload: cgwctl reload, a client of POST /v1/reload. cgw-control
// re-reads its configuration file, checks it as config check does and
// applies only the difference; a refused configuration changes nothing
// and its problems are printed (exit 1).
func cmdReload(e *env, args []string) int {
	fs := flag.NewFlagSet("cgwctl reload", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: cgwctl reload [flags]\n\ncgw-control re-reads its -config file and applies the difference\n(the same as kill -HUP). Tunnels added, removed or changed are\n(re)negotiated, the others keep their SAs and BGP sessions.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "cgwctl reload: unexpected arguments %q (cgw-control reads the file it was started with)\n", fs.Args())
		return exitUsage
	}
	c, err := af.client()
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitProblem
	}
	// Removing tunnels waits for the peers' answers: allow for it.
	ctx, cancel := context.WithTimeout(context.Background(), max(*af.timeout, 30*time.Second))
	defer cancel()
	r, err := c.Reload(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "cgwctl reload: %v\n", err)
		return exitProblem
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	} else {
		printReload(e, r)
	}
	if !r.Applied || len(r.Errors) > 0 {
		return exitProblem
	}
	return exitOK
}

func printReload(e *env, r *status.ReloadResult) {
	if !r.Applied {
		fmt.Fprintf(e.stderr, "cgwctl reload: %s refused, nothing changed:\n", orDefault(r.Config, "the configuration"))
		for _, p := range r.Problems {
			fmt.Fprintf(e.stderr, "  %s\n", p)
		}
		return
	}
	list := func(what string, names []string) {
		if len(names) > 0 {
			fmt.Fprintf(e.stdout, "  %-10s %s\n", what, strings.Join(names, ", "))
		}
	}
	fmt.Fprintf(e.stdout, "reloaded %s:\n", orDefault(r.Config, "the configuration"))
	if len(r.Added)+len(r.Removed)+len(r.Changed) == 0 {
		fmt.Fprintln(e.stdout, "  no tunnel changed")
	}
	list("added", r.Added)
	list("removed", r.Removed)
	list("changed", r.Changed)
	list("unchanged", r.Unchanged)
	for _, n := range r.Notes {
		fmt.Fprintf(e.stdout, "  note: %s\n", n)
	}
	for _, x := range r.Errors {
		fmt.Fprintf(e.stderr, "  error: %s\n", x)
	}
	if len(r.Added)+len(r.Changed) > 0 {
		fmt.Fprintln(e.stdout, "(added and changed tunnels are negotiating: see cgwctl status)")
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
