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
	"os"
	"os/signal"
	"syscall"

	"github.com/cgw-project/cgw/bench/lab"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: cgw-lab up|down|status|demo|measure [--prefix P] [flags]")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "up":
		err = cmdUp(ctx, os.Args[2:])
	case "down":
		err = cmdDown(os.Args[2:])
	case "status":
		err = cmdStatus(ctx, os.Args[2:])
	case "demo":
		err = cmdDemo(ctx, os.Args[2:])
	case "measure":
		err = cmdMeasure(ctx, os.Args[2:])
	case "-h", "--help", "help":
		usage()
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cgw-lab:", err)
		os.Exit(1)
	}
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
