// Command cgwctl is the operator's tool for cgw: it imports AWS's VPN
// configuration, checks configuration files and (later) asks cgw-control
// for status, SAs and routes over its status socket.
//
//	cgwctl config import [flags] aws-vpn.xml   AWS generic XML → cgw YAML
//	cgwctl config check cgw.yaml                 validate a configuration
//	cgwctl status|sas [TUNNEL]|routes [-socket s | -config f] [-json]   ask cgw-control
//	cgwctl rekey [-ike] TUNNEL                   rekey a tunnel's Child (or IKE) SA now
//	cgwctl initiate TUNNEL                       negotiate a tunnel that is down now
//	cgwctl reload                                re-read cgw-control's configuration, apply the difference
//	cgwctl monitor [-count n] [-for d]            stream IKE, BGP and route events
//	cgwctl dataplane [-metrics addr]             per-worker runtime and drops (two reads 1 s apart)
//	cgwctl verify [-config f | -inside i -outside o]  NIC and host preflight with fixes
//	cgwctl completion bash                       bash completion script
//	cgwctl -version                              version, commit, Go version
//
// Help is "cgwctl -h", "cgwctl help CMD" or "cgwctl CMD -h" (exit 0); a
// wrong command line exits 2, a failed command 1.
package main

import (
	"flag"
	"io"
	"os"

	"github.com/cgw-project/cgw/internal/cli"
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

// Exit codes (internal/cli's, plus exitBusy).
const (
	exitOK      = cli.OK
	exitProblem = cli.Failed // the input was read and is wrong (or the action failed)
	exitUsage   = cli.Usage  // the command line is wrong
	exitBusy    = 3          // cgw-control refused for now (e.g. the SA is already being rekeyed): nothing was done
)

var commands = []command{
	{name: "config", summary: "import and check configuration files", sub: configCommands},
	{name: "status", summary: "tunnels, BGP sessions and route counts of a running cgw-control", run: cmdStatus},
	{name: "sas", summary: "IKE and Child SAs with the dataplane's counters (like swanctl --list-sas)", run: cmdSAs},
	{name: "routes", summary: "the selected routes and why each won", run: cmdRoutes},
	{name: "rekey", summary: "rekey a tunnel's Child SA (-ike: its IKE SA) now", run: cmdRekey},
	{name: "initiate", summary: "negotiate a tunnel now (one that is down, or added with startup_action add)", run: cmdInitiate},
	{name: "reload", summary: "re-read cgw-control's configuration and apply the difference (as SIGHUP)", run: cmdReload},
	{name: "monitor", summary: "stream events: IKE/Child SAs up, rekeyed, deleted; BGP states; route changes", run: cmdMonitor},
	{name: "dataplane", summary: "per worker: core, queue, modes, CPU, pps in/out, drops (from cgw-dataplane's metrics)", run: cmdDataplane},
	{name: "verify", summary: "NIC and host preflight for the dataplane, each finding with the command that fixes it", run: cmdVerify},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	p := cli.Program{Name: "cgwctl", Summary: "the operator's tool for cgw (configuration, status, actions)",
		Commands: append(toCLI(commands), cli.CompletionCommand("cgwctl"))}
	return p.Main(args, stdout, stderr)
}

// toCLI turns a command table into internal/cli's, each command run with
// the writers the dispatcher gives it.
func toCLI(table []command) []cli.Command {
	var out []cli.Command
	for _, c := range table {
		cc := cli.Command{Name: c.name, Summary: c.summary}
		if c.sub != nil {
			cc.Sub = toCLI(c.sub)
		} else {
			run := c.run
			cc.Run = func(stdout, stderr io.Writer, args []string) int {
				return run(&env{stdout: stdout, stderr: stderr}, args)
			}
		}
		out = append(out, cc)
	}
	return out
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (internal/cli).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	return cli.ParseInterspersed(fs, args)
}
