package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
)

// cmdDemo brings the lab up with the stand-in, waits for both tunnels and
// both BGP sessions, shows the SAs, sessions and the learned VPC route,
// pings lan→vpc through the tunnel, and leaves the lab up (--down tears
// it down at the end) so one can look around with `ip netns exec`.
func cmdDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	var c common
	c.register(fs)
	down := fs.Bool("down", false, "tear the lab down at the end")
	nat := fs.Bool("nat", false, "source-NAT the gateway side in inet (needs nft)")
	gwName := gatewayFlag(fs)
	fs.Parse(args)
	gw, err := newGateway(*gwName)
	if err != nil {
		return err
	}
	l, err := lab.New(lab.Options{Prefix: c.prefix, StateRoot: c.root, NAT: *nat, Progress: os.Stdout, Gateway: gw})
	if err != nil {
		return err
	}
	cgw, _ := gw.(*lab.CGWGateway)
	gwDesc := "strongSwan stand-in"
	if cgw != nil {
		gwDesc = "cgw-dataplane + cgw-control"
	}
	step := func(format string, a ...any) { fmt.Printf("\n### "+format+"\n", a...) }
	step("1. building the lab %q: lan - cgw (%s) - inet - aws-t1/aws-t2 (strongSwan responders) - aws (BIRD, AS %d) - vpc", c.prefix, gwDesc, l.Conn.BGP.PeerASN)
	if err := l.Up(ctx); err != nil {
		return fmt.Errorf("%w\n(lab left for inspection; clean with: cgw-lab down --prefix %s)", err, c.prefix)
	}
	if *down {
		defer func() {
			step("tearing down")
			if err := l.Down(); err != nil {
				fmt.Fprintln(os.Stderr, "down:", err)
			}
			if cgw != nil {
				if err := cgw.Cleanup(l); err != nil {
					fmt.Fprintln(os.Stderr, "down:", err)
				}
			}
		}()
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	step("2. waiting for both IPsec tunnels (IKEv2, ESP in UDP 4500 through libipsec)")
	t0 := time.Now()
	if err := l.WaitTunnels(wctx); err != nil {
		return err
	}
	fmt.Printf("both tunnels up after %.1fs\n", time.Since(t0).Seconds())
	step("3. waiting for both eBGP sessions (AS %d <-> AS %d over the tunnels' inside /30s)", l.Conn.BGP.LocalASN, l.Conn.BGP.PeerASN)
	if err := l.WaitBGP(wctx); err != nil {
		return err
	}
	if cgw != nil {
		if _, err := cgw.WaitRouteInstalled(wctx, l, lab.VPCPrefix); err != nil {
			return err
		}
	} else if err := l.WaitRoute(wctx, lab.CGW, lab.VPCPrefix, ""); err != nil {
		return err
	}
	fmt.Printf("both sessions Established after %.1fs\n", time.Since(t0).Seconds())
	step("4. SAs on both sides, BGP sessions and routes")
	if err := showSAsAndBGP(ctx, l); err != nil {
		return err
	}
	if cgw != nil {
		showCGW(ctx, l, cgw)
	} else {
		out, _ := l.Exec(ctx, lab.CGW, "ip", "route", "show", lab.VPCPrefix.String())
		fmt.Printf("\n--- kernel route in %s ---\n%s", l.NS(lab.CGW), out)
	}
	step("5. ping lan %s -> vpc %s through the tunnel", l.LANHost(), lab.VPCHost)
	out, err := l.Exec(ctx, lab.LAN, "ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", lab.VPCHost.String())
	fmt.Print(out)
	if err != nil {
		return fmt.Errorf("ping lan -> vpc failed: %w", err)
	}
	if !*down {
		step("lab %q left up. Try: ip netns exec %s ping %s; cgw-lab status --prefix %s; clean with: cgw-lab down --prefix %s (make lab-down)",
			c.prefix, l.NS(lab.LAN), lab.VPCHost, c.prefix, c.prefix)
	}
	return nil
}

// cmdMeasure measures the gateway in a lab: TCP throughput and 64-byte
// UDP packet rate, lan→vpc and vpc→lan. It uses the lab with --prefix if
// it is up, else builds one with the stand-in and removes it afterwards.
func cmdMeasure(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("measure", flag.ExitOnError)
	var c common
	c.register(fs)
	dur := fs.Duration("t", 10*time.Second, "duration of each run (bounded: at most 60s)")
	runs := fs.Int("runs", 1, "runs per figure (the median is reported)")
	rate := fs.String("udp-rate", "15M,25M,40M", "offered UDP rates, comma-separated (iperf3 -b; with 64-byte payloads 25M is about 49 kpps)")
	fs.Parse(args)
	if *dur > time.Minute || *dur < time.Second {
		return fmt.Errorf("-t must be between 1s and 60s")
	}
	if *runs < 1 || *runs > 9 {
		return fmt.Errorf("-runs must be 1..9")
	}
	l, err := lab.Attach(c.root, c.prefix)
	if err != nil {
		fmt.Printf("lab %q is not up; building it with the strongSwan stand-in (removed afterwards)\n", c.prefix)
		l, err = lab.New(lab.Options{Prefix: c.prefix, StateRoot: c.root})
		if err != nil {
			return err
		}
		defer l.Down()
		if err := l.Up(ctx); err != nil {
			return err
		}
	}
	var cgw *lab.CGWGateway
	if l.State().Gateway == "cgw" {
		cgw = &lab.CGWGateway{}
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := l.WaitTunnels(wctx); err != nil {
		return err
	}
	if err := l.WaitBGP(wctx); err != nil {
		return err
	}
	if cgw != nil {
		if _, err := cgw.WaitRouteInstalled(wctx, l, lab.VPCPrefix); err != nil {
			return err
		}
	} else if err := l.WaitRoute(wctx, lab.CGW, lab.VPCPrefix, ""); err != nil {
		return err
	}
	st := l.State()
	fmt.Printf("gateway: %s; %d run(s) of %s each; lan %s <-> vpc %s\n", st.Gateway, *runs, *dur, l.LANHost(), lab.VPCHost)
	type fig struct {
		name string
		o    lab.TransferOptions
	}
	figs := []fig{
		{"TCP lan->vpc", lab.TransferOptions{Duration: *dur}},
		{"TCP vpc->lan", lab.TransferOptions{Duration: *dur, Reverse: true}},
	}
	// An overloaded libipsec delivers fewer packets than a loaded one
	// (its queues collapse), so UDP is measured at each offered rate and
	// the best delivered rate is reported.
	for _, r := range strings.Split(*rate, ",") {
		r = strings.TrimSpace(r)
		figs = append(figs,
			fig{"UDP 64B lan->vpc", lab.TransferOptions{Duration: *dur, UDP: true, Length: 64, Rate: r}},
			fig{"UDP 64B vpc->lan", lab.TransferOptions{Duration: *dur, UDP: true, Length: 64, Rate: r, Reverse: true}})
	}
	best := map[string]lab.TransferResult{}
	for _, f := range figs {
		var res []lab.TransferResult
		for r := 0; r < *runs; r++ {
			x, err := l.Transfer(ctx, lab.LAN, lab.VPC, lab.VPCHost, f.o)
			if err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
			res = append(res, x)
		}
		sort.Slice(res, func(i, j int) bool {
			if f.o.UDP {
				return res[i].PacketsPerS < res[j].PacketsPerS
			}
			return res[i].BitsPerSec < res[j].BitsPerSec
		})
		m := res[len(res)/2]
		if f.o.UDP {
			fmt.Printf("%-18s %s at -b %s\n", f.name, udpLine(m), f.o.Rate)
			if m.PacketsPerS > best[f.name].PacketsPerS {
				best[f.name] = m
			}
		} else {
			fmt.Printf("%-18s %8.1f Mbit/s (%d MB in %.1fs)\n", f.name, m.BitsPerSec/1e6, m.Bytes>>20, m.Seconds)
		}
	}
	for _, n := range []string{"UDP 64B lan->vpc", "UDP 64B vpc->lan"} {
		fmt.Printf("best %-13s %s\n", n, udpLine(best[n]))
	}
	return nil
}

func udpLine(m lab.TransferResult) string {
	loss, offered := 0.0, 0.0
	if m.Packets > 0 {
		loss = 100 * float64(m.Lost) / float64(m.Packets)
	}
	if m.Seconds > 0 {
		offered = float64(m.Packets) / m.Seconds
	}
	return fmt.Sprintf("%8.1f kpps delivered (offered %.1f kpps, %.1f%% lost; 92-byte IP packets)", m.PacketsPerS/1e3, offered/1e3, loss)
}
