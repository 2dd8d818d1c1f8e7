// Package failclosed proves in the emulated AWS lab (bench/lab) that cgw
// fails closed (DESIGN §6, README "Failing closed"): with a LAN→VPC ping
// running and tcpdump on the gateway's outside link (inet's side), no
// packet to a VPC prefix or a tunnel inside /30 leaves in clear when the
// dataplane is killed (SIGKILL) or stopped (SIGTERM) — pinned XDP drops,
// in_drop_no_socket —, when it is stopped and its XDP programs detached
// (cgw-dataplane -detach), when cgw-control is stopped as well, or when
// both AWS endpoints go silent until the tunnels are down — the kernel
// guards of control/kernelguard drop, and send ICMP unreachables. Each
// scenario logs what it counted in clear and the counters that explain
// it. The tests need root and the lab's prerequisites; `go test -short`
// skips them.
package failclosed
