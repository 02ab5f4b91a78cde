"""The kernel's kfunc sets: which kernel functions a BPF program may call (BPF_PSEUDO_KFUNC_CALL), with which
flags, from which program types (``register_btf_kfunc_id_set`` and ``btf_kfunc_id_set_contains`` in
kernel/bpf/btf.c; the sets are the ``BTF_KFUNCS_START`` lists of kernel/bpf/helpers.c, cpumask.c,
net/core/filter.c, net/netfilter/nf_conntrack_bpf.c, kernel/bpf/crypto.c, ...).

The kernel registers its sets at boot, outside BTF: the kernel BTF only says which functions are kfuncs
(a ``bpf_kfunc`` decl tag) and gives their prototypes. This module is the registration, as the reference host
(6.18) has it; ``conformance/test_kfuncs.py`` asks the host, for every kfunc below and every program type that
loads here, whether the call is allowed, and compares with :func:`kfunc_flags`.

- :data:`KFUNC_SETS`: set name -> {kfunc name: KF_* flags};
- :data:`REGISTRATIONS`: (hook, set name) pairs, as ``register_btf_kfunc_id_set`` calls them;
- :func:`kfunc_hook`: the hook of a program type (``bpf_prog_type_to_kfunc_hook``);
- :func:`kfunc_flags`: the flags of ``name`` for a program of ``prog_type``, or None when the program may
  not call it (the verifier's "calling kernel function %s is not allowed").

The flags are the kernel's ``KF_*`` bits (include/linux/btf.h). On the reference host every kfunc takes
trusted arguments whatever its flags say (``KF_TRUSTED_ARGS`` became the default), so that flag is kept
here for the record only.
"""
from .. import uapi as U

KF_ACQUIRE = 1 << 0
KF_RELEASE = 1 << 1
KF_RET_NULL = 1 << 2
KF_TRUSTED_ARGS = 1 << 4
KF_SLEEPABLE = 1 << 5
KF_DESTRUCTIVE = 1 << 6
KF_RCU = 1 << 7
KF_ITER_NEW = 1 << 8
KF_ITER_NEXT = 1 << 9
KF_ITER_DESTROY = 1 << 10
KF_RCU_PROTECTED = 1 << 11
KF_FASTCALL = 1 << 12
KF_ARENA_RET = 1 << 13
KF_ARENA_ARG1 = 1 << 14
KF_ARENA_ARG2 = 1 << 15

FLAG_NAMES = ((KF_ACQUIRE, "KF_ACQUIRE"), (KF_RELEASE, "KF_RELEASE"), (KF_RET_NULL, "KF_RET_NULL"),
              (KF_TRUSTED_ARGS, "KF_TRUSTED_ARGS"), (KF_SLEEPABLE, "KF_SLEEPABLE"),
              (KF_DESTRUCTIVE, "KF_DESTRUCTIVE"), (KF_RCU, "KF_RCU"), (KF_ITER_NEW, "KF_ITER_NEW"),
              (KF_ITER_NEXT, "KF_ITER_NEXT"), (KF_ITER_DESTROY, "KF_ITER_DESTROY"),
              (KF_RCU_PROTECTED, "KF_RCU_PROTECTED"), (KF_FASTCALL, "KF_FASTCALL"),
              (KF_ARENA_RET, "KF_ARENA_RET"), (KF_ARENA_ARG1, "KF_ARENA_ARG1"), (KF_ARENA_ARG2, "KF_ARENA_ARG2"))

# enum btf_kfunc_hook
(HOOK_COMMON, HOOK_XDP, HOOK_TC, HOOK_STRUCT_OPS, HOOK_TRACING, HOOK_SYSCALL, HOOK_FMODRET, HOOK_CGROUP,
 HOOK_SCHED_ACT, HOOK_SK_SKB, HOOK_SOCKET_FILTER, HOOK_LWT, HOOK_NETFILTER, HOOK_KPROBE) = range(14)

P = U
_HOOK_OF_TYPE = {
    P.BPF_PROG_TYPE_XDP: HOOK_XDP,
    P.BPF_PROG_TYPE_SCHED_CLS: HOOK_TC,
    P.BPF_PROG_TYPE_STRUCT_OPS: HOOK_STRUCT_OPS,
    P.BPF_PROG_TYPE_TRACING: HOOK_TRACING, P.BPF_PROG_TYPE_TRACEPOINT: HOOK_TRACING,
    P.BPF_PROG_TYPE_PERF_EVENT: HOOK_TRACING, P.BPF_PROG_TYPE_LSM: HOOK_TRACING,
    P.BPF_PROG_TYPE_SYSCALL: HOOK_SYSCALL,
    # the cgroup hook: the host lists SOCK_OPS with the cgroup types
    P.BPF_PROG_TYPE_CGROUP_SKB: HOOK_CGROUP, P.BPF_PROG_TYPE_CGROUP_SOCK: HOOK_CGROUP,
    P.BPF_PROG_TYPE_CGROUP_DEVICE: HOOK_CGROUP, P.BPF_PROG_TYPE_CGROUP_SOCK_ADDR: HOOK_CGROUP,
    P.BPF_PROG_TYPE_CGROUP_SOCKOPT: HOOK_CGROUP, P.BPF_PROG_TYPE_CGROUP_SYSCTL: HOOK_CGROUP,
    P.BPF_PROG_TYPE_SOCK_OPS: HOOK_CGROUP,
    P.BPF_PROG_TYPE_SCHED_ACT: HOOK_SCHED_ACT,
    P.BPF_PROG_TYPE_SK_SKB: HOOK_SK_SKB,
    P.BPF_PROG_TYPE_SOCKET_FILTER: HOOK_SOCKET_FILTER,
    P.BPF_PROG_TYPE_LWT_OUT: HOOK_LWT, P.BPF_PROG_TYPE_LWT_IN: HOOK_LWT, P.BPF_PROG_TYPE_LWT_XMIT: HOOK_LWT,
    P.BPF_PROG_TYPE_LWT_SEG6LOCAL: HOOK_LWT,
    P.BPF_PROG_TYPE_NETFILTER: HOOK_NETFILTER,
    P.BPF_PROG_TYPE_KPROBE: HOOK_KPROBE,
}


def kfunc_hook(prog_type):
    """bpf_prog_type_to_kfunc_hook: the hook whose sets a program of ``prog_type`` may call (None: only the
    common set)."""
    return _HOOK_OF_TYPE.get(prog_type)


A, R, N, T, S, RCU = KF_ACQUIRE, KF_RELEASE, KF_RET_NULL, KF_TRUSTED_ARGS, KF_SLEEPABLE, KF_RCU
IN, IX, ID = KF_ITER_NEW, KF_ITER_NEXT | KF_RET_NULL, KF_ITER_DESTROY

KFUNC_SETS = {
    # kernel/bpf/helpers.c common_btf_ids, with the other sets registered for every type (BPF_PROG_TYPE_UNSPEC):
    # arena.c, map_iter.c, rqspinlock.c, the string kfuncs, streams, task_work
    "common": {
        "bpf_cast_to_kern_ctx": KF_FASTCALL, "bpf_rdonly_cast": KF_FASTCALL,
        "bpf_rcu_read_lock": 0, "bpf_rcu_read_unlock": 0,
        "bpf_dynptr_slice": N, "bpf_dynptr_slice_rdwr": N,
        "bpf_iter_num_new": IN, "bpf_iter_num_next": IX, "bpf_iter_num_destroy": ID,
        "bpf_iter_task_vma_new": IN | RCU, "bpf_iter_task_vma_next": IX, "bpf_iter_task_vma_destroy": ID,
        "bpf_iter_css_task_new": IN | T, "bpf_iter_css_task_next": IX, "bpf_iter_css_task_destroy": ID,
        "bpf_iter_css_new": IN | T | KF_RCU_PROTECTED, "bpf_iter_css_next": IX, "bpf_iter_css_destroy": ID,
        "bpf_iter_task_new": IN | T | KF_RCU_PROTECTED, "bpf_iter_task_next": IX, "bpf_iter_task_destroy": ID,
        "bpf_dynptr_adjust": 0, "bpf_dynptr_is_null": 0, "bpf_dynptr_is_rdonly": 0, "bpf_dynptr_size": 0,
        "bpf_dynptr_clone": 0, "bpf_dynptr_copy": 0, "bpf_dynptr_memset": 0,
        "bpf_modify_return_test_tp": 0,
        "bpf_wq_init": 0, "bpf_wq_set_callback_impl": 0, "bpf_wq_start": 0,
        "bpf_preempt_disable": 0, "bpf_preempt_enable": 0,
        "bpf_iter_bits_new": IN, "bpf_iter_bits_next": IX, "bpf_iter_bits_destroy": ID,
        "bpf_copy_from_user_str": S, "bpf_copy_from_user_task_str": S,
        "bpf_get_kmem_cache": 0,
        "bpf_iter_kmem_cache_new": IN | S, "bpf_iter_kmem_cache_next": IX | S, "bpf_iter_kmem_cache_destroy": ID | S,
        "bpf_local_irq_save": 0, "bpf_local_irq_restore": 0,
        "bpf_probe_read_user_dynptr": 0, "bpf_probe_read_kernel_dynptr": 0,
        "bpf_probe_read_user_str_dynptr": 0, "bpf_probe_read_kernel_str_dynptr": 0,
        "bpf_copy_from_user_dynptr": S, "bpf_copy_from_user_str_dynptr": S,
        "bpf_copy_from_user_task_dynptr": S | T, "bpf_copy_from_user_task_str_dynptr": S | T,
        "bpf_iter_dmabuf_new": IN | S, "bpf_iter_dmabuf_next": IX | S, "bpf_iter_dmabuf_destroy": ID | S,
        "__bpf_trap": 0, "bpf_cgroup_read_xattr": RCU,
        "bpf_strcmp": 0, "bpf_strcasecmp": 0, "bpf_strchr": 0, "bpf_strchrnul": 0, "bpf_strnchr": 0,
        "bpf_strrchr": 0, "bpf_strlen": 0, "bpf_strnlen": 0, "bpf_strspn": 0, "bpf_strcspn": 0, "bpf_strstr": 0,
        "bpf_strnstr": 0,
        "bpf_stream_vprintk_impl": 0,
        "bpf_task_work_schedule_signal_impl": 0, "bpf_task_work_schedule_resume_impl": 0,
        "bpf_res_spin_lock": 0, "bpf_res_spin_unlock": 0, "bpf_res_spin_lock_irqsave": 0,
        "bpf_res_spin_unlock_irqrestore": 0,
        "bpf_arena_alloc_pages": T | S | KF_ARENA_RET | KF_ARENA_ARG2,
        "bpf_arena_free_pages": T | S | KF_ARENA_ARG2,
        "bpf_arena_reserve_pages": T | S | KF_ARENA_ARG2,
        "bpf_map_sum_elem_count": T,
    },
    # kernel/bpf/helpers.c generic_btf_ids, and the key kfuncs (kernel/trace/bpf_trace.c) that share its hooks
    "generic": {
        "bpf_obj_new_impl": A | N, "bpf_percpu_obj_new_impl": A | N,
        "bpf_obj_drop_impl": R, "bpf_percpu_obj_drop_impl": R,
        "bpf_refcount_acquire_impl": A | N | RCU,
        "bpf_list_push_front_impl": 0, "bpf_list_push_back_impl": 0,
        "bpf_list_pop_front": A | N, "bpf_list_pop_back": A | N,
        "bpf_list_front": N, "bpf_list_back": N,
        "bpf_task_acquire": A | RCU | N, "bpf_task_release": R,
        "bpf_rbtree_remove": A | N, "bpf_rbtree_add_impl": 0, "bpf_rbtree_first": N,
        "bpf_rbtree_root": N, "bpf_rbtree_left": N, "bpf_rbtree_right": N,
        "bpf_cgroup_acquire": A | RCU | N, "bpf_cgroup_release": R,
        "bpf_cgroup_ancestor": A | RCU | N, "bpf_cgroup_from_id": A | N,
        "bpf_task_under_cgroup": RCU, "bpf_task_get_cgroup1": A | RCU | N,
        "bpf_task_from_pid": A | N, "bpf_task_from_vpid": A | N,
        "bpf_throw": 0, "bpf_send_signal_task": T,
        "bpf_lookup_user_key": A | N | S, "bpf_lookup_system_key": A | N, "bpf_key_put": R,
    },
    # kernel/bpf/cpumask.c
    "cpumask": {
        "bpf_cpumask_create": A | N, "bpf_cpumask_release": R, "bpf_cpumask_acquire": A | T,
        **{"bpf_cpumask_" + n: RCU for n in (
            "first", "first_zero", "first_and", "set_cpu", "clear_cpu", "test_cpu", "test_and_set_cpu",
            "test_and_clear_cpu", "setall", "clear", "and", "or", "xor", "equal", "intersects", "subset", "empty",
            "full", "copy", "any_distribute", "any_and_distribute", "weight", "populate")},
    },
    # kernel/cgroup/rstat.c
    "rstat": {"css_rstat_updated": 0, "css_rstat_flush": S},
    # net/core/filter.c
    "skb": {"bpf_dynptr_from_skb": T},
    "skb_meta": {"bpf_dynptr_from_skb_meta": T},
    "xdp": {"bpf_dynptr_from_xdp": 0, "bpf_xdp_pull_data": 0},
    "sock_addr": {"bpf_sock_addr_set_sun_path": T},
    "sock_ops": {"bpf_sock_ops_enable_tx_tstamp": 0},
    "tcp_reqsk": {"bpf_sk_assign_tcp_reqsk": T},
    # net/netfilter/nf_conntrack_bpf.c, nf_nat_bpf.c
    "nf_conntrack": {
        "bpf_xdp_ct_alloc": A | N, "bpf_xdp_ct_lookup": A | N, "bpf_skb_ct_alloc": A | N,
        "bpf_skb_ct_lookup": A | N, "bpf_ct_insert_entry": A | N | R, "bpf_ct_release": R,
        "bpf_ct_set_timeout": T, "bpf_ct_change_timeout": T, "bpf_ct_set_status": T, "bpf_ct_change_status": T,
        "bpf_ct_set_nat_info": T,
    },
    # net/xfrm/xfrm_state_bpf.c
    "xfrm_state": {"bpf_xdp_get_xfrm_state": N | A, "bpf_xdp_xfrm_state_release": R},
    # kernel/bpf/crypto.c
    "crypto": {"bpf_crypto_decrypt": 0, "bpf_crypto_encrypt": 0},
    "crypto_init": {"bpf_crypto_ctx_create": A | N | S, "bpf_crypto_ctx_release": R,
                    "bpf_crypto_ctx_acquire": A | RCU | N},
    # net/bpf/test_run.c (the ones the kernel BTF tags as kfuncs)
    "test": {"bpf_kfunc_call_test_release": R, "bpf_kfunc_call_memb_release": R},
    # net/core/xdp.c: device-bound metadata kfuncs (refused before the walk without a device)
    "xdp_metadata": {"bpf_xdp_metadata_rx_timestamp": 0, "bpf_xdp_metadata_rx_hash": 0,
                     "bpf_xdp_metadata_rx_vlan_tag": 0},
}
del A, R, N, T, S, RCU, IN, IX, ID

REGISTRATIONS = (
    (HOOK_COMMON, "common"),
    *((h, "generic") for h in (HOOK_TRACING, HOOK_TC, HOOK_XDP, HOOK_STRUCT_OPS, HOOK_SYSCALL, HOOK_CGROUP)),
    *((h, "cpumask") for h in (HOOK_TRACING, HOOK_STRUCT_OPS, HOOK_SYSCALL)),
    (HOOK_TRACING, "rstat"),
    *((h, "skb") for h in (HOOK_TC, HOOK_SCHED_ACT, HOOK_SK_SKB, HOOK_SOCKET_FILTER, HOOK_CGROUP, HOOK_LWT,
                           HOOK_NETFILTER, HOOK_TRACING)),
    (HOOK_TC, "skb_meta"), (HOOK_SCHED_ACT, "skb_meta"),
    (HOOK_XDP, "xdp"), (HOOK_CGROUP, "sock_addr"), (HOOK_CGROUP, "sock_ops"), (HOOK_TC, "tcp_reqsk"),
    (HOOK_XDP, "nf_conntrack"), (HOOK_TC, "nf_conntrack"), (HOOK_XDP, "xfrm_state"),
    *((h, "crypto") for h in (HOOK_TC, HOOK_SCHED_ACT, HOOK_XDP)),
    (HOOK_SYSCALL, "crypto_init"),
    *((h, "test") for h in (HOOK_TC, HOOK_TRACING, HOOK_SYSCALL)),
    (HOOK_XDP, "xdp_metadata"),
)


def _build():
    tab = {}
    for hook, name in REGISTRATIONS:
        d = tab.setdefault(hook, {})
        d.update(KFUNC_SETS[name])
    return tab


_BY_HOOK = _build()
# the kfuncs the verifier handles before the walk whatever the program type (bpf_dev_bound_kfunc_id)
DEV_BOUND_KFUNCS = frozenset(KFUNC_SETS["xdp_metadata"])


def kfunc_flags(name, prog_type):
    """btf_kfunc_id_set_contains: the KF_* flags of kfunc ``name`` for a program of ``prog_type`` (its
    resolved type: an extension program's target type), or None when that program may not call it."""
    f = _BY_HOOK[HOOK_COMMON].get(name)
    if f is not None:
        return f
    hook = kfunc_hook(prog_type)
    if hook is None:
        return None
    return _BY_HOOK.get(hook, {}).get(name)


def known_kfuncs():
    """Every kfunc name of every set (sorted)."""
    return sorted({n for s in KFUNC_SETS.values() for n in s})


def flag_names(flags):
    """'KF_ACQUIRE | KF_RET_NULL' (or '0')."""
    names = [n for f, n in FLAG_NAMES if flags & f]
    return " | ".join(names) if names else "0"
