// Package ikev2 runs IKEv2 (RFC 7296) for cgw's tunnels: one IKE SA and one
// route-based Child SA pair per configured tunnel, as initiator and as
// responder, with rekeying (§1.3, §2.8), dead peer detection (§1.4 liveness
// checks), NAT traversal (§2.23, RFC 3948) and cookies (§2.6).
//
// It is a library in the GoBGP style: a Manager owns a shared Socket (UDP 500
// and 4500, demultiplexed by IKE SPI, and by peer address for IKE_SA_INIT)
// and one goroutine per Tunnel. Commands go in as method calls (AddTunnel,
// RemoveTunnel, Initiate, RekeyChild, RekeyIKE, ChildNeedsRekey,
// LastInbound, Close); everything the dataplane, BGP and metrics need comes
// out as Events; Status returns a snapshot for cgwctl. Each tunnel's state
// lives in its goroutine only, so handlers take no locks.
//
// Events for one Child SA pair, in order (make-before-break, DESIGN.md §2):
//
//	ChildSAInstalled  install the inbound SA; keep the outbound one ready
//	OutboundSwitch    send the tunnel's traffic with this outbound SA
//	ChildSARetired    remove both SAs (a grace period after the switch
//	                  away from them, so packets in flight still decrypt)
//
// The first pair of a tunnel is followed by TunnelUp. The initiator of a
// Child SA rekey switches as soon as its exchange completes and then
// deletes the old pair; the responder switches when the peer's Delete of
// the old pair arrives. Rekey collisions follow §2.8.1 (the SA made with
// the lowest of the four nonces is deleted by its creator); so do IKE SAs
// both ends set up at the same moment.
//
// Timers: retransmission 4 s × 1.8ⁿ, 5 retransmissions (Timing); rekey at
// lifetime − margin × (1 + fuzz% × random) from the tunnel's configuration;
// DPD sends a liveness check when neither IKE nor ESP (LastInbound, from
// the dataplane's counters) was heard for the interval, retries it every
// interval, and after interval × retries acts: clear (tunnel down; a
// tunnel with startup action "start" is initiated again after a back-off),
// restart (initiate again at once) or none (no checks). NAT-T floats to
// port 4500 when a NAT is detected, when nat_traversal is "force", or when
// the peer fakes a NAT as strongSwan's kernel-libipsec does; keepalives go
// out every 20 s from the side behind the NAT.
//
// Tests: go test ./control/ikev2/ runs the in-process suites over loopback
// UDP and, as root, the strongSwan 5.9.8 interop tests in a namespace pair
// (go test -short skips those).
package ikev2
