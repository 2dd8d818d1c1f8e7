// Package ikev2 runs IKEv2 (RFC 7296) for cgw's tunnels: one IKE SA and one
// route-based Child SA pair per configured tunnel, as initiator and as
// responder, with rekeying (§1.3, §2.8), dead peer detection (§1.4 liveness
// checks), NAT traversal (§2.23, RFC 3948) and cookies (§2.6).
//
// It is a library in the GoBGP style: a Manager owns a shared Socket (UDP 500
// and 4500, demultiplexed by IKE SPI and peer address) and one goroutine per
// Tunnel; commands go in as method calls (AddTunnel, Initiate,
// ChildNeedsRekey, LastInbound, Close) and everything the dataplane,
// BGP and metrics need comes out as Events (ChildSAInstalled with KEYMAT,
// OutboundSwitch, ChildSARetired, TunnelUp/Down, failures by notify type).
// Status returns a snapshot for cgwctl.
//
// Each tunnel's state lives in its goroutine only; nothing is shared but the
// socket and the SPI maps, so handlers need no locks.
package ikev2
