// Package adversary attacks cgw in the emulated AWS lab (bench/lab) the
// way someone on the Internet path could: from the inet namespace, which
// sits between the gateway and the AWS endpoints, it sends hand-made
// packets with any source address (raw IPv4 sockets, IP_HDRINCL), reads
// and replays frames on the wire (AF_PACKET), and checks that nothing an
// unauthenticated sender does changes the gateway's state or gets past
// it (issue #9, DESIGN §6). One lab serves every probe: tunnel 1 on
// IKEv1, tunnel 2 on IKEv2, both against strongSwan with BGP over them,
// cgw built as it ships (no race detector, so floods meet real speed).
//
// Each probe is one test and logs one line
//
//	PASS-LINE: probe=…, rate=…, measured=…, result=pass|FAIL
//
// from which the table is made:
//
//	TestSpoofedMainMode1    IKEv1 Main Mode message 1 spoofed from the AWS endpoint every 10 s for 2 min: ISAKMP SA, peer and traffic unchanged
//	TestMalformedSK         IKEv2 requests failing before or at the ICV, from a third address and spoofed from the peer: 0 bytes back, message IDs unchanged
//	TestForgedCookieFlood   IKE_SA_INIT with forged COOKIEs at 1000/s from the peer's address: half-open SAs bounded, a legitimate initiator gets through
//	TestSAInitFlood         IKE_SA_INIT from random sources as fast as the generator goes: log lines ≤ 1/s, pings through the tunnels answered
//	TestESPReplay           ESP captured on the wire and replayed, live and after kill -9 of cgw-dataplane: no reply delivered twice
//	TestBGPAPIUnprivileged  uid nobody's `gobgp global rib add`: refused; no gRPC port with the defaults
//
// make test runs each at a schedule that keeps the suite within a few
// minutes (the spoofed message 1 once a second for 20 s, floods for 5 s);
// CGW_ADVERSARY_FULL=1 runs the (every 10 s for 2 minutes, floods
// for 20 s and 30 s).
//
// The tests need root, namespaces, strongSwan and BIRD, like
// the rest of bench/; `go test -short` skips them and runs only the
// checks of the packet builders.
package adversary
