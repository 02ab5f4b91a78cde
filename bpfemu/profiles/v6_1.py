"""Linux 6.1 LTS: what it does differently from 6.12.

Measured in Debian's 6.1.0-50-amd64 (6.1.176) under QEMU (``--bpf-backend=vm:6.1``; the answers are recorded
in ``conformance/versions/6.1.json``); the kernel tree is /work/ref/linux-6.1.
"""
from .. import uapi as U
from .v6_12 import PROFILE as NEWER

PROFILE = NEWER.older(
    "6.1",
    commands=set(NEWER.commands) - {U.BPF_TOKEN_CREATE},
    map_types=set(NEWER.map_types) - {U.BPF_MAP_TYPE_CGRP_STORAGE, U.BPF_MAP_TYPE_ARENA},
    attr_size=144,
    last_fields={
        U.BPF_MAP_CREATE: "map_extra",  # no value_type_btf_obj_fd, map_token_fd
        U.BPF_PROG_LOAD: "core_relo_rec_size",  # no log_true_size, prog_token_fd
        U.BPF_OBJ_PIN: "file_flags",  # no path_fd
        U.BPF_OBJ_GET: "file_flags",
        U.BPF_BTF_LOAD: "btf_log_level",  # no btf_log_true_size, btf_flags, btf_token_fd
        U.BPF_LINK_CREATE: "link_create.kprobe_multi.cookies",
    },
    memlock="bpf_map_memory_footprint",  # fdinfo shows an estimate, the same for every type
    unpriv_check_at_entry=True,
    net_admin="CAP_NET_ADMIN",
    freeze_checks=("write_active", "frozen", "bpf_capable"),
    path_fd=False,
    btf_section_names="identifier",
    btf_struct_metas=False,
    # map_check_btf of 6.1 looks for a bpf_spin_lock, a bpf_timer and kptrs (percpu_kptr: 6.6; list and rb-tree
    # roots need 6.2's struct metas; bpf_refcount: 6.4; bpf_wq: 6.10)
    map_value_fields=("BPF_SPIN_LOCK", "BPF_TIMER", "BPF_KPTR_UNREF", "BPF_KPTR_REF"),
    verifier_log="head",  # the rotating log, BPF_LOG_FIXED and log_true_size are 6.4's
    # the cpu=v4 instructions (6.6) and may_goto (6.9) are unknown; gotol (BPF_JMP32 | BPF_JA) is not: Debian's
    # 6.1 (6.1.176) runs it (the stable series took it)
    instructions=set(NEWER.instructions) - {"sdiv_smod", "movsx", "ldsx", "bswap", "may_goto"},
    st_to_ctx=False,  # a BPF_ST to the context is refused (6.3 allows it)
    # LWT_SEG6LOCAL programs have a test run (6.12's lwt_seg6local_prog_ops has none)
    test_run_types=set(NEWER.test_run_types) | {U.BPF_PROG_TYPE_LWT_SEG6LOCAL},
    xdp_meta_max=32,
    # struct xdp_page_head ends in a whole struct xdp_frame (40 bytes) before the frame's data: live XDP test
    # frames have 40 bytes less room
    sizeof={"xdp_page_head": 152},
    # map_check_btf looks for each kind on its own (no btf_record): a bpf_spin_lock only refuses
    # BPF_F_RDONLY_PROG and other map types with ENOTSUPP (524), a bpf_timer BPF_F_RDONLY_PROG and EOPNOTSUPP,
    # kptrs need CAP_BPF and refuse both program flags; MAP_FREEZE refuses timers and kptrs only
    map_field_rules=(
        (("BPF_SPIN_LOCK",), U.BPF_F_RDONLY_PROG,
         (U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_CGROUP_STORAGE, U.BPF_MAP_TYPE_SK_STORAGE,
          U.BPF_MAP_TYPE_INODE_STORAGE, U.BPF_MAP_TYPE_TASK_STORAGE), 524, False, False),
        (("BPF_TIMER",), U.BPF_F_RDONLY_PROG, (U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_LRU_HASH, U.BPF_MAP_TYPE_ARRAY),
         95, False, True),
        (("BPF_KPTR_UNREF", "BPF_KPTR_REF"), U.BPF_F_RDONLY_PROG | U.BPF_F_WRONLY_PROG,
         (U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_LRU_HASH, U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_PERCPU_ARRAY),
         95, True, True),
    ),
    # a common LRU's CPU takes LOCAL_FREE_TARGET (128) free nodes at once whatever the map's size (6.12 clamps it to
    # max_entries / CPUs / 2)
    lru_target_free="fixed",
    prog_types=set(NEWER.prog_types) - {U.BPF_PROG_TYPE_NETFILTER},
    attach_types=U.BPF_LSM_CGROUP + 1,  # no NETFILTER, TCX, UPROBE_MULTI, the CGROUP_UNIX_* (6.7), NETKIT...
    # no XDP_DEV_BOUND_ONLY (6.3), TEST_REG_INVARIANTS (6.8), BPF_F_TOKEN_FD (6.9)
    prog_flags=0x3f,
    ksym_funcs=False,
    tnum_strn="pair",  # "misaligned packet access off 2+(0x0; 0x0)+0+1 size 4"  # an ld_imm64 of a kernel BTF id names a variable only: "isn't KIND_VAR."
    license_first=True,  # an unreadable license is EFAULT before an empty program's E2BIG
    sleepable_log="Only fentry/fexit/fmod_ret, lsm, and kprobe/uprobe programs can be sleepable",
    # vlan_present is a bit of its own (the byte at __pkt_vlan_present_offset, bit 0 on x86), not vlan_all != 0
    kernel_offsets={
        ("sk_buff", "vlan_all"): None, ("sk_buff", "__pkt_vlan_present_offset"): 130,
        ("sk_buff", "vlan_proto"): 152, ("sk_buff", "vlan_tci"): 154, ("sk_buff", "priority"): 140,
        ("sk_buff", "skb_iif"): 144, ("sk_buff", "hash"): 148,
        ("net_device", "ifindex"): 216, ("bpf_array", "value"): 272,
    },
    kptr_local=False,  # kptrs point to kernel types only (program-local kptrs are 6.2's)
    notes=(
        "The map types' own privilege checks sit in their allocators in 6.1; the profile keeps 6.12's single "
        "check in map_create (with CAP_NET_ADMIN alone for the network types). With "
        "kernel.unprivileged_bpf_disabled set (the default) the check at the syscall's entry answers first "
        "and the two agree; with it at 0 the order of the errnos may differ.",
        "kptr tags: 6.1 calls an unreferenced kptr \"kptr\" and a referenced one \"kptr_ref\"; the profile keeps "
        "6.12's names (\"kptr_untrusted\", \"kptr\"). A kptr 6.1 cannot parse drops only the kptrs of the value "
        "(its lock and timer stay); the profile drops all the value's special fields.",
        "The memory cgroup is charged with 6.12's per-type figures (6.1 charges its allocations as they are "
        "made; fdinfo shows only the footprint estimate).",
    ),
)
