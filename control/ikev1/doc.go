// Package ikev1 runs IKEv1 (RFC 2409) for cgw's tunnels configured with
// ike_version 1, as AWS's endpoints also accept it (DESIGN.md §1): Main
// Mode with pre-shared keys (never Aggressive Mode), Quick Mode for the
// route-based ESP SA pair (0.0.0.0/0 both ways) with PFS when phase 2 has
// DH groups, NAT-T (RFC 3947: NAT-D, float to 4500 with the non-ESP
// marker, UDP-Encapsulated-Tunnel mode), dead peer detection (RFC 3706
// R-U-THERE/ACK with sequence numbers), Delete and INITIAL-CONTACT
// notifications.
//
// The Manager implements ike.Engine (AddTunnel, RemoveTunnel, Initiate,
// RekeyChild, RekeyIKE, ChildNeedsRekey, LastInbound, Status, Close, the
// InstallInbound hook) and emits control/ike's Event, ChildSA and
// TunnelStatus types, so cgw-control drives both engines with one event
// loop; ike.SplitVersions shares UDP 500 and 4500 between them by the
// ISAKMP version byte.
//
// Unauthenticated input changes nothing (issue #9): a Main Mode the peer
// starts is a candidate beside the tunnel's SAs until its message 5
// verifies; the peer's address, NAT-T state and DPD liveness move only on
// messages whose hash verified; forged Quick Mode and Informational
// messages are dropped without failing anything; logs of such drops are
// rate-limited. A panic on a tunnel's goroutine restarts that tunnel only.
//
// Events for one SA pair, from ike.Lifecycle as ikev2's (make-before-break,
// DESIGN.md §2; only ChildSAInstalled and InstallInbound carry KEYMAT):
// ChildSAInstalled (InstallInbound runs first, before the Quick Mode
// message that lets the peer use the inbound SPI: message 2 as responder,
// 3 as initiator), OutboundSwitch (initiator: on message 2 for a new pair,
// rekeySwitchDelay after message 3 for a rekey, so the responder has
// installed its inbound SA; responder: on message 3), ChildSARetired
// (after Timing.Grace, when a newer pair replaced it, the peer deleted it
// or it expired). The Quick Mode initiator deletes the pair it replaced;
// so does the responder, because strongSwan keeps rekeyed IKEv1 SAs until
// they expire. That Delete goes with ChildSARetired, not with the switch:
// the dataplane takes up a switch a little later and may still send on
// the old pair until then, so the peer must keep it. IKEv1 has no
// rekey collision rule, so the ISAKMP responder schedules its rekeys
// later in the margin than the initiator.
//
// A Main Mode "rekey" is a new ISAKMP SA (RekeyIKE, or at lifetime −
// margin): IKERekeyed follows, and the old SA is deleted after the grace
// period; the SA pairs are independent of it (RFC 2409 §5.5) and stay.
//
// Files: the ISAKMP codec (RFC 2408) with the IPsec DOI (RFC 2407) and
// the ISAKMP SA's AES-CBC encryption and IV chain (RFC 2409 Appendix B:
// phase 1 IV = hash(g^xi | g^xr), each Quick Mode or Informational
// exchange hash(last phase 1 block | M-ID)) are package message, as
// ikev2's are ikev2/message; proposals.go
// maps the configuration to Phase 1 / Quick Mode transforms; tunnel.go the
// tunnel's state and dispatch; one file per exchange in the order it runs
// (mainmode.go, quickmode.go, informational.go with DPD and Delete);
// child.go the SA pairs' install → switch → retire; retransmit.go and
// timers.go; guard.go and supervise.go the rate-limited logs, key
// wiping and panic supervision.
//
// Timers: retransmission Timing.RetransmitTimeout × RetransmitFactorⁿ,
// RetransmitTries times; tunnels check timers every Options.Tick.
//
// Tests: go test ./control/ikev1/ runs the loopback suites (AES-128/256 ×
// SHA1/SHA2-256 × DH 2/14/19/20 with KEYMAT compared crosswise, NAT-T,
// rekeys, DPD, retransmission, wrong PSK, delete) and, as root, the
// strongSwan 5.9.8 interop tests in a namespace pair (IKEv1 SA ESTABLISHED
// and the SA pair INSTALLED with our SPIs, ESP echo round trips through
// charon's libipsec proving both directions' KEYMAT, quick-mode rekey from
// each side, reauth, DPD, delete); go test -short skips those.
package ikev1
