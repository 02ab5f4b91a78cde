// SPDX-License-Identifier: MIT
/* Global data (.rodata set before load, .data, .bss) and CO-RE relocations against the kernel's BTF. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* the kernel's types, as far as this program uses them: CO-RE finds the real offsets */
struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
} __attribute__((preserve_access_index));

struct bpf_map_kern_missing {
	int nonexistent_field;
} __attribute__((preserve_access_index));

enum bpf_map_type___local {
	BPF_MAP_TYPE_RINGBUF___local = 1000,
};

const volatile __u32 multiplier = 1;	/* .rodata: set before load */
const volatile char greeting[8] = "hello";
__u64 calls = 100;			/* .data */
__u64 last_result;			/* .bss */
__u32 pid_offset, tgid_offset, task_size, ringbuf_type;
__u32 has_task, has_missing, has_pid_field;
static __u64 history[4];		/* .bss, static */

SEC("raw_tracepoint/sched_switch")
int record(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 r = ctx->args[0] * multiplier + greeting[0];

	pid_offset = bpf_core_field_offset(struct task_struct, pid);
	tgid_offset = bpf_core_field_offset(struct task_struct, tgid);
	task_size = bpf_core_type_size(struct task_struct);
	has_task = bpf_core_type_exists(struct task_struct);
	has_missing = bpf_core_type_exists(struct bpf_map_kern_missing);
	has_pid_field = bpf_core_field_exists(struct task_struct, pid);
	ringbuf_type = bpf_core_enum_value(enum bpf_map_type___local, BPF_MAP_TYPE_RINGBUF___local);
	history[calls & 3] = r;
	calls++;
	last_result = r;
	return r & 0xff;
}

char LICENSE[] SEC("license") = "GPL";
