// Command cgw-lab brings the emulated-AWS lab (bench/lab) up and down,
// shows its state, runs the demo and measures the stand-in gateway.
//
//	cgw-lab up [--prefix P] [--nat] [--gateway standin|cgw]   build the lab, leave it up
//	cgw-lab down [--prefix P]            remove everything the lab created (after a crash too)
//	cgw-lab status [--prefix P]          namespaces, processes, SAs and BGP sessions
//	cgw-lab demo [--prefix P] [--down] [--gateway standin|cgw]   up, wait, show SAs/BGP/routes, ping lan→vpc
//	cgw-lab measure [--prefix P] [-t 10s] TCP and 64-byte UDP through the stand-in, both ways
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	withCtx := func(name string, f func(context.Context, []string) error) func(io.Writer, io.Writer, []string) int {
		return cli.RunE("cgw-lab "+name, func(args []string) error { return f(ctx, args) })
	}
	p := cli.Program{Name: "cgw-lab", Summary: "the emulated-AWS lab (strongSwan + BIRD in network namespaces) around a gateway",
		Commands: []cli.Command{
			{Name: "up", Summary: "build the lab and leave it up", Run: withCtx("up", cmdUp)},
			{Name: "down", Summary: "remove everything the lab created (after a crash too)", Run: cli.RunE("cgw-lab down", cmdDown)},
			{Name: "status", Summary: "namespaces, processes, SAs and BGP sessions", Run: withCtx("status", cmdStatus)},
			{Name: "demo", Summary: "up, wait, show SAs/BGP/routes, ping lan -> vpc", Run: withCtx("demo", cmdDemo)},
			{Name: "measure", Summary: "TCP and 64-byte UDP through the gateway, both ways", Run: withCtx("measure", cmdMeasure)},
		}}
	code := p.Main(os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type common struct {
	prefix string
	root   string
}

// gatewayFlag selects what runs in the cgw namespace.
func gatewayFlag(fs *flag.FlagSet) *string {
	return fs.String("gateway", "standin", "gateway in the cgw namespace: standin (strongSwan + BIRD) or cgw (cgw-dataplane + cgw-control from this program's directory or $PATH)")
}

// newGateway returns the lab.Gateway a --gateway value names.
func newGateway(name string) (lab.Gateway, error) {
	switch name {
	case "standin", "":
		return &lab.StandIn{}, nil
	case "cgw":
		return &lab.CGWGateway{}, nil
	}
	return nil, fmt.Errorf("--gateway %q: want standin or cgw", name)
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.prefix, "prefix", "cgwlab", "name prefix of the lab's namespaces")
	fs.StringVar(&c.root, "state", "/run/cgw-lab", "state directory root")
}
