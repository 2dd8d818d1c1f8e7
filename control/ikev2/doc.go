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
// Child SA rekey switches as soon as its exchange completes and tells the
// peer to delete the old pair once the dataplane sends on the new one
// (Options.SyncDataplane), or a grace period (Timing.Grace) later when
// that is not confirmed — never at the switch: the dataplane takes up
// OutboundSwitch a little later and may still send on the old pair until
// then, so the peer must keep it. The responder switches when the peer's
// Delete of the old pair arrives, and answers it once the dataplane sends
// on the new pair: the peer may drop the old pair on the answer. Rekey collisions follow §2.8.1 (the SA made with
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
// Unauthenticated input changes nothing (issue #9). A datagram reaches a
// tunnel only from its aws_outside_address (an IKE_SA_INIT by that
// address, anything else by our SPI and that address). A request that
// fails before or at the integrity check (message.Verified) is dropped
// unanswered, its message ID unused; a retransmitted request gets the
// cached response only when byte-identical, sent to the SA's peer,
// rate-limited. Answers to our IKE_SA_INIT are not authenticated: error
// notifications and unusable responses leave the exchange waiting for a
// valid one until it times out (§2.21.1); COOKIE and INVALID_KE_PAYLOAD
// restart it a bounded number of times, the group changed for that
// exchange only. COOKIE secrets are random in both slots and rotate by
// the clock; a peer with 2 half-open SAs must return a cookie, and has at
// most 4. The peer's address, NAT-T state and DPD liveness move only on
// authenticated messages. A peer looping CREATE_CHILD_SA gets
// NO_ADDITIONAL_SAS past 4 live SAs of a kind. Logs and events caused by
// unauthenticated input are rate-limited (ike.LogLimiter). A panic on a
// tunnel's goroutine restarts that tunnel only (supervise.go).
//
// Files, in the order an exchange goes: socket.go (UDP, routing to
// tunnels, cookies), receive.go (dispatch, responses, retransmitted
// requests), ikesainit.go, ikeauth.go, createchild.go, rekeyike.go,
// informational.go; retransmit.go and timers.go; ikesa.go and child.go
// the IKE and Child SA bookkeeping; tunnel.go the state and goroutine.
//
// Tests: go test ./control/ikev2/ runs the in-process suites over loopback
// UDP and, as root, the strongSwan 5.9.8 interop tests in a namespace pair
// (go test -short skips those).
package ikev2
