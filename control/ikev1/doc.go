// Package ikev1 runs IKEv1 (RFC 2409) for cgw's tunnels to AWS endpoints
// configured with ike_version 1: Main Mode with pre-shared keys, Quick
// Mode for the ESP SA pair (PFS when phase 2 has DH groups), NAT-T
// (RFC 3947), dead peer detection (RFC 3706) and Delete notifications. Its
// Manager has the shape of control/ikev2's and emits ikev2's Event type,
// so cgw-control can drive either engine.
//
// isakmp.go is the ISAKMP codec (RFC 2408) with the IPsec DOI (RFC 2407);
// crypt.go the ISAKMP SA's AES-CBC encryption and IV chain (RFC 2409
// Appendix B).
package ikev1
