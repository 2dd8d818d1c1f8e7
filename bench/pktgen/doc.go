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
