// SPDX-License-Identifier: MIT
/* An XDP packet counter: packets and bytes per CPU, and a counter per IPv4 source address. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct stats {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stats);
} totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);	/* IPv4 source address, network order */
	__type(value, __u64);
} by_source SEC(".maps");

static __noinline int count_source(__u32 saddr)
{
	__u64 one = 1, *n;

	n = bpf_map_lookup_elem(&by_source, &saddr);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return 0;
	}
	return bpf_map_update_elem(&by_source, &saddr, &one, BPF_NOEXIST);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct stats *st;
	__u32 zero = 0;

	st = bpf_map_lookup_elem(&totals, &zero);
	if (st) {
		st->packets++;
		st->bytes += end - data;
	}
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_DROP;
	count_source(ip->saddr);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
