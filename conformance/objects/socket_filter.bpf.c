// SPDX-License-Identifier: MIT
/* A socket filter for a raw IPv4 socket (the packet starts at the IP header, as BPF_PROG_TEST_RUN gives it
 * to socket filters too): keeps TCP segments to port 8080 whole, truncates other IPv4 packets to their IP
 * header, drops everything else; counts its verdicts in an array. */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PORT 8080

enum verdict { DROPPED, TRUNCATED, KEPT, NVERDICTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NVERDICTS);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

static __always_inline int tally(__u32 v, int ret)
{
	__u64 *n = bpf_map_lookup_elem(&verdicts, &v);

	if (n)
		__sync_fetch_and_add(n, 1);
	return ret;
}

SEC("socket")
int tcp_port_filter(struct __sk_buff *skb)
{
	struct iphdr ip;
	__u16 dport;
	__u32 hlen;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return tally(DROPPED, 0);
	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
		return tally(DROPPED, 0);
	hlen = ip.ihl * 4;
	if (hlen < sizeof(ip))
		return tally(DROPPED, 0);
	if (ip.protocol != IPPROTO_TCP)
		return tally(TRUNCATED, hlen);
	if (bpf_skb_load_bytes(skb, hlen + offsetof(struct tcphdr, dest), &dport, sizeof(dport)) < 0)
		return tally(DROPPED, 0);
	if (dport != bpf_htons(PORT))
		return tally(TRUNCATED, hlen);
	return tally(KEPT, skb->len);
}

char LICENSE[] SEC("license") = "GPL";
