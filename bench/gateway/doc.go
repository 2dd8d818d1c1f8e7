// Package gateway holds the end-to-end tests of cgw itself in the
// emulated AWS lab (bench/lab): cgw-control and cgw-dataplane in the
// gateway namespace against strongSwan and BIRD, driven through cgwctl and
// checked on the wire, in charon and in the pinned maps. The tests need
// root and the lab's prerequisites; `go test -short` skips them.
package gateway
