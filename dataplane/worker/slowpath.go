package worker

import (
	"github.com/cgw-project/cgw/dataplane/frag"
	"github.com/cgw-project/cgw/dataplane/packet"
	"github.com/cgw-project/cgw/dataplane/tables"
)

// The slow path joins the tunnels to the kernel: each tunnel has a TUN
// device through which the gateway's own traffic (BGP to the peer's
// inside address, pings) enters and leaves the tunnel, and decrypted
// packets whose next hop the fast path cannot resolve are handed to the
// kernel to route (DESIGN §3).

// FromKernel sends packets the kernel wrote into a tunnel's interface
// (IP packets, already copied into frames at Off) through that tunnel:
// the outbound stages from route on, without ttl (they originate here).
// pkts needs spare capacity for fragments (NewBatch).
func (p *Pipeline) FromKernel(v *tables.View, tunnel uint32, pkts []Packet, out *Output) {
	t := v.Tunnel(tunnel)
	down := usable(t, true)
	n := len(pkts)
	k := 0
	for i := 0; i < n; i++ {
		pk := &pkts[i]
		if down != 0 {
			p.drop(pk, StageRoute, uint8(down))
			continue
		}
		pk.t = t
		if r := parseIP(pk, byte(packet.Version(pk.Data()))); r != 0 {
			p.drop(pk, StageParse, uint8(r))
			continue
		}
		p.c.SlowFromKernel++
		clamp(pk)
		if r := p.frag(pk, &pkts, out); r != frag.Fits {
			p.drop(pk, StageFrag, uint8(r))
			continue
		}
		if k != i {
			pkts[k] = *pk
		}
		k++
	}
	k += copy(pkts[k:], pkts[n:])
	out.Outside = p.encap(pkts[:k], out.Outside)
	p.publish()
}

// toKernel queues a decrypted packet for its tunnel's kernel interface
// (flushed by flushSlow); r says why, 0 for the gateway's own packets.
func (p *Pipeline) toKernel(pk *Packet, r Reason) {
	if r != 0 {
		p.c.SlowMisses++
	}
	if p.cfg.SlowPath == nil || len(p.slowP)+len(p.slowMiss) >= p.cfg.Batch {
		p.drop(pk, StageSlowPath, uint8(NoSlowPath))
		return
	}
	if r != 0 {
		p.slowMiss = append(p.slowMiss, *pk)
		return
	}
	p.slowP = append(p.slowP, *pk)
}

// flushSlow writes the queued packets to their tunnels' interfaces, one
// Deliver per run of one tunnel, and frees their frames.
func (p *Pipeline) flushSlow() {
	// The gateway's own packets first, then those whose next hop was
	// unresolved (both fit: toKernel keeps them within one batch).
	q := append(p.slowP, p.slowMiss...)
	p.slowMiss = p.slowMiss[:0]
	for i := 0; i < len(q); {
		tunnel := q[i].sa.Tunnel
		j := i
		p.slow = p.slow[:0]
		for j < len(q) && q[j].sa.Tunnel == tunnel {
			p.slow = append(p.slow, q[j].Data())
			j++
		}
		n := p.cfg.SlowPath.Deliver(tunnel, p.slow)
		p.c.SlowToKernel += uint64(n)
		for x := n; x < len(p.slow); x++ {
			p.c.drop(StageSlowPath, uint8(SlowPathFull))
		}
		i = j
	}
	for i := range q {
		p.free(&q[i])
	}
	p.slowP = q[:0]
}
