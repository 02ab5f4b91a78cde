"""Linux 6.12 LTS: what it does differently from 6.18.

Measured in Debian's 6.12.117+deb12-amd64 under QEMU (``--bpf-backend=vm:6.12``; the answers are recorded
in ``conformance/versions/6.12.json``); the kernel tree is /work/ref/linux-6.12.
"""
from .. import uapi as U
from .v6_18 import PROFILE as NEWER

PROFILE = NEWER.older(
    "6.12",
    commands=set(NEWER.commands) - {U.BPF_PROG_STREAM_READ_BY_FD},
    attr_size=152,
    last_fields={
        U.BPF_MAP_CREATE: "map_token_fd",  # no excl_prog_hash (6.18)
        U.BPF_PROG_LOAD: "prog_token_fd",  # no fd_array_cnt, signature, keyring_id
        U.BPF_BTF_GET_FD_BY_ID: "btf_id",  # no fd_by_id_token_fd
    },
    map_info_size=88,  # ends at map_extra: no hash, hash_size
    map_info_reads_user=False,  # memset to zero, then filled
    sizeof={
        # struct bpf_map is 48 bytes smaller, and so is every struct that starts with one ...
        "bpf_map": 248, "bpf_array": 264, "bpf_bloom_filter": 264, "bpf_queue_stack": 264, "bpf_dtab": 296,
        "bpf_cpu_map": 256, "xsk_map": 256, "bpf_stab": 328, "bpf_shtab": 336, "reuseport_array": 248,
        "bpf_ringbuf_map": 256, "bpf_cgroup_storage_map": 280,
        # ... but these, whose own parts changed too
        "bpf_local_storage_map": 432,
        "bpf_htab": 896,
        "bpf_stack_map": 288,  # with struct pcpu_freelist's extralist
        "lpm_trie_node": 40,  # with its rcu_head
        "bpf_prog": 72,  # (read from the BTF of Debian's 6.12 and 6.1 vmlinux)
    },
    # struct sk_buff without 6.14's rearrangement, a larger net_device head, bpf_array after the smaller bpf_map
    kernel_offsets={
        ("sk_buff", "priority"): 144, ("sk_buff", "skb_iif"): 148, ("sk_buff", "hash"): 152,
        ("sk_buff", "vlan_all"): 156, ("sk_buff", "vlan_proto"): 156, ("sk_buff", "vlan_tci"): 158,
        ("sk_buff", "mark"): 168, ("sk_buff", "protocol"): 180, ("sk_buff", "data"): 208,
        ("bpf_array", "value"): 264,
    },
    csum_diff="csum_partial",  # the fold and any sizes are 6.13's
    prog_tag="sha1",  # SHA-256 tags came with signed programs (6.18)
    log_liveness_marks=True,  # R0_w=1 (checked in the 6.1 and 6.12 VMs)
    lookup_and_delete_types=set(NEWER.lookup_and_delete_types) - {U.BPF_MAP_TYPE_STACK_TRACE},
    fd_htab_update_in_place=False,
    attach_types=U.BPF_TRACE_KPROBE_SESSION + 1,  # the last one of 6.12
    trampolines=True,  # Debian's kernels load them (the reference 6.18 host's refusal is its own)
    btf_tag_kflag=False,
    # load-acquire and store-release (BPF_ATOMIC with BPF_LOAD_ACQ, BPF_STORE_REL) are 6.15's
    instructions=set(NEWER.instructions) - {"load_acquire", "store_release"},
    array_const_key_nonnull=False,  # an array lookup's value may be NULL whatever the key (6.13 elides it)
    # no bpf_res_spin_lock (6.15), uptr (6.13), bpf_task_work (6.18)
    map_value_fields=("BPF_SPIN_LOCK", "BPF_TIMER", "BPF_KPTR", "BPF_LIST_HEAD", "BPF_RB_ROOT", "BPF_REFCOUNT",
                      "BPF_WORKQUEUE"),
)
