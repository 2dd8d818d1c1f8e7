// Package ike is what the two IKE engines (control/ikev2 and
// control/ikev1) share, so cgw-control drives both the same way and one
// rule is written once: the events an engine emits and the Child SA it
// hands to the dataplane, the status it reports, its timers and clock, the
// per-tunnel options, the errors an operator's command gets, the Engine
// interface the daemon uses, inbound SPI allocation, the rekey-time
// policy (AWS's margin and fuzz), the Child SA life cycle (Lifecycle:
// install, switch, retire, keys wiped), the UDP 500/4500 sockets (UDP),
// rate-limited logs of unauthenticated input (LogLimiter), the count of
// recovered panics (Panics), and the Manager's core: the tunnels by name,
// peer address and SPI with the operators' commands on them (Tunnels),
// each tunnel's goroutine (Loop) and its restart after a panic
// (Supervisor). An engine keeps only its protocol.
//
// The engines never import each other; both import this package.
package ike
