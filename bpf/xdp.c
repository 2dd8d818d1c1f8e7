//go:build ignore

// XDP steering programs for cgw (DESIGN §3). They only decide where a frame
// goes: the AF_XDP socket of its rx queue, the kernel (XDP_PASS), or nowhere
// (XDP_DROP). Every decision is counted in xdp_stats by reason.
//
// Fail closed (DESIGN §6): a frame cgw owns — tunnel-bound on the inside,
// ESP with one of our SPIs on the outside — is dropped when it cannot reach
// a worker (every tunnel of its route down, or no socket on the queue
// because the dataplane is stopped, crashed or restarting). Passing it
// would hand it to the kernel, which has no SA and would forward a LAN
// packet in clear along its default route.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "cgw_maps.h"

char _license[] SEC("license") = "Dual MIT/GPL";

/* Never called. Its parameter makes clang emit BTF for the enums, which
 * bpf2go -type turns into Go constants (enum values alone leave no BTF). */
struct btf_anchor {
	enum limits a;
	enum sa_state b;
	enum sa_dir c;
	enum sa_flag d;
	enum tunnel_flag e;
	enum local f;
	enum stat g;
	struct xdp_meta h;
};

__attribute__((noinline)) int cgw_btf_anchor(struct btf_anchor *a)
{
	return a != 0;
}

#define PINNED __uint(pinning, LIBBPF_PIN_BY_NAME)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, max_sas);
	__type(key, __u32); /* SPI */
	__type(value, struct inbound_sa);
	PINNED;
} inbound_spi SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, max_tunnels);
	__type(key, __u32);   /* tunnel id */
	__type(value, __u32); /* SA index: one 4-byte update switches it */
	PINNED;
} outbound_sa SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, max_sas);
	__type(key, __u32);
	__type(value, struct sa);
	PINNED;
} sa_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, max_sas);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sa_counters);
	PINNED;
} sa_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, max_tunnels);
	__type(key, __u32);
	__type(value, struct tunnel);
	PINNED;
} tunnels SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, max_routes);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct route4_key);
	__type(value, struct route);
	PINNED;
} routes_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, max_routes);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct route6_key);
	__type(value, struct route);
	PINNED;
} routes_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, max_local_addrs);
	__type(key, struct local_addr);
	__type(value, __u32); /* enum local bits */
	PINNED;
} local_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct config);
	PINNED;
} cgw_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, max_queues);
	__type(key, __u32);
	__type(value, __u32);
	PINNED;
} xsks_outside SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, max_queues);
	__type(key, __u32);
	__type(value, __u32);
	PINNED;
} xsks_inside SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, num_stats);
	__type(key, __u32);
	__type(value, __u64);
	PINNED;
} xdp_stats SEC(".maps");

static __always_inline int count(__u32 reason, int action)
{
	__u64 *c = bpf_map_lookup_elem(&xdp_stats, &reason);

	if (c)
		*c += 1; /* per-CPU slot: no atomic needed */
	return action;
}

#define IKE_PORT 500
#define NATT_PORT 4500
#define IP_MF_OFFSET 0x3fff /* more-fragments flag and fragment offset */

SEC("xdp")
int xdp_outside(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct local_addr dst = {};
	void *l4;
	__u8 proto;
	__u32 spi;

	if ((void *)(eth + 1) > end)
		return count(out_short, XDP_PASS);

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return count(out_short, XDP_PASS);
		if (ip->frag_off & bpf_htons(IP_MF_OFFSET))
			return count(out_fragment, XDP_PASS);
		proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
		dst.addr[10] = 0xff;
		dst.addr[11] = 0xff;
		__builtin_memcpy(&dst.addr[12], &ip->daddr, 4);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return count(out_short, XDP_PASS);
		/* No extension-header walk: ESP and UDP directly follow the
		 * fixed header in what AWS and strongSwan send. */
		proto = ip6->nexthdr;
		l4 = ip6 + 1;
		__builtin_memcpy(dst.addr, &ip6->daddr, 16);
	} else if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		return count(out_arp, XDP_PASS);
	} else {
		return count(out_other, XDP_PASS);
	}

	if (proto == IPPROTO_ESP) {
		if (l4 + 8 > end) /* SPI + sequence number */
			return count(out_short, XDP_PASS);
		__builtin_memcpy(&spi, l4, 4);
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		__u8 *payload = (void *)(udp + 1);

		if ((void *)(udp + 1) > end)
			return count(out_short, XDP_PASS);
		if (udp->dest == bpf_htons(IKE_PORT))
			return count(out_ike, XDP_PASS);
		if (udp->dest != bpf_htons(NATT_PORT))
			return count(out_other, XDP_PASS);
		/* RFC 3948 §2.3: a keepalive is one 0xFF byte. Use the UDP
		 * length: short frames carry Ethernet padding. */
		if (udp->len == bpf_htons(sizeof(*udp) + 1)) {
			if ((void *)(payload + 1) > end)
				return count(out_short, XDP_PASS);
			if (payload[0] == 0xff)
				return count(out_keepalive, XDP_PASS);
			return count(out_other, XDP_PASS);
		}
		if ((void *)(payload + 8) > end)
			return count(out_short, XDP_PASS);
		__builtin_memcpy(&spi, payload, 4);
		/* RFC 3948 §2.2: four zero bytes (the non-ESP marker) mean
		 * IKE, which the kernel delivers to cgw-control. */
		if (spi == 0)
			return count(out_ike, XDP_PASS);
	} else {
		return count(out_other, XDP_PASS);
	}

	__u32 *local = bpf_map_lookup_elem(&local_addrs, &dst);
	if (!local || !(*local & outside))
		return count(out_not_local, XDP_PASS);

	spi = bpf_ntohl(spi);
	if (!bpf_map_lookup_elem(&inbound_spi, &spi))
		return count(out_unknown_spi, XDP_PASS);

	/* No socket on this queue: the flags' XDP_DROP comes back. The kernel
	 * has no ESP, so passing it would only feed it garbage. */
	int act = bpf_redirect_map(&xsks_outside, ctx->rx_queue_index, XDP_DROP);
	return count(act == XDP_REDIRECT ? out_redirect : out_drop_no_socket, act);
}

static __always_inline int tunnel_up(__u32 id)
{
	struct tunnel *t;

	if (id == 0)
		return 0;
	t = bpf_map_lookup_elem(&tunnels, &id);
	return t && (t->flags & up);
}

#define ICMPV6 58

SEC("xdp")
int xdp_inside(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct local_addr dst = {};
	struct route *r;
	__u32 *local;
	__u32 tid;

	if ((void *)(eth + 1) > end)
		return count(in_short, XDP_PASS);

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct route4_key k = { .prefixlen = 32 };

		if ((void *)(ip + 1) > end)
			return count(in_short, XDP_PASS);
		__builtin_memcpy(k.addr, &ip->daddr, 4);
		if (k.addr[0] >= 224) /* multicast, broadcast */
			return count(in_local, XDP_PASS);
		dst.addr[10] = 0xff;
		dst.addr[11] = 0xff;
		__builtin_memcpy(&dst.addr[12], k.addr, 4);
		r = bpf_map_lookup_elem(&routes_v4, &k);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct route6_key k = { .prefixlen = 128 };

		if ((void *)(ip6 + 1) > end)
			return count(in_short, XDP_PASS);
		if (ip6->nexthdr == ICMPV6) {
			__u8 *type = (void *)(ip6 + 1);

			if ((void *)(type + 1) > end)
				return count(in_short, XDP_PASS);
			/* RS, RA, NS, NA, redirect: RFC 4861 §4 */
			if (*type >= 133 && *type <= 137)
				return count(in_nd, XDP_PASS);
		}
		__builtin_memcpy(k.addr, &ip6->daddr, 16);
		/* multicast ff00::/8, link-local fe80::/10 */
		if (k.addr[0] == 0xff ||
		    (k.addr[0] == 0xfe && (k.addr[1] & 0xc0) == 0x80))
			return count(in_local, XDP_PASS);
		__builtin_memcpy(dst.addr, k.addr, 16);
		r = bpf_map_lookup_elem(&routes_v6, &k);
	} else if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		return count(in_arp, XDP_PASS);
	} else {
		return count(in_other, XDP_PASS);
	}

	/* A default route through the tunnel must not swallow traffic for
	 * the gateway itself. */
	local = bpf_map_lookup_elem(&local_addrs, &dst);
	if (local)
		return count(in_local, XDP_PASS);
	/* Not ours to steer. A prefix cgw routed before (withdrawn when its
	 * tunnels went down) meets cgw-control's blackhole guard route in the
	 * kernel (control/guard). */
	if (!r)
		return count(in_no_route, XDP_PASS);

	tid = r->tunnel_id;
	if (!tunnel_up(tid)) {
		tid = r->backup_tunnel_id;
		if (!tunnel_up(tid))
			return count(in_drop_tunnel_down, XDP_DROP);
	}

	/* The worker checks the magic; without it, it repeats the lookup. */
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct xdp_meta)) == 0) {
		struct xdp_meta *meta = (void *)(long)ctx->data_meta;

		if ((void *)(meta + 1) <= (void *)(long)ctx->data) {
			meta->tunnel_id = tid;
			meta->magic = meta_magic;
		}
	} else {
		count(in_no_meta, 0);
	}

	/* No socket on this queue (dataplane stopped, crashed, restarting):
	 * drop. XDP_PASS would let the kernel forward it in clear. */
	int act = bpf_redirect_map(&xsks_inside, ctx->rx_queue_index, XDP_DROP);
	return count(act == XDP_REDIRECT ? in_redirect : in_drop_no_socket, act);
}

// Veth peers drop redirected frames unless they run a native XDP program
// (DESIGN §4); this one is enough.
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
