// Package interop holds the lab test matrix of cgw-control's IKEv2
// against strongSwan (the emulated AWS side of bench/lab): every
// phase 1 / phase 2 algorithm and DH group AWS offers (and group 31,
// which AWS does not, through gateway.testing.non_aws_dh_groups), proposal
// mismatches, rekeys under a ping flood initiated by either side, both at
// once or cgw's own lifetimes (lab lifetimes through
// gateway.testing.short_lifetimes), dead peer detection with each action,
// and idle keep-up.
//
// The tests are end-to-end (root, namespaces, strongSwan, BIRD); each
// group brings one lab up and reconfigures both sides per case
// (Lab.ReloadAWS, CGWGateway.RestartControl) instead of rebuilding it.
// Measured figures are printed with t.Logf: run go test -v.
package interop
