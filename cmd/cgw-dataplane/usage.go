package main

// The -h of cgw-dataplane (internal/cli.ManUsage); the full manual is
// packaging/man/cgw-dataplane.8.
const (
	synopsis    = "[-config cgw.yaml] [flags]"
	description = `the fast path of cgw, the customer gateway for AWS
Site-to-Site VPN. XDP programs steer ESP from the outside NIC and
tunnel-bound traffic from the inside NIC into AF_XDP sockets, and one
worker per NIC queue encrypts, decrypts and forwards in batches. It
negotiates nothing: it reads SAs, tunnels and routes from the BPF maps
cgw-control pins under /sys/fs/bpf/cgw/<instance>/ and writes the
per-SA counters back, so either may start first or restart alone.
SIGTERM stops it with the maps and the XDP programs left in place
(tunnel-bound frames are dropped, never sent in clear, until a new
dataplane starts; -detach or -detach-on-exit removes the programs);
SIGHUP changes nothing.
Without -config, -outside-if and -inside-if are required.`
)
