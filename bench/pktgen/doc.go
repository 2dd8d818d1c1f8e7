// Package pktgen is cgw's benchmark traffic: a generator and a sink that
// run in the kernel, so neither is the bottleneck of what they measure
// (DESIGN §4).
//
// The generator runs a one-instruction XDP program (XDP_TX) with
// BPF_PROG_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES, kernel
// 5.18+): the kernel builds the frame Repeat times and transmits each one
// out of the ingress device given in the context. On a veth that means the
// frame arrives at the peer, which must run a native XDP program to accept
// it (cgw's xdp_inside does; xdp_pass otherwise). Measured here: 3–4 Mpps
// from one core.
//
// A run follows a Plan: templates (one frame per flow and size: address
// and port ranges over several destination prefixes, a fixed size, Simple
// IMIX 64/570/1518 at 7:4:1 or a custom mix) sent in bursts of Burst
// copies per BPF_PROG_RUN call, in an order that keeps every flow's mix
// exact over each period, paced to a rate in frames or bits per second
// (Pacer). The program is parked in the kernel's XDP dispatcher (attached
// to a veth of a private namespace) so a call of a few frames costs
// microseconds, not two RCU grace periods. Live, Monitor and Trial give
// the progress line a second, the final table, CSV and JSON.
//
// The sink is an XDP program on the receiving device that counts packets
// and bytes in a per-CPU array and drops: no copy, no socket, no
// allocation, the cheapest accurate count there is.
//
// Both are bounded: the generator by a frame count and a deadline, the sink
// by a duration and an idle time after traffic stops. Frames carry
// addresses from 198.18.0.0/15 only (RFC 2544 benchmarking space); Build
// refuses anything else.
//
// The generator and the sink act on devices of the network namespace of the
// calling thread; InNetns runs a function on a thread in a named namespace.
package pktgen
