package daemon

import (
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/control/ike"
	"github.com/cgw-project/cgw/control/status"
)

// Status implements status.Source: the IKE engine's view of each tunnel
// merged with the SA slots and the dataplane's counters, the RIB's table
// and the BGP sessions.
func (d *Daemon) Status() *status.Status {
	now := time.Now()
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	mono := uint64(ts.Nano())
	s := &status.Status{Gateway: d.opt.Instance, Pid: os.Getpid(), Started: d.started, Time: now, Maps: "open"}
	ike := map[string]ike.TunnelStatus{}
	if d.ike != nil {
		for _, ts := range d.ike.Status() {
			ike[ts.Name] = ts
		}
	}
	if d.ike1 != nil {
		for _, ts := range d.ike1.Status() {
			ike[ts.Name] = ts
		}
	}
	names := map[uint32]string{}
	d.mu.Lock()
	speaker := d.bgp
	for _, t := range d.tunnels {
		names[t.id] = t.cfg.Name
		st := status.Tunnel{Name: t.cfg.Name, Connection: t.conn.Name, ID: t.id, State: "down",
			InsidePeer: t.cfg.AWSInside(), NAT: t.nat, LastError: t.lastErr, Stale: append([]uint32(nil), t.stale...)}
		if a := t.cfg.LocalInside(); a.IsValid() {
			st.InsideLocal = netip.PrefixFrom(a, t.cfg.InsideCIDR.Bits())
		}
		it, ok := ike[t.cfg.Name]
		if ok {
			st.State = it.State
			st.Peer = it.Peer
			st.NAT = st.NAT || it.Encap
			if it.IKE != nil {
				st.IKE = &status.IKESA{Version: ikeVersion(t.cfg.IKEVersion), SPIi: it.IKE.SPIi.String(), SPIr: it.IKE.SPIr.String(), Initiator: it.IKE.Initiator,
					Proposal: it.IKE.Proposal, Age: status.Duration(it.IKE.Age), LifetimeLeft: status.Duration(it.IKE.LifetimeLeft),
					RekeyIn: status.Duration(it.IKE.RekeyIn)}
			}
			for _, c := range it.Children {
				sc := status.ChildSA{InSPI: c.InSPI, OutSPI: c.OutSPI, Suite: c.Suite, Active: c.Active, Deleting: c.Deleting,
					Age: status.Duration(c.Age), LifetimeLeft: status.Duration(c.LifetimeLeft), RekeyIn: status.Duration(c.RekeyIn)}
				if ch := t.children[c.InSPI]; ch != nil {
					sc.Encap = ch.sa.Encap
					sc.InIndex, sc.OutIndex = ch.inIdx, ch.outIdx
					if ch.inExpired {
						sc.InIndex = 0 // removed at its hard byte lifetime
					}
					sc.In, sc.Out = counters(ch.in, mono), counters(ch.out, mono)
				}
				st.Children = append(st.Children, sc)
			}
		}
		if !st.Peer.IsValid() {
			st.Peer = netip.AddrPortFrom(t.cfg.AWSOutside, 500)
		}
		st.Local = netip.AddrPortFrom(t.cfg.LocalOutside, 500)
		if st.NAT {
			st.Local = netip.AddrPortFrom(t.cfg.LocalOutside, 4500)
		}
		if t.up {
			st.Uptime = status.Duration(now.Sub(t.upSince))
		}
		s.Tunnels = append(s.Tunnels, st)
	}
	d.mu.Unlock()
	if d.guards != nil {
		s.Guards = d.guards.Prefixes()
		g := d.guards.Stats()
		s.GuardsAdopted, s.GuardRepairs, s.GuardErrors = g.Adopted, g.Repairs, g.Errors
	}
	if d.rib != nil {
		for _, r := range d.rib.Table() {
			sr := status.Route{Prefix: r.Prefix, Source: r.Source.String(), Tunnel: r.Tunnel.Name, Reason: r.Reason, Pending: r.Pending, Stale: r.Stale}
			if r.Stale {
				sr.Source = "adopted"
			}
			if r.Backup != nil {
				sr.Backup = r.Backup.Name
			}
			if r.Source.String() == "bgp" {
				sr.ASPath, sr.NextHop = r.Attrs.ASPath, r.Attrs.NextHop
			}
			s.Routes = append(s.Routes, sr)
		}
		if speaker != nil {
			counts := map[uint32]int{}
			for _, tc := range d.rib.InstalledPerTunnel() {
				counts[tc.Tunnel.ID] = tc.Routes
			}
			d.mu.Lock()
			for _, t := range d.tunnels {
				if t.conn.BGP == nil || t.conn.Routing != "bgp" {
					continue
				}
				state, _ := speaker.State(t.id)
				s.Neighbors = append(s.Neighbors, status.Neighbor{Tunnel: t.cfg.Name, Local: t.cfg.LocalInside(), Peer: t.cfg.AWSInside(),
					LocalASN: t.conn.BGP.LocalASN, PeerASN: t.conn.BGP.PeerASN, State: state, Routes: counts[t.id]})
			}
			d.mu.Unlock()
		}
	}
	return s
}

func counters(c maps.SACounters, mono uint64) status.Counters {
	out := status.Counters{Packets: c.Packets, Bytes: c.Bytes, Seq: c.Seq, DropReplay: c.DropReplay, DropAuth: c.DropAuth,
		DropOther: c.DropPad + c.DropMalformed + c.DropMtu + c.DropOther, Idle: -1}
	if c.LastNs != 0 && c.LastNs <= mono {
		out.Idle = status.Duration(mono - c.LastNs)
	}
	return out
}

// RekeyChild implements status.Actor.
func (d *Daemon) RekeyChild(tunnel string) error { return d.engineNamed(tunnel).RekeyChild(tunnel) }

// RekeyIKE implements status.Actor.
func (d *Daemon) RekeyIKE(tunnel string) error { return d.engineNamed(tunnel).RekeyIKE(tunnel) }

// Initiate implements status.Actor.
func (d *Daemon) Initiate(tunnel string) error { return d.engineNamed(tunnel).Initiate(tunnel) }

// ikeVersion is the IKE major version a tunnel runs (the config's 0 means 2).
func ikeVersion(v int) int {
	if v == 1 {
		return 1
	}
	return 2
}
