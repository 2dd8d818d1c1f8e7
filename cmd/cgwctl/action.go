package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/cgw-project/cgw/control/status"
)

// cmdRekey: cgwctl rekey [-ike] TUNNEL, a client of POST
// /v1/tunnels/TUNNEL/rekey-child or /rekey-ike.
func cmdRekey(e *env, args []string) int {
	fs := flag.NewFlagSet("cgwctl rekey", flag.ContinueOnError)
	ike := fs.Bool("ike", false, "rekey the IKE SA (default: the active Child SA)")
	return action(e, fs, "rekey", args, func(ctx context.Context, c *status.Client, tunnel string) (string, error) {
		if *ike {
			return "IKE SA rekey started", c.RekeyIKE(ctx, tunnel)
		}
		return "Child SA rekey started", c.RekeyChild(ctx, tunnel)
	})
}

// cmdInitiate: cgwctl initiate TUNNEL, a client of POST
// /v1/tunnels/TUNNEL/initiate.
func cmdInitiate(e *env, args []string) int {
	fs := flag.NewFlagSet("cgwctl initiate", flag.ContinueOnError)
	return action(e, fs, "initiate", args, func(ctx context.Context, c *status.Client, tunnel string) (string, error) {
		return "negotiation started", c.Initiate(ctx, tunnel)
	})
}

// action parses the API flags and one tunnel name and runs do. cgw-control
// answers once the command started (or why it could not): the outcome
// shows in cgwctl status / sas.
func action(e *env, fs *flag.FlagSet, name string, args []string, do func(context.Context, *status.Client, string) (string, error)) int {
	fs.SetOutput(e.stderr)
	af := addAPIFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: cgwctl %s [flags] TUNNEL\n\nflags:\n", name)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintf(e.stderr, "cgwctl %s: want exactly one tunnel name (cgwctl status lists them)\n", name)
		fs.Usage()
		return exitUsage
	}
	c, err := af.client()
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitProblem
	}
	ctx, cancel := context.WithTimeout(context.Background(), *af.timeout)
	defer cancel()
	what, err := do(ctx, c, pos[0])
	var ae *status.APIError
	switch {
	case err == nil:
		fmt.Fprintf(e.stdout, "%s: %s (see cgwctl sas)\n", pos[0], what)
		return exitOK
	case status.IsConflict(err) && errors.As(err, &ae):
		fmt.Fprintf(e.stderr, "cgwctl %s: refused, nothing done: %s\n", name, ae.Msg)
		return exitBusy
	case errors.As(err, &ae):
		fmt.Fprintf(e.stderr, "cgwctl %s: %s\n", name, ae.Msg)
	default:
		fmt.Fprintf(e.stderr, "cgwctl %s: %v\n", name, err)
	}
	return exitProblem
}
