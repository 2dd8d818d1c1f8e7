// Command cgw-dataplane runs cgw's fast path, the library
// dataplane/gateway, with its options from flags and the configuration
// file, Prometheus metrics over HTTP and SIGTERM/SIGINT to stop. XDP
// programs steer ESP from the outside NIC and tunnel-bound traffic from the inside NIC into AF_XDP
// sockets, and one worker per NIC queue encrypts, decrypts and forwards
// in batches (DESIGN §2–§3). Its only contract with cgw-control is the
// instance's pinned BPF maps under /sys/fs/bpf/cgw/<instance>/: it reads
// the SA, tunnel and route tables from there and writes the per-SA
// counters (including the outbound sequence numbers) back.
//
// Usage:
//
//	cgw-dataplane [-config cgw.yaml] [flags]
//
// Flags (each overrides the configuration file):
//
//	-config path      YAML configuration (gateway.name, gateway.outside/inside.interface,
//	                  gateway.dataplane.cpus and batch_size, gateway.observability.dataplane_metrics)
//	-instance name    pinned-map instance (default: gateway.name, else "cgw")
//	-outside-if dev   outside (WAN) interface; also -outside
//	-inside-if dev    inside (LAN) interface; also -inside
//	-queues n         NIC queues served, one worker each (default: one per CPU in -cpus, else per
//	                  CPU the process may run on, at most the RX queues in use on each device:
//	                  the current RX + combined channels, `ethtool -l`, asked in the process's
//	                  own network namespace; 1, logged, when the driver does not say)
//	-cpus list        cores to pin the workers to, e.g. "1" or "0,1"; worker i goes to the i-th
//	                  (round robin). Default (neither -cpus nor gateway.dataplane.cpus): no
//	                  pinning, so the scheduler places the workers and two dataplanes on one
//	                  host do not both land on CPU 0
//	-batch n          descriptors per ring operation (default 64)
//	-metrics addr     Prometheus listen address (default: config, else 127.0.0.1:9472; "off" disables)
//	-no-crypto        benchmark baseline: the same workers and stages with ESP switched off.
//	                  Outbound runs parse, route, TTL, MSS clamp, fragmentation and the outside
//	                  next hop of the tunnel's remote (its outbound SA's, else the tunnel
//	                  table's remote address, else the packet's destination) and sends the inner
//	                  packet unencrypted; inbound forwards with a MAC rewrite (no ESP to remove).
//	                  The XDP programs are the same, so the inside one steers what routes to a
//	                  tunnel marked up: install a tunnel (up) and a route with maps.Writer, no SA
//	                  needed; the outside one steers only ESP with a known SPI (so, in practice,
//	                  the forwarder carries inside → outside traffic)
//	-xdp-mode m       native (default) or generic
//	-copy             force AF_XDP copy mode (default: zero-copy when the driver has it)
//	-no-slowpath      do not create the per-tunnel TUN devices
//	-tx-budget n      copy-mode descriptors per sendto() (Linux ≥ 6.17; 0 = kernel default)
//	-ring-size n      every AF_XDP ring's size, a power of two 256–16384 (default 1024)
//	-detach           detach the instance's XDP programs (remove their pinned links) and exit
//	-detach-on-exit   detach them when stopping (default: they stay attached, see below)
//	-log-format f     text (default, key=value) or json, on stderr
//	-log-level l      debug, info (default), warn, error
//	-version          print the version, commit and Go version, then exit
//
// Start-up: the pinned maps are opened (created if absent): a restarted
// dataplane finds the SAs control installed and continues each outbound
// SA's sequence numbers from the shared counter. The sockets are created,
// their fill rings filled and they are registered in the XSKMAPs first
// (while the programs load), so after a restart the programs left attached
// steer to them at once; the workers run before the pinned links are
// updated. A queue still held by a dataplane that just exited (bind fails
// with EBUSY until the kernel has released its sockets) is retried from
// 1 ms for up to 2 s, logged. The start line says how many milliseconds
// after start the sockets were steered to and the workers ran. Each time the
// table generation moves, a new snapshot is published to the workers and
// the per-tunnel TUN devices (named cgw-t<id>) are reconciled with the
// tunnel table; then the generation is stored as applied in the config
// map, which cgw-control waits for before it lets an IKE peer send on a
// new inbound SA (make-before-break). A worker meeting an SPI its
// snapshot lacks while the maps have moved on counts it as
// spi_not_applied and asks for a snapshot at once.
//
// SIGHUP is logged and changes nothing: tunnels, SAs and routes arrive
// through the maps (cgw-control's reload writes them), the interfaces and
// workers are set at start. On SIGTERM or SIGINT the sockets are closed
// and the maps stay pinned, so neither the SAs nor the sequence numbers are
// lost. The XDP programs stay attached through links pinned beside the maps
// (link_xdp_outside, link_xdp_inside), after a crash too: a restarted
// dataplane updates them to its programs instead of detaching and
// attaching, and meanwhile XDP finds no socket in the XSKMAPs (the kernel
// removes a dead process's sockets as it releases them) and drops,
// counted as in/out_drop_no_socket. Frames already in a killed process's
// RX rings, or steered to one of its sockets before the kernel has
// released that one (one RCU grace period per socket), are lost without
// a counter. -detach or
// -detach-on-exit, or removing the instance, detaches them
// (dataplane/gateway's links.go lists the states).
//
// The TUN devices are persistent while the dataplane runs and removed when
// it stops: a killed one leaves them (no carrier, what the kernel routes
// into them is dropped) so that its exit does not wait for their removal;
// the next start takes them over and removes those of tunnels gone (all
// of them with -no-slowpath or -no-crypto).
//
// Slow path: packets the dataplane cannot forward itself go to the
// tunnel's TUN device (cgw-t<id>, the tunnel's inside address, MTU from the
// tunnel table): those for the gateway (BGP to its inside address, pings)
// and decrypted ones whose LAN next hop is not resolved yet (the kernel
// forwards them and resolves the neighbour meanwhile). For the latter the
// host needs net.ipv4.ip_forward=1 and no strict rp_filter on the TUN
// devices. What the kernel routes into a TUN is encrypted by the workers.
//
// Network namespaces: start it with "nsenter --net=/run/netns/<ns>
// cgw-dataplane ...", not "ip netns exec <ns>": ip netns exec gives the
// process a private mount namespace with a fresh /sys, which hides
// /sys/fs/bpf, so the process mounts a bpffs of its own and does not see
// the maps cgw-control (or a test) pinned; two processes started by
// separate ip netns exec calls never share their maps.
//
// Metrics (Prometheus, /metrics): cgw_dataplane_packets_total and
// _bytes_total {worker,direction}, _tunnel_packets_total and
// _tunnel_bytes_total {tunnel,direction}, _drops_total
// {worker,stage,reason}, _batch_size_packets (histogram), _ring_full_total,
// _wakeups_total, _afxdp_mode_info {worker,device,mode},
// _afxdp_kernel_drops_total, _table_generation, _tunnels {state},
// _xdp_decisions_total {decision}, _slow_path_packets_total,
// _icmp_errors_sent_total, _fragments_made_total, _neighbour_lookups_total.
//
// Lab veths: frames a veth peer's own stack sends carry incomplete
// checksums (transmit offload); run "ethtool -K <peer> tx off" on the
// sending side.
package main
