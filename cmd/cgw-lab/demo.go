package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
	"github.com/cgw-project/cgw/internal/cli"
)

// cmdDemo brings the lab up with the stand-in, waits for both tunnels and
// both BGP sessions, shows the SAs, sessions and the learned VPC route,
// pings lan→vpc through the tunnel, and leaves the lab up (--down tears
// it down at the end) so one can look around with `ip netns exec`.
func cmdDemo(ctx context.Context, args []string) error {
	fs := cli.Flags("cgw-lab demo", "[flags]", "Brings the lab up, waits for the tunnels and BGP, shows SAs, BGP and\nroutes, and pings lan -> vpc through the tunnel.", os.Stderr)
	var c common
	c.register(fs)
	down := fs.Bool("down", false, "tear the lab down at the end")
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
	fs := cli.Flags("cgw-lab measure", "[flags]", "Measures TCP and 64-byte UDP through the lab's gateway, both ways.", os.Stderr)
	var c common
	c.register(fs)
	dur := fs.Duration("t", 10*time.Second, "duration of each run (bounded: at most 60s)")
	runs := fs.Int("runs", 1, "runs per figure (the median is reported)")
	rate := fs.String("udp-rate", "15M,25M,40M", "offered UDP rates, comma-separated (iperf3 -b; with 64-byte payloads 25M is about 49 kpps)")
	gws := fs.String("gateway", "", "gateways to measure one after the other in labs built for the run, comma-separated (standin,cgw compares cgw with the strongSwan stand-in); empty: the lab that is up, or a stand-in lab")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if *dur > time.Minute || *dur < time.Second {
		return fmt.Errorf("-t must be between 1s and 60s")
	}
	if *runs < 1 || *runs > 9 {
		return fmt.Errorf("-runs must be 1..9")
	}
	m := measurement{dur: *dur, runs: *runs, rates: strings.Split(*rate, ",")}
	if *gws == "" {
		l, err := lab.Attach(c.root, c.prefix)
		if err != nil {
			fmt.Printf("lab %q is not up; building it with the strongSwan stand-in (removed afterwards)\n", c.prefix)
			_, err := m.inNewLab(ctx, c, "standin")
			return err
		}
		_, err = m.run(ctx, l)
		return err
	}
	// Several gateways: each in a lab of its own, built and removed in
	// turn, with the same traffic, so their figures compare side by side.
	results := map[string]map[string]float64{}
	names := strings.Split(*gws, ",")
	for _, g := range names {
		r, err := m.inNewLab(ctx, c, strings.TrimSpace(g))
		if err != nil {
			return fmt.Errorf("gateway %s: %w", g, err)
		}
		results[strings.TrimSpace(g)] = r
	}
	if len(names) < 2 {
		return nil
	}
	base := strings.TrimSpace(names[0])
	fmt.Printf("\n%-18s", "figure")
	for _, g := range names {
		fmt.Printf(" %14s", strings.TrimSpace(g))
	}
	fmt.Printf("   ratio to %s\n", base)
	for _, f := range figureNames {
		fmt.Printf("%-18s", f)
		for _, g := range names {
			fmt.Printf(" %14.1f", results[strings.TrimSpace(g)][f])
		}
		for _, g := range names[1:] {
			if b := results[base][f]; b > 0 {
				fmt.Printf("   %s %.2fx", strings.TrimSpace(g), results[strings.TrimSpace(g)][f]/b)
			}
		}
		fmt.Println()
	}
	fmt.Println("(TCP in Mbit/s, UDP in kpps delivered at the best offered rate)")
	return nil
}

// figureNames are the figures measurement.run returns, in print order.
var figureNames = []string{"TCP lan->vpc", "TCP vpc->lan", "UDP 64B lan->vpc", "UDP 64B vpc->lan"}

type measurement struct {
	dur   time.Duration
	runs  int
	rates []string
}

// inNewLab builds a lab with the named gateway under a prefix of its own,
// measures it and removes it.
func (m measurement) inNewLab(ctx context.Context, c common, gateway string) (map[string]float64, error) {
	gw, err := newGateway(gateway)
	if err != nil {
		return nil, err
	}
	prefix := c.prefix
	if gateway != "standin" {
		prefix += "-" + gateway
	}
	l, err := lab.New(lab.Options{Prefix: prefix, StateRoot: c.root, Gateway: gw})
	if err != nil {
		return nil, err
	}
	defer func() {
		l.Down()
		if gateway == "cgw" {
			lab.RemoveCGWMaps(prefix)
		}
	}()
	if err := l.Up(ctx); err != nil {
		return nil, err
	}
	return m.run(ctx, l)
}

// run waits for the lab's tunnels, BGP and VPC route, then measures TCP
// both ways and 64-byte UDP at each offered rate, printing every median.
func (m measurement) run(ctx context.Context, l *lab.Lab) (map[string]float64, error) {
	var cgw *lab.CGWGateway
	if l.State().Gateway == "cgw" {
		cgw = &lab.CGWGateway{}
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := l.WaitTunnels(wctx); err != nil {
		return nil, err
	}
	if err := l.WaitBGP(wctx); err != nil {
		return nil, err
	}
	if cgw != nil {
		if _, err := cgw.WaitRouteInstalled(wctx, l, lab.VPCPrefix); err != nil {
			return nil, err
		}
	} else if err := l.WaitRoute(wctx, lab.CGW, lab.VPCPrefix, ""); err != nil {
		return nil, err
	}
	st := l.State()
	fmt.Printf("gateway: %s; %d run(s) of %s each; lan %s <-> vpc %s\n", st.Gateway, m.runs, m.dur, l.LANHost(), lab.VPCHost)
	type fig struct {
		name string
		o    lab.TransferOptions
	}
	figs := []fig{
		{figureNames[0], lab.TransferOptions{Duration: m.dur}},
		{figureNames[1], lab.TransferOptions{Duration: m.dur, Reverse: true}},
	}
	// An overloaded libipsec delivers fewer packets than a loaded one
	// (its queues collapse), so UDP is measured at each offered rate and
	// the best delivered rate is reported.
	for _, r := range m.rates {
		r = strings.TrimSpace(r)
		figs = append(figs,
			fig{figureNames[2], lab.TransferOptions{Duration: m.dur, UDP: true, Length: 64, Rate: r}},
			fig{figureNames[3], lab.TransferOptions{Duration: m.dur, UDP: true, Length: 64, Rate: r, Reverse: true}})
	}
	out := map[string]float64{}
	best := map[string]lab.TransferResult{}
	for _, f := range figs {
		var res []lab.TransferResult
		for r := 0; r < m.runs; r++ {
			x, err := l.Transfer(ctx, lab.LAN, lab.VPC, lab.VPCHost, f.o)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			res = append(res, x)
		}
		sort.Slice(res, func(i, j int) bool {
			if f.o.UDP {
				return res[i].PacketsPerS < res[j].PacketsPerS
			}
			return res[i].BitsPerSec < res[j].BitsPerSec
		})
		med := res[len(res)/2]
		if f.o.UDP {
			fmt.Printf("%-18s %s at -b %s\n", f.name, udpLine(med), f.o.Rate)
			if med.PacketsPerS > best[f.name].PacketsPerS {
				best[f.name] = med
			}
		} else {
			fmt.Printf("%-18s %8.1f Mbit/s (%d MB in %.1fs)\n", f.name, med.BitsPerSec/1e6, med.Bytes>>20, med.Seconds)
			out[f.name] = med.BitsPerSec / 1e6
		}
	}
	for _, n := range figureNames[2:] {
		fmt.Printf("best %-13s %s\n", n, udpLine(best[n]))
		out[n] = best[n].PacketsPerS / 1e3
	}
	return out, nil
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
