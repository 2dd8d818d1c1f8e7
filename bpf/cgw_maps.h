/* The map contract between cgw-control (writer) and cgw-dataplane (reader,
 * and writer of the per-SA counters). Every key and value is defined here
 * once; bpf2go -type generates the Go types (bpf/cgw_bpfel.go), so Go never
 * hand-copies a layout.
 *
 * Conventions:
 *  - Addresses are 16 bytes in network order; IPv4 is stored IPv4-mapped
 *    (::ffff:a.b.c.d), which is what Go's netip.Addr.As16 produces.
 *  - SPIs and ports are host byte order numbers.
 *  - Tunnel id 0 and SA index 0 mean "none"; valid ids start at 1.
 *  - Enumerators are lower case so the generated Go names read well
 *    (enum sa_state + active -> CgwSaStateActive).
 */
#ifndef CGW_MAPS_H
#define CGW_MAPS_H

#include <linux/types.h>

enum limits {
	max_tunnels = 1024,    /* tunnel ids 1..1023 */
	max_sas = 4096,        /* SA indexes 1..4095 */
	max_routes = 65536,    /* per address family */
	max_queues = 64,       /* XSKMAP size, keyed by rx queue */
	max_local_addrs = 256,
	/* Written after the tunnel id in the XDP metadata so a worker can tell
	 * metadata from stale headroom bytes. */
	meta_magic = 0x63677701,
};

/* sa.state */
enum sa_state {
	unused = 0,      /* slot free; may be (re)written */
	installing = 1,  /* written, not yet referenced */
	active = 2,
	retiring = 3,    /* superseded by a rekey; still accepted inbound
			    during the grace period (make-before-break) */
};

/* sa.direction */
enum sa_dir {
	inbound = 1,
	outbound = 2,
};

/* sa.flags */
enum sa_flag {
	esn = 1,         /* 64-bit extended sequence numbers, RFC 4303 §2.2.1 */
	udp_encap = 2,   /* ESP in UDP, RFC 3948 */
};

/* tunnel.flags */
enum tunnel_flag {
	up = 1,          /* an outbound SA is usable; the inside XDP program
			    steers only to tunnels that are up */
	clear_df = 2,    /* clear DF before fragmenting (AWS clear_df_bit) */
};

/* local_addrs value */
enum local {
	outside = 1,     /* an outside address: ESP/NAT-T to it is ours */
	inside = 2,      /* an inside address of the gateway: never tunnelled */
};

/* Index into xdp_stats: why each XDP program decided what it did. */
enum stat {
	out_redirect = 0,    /* ESP with a known SPI sent to the socket */
	out_drop_no_socket,  /* ... but no AF_XDP socket on this queue (dataplane
				stopped or restarting): dropped, the kernel has
				no SA for it (fail closed) */
	out_unknown_spi,     /* ESP to us with an SPI we do not hold */
	out_not_local,       /* ESP not addressed to a local outside address */
	out_ike,             /* UDP 500, or 4500 with the non-ESP marker */
	out_keepalive,       /* NAT-T keepalive, RFC 3948 §2.3 */
	out_fragment,        /* IP fragment: left to the kernel */
	out_short,           /* truncated header */
	out_arp,
	out_other,           /* anything else: passed */
	in_redirect,         /* routed to an up tunnel, sent to the socket */
	in_drop_no_socket,   /* routed to an up tunnel, no AF_XDP socket on this
				queue: dropped, never forwarded in clear */
	in_no_meta,          /* redirected without metadata (adjust_meta failed) */
	in_no_route,         /* no tunnel route: passed to the kernel */
	in_drop_tunnel_down, /* tunnel route, every tunnel of it down: dropped */
	in_local,            /* to a gateway address, multicast, link-local */
	in_nd,               /* IPv6 neighbour discovery */
	in_arp,
	in_short,
	in_other,
	num_stats,
};

/* sa_table value, array indexed by SA index. One layout for both
 * directions. An index is written only while nothing references it, then
 * published by one update of inbound_spi or outbound_sa. */
struct sa {
	__u32 spi;
	__u32 tunnel_id;
	__u16 encr_id;        /* IKEv2 transform type 1 ID (RFC 7296 §3.3.2):
				 12 AES-CBC, 20 AES-GCM-16 */
	__u16 encr_key_bits;  /* 128 or 256 */
	__u16 integ_id;       /* transform type 3 ID; 0 with an AEAD */
	__u8 direction;       /* enum sa_dir */
	__u8 state;           /* enum sa_state */
	__u32 flags;          /* enum sa_flag */
	__u32 replay_window;  /* packets; 0 disables the check (RFC 4303 §3.4.3) */
	__u16 encap_sport;    /* UDP encapsulation ports when udp_encap */
	__u16 encap_dport;
	__u8 enc_key_len;     /* bytes of enc_key in use */
	__u8 integ_key_len;   /* bytes of integ_key in use */
	__u8 salt_len;        /* 4 for GCM (RFC 4106 §8.1), else 0 */
	__u8 reserved;
	__u8 enc_key[32];
	__u8 salt[4];
	__u8 integ_key[64];
	__u8 local_addr[16];  /* outer addresses of this SA */
	__u8 remote_addr[16];
	__u32 reserved2;
	/* Lifetime limits; 0 = none. The dataplane stops using an outbound SA
	 * at a hard limit; control rekeys at the soft one. */
	__u64 life_soft_bytes;
	__u64 life_hard_bytes;
	__u64 life_soft_packets;
	__u64 life_hard_packets;
};

/* inbound_spi value, keyed by SPI. Its presence is what makes the outside
 * XDP program steer the packet. */
struct inbound_sa {
	__u32 sa_index;
	__u32 tunnel_id;
};

/* sa_stats value, BPF_F_MMAPABLE array indexed by SA index. Written by the
 * dataplane workers with atomic adds through the mmap (no syscall per
 * packet; workers add once per batch), read by control the same way.
 * 128 bytes: two cache lines per SA, no false sharing between SAs.
 * Zeroed by the writer when the SA index is (re)installed. */
struct sa_counters {
	__u64 packets;         /* authenticated inbound / sent outbound */
	__u64 bytes;           /* ESP payload bytes */
	__u64 last_ns;         /* CLOCK_MONOTONIC of the last good packet */
	/* Outbound: THE sequence counter of the SA. Workers reserve a batch
	 * with one atomic add here, so a restarted dataplane continues the
	 * sequence instead of reusing it (a reused GCM nonce breaks the key).
	 * Inbound: highest authenticated sequence number. */
	__u64 seq;
	__u64 drop_replay;     /* RFC 4303 §3.4.3 */
	__u64 drop_auth;       /* ICV mismatch, §3.4.4 */
	__u64 drop_pad;        /* bad padding or pad length */
	__u64 drop_malformed;  /* bad inner packet */
	__u64 drop_mtu;        /* too big with DF set */
	__u64 drop_other;
	__u64 reserved[6];
};

/* tunnels value, array indexed by tunnel id. */
struct tunnel {
	__u32 flags;           /* enum tunnel_flag */
	__u32 tun_ifindex;     /* slow-path TUN device (DESIGN §3) */
	__u16 mtu;             /* inner MTU, 1399 for AWS */
	__u16 mss;             /* TCP MSS clamp, 1379 for AWS; 0 = off */
	__u16 local_port;      /* outer UDP ports with NAT-T */
	__u16 remote_port;
	__u8 local_addr[16];   /* outside addresses */
	__u8 remote_addr[16];
	__u8 inside_addr[16];  /* our address in the inside /30 */
	__u8 inside_prefixlen;
	__u8 reserved[3];
};

/* routes_v4 / routes_v6 keys (LPM trie: prefix length, then address). */
struct route4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct route6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Route value. backup_tunnel_id (0 = none) is used when tunnel_id is down,
 * so failover to the second AWS tunnel happens in XDP before control has
 * rewritten the route. */
struct route {
	__u32 tunnel_id;
	__u32 backup_tunnel_id;
};

/* local_addrs key; value: enum local bits. */
struct local_addr {
	__u8 addr[16];
};

/* cgw_config value: one BPF_F_MMAPABLE entry. generation is a seqlock:
 * the writer makes it odd before a change and even after it, so a reader
 * that sees the same even value before and after dumping the tables has a
 * consistent copy, and notices changes by reading memory.
 * applied is written by the dataplane: the generation its workers use
 * (stored after the new snapshot is published to them), so control can
 * wait for a new inbound SA to be in use before it lets the peer send on
 * it (make-before-break). */
struct config {
	__u64 generation;
	__u64 applied;
	__u64 reserved[6];
};

/* XDP metadata the inside program writes in front of the frame. */
struct xdp_meta {
	__u32 tunnel_id;
	__u32 magic;           /* meta_magic */
};

#endif
