package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cgw-project/cgw/bench/b2b"
	"github.com/cgw-project/cgw/bench/pktgen"
	"github.com/cgw-project/cgw/bench/rfc2544"
)

// swanRow is one setup (cgw or strongSwan) at one mix, through A and B.
type swanRow struct {
	Setup, Mix string
	PPS        float64 // delivered per wall-second under overload (median)
	PerCPU     float64 // delivered per CPU-second of both gateways (median)
	NDR, PDR   float64
	NDRPerCPU  float64 // delivered per CPU-second of both gateways in the NDR trial (nothing lost downstream)
	TCPMbps    float64 // iperf3, 5 s, one stream
}

// compareStrongSwan measures cgw↔cgw and then strongSwan-libipsec↔
// strongSwan-libipsec back to back in fresh topologies of the same
// namespaces and addresses, AES-GCM-16/128 in UDP 4500 both (libipsec
// cannot do raw ESP), generator (CPU 0) → A → wire → B → vpc: packets
// per CPU-second of both gateways under overload, NDR/PDR, and TCP.
// Neither gateway is pinned; the wire's kernel forwards between them.
func compareStrongSwan(ctx context.Context, dp, prefix string, mixes []pktgen.Mix, fl pktgen.Flows, runs int, trial time.Duration, burst int, sf searchFlags, progress io.Writer) ([]swanRow, error) {
	var rows []swanRow
	for _, setup := range []string{"cgw", "strongswan"} {
		t := b2b.New(b2b.Options{Prefix: prefix, Dataplane: dp, NoReplay: setup == "cgw", UDPEncap: true})
		r, err := func() ([]swanRow, error) {
			defer t.Down()
			if err := t.Up(ctx); err != nil {
				return nil, err
			}
			var pids []int
			if setup == "cgw" {
				for _, s := range []*b2b.Site{t.A, t.B} {
					if _, err := t.RunDataplane(ctx, s, 20*time.Second); err != nil {
						return nil, err
					}
				}
			} else {
				sw, err := t.StartStrongSwan(ctx)
				if err != nil {
					return nil, err
				}
				defer sw.Stop()
				pids = sw.PIDs()
				var pass *pktgen.Pass
				if err := pktgen.InNetns(t.NS(b2b.SiteA), func() (err error) { pass, err = pktgen.NewPass(b2b.InsideDev); return err }); err != nil {
					return nil, err
				}
				defer pass.Close()
			}
			tcp := 0.0
			if n, err := t.Iperf(ctx, b2b.LAN, b2b.VPC, b2b.VPCHost, 5320, "-t", "5"); err == nil {
				tcp = float64(n) * 8 / 5 / 1e6
			} else if progress != nil {
				fmt.Fprintf(progress, "  %s: iperf3: %v\n", setup, err)
			}
			load, err := t.NewLoad()
			if err != nil {
				return nil, err
			}
			defer load.Close()
			var out []swanRow
			for _, m := range mixes {
				row := swanRow{Setup: setup, Mix: m.String(), TCPMbps: tcp}
				var pps, per []float64
				for i := 0; i <= runs; i++ {
					d := trial
					if i == 0 {
						d = 200 * time.Millisecond
					}
					tr, err := load.Trial(ctx, b2b.TrialConfig{Label: setup, Dir: b2b.Through, Mix: m, Flows: fl, Duration: d, GenCPU: 0, Burst: burst, PIDs: pids})
					if err != nil {
						return nil, err
					}
					if i == 0 {
						continue
					}
					pps, per = append(pps, tr.DeliveredPPS()), append(per, tr.PerCPUSecond())
					if progress != nil {
						fmt.Fprintf(progress, "  %-10s %-6s run %d: offered %.0f pps, delivered %.0f pps, %.0f per CPU-second of both gateways (%.3f s CPU)\n",
							setup, m, i, tr.OfferedPPS(), tr.DeliveredPPS(), tr.PerCPUSecond(), tr.CPUSeconds)
					}
				}
				row.PPS, row.PerCPU = median(pps), median(per)
				maxRate, err := pktgen.ParseRate(*sf.maxRate)
				if err != nil {
					return nil, err
				}
				measure := func(ctx context.Context, r float64, _ bool) (pktgen.Trial, error) {
					return load.Trial(ctx, b2b.TrialConfig{Label: setup, Dir: b2b.Through, Mix: m, Flows: fl, Rate: pktgen.Rate{PPS: r}, Duration: *sf.trial, GenCPU: 0, Burst: *sf.burst, PIDs: pids})
				}
				res, err := rfc2544.Search(ctx, rfc2544.Config{MaxPPS: maxRate.FramesPerSecond(m.MeanSize()), Resolution: *sf.resolution, PDRLoss: *sf.pdr / 100}, measure)
				if err != nil {
					return nil, err
				}
				row.NDR, row.PDR, row.NDRPerCPU = res.NDR, res.PDR, res.NDRTrial.PerCPUSecond()
				if progress != nil {
					fmt.Fprintf(progress, "  %-10s %-6s NDR %.0f pps, PDR %.0f pps (%d trials)\n", setup, m, res.NDR, res.PDR, len(res.Steps))
				}
				out = append(out, row)
			}
			return out, nil
		}()
		if err != nil {
			return nil, fmt.Errorf("%s back to back: %w", setup, err)
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// writeSwan prints the comparison; fwdNs (the no-crypto forwarder's CPU
// per frame of the efficiency runs, by mix) bounds the ratio any cipher
// could reach on this machine's I/O.
func writeSwan(w io.Writer, rows []swanRow, runs int, fwdNs map[string]float64) {
	fmt.Fprintf(w, "cgw↔cgw vs strongSwan-libipsec↔strongSwan-libipsec, back to back (lan → A → wire → B → vpc), AES-GCM-16/128 in UDP 4500, generator CPU 0, gateways not pinned; medians of %d overload runs, NDR/PDR by search:\n", runs)
	fmt.Fprintf(w, "%-6s %14s %14s %7s  %14s %14s %7s  %10s %10s %7s  %10s %10s  %9s %9s\n", "mix", "cgw pkt/CPUs", "swan pkt/CPUs", "ratio",
		"cgw @NDR", "swan @NDR", "ratio", "cgw NDR", "swan NDR", "ratio", "cgw PDR", "swan PDR", "cgw TCP", "swan TCP")
	by := map[string]map[string]swanRow{}
	var mixes []string
	for _, r := range rows {
		if by[r.Mix] == nil {
			by[r.Mix] = map[string]swanRow{}
			mixes = append(mixes, r.Mix)
		}
		by[r.Mix][r.Setup] = r
	}
	ratio := func(a, b float64) float64 {
		if b <= 0 {
			return 0
		}
		return a / b
	}
	for _, m := range mixes {
		c, s := by[m]["cgw"], by[m]["strongswan"]
		fmt.Fprintf(w, "%-6s %14.0f %14.0f %6.1fx  %14.0f %14.0f %6.1fx  %10.0f %10.0f %6.1fx  %10.0f %10.0f  %6.0f Mb %6.0f Mb\n", m, c.PerCPU, s.PerCPU, ratio(c.PerCPU, s.PerCPU),
			c.NDRPerCPU, s.NDRPerCPU, ratio(c.NDRPerCPU, s.NDRPerCPU), c.NDR, s.NDR, ratio(c.NDR, s.NDR), c.PDR, s.PDR, c.TCPMbps, s.TCPMbps)
	}
	for _, m := range mixes {
		s := by[m]["strongswan"]
		if f := fwdNs[m]; f > 0 && s.PerCPU > 0 {
			fmt.Fprintf(w, "%-6s bound with a zero-cost cipher: strongSwan's %.1f µs of CPU per frame ÷ cgw's I/O floor 2 × t_forward = 2 × %.2f µs → at most %.1fx on this machine's copy-mode veths\n",
				m, 1e6/s.PerCPU, f/1e3, (1e9/s.PerCPU)/(2*f))
		}
	}
	fmt.Fprintln(w, "pkt/CPUs: frames delivered per CPU-second of both gateways together (each frame is encrypted at A and decrypted at B), under overload (A's CPU spent on frames the wire then drops counts against it); @NDR: the same in the trial at the NDR, where nothing is lost; TCP: iperf3 lan → vpc, one stream, 5 s, before the load.")
}
