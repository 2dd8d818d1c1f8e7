package main

// The -h of cgw-control (internal/cli.ManUsage); the full manual is
// packaging/man/cgw-control.8.
const (
	synopsis    = "-config cgw.yaml [flags]"
	description = `the control process of cgw, the customer gateway for
AWS Site-to-Site VPN. For every tunnel in the configuration it runs IKE
(IKEv2, or IKEv1 main mode), DPD, BGP (embedded GoBGP) or static routes,
and route selection, and writes SAs, tunnel states and routes into the
BPF maps pinned under /sys/fs/bpf/cgw/<instance>/, which cgw-dataplane
reads: either may start first or restart alone. Its kernel guards
(ip route show proto 203) drop the tunnel-bound traffic XDP does not
take rather than let it leave in clear, and stay after it exits. SIGHUP
reloads the configuration and applies the difference (as cgwctl
reload); SIGTERM deletes the IKE SAs and exits; SIGUSR1 exits leaving
every SA and route for the next cgw-control. Ask it with cgwctl status,
sas, routes.`
)
