// Command cgwctl is the operator's tool for cgw: it imports AWS's VPN
// configuration, checks configuration files and (later) asks cgw-control
// for status, SAs and routes over its status socket.
//
//	cgwctl config import [flags] aws-vpn.xml   AWS generic XML → cgw YAML
//	cgwctl config check cgw.yaml                 validate a configuration
//	cgwctl status|sas|routes [-socket s | -config f] [-json]   ask cgw-control
//	cgwctl rekey [-ike] TUNNEL                   rekey a tunnel's Child (or IKE) SA now
//	cgwctl initiate TUNNEL                       negotiate a tunnel that is down now
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

// command is one word of the command line. A command either runs or
// dispatches to its own table of subcommands; new commands (status, sas,
// routes) are added to the tables below.
type command struct {
	name    string
	summary string
	run     func(e *env, args []string) int // nil when sub is set
	sub     []command
}

// env is what a command may touch, so tests can run it in-process.
type env struct {
	stdout, stderr io.Writer
}

// Exit codes.
const (
	exitOK      = 0
	exitProblem = 1 // the input was read and is wrong (or the action failed)
	exitUsage   = 2 // the command line is wrong
	exitBusy    = 3 // cgw-control refused for now (e.g. the SA is already being rekeyed): nothing was done
)

var commands = []command{
	{name: "config", summary: "import and check configuration files", sub: configCommands},
	{name: "status", summary: "tunnels, BGP sessions and route counts of a running cgw-control", run: cmdStatus},
	{name: "sas", summary: "IKE and Child SAs with the dataplane's counters (like swanctl --list-sas)", run: cmdSAs},
	{name: "routes", summary: "the selected routes and why each won", run: cmdRoutes},
	{name: "rekey", summary: "rekey a tunnel's Child SA (-ike: its IKE SA) now", run: cmdRekey},
	{name: "initiate", summary: "negotiate a tunnel now (one that is down, or added with startup_action add)", run: cmdInitiate},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	return dispatch(e, "cgwctl", commands, args)
}

func dispatch(e *env, prefix string, table []command, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr, prefix, table)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for i := range table {
		c := &table[i]
		if c.name != args[0] {
			continue
		}
		if c.sub != nil {
			return dispatch(e, prefix+" "+c.name, c.sub, args[1:])
		}
		return c.run(e, args[1:])
	}
	fmt.Fprintf(e.stderr, "%s: unknown command %q\n", prefix, args[0])
	usage(e.stderr, prefix, table)
	return exitUsage
}

func usage(w io.Writer, prefix string, table []command) {
	fmt.Fprintf(w, "usage: %s <command> [arguments]\n\ncommands:\n", prefix)
	for _, c := range table {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for a command's flags.\n", prefix)
}

// parseInterspersed parses flags that may come before or after the
// positional arguments ("import aws.xml -o out.yaml" and "import -o
// out.yaml aws.xml" both work), returning the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// Parse stopped at a non-flag: take it and go on.
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
