// SPDX-License-Identifier: MIT
/* A raw-tracepoint counter on sys_enter: counts calls per syscall number and sends an event for every
 * call of the syscalls it watches to a ring buffer. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct event {
	__u64 id;
	__u64 arg0;
	__u32 cpu;
	__u32 seq;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, __u64);
	__type(value, __u64);
} calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} watched SEC(".maps");

__u32 seq;

struct bpf_map;

struct match_ctx {
	__u64 id;
	int found;
};

static long match_one(struct bpf_map *map, __u32 *key, __u64 *val, struct match_ctx *m)
{
	if (*val && *val == m->id) {
		m->found = 1;
		return 1;
	}
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int count_syscalls(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = ctx->args[1], one = 1, *n;
	struct match_ctx m = { .id = id };
	struct event *e;

	n = bpf_map_lookup_elem(&calls, &id);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&calls, &id, &one, BPF_ANY);

	bpf_for_each_map_elem(&watched, match_one, &m, 0);
	if (!m.found)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 1;
	e->id = id;
	e->arg0 = ctx->args[0];
	e->cpu = bpf_get_smp_processor_id();
	e->seq = __sync_fetch_and_add(&seq, 1);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
