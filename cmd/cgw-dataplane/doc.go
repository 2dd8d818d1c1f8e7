// Command cgw-dataplane is cgw's fast path: XDP programs steer ESP from
// the outside NIC and tunnel-bound traffic from the inside NIC into AF_XDP
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
//	-queues n         NIC queues served, one worker each (default: one per CPU in -cpus, at most
//	                  the devices' RX queue count)
//	-cpus list        cores to pin the workers to, e.g. "1" or "0,1" (default: all online)
//	-batch n          descriptors per ring operation (default 64)
//	-metrics addr     Prometheus listen address (default 127.0.0.1:9472; "" or "off" disables)
//	-no-crypto        benchmark forwarder: same workers with ESP off, forwarding inside ↔ outside
//	                  with a MAC rewrite only (routes by the kernel's main table)
//	-xdp-mode m       native (default) or generic
//	-copy             force AF_XDP copy mode (default: zero-copy when the driver has it)
//	-no-slowpath      do not create the per-tunnel TUN devices
//	-tx-budget n      copy-mode descriptors per sendto() (Linux ≥ 6.17; 0 = kernel default)
//
// Start-up: the pinned maps are opened (created if absent): a restarted
// dataplane finds the SAs control installed and continues each outbound
// SA's sequence numbers from the shared counter. The sockets are created
// and registered before the XDP programs are attached. Each time the
// table generation moves, a new snapshot is published to the workers and
// the per-tunnel TUN devices (named cgw-t<id>) are reconciled with the
// tunnel table.
//
// On SIGTERM or SIGINT the programs are detached and the sockets closed;
// the pinned maps stay, so neither the SAs nor the sequence numbers are
// lost.
//
// Lab veths: frames a veth peer's own stack sends carry incomplete
// checksums (transmit offload); run "ethtool -K <peer> tx off" on the
// sending side.
package main
