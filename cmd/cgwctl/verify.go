package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/dataplane/nic"
)

// cmdVerify: cgwctl verify, the NIC preflight (dataplane/nic.Check) of the
// gateway's inside and outside devices and the host: driver, native XDP
// and zero-copy support, RX queues against workers, each queue's IRQ
// affinity against its worker's core, NUMA, irqbalance, MTU/LRO/GRO,
// ip_forward, rp_filter. Each finding comes with the command that fixes
// it; any "fail" exits 1. Run it in the gateway's network namespace.
func cmdVerify(e *env, args []string) int {
	fs := flag.NewFlagSet("cgwctl verify", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	cfgPath := fs.String("config", "", "read the devices and worker CPUs from this configuration `file`")
	inside := fs.String("inside", "", "inside (LAN) `interface` (default: gateway.inside.interface)")
	outside := fs.String("outside", "", "outside (WAN) `interface` (default: gateway.outside.interface)")
	cpus := fs.String("cpus", "", "worker cores, comma-separated (default: gateway.dataplane.cpus)")
	workers := fs.Int("workers", 0, "workers, one per queue (default: one per CPU, else 1)")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "cgwctl verify: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	o := nic.Options{Inside: *inside, Outside: *outside, Workers: *workers}
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(e.stderr, err)
			return exitProblem
		}
		if o.Inside == "" {
			o.Inside = c.Gateway.Inside.Name
		}
		if o.Outside == "" {
			o.Outside = c.Gateway.Outside.Name
		}
		o.CPUs = c.Gateway.Dataplane.CPUs
	}
	if *cpus != "" {
		o.CPUs = nil
		for _, f := range strings.Split(*cpus, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 {
				fmt.Fprintf(e.stderr, "cgwctl verify: -cpus %q: want core numbers such as 2,3\n", *cpus)
				return exitUsage
			}
			o.CPUs = append(o.CPUs, n)
		}
	}
	if o.Inside == "" && o.Outside == "" {
		fmt.Fprintln(e.stderr, "cgwctl verify: name the devices: -config cgw.yaml, or -inside and -outside")
		return exitUsage
	}
	fsd := nic.Check(o)
	fails := 0
	for _, f := range fsd {
		if f.Level == nic.Fail {
			fails++
		}
	}
	if *asJSON {
		printJSON(e.stdout, fsd)
	} else {
		printFindings(e, fsd)
	}
	if fails > 0 {
		return exitProblem
	}
	return exitOK
}

func printFindings(e *env, fs []nic.Finding) {
	w := e.stdout
	last := "-"
	warns, fails := 0, 0
	for _, f := range fs {
		if f.Device != last {
			last = f.Device
			name := f.Device
			if name == "" {
				name = "host"
			}
			fmt.Fprintf(w, "%s\n", name)
		}
		fmt.Fprintf(w, "  %-4s  %-13s %s\n", f.Level, f.Check, f.Msg)
		if f.Fix != "" {
			fmt.Fprintf(w, "        %-13s fix: %s\n", "", f.Fix)
		}
		switch f.Level {
		case nic.Warn:
			warns++
		case nic.Fail:
			fails++
		}
	}
	fmt.Fprintf(w, "\n%d finding(s) to fix (fail), %d to consider (warn)\n", fails, warns)
}
