package bpf

// Regenerate with `go generate ./bpf` (needs clang and libbpf-dev). The
// generated cgw_bpfel.go/.o are committed so a build never needs clang.
//
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -target bpfel -type sa -type inbound_sa -type sa_counters -type tunnel -type route4_key -type route6_key -type route -type local_addr -type config -type xdp_meta -type limits -type sa_state -type sa_dir -type sa_flag -type tunnel_flag -type local -type stat Cgw xdp.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
