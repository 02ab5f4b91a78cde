"""Linux 6.18: the newest profile, and the one the rest of bpfemu is written against (the host of the
project's own tests runs it). Its facts are measured on that host; the command table
(:mod:`bpfemu.syscall.table`) holds its last attr fields.
"""
from .. import uapi as U
from .profile import Profile

PROFILE = Profile(
    "6.18",
    commands=U.CMD_NAMES,  # BPF_MAP_CREATE .. BPF_PROG_STREAM_READ_BY_FD (37)
    map_types=U.MAP_TYPE_NAMES,  # BPF_MAP_TYPE_UNSPEC .. BPF_MAP_TYPE_ARENA (33)
    attr_size=168,
    last_fields={},  # those of syscall/table.py
    map_info_size=104,  # up to hash and hash_size (6.18), and 4 bytes of padding
    map_info_reads_user=True,  # copy_from_user of the caller's info first (for its hash request)
    memlock="map_mem_usage",
    sizeof={
        "bpf_map": 296,
        "bpf_array": 312,  # up to its value area
        "bpf_htab": 832,
        "lpm_trie_node": 24,  # since the bpf_mem_alloc rework: no rcu_head
        "bpf_bloom_filter": 312,  # before its bit array
        "bpf_queue_stack": 312,  # before its ring
        "bpf_stack_map": 320,
        "bpf_dtab": 344,
        "bpf_dtab_netdev": 64,
        "bpf_cpu_map": 304,
        "xsk_map": 304,
        "bpf_stab": 376,
        "bpf_shtab": 384,
        "reuseport_array": 296,
        "bpf_ringbuf_map": 304,
        "bpf_cgroup_storage_map": 328,
        "bpf_local_storage_map": 448,
        "xdp_page_head": 112,  # two struct xdp_buff before each live XDP test frame
        "bpf_prog": 96,  # up to its insns: a program's memlock is this plus 8 bytes an instruction, in pages
    },
    # measured in the host's /sys/kernel/btf/vmlinux (tests/test_profile_offsets.py compares them)
    kernel_offsets={
        ("sk_buff", "dev"): 16, ("sk_buff", "cb"): 40, ("sk_buff", "len"): 112, ("sk_buff", "queue_mapping"): 124,
        ("sk_buff", "__cloned_offset"): 126, ("sk_buff", "__pkt_type_offset"): 128, ("sk_buff", "priority"): 140,
        ("sk_buff", "skb_iif"): 144, ("sk_buff", "hash"): 148, ("sk_buff", "vlan_all"): 152,
        ("sk_buff", "vlan_proto"): 152, ("sk_buff", "vlan_tci"): 154, ("sk_buff", "mark"): 164,
        ("sk_buff", "protocol"): 176, ("sk_buff", "data"): 200,
        ("qdisc_skb_cb", "tc_classid"): 6, ("qdisc_skb_cb", "data"): 8,
        ("bpf_skb_data_end", "data_meta"): 32, ("bpf_skb_data_end", "data_end"): 40,
        ("net_device", "ifindex"): 224,
        ("xdp_buff", "data"): 0, ("xdp_buff", "data_end"): 8, ("xdp_buff", "data_meta"): 16,
        ("xdp_buff", "rxq"): 32, ("xdp_buff", "txq"): 40,
        ("xdp_rxq_info", "dev"): 0, ("xdp_rxq_info", "queue_index"): 8, ("xdp_txq_info", "dev"): 0,
        ("bpf_array", "value"): 312, ("htab_elem", "key"): 48,
    },
    csum_diff="folded",
    prog_tag="sha256",
    log_liveness_marks=False,
    unpriv_check_at_entry=False,
    net_admin="bpf_net_capable",
    freeze_checks=("write_perm", "write_active", "frozen"),
    path_fd=True,
    lookup_and_delete_types=(U.BPF_MAP_TYPE_QUEUE, U.BPF_MAP_TYPE_STACK, U.BPF_MAP_TYPE_HASH,
                             U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_MAP_TYPE_LRU_HASH, U.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                             U.BPF_MAP_TYPE_STACK_TRACE),
    fd_htab_update_in_place=True,
    lru_target_free="scaled",
    prog_types=U.PROG_TYPE_NAMES,  # BPF_PROG_TYPE_UNSPEC .. BPF_PROG_TYPE_NETFILTER
    attach_types=dict(U.ENUMS["bpf_attach_type"])["__MAX_BPF_ATTACH_TYPE"],
    # STRICT_ALIGNMENT, ANY_ALIGNMENT, TEST_RND_HI32, TEST_STATE_FREQ, SLEEPABLE, XDP_HAS_FRAGS,
    # XDP_DEV_BOUND_ONLY, TEST_REG_INVARIANTS (bits 0-7) and BPF_F_TOKEN_FD
    prog_flags=0xff | U.BPF_F_TOKEN_FD,
    license_first=False,
    ksym_funcs=True,
    tnum_strn="constant",
    sleepable_log="Only fentry/fexit/fmod_ret, lsm, iter, uprobe, and struct_ops programs can be sleepable",
    trampolines=False,  # the reference host (6.18.44-fc) refuses trampoline-based programs: EPERM
    btf_tag_kflag=True,
    verifier_log="rotating",
    btf_section_names="printable",
    btf_struct_metas=True,
    instructions=("sdiv_smod", "movsx", "ldsx", "bswap", "may_goto", "load_acquire", "store_release"),
    st_to_ctx=True,
    test_run_types=(U.BPF_PROG_TYPE_SOCKET_FILTER, U.BPF_PROG_TYPE_SCHED_CLS, U.BPF_PROG_TYPE_SCHED_ACT,
                    U.BPF_PROG_TYPE_CGROUP_SKB, U.BPF_PROG_TYPE_LWT_IN, U.BPF_PROG_TYPE_LWT_OUT,
                    U.BPF_PROG_TYPE_LWT_XMIT, U.BPF_PROG_TYPE_XDP, U.BPF_PROG_TYPE_RAW_TRACEPOINT,
                    U.BPF_PROG_TYPE_SYSCALL, U.BPF_PROG_TYPE_FLOW_DISSECTOR, U.BPF_PROG_TYPE_SK_LOOKUP,
                    U.BPF_PROG_TYPE_TRACING, U.BPF_PROG_TYPE_NETFILTER, U.BPF_PROG_TYPE_STRUCT_OPS),
    xdp_meta_max=255,
    map_field_rules="record",
    kptr_local=True,
    array_const_key_nonnull=True,  # skb_shared_info's meta_len is a u8
    map_value_fields=("BPF_SPIN_LOCK", "BPF_RES_SPIN_LOCK", "BPF_TIMER", "BPF_KPTR", "BPF_LIST_HEAD", "BPF_RB_ROOT",
                      "BPF_REFCOUNT", "BPF_WORKQUEUE", "BPF_UPTR", "BPF_TASK_WORK"),
)
