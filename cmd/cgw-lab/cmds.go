package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/internal/cli"
)

func cmdUp(ctx context.Context, args []string) error {
	fs := cli.Flags("cgw-lab up", "[flags]", "Builds the emulated-AWS lab (namespaces, veths, one charon per AWS\ntunnel endpoint, BIRD as the virtual private gateway) and the gateway,\nthen leaves it up.", os.Stderr)
	var c common
	c.register(fs)
	nat := fs.Bool("nat", false, "source-NAT the gateway side in inet (needs nft)")
	gwName := gatewayFlag(fs)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	gw, err := newGateway(*gwName)
	if err != nil {
		return err
	}
	l, err := lab.New(lab.Options{Prefix: c.prefix, StateRoot: c.root, NAT: *nat, Progress: os.Stdout, Gateway: gw})
	if err != nil {
		return err
	}
	if err := l.Up(ctx); err != nil {
		return fmt.Errorf("%w\n(the lab is left as it is for inspection; clean it with: cgw-lab down --prefix %s)", err, c.prefix)
	}
	fmt.Printf("lab %q is up; state in %s; clean with: cgw-lab down --prefix %s\n", c.prefix, l.Dir, c.prefix)
	return nil
}

func cmdDown(args []string) error {
	fs := cli.Flags("cgw-lab down", "[flags]", "Removes everything the lab with this prefix created, also after a crash.", os.Stderr)
	var c common
	c.register(fs)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	st, _ := lab.LoadState(c.root, c.prefix)
	if err := lab.Down(c.root, c.prefix); err != nil {
		return err
	}
	if st.Gateway == "cgw" {
		if err := lab.RemoveCGWMaps(c.prefix); err != nil {
			return err
		}
	}
	fmt.Printf("lab %q is down\n", c.prefix)
	return nil
}

func cmdStatus(ctx context.Context, args []string) error {
	fs := cli.Flags("cgw-lab status", "[flags]", "Shows the lab's namespaces, processes, SAs and BGP sessions.", os.Stderr)
	var c common
	c.register(fs)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	l, err := lab.Attach(c.root, c.prefix)
	if err != nil {
		return err
	}
	st := l.State()
	fmt.Printf("lab %q (gateway %s), state %s\n", st.Prefix, st.Gateway, l.Dir)
	fmt.Printf("namespaces: %s\n", strings.Join(st.Namespaces, " "))
	for _, p := range st.Procs {
		alive := "running"
		if !p.Alive() {
			alive = "GONE"
		}
		fmt.Printf("  %-16s pid %-7d %-8s %s\n", p.Name, p.Pid, alive, p.Log)
	}
	if st.Gateway == "cgw" {
		showCGW(ctx, l, &lab.CGWGateway{})
	}
	return showSAsAndBGP(ctx, l)
}

// showCGW prints what cgw-control reports (as cgwctl status would).
func showCGW(ctx context.Context, l *lab.Lab, g *lab.CGWGateway) {
	fmt.Printf("\n--- cgw-control (cgwctl status|sas|routes -socket %s) ---\n", g.SocketPath(l))
	s, err := g.Client(l).Status(ctx)
	if err != nil {
		fmt.Println("  error:", err)
		return
	}
	for _, t := range s.Tunnels {
		fmt.Printf("tunnel %s: %s, peer %v, NAT %v, %d child SA(s)", t.Name, t.State, t.Peer, t.NAT, len(t.Children))
		if a, ok := t.Active(); ok {
			fmt.Printf(", active in %08x (%d pkts) out %08x (%d pkts)", a.InSPI, a.In.Packets, a.OutSPI, a.Out.Packets)
		}
		fmt.Println()
	}
	for _, n := range s.Neighbors {
		fmt.Printf("bgp %v (%s): %s, %d route(s)\n", n.Peer, n.Tunnel, n.State, n.Routes)
	}
	for _, r := range s.Routes {
		fmt.Printf("route %v via %s, backup %s (%s: %s)\n", r.Prefix, r.Tunnel, r.Backup, r.Source, r.Reason)
	}
}

func showSAsAndBGP(ctx context.Context, l *lab.Lab) error {
	st := l.State()
	for _, ep := range sortedKeys(st.Charons) {
		out, err := l.Swanctl(ctx, ep, "--list-sas")
		fmt.Printf("\n--- swanctl --list-sas (%s) ---\n%s", ep, out)
		if err != nil {
			fmt.Println("  error:", err)
		}
	}
	for _, b := range sortedKeys(st.Birds) {
		out, err := l.BirdShow(ctx, b, "protocols")
		fmt.Printf("\n--- birdc show protocols (%s) ---\n%s", b, out)
		if err != nil {
			fmt.Println("  error:", err)
		}
		out, _ = l.BirdShow(ctx, b, "route")
		fmt.Printf("--- birdc show route (%s) ---\n%s", b, out)
	}
	return nil
}
