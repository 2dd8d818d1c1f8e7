package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/status"
)

// apiFlags are the flags of every command that talks to cgw-control.
type apiFlags struct {
	socket, cfgPath *string
	timeout         *time.Duration
}

func addAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		socket:  fs.String("socket", "", "status API `socket` (default: from -config, else "+config.DefaultStatusSocket(config.DefaultGatewayName)+")"),
		cfgPath: fs.String("config", "", "read the socket path from this configuration `file` (gateway.observability.status_socket or gateway.name)"),
		timeout: fs.Duration("timeout", 5*time.Second, "give up after this long"),
	}
}

// client returns the API client of the socket the flags name.
func (f apiFlags) client() (*status.Client, error) {
	path := *f.socket
	if path == "" && *f.cfgPath != "" {
		c, err := config.Load(*f.cfgPath)
		if err != nil {
			return nil, err
		}
		path = c.Gateway.Observability.StatusSocket
		if path == "" {
			path = config.DefaultStatusSocket(c.Gateway.Name)
		}
	}
	if path == "" {
		path = config.DefaultStatusSocket(config.DefaultGatewayName)
	}
	return status.NewClient(path), nil
}

// fetchStatus parses the common flags (-socket, -config, -json) and asks
// cgw-control for its snapshot.
func fetchStatus(e *env, name string, args []string) (*status.Status, bool, int) {
	s, asJSON, _, code := fetchStatusArgs(e, name, args, 0)
	return s, asJSON, code
}

// fetchStatusArgs is fetchStatus for a command that takes up to maxArgs
// positional arguments (before or after the flags), which it returns.
func fetchStatusArgs(e *env, name string, args []string, maxArgs int) (*status.Status, bool, []string, int) {
	fs := flag.NewFlagSet("cgwctl "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if err == flag.ErrHelp {
			return nil, false, nil, exitOK
		}
		return nil, false, nil, exitUsage
	}
	if len(pos) > maxArgs {
		fmt.Fprintf(e.stderr, "cgwctl %s: unexpected arguments %q\n", name, pos[maxArgs:])
		return nil, false, nil, exitUsage
	}
	c, err := af.client()
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return nil, false, nil, exitProblem
	}
	ctx, cancel := context.WithTimeout(context.Background(), *af.timeout)
	defer cancel()
	s, err := c.Status(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "cgwctl %s: %v\n", name, err)
		return nil, false, nil, exitProblem
	}
	return s, *asJSON, pos, -1
}

func printJSON(w io.Writer, v any) {
	b, _ := jsonIndent(v)
	w.Write(append(b, '\n'))
}

func cmdStatus(e *env, args []string) int {
	s, asJSON, code := fetchStatus(e, "status", args)
	if s == nil {
		return code
	}
	if asJSON {
		printJSON(e.stdout, s)
		return exitOK
	}
	w := e.stdout
	fmt.Fprintf(w, "cgw-control instance %s, pid %d, up %v\n\n", s.Gateway, s.Pid, s.Time.Sub(s.Started).Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TUNNEL\tSTATE\tUPTIME\tLOCAL\tPEER\tINSIDE\tNAT\tSAS\tLAST ERROR")
	for _, t := range s.Tunnels {
		up := "-"
		if t.State == "up" {
			up = t.Uptime.String()
		}
		nat := "no"
		if t.NAT {
			nat = "udp-4500"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\t%v\t%s\t%d\t%s\n", t.Name, t.State, up, t.Local, t.Peer, t.InsideLocal, nat, len(t.Children), t.LastError)
	}
	tw.Flush()
	if len(s.Neighbors) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "BGP NEIGHBOR\tTUNNEL\tLOCAL\tAS\tPEER AS\tSTATE\tROUTES")
		for _, n := range s.Neighbors {
			fmt.Fprintf(tw, "%v\t%s\t%v\t%d\t%d\t%s\t%d\n", n.Peer, n.Tunnel, n.Local, n.LocalASN, n.PeerASN, n.State, n.Routes)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\n%d route(s) selected (cgwctl routes)\n", len(s.Routes))
	fmt.Fprintf(w, "%d prefix(es) guarded in the kernel, dropped if XDP lets them through (ip route show proto 203)\n", len(s.Guards))
	if s.GuardRepairs > 0 || s.GuardErrors > 0 {
		// Something removes them, or the kernel refuses them (perf/runbooks.md).
		fmt.Fprintf(w, "  %d put back after being removed behind cgw's back, %d refused by the kernel (see cgw-control's log)\n", s.GuardRepairs, s.GuardErrors)
	}
	return exitOK
}

// cmdSAs prints the SAs (of one tunnel when named) in the layout of strongSwan's swanctl --list-sas,
// which operators already read.
func cmdSAs(e *env, args []string) int {
	s, asJSON, pos, code := fetchStatusArgs(e, "sas", args, 1)
	if s == nil {
		return code
	}
	if len(pos) == 1 {
		t, ok := s.Tunnel(pos[0])
		if !ok {
			var names []string
			for _, t := range s.Tunnels {
				names = append(names, t.Name)
			}
			fmt.Fprintf(e.stderr, "cgwctl sas: no tunnel %q (tunnels: %s)\n", pos[0], strings.Join(names, ", "))
			return exitProblem
		}
		s.Tunnels = []status.Tunnel{*t}
	}
	if asJSON {
		printJSON(e.stdout, s.Tunnels)
		return exitOK
	}
	w := e.stdout
	for _, t := range s.Tunnels {
		if t.IKE == nil {
			fmt.Fprintf(w, "%s: %s\n  remote %v\n", t.Name, strings.ToUpper(t.State), t.Peer)
			if t.LastError != "" {
				fmt.Fprintf(w, "  last error: %s\n", t.LastError)
			}
			continue
		}
		i := t.IKE
		mark := func(init bool) string {
			if init {
				return "*"
			}
			return ""
		}
		v := i.Version
		if v == 0 {
			v = 2 // a cgw-control from before the field
		}
		fmt.Fprintf(w, "%s: #%d, %s, IKEv%d, %s_i%s %s_r%s\n", t.Name, t.ID, strings.ToUpper(ikeState(t.State)), v, i.SPIi, mark(i.Initiator), i.SPIr, mark(!i.Initiator))
		fmt.Fprintf(w, "  local  %v\n  remote %v\n", t.Local, t.Peer)
		fmt.Fprintf(w, "  %s\n", i.Proposal)
		fmt.Fprintf(w, "  established %v ago, rekeying in %v, expires in %v\n", i.Age, i.RekeyIn, i.LifetimeLeft)
		for _, c := range t.Children {
			mode := "TUNNEL"
			if c.Encap {
				mode = "TUNNEL-in-UDP"
			}
			st := "INSTALLED"
			if c.Deleting {
				st = "DELETING"
			}
			act := ""
			if c.Active {
				act = ", ACTIVE"
			}
			fmt.Fprintf(w, "  %s: slots %d/%d, %s%s, %s, ESP:%s\n", t.Name, c.InIndex, c.OutIndex, st, act, mode, c.Suite)
			fmt.Fprintf(w, "    installed %v ago, rekeying in %v, expires in %v\n", c.Age, c.RekeyIn, c.LifetimeLeft)
			fmt.Fprintf(w, "    in  %08x, %9d bytes, %7d packets, %s%s\n", c.InSPI, c.In.Bytes, c.In.Packets, ago(c.In.Idle), drops(c.In))
			fmt.Fprintf(w, "    out %08x, %9d bytes, %7d packets, %s\n", c.OutSPI, c.Out.Bytes, c.Out.Packets, ago(c.Out.Idle))
			fmt.Fprintf(w, "    local  0.0.0.0/0\n    remote 0.0.0.0/0\n")
		}
		if len(t.Stale) > 0 {
			fmt.Fprintf(w, "  SA slots %v left by a previous cgw-control (removed once this tunnel's new SA carries traffic)\n", t.Stale)
		}
	}
	return exitOK
}

func ikeState(s string) string {
	if s == "up" {
		return "established"
	}
	return s
}

func ago(d status.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.String() + " ago"
}

func drops(c status.Counters) string {
	if c.DropReplay+c.DropAuth+c.DropOther == 0 {
		return ""
	}
	return fmt.Sprintf(", dropped: replay %d, auth %d, other %d", c.DropReplay, c.DropAuth, c.DropOther)
}

func cmdRoutes(e *env, args []string) int {
	s, asJSON, code := fetchStatus(e, "routes", args)
	if s == nil {
		return code
	}
	if asJSON {
		printJSON(e.stdout, s.Routes)
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tSOURCE\tTUNNEL\tBACKUP\tAS_PATH\tWHY")
	for _, r := range s.Routes {
		backup := r.Backup
		if backup == "" {
			backup = "-"
		}
		path := "-"
		if len(r.ASPath) > 0 {
			path = strings.Trim(fmt.Sprint(r.ASPath), "[]")
		}
		why := r.Reason
		if r.Pending {
			why += " (not yet in the dataplane's map)"
		}
		fmt.Fprintf(tw, "%v\t%s\t%s\t%s\t%s\t%s\n", r.Prefix, r.Source, r.Tunnel, backup, path, why)
	}
	tw.Flush()
	return exitOK
}

func jsonIndent(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }
