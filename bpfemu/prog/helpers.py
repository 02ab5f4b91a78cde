"""Helper function prototypes (struct bpf_func_proto): one declaration per prototype.

A prototype gives the return type, the argument types of R1..R5 and the flags the verifier checks
(``gpl_only``, ``pkt_access``, ``might_sleep``, fixed argument sizes, expected BTF types). Several
prototypes can serve one helper id (``bpf_perf_event_output`` has one per program family); the program
type's ``get_func_proto`` (:mod:`bpfemu.prog.types`) picks which, by name. A prototype may carry an
implementation (``impl``) for the interpreter; the verifier never calls it.

Models the ``bpf_func_proto`` definitions of kernel/bpf/helpers.c, kernel/trace/bpf_trace.c,
net/core/filter.c, kernel/bpf/cgroup.c and the map and storage files, and ``enum bpf_arg_type`` /
``enum bpf_return_type`` of include/linux/bpf.h.
"""
from .. import uapi
from .verifier.regs import (DYNPTR_TYPE_LOCAL, DYNPTR_TYPE_RINGBUF, MEM_ALIGNED, MEM_FIXED_SIZE, MEM_RDONLY,
                            MEM_RINGBUF, MEM_UNINIT, MEM_WRITE, OBJ_RELEASE, PTR_MAYBE_NULL, PTR_TRUSTED)

# enum bpf_arg_type (base values; flags from the register type flags)
ARG_DONTCARE = 0
ARG_CONST_MAP_PTR = 1
ARG_PTR_TO_MAP_KEY = 2
ARG_PTR_TO_MAP_VALUE = 3
ARG_PTR_TO_MEM = 4
ARG_PTR_TO_ARENA = 5
ARG_CONST_SIZE = 6
ARG_CONST_SIZE_OR_ZERO = 7
ARG_PTR_TO_CTX = 8
ARG_ANYTHING = 9
ARG_PTR_TO_SPIN_LOCK = 10
ARG_PTR_TO_SOCK_COMMON = 11
ARG_PTR_TO_SOCKET = 12
ARG_PTR_TO_BTF_ID = 13
ARG_PTR_TO_RINGBUF_MEM = 14
ARG_CONST_ALLOC_SIZE_OR_ZERO = 15
ARG_PTR_TO_BTF_ID_SOCK_COMMON = 16
ARG_PTR_TO_PERCPU_BTF_ID = 17
ARG_PTR_TO_FUNC = 18
ARG_PTR_TO_STACK = 19
ARG_PTR_TO_CONST_STR = 20
ARG_PTR_TO_TIMER = 21
ARG_KPTR_XCHG_DEST = 22
ARG_PTR_TO_DYNPTR = 23
ARG_SCALAR = ARG_ANYTHING   # the kernel's ARG_SCALAR is its own value with the same checks

# enum bpf_return_type
RET_INTEGER = 0
RET_VOID = 1
RET_PTR_TO_MAP_VALUE = 2
RET_PTR_TO_SOCKET = 3
RET_PTR_TO_TCP_SOCK = 4
RET_PTR_TO_SOCK_COMMON = 5
RET_PTR_TO_MEM = 6
RET_PTR_TO_MEM_OR_BTF_ID = 7
RET_PTR_TO_BTF_ID = 8

BASE_MASK = 0xff


class FuncProto:
    """struct bpf_func_proto."""

    __slots__ = ("name", "func", "ret_type", "arg_type", "gpl_only", "pkt_access", "might_sleep", "arg_size",
                 "arg_btf", "ret_btf", "allowed", "impl")

    def __init__(self, name, func, ret_type, args, gpl_only=False, pkt_access=False, might_sleep=False,
                 arg_size=None, arg_btf=None, ret_btf=None, allowed=None, impl=None):
        self.name = name
        self.func = func
        self.ret_type = ret_type
        self.arg_type = tuple(args) + (ARG_DONTCARE,) * (5 - len(args))
        self.gpl_only = gpl_only
        self.pkt_access = pkt_access
        self.might_sleep = might_sleep
        self.arg_size = arg_size or {}
        self.arg_btf = arg_btf or {}
        self.ret_btf = ret_btf
        self.allowed = allowed
        self.impl = impl

    def __repr__(self):
        return "FuncProto(%s)" % self.name


PROTOS = {}


def P(name, func, ret_type, args, **kw):
    PROTOS[name] = FuncProto(name, func, ret_type, args, **kw)


def helper_impl(*names):
    """Decorator: ``fn(run, r1, r2, r3, r4, r5) -> int`` implements the prototypes ``names`` (their
    ``impl``), as the kernel's ``bpf_func_proto.func``. Implementations live in :mod:`bpfemu.prog.funcs`,
    in modules named after the kernel files that define them; the prototype stays the one declaration."""
    def deco(fn):
        for n in names:
            PROTOS[n].impl = fn
        return fn
    return deco


P('bind', 'bpf_bind', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE])
P('bprm_opts_set', 'bpf_bprm_opts_set', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_ANYTHING], arg_btf={0: '&bpf_bprm_opts_set_btf_ids[0]'})
P('btf_find_by_name_kind', 'bpf_btf_find_by_name_kind', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_ANYTHING, ARG_ANYTHING], might_sleep=True)
P('cgrp_storage_delete', 'bpf_cgrp_storage_delete', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_BTF_ID | PTR_MAYBE_NULL], arg_btf={1: '&bpf_cgroup_btf_id[0]'})
P('cgrp_storage_get', 'bpf_cgrp_storage_get', RET_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, [ARG_CONST_MAP_PTR, ARG_PTR_TO_BTF_ID | PTR_MAYBE_NULL, ARG_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, ARG_ANYTHING], arg_btf={1: '&bpf_cgroup_btf_id[0]'})
P('clone_redirect', 'bpf_clone_redirect', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING])
P('copy_from_user', 'bpf_copy_from_user', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], might_sleep=True)
P('copy_from_user_task', 'bpf_copy_from_user_task', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_PTR_TO_BTF_ID], gpl_only=True, might_sleep=True, arg_btf={3: '&btf_tracing_ids[BTF_TRACING_TYPE_TASK]'})
P('csum_diff', 'bpf_csum_diff', RET_INTEGER, [ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], pkt_access=True)
P('csum_level', 'bpf_csum_level', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])
P('csum_update', 'bpf_csum_update', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])
P('current_task_under_cgroup', 'bpf_current_task_under_cgroup', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_ANYTHING])
P('d_path', 'bpf_d_path', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_PTR_TO_MEM, ARG_CONST_SIZE_OR_ZERO], arg_btf={0: '&bpf_d_path_btf_ids[0]'}, allowed='bpf_d_path_allowed')
P('dynptr_data', 'bpf_dynptr_data', RET_PTR_TO_MEM | PTR_MAYBE_NULL, [ARG_PTR_TO_DYNPTR | MEM_RDONLY, ARG_ANYTHING, ARG_CONST_ALLOC_SIZE_OR_ZERO])
P('dynptr_from_mem', 'bpf_dynptr_from_mem', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_LOCAL | MEM_UNINIT | MEM_WRITE])
P('dynptr_read', 'bpf_dynptr_read', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_PTR_TO_DYNPTR | MEM_RDONLY, ARG_ANYTHING, ARG_ANYTHING])
P('dynptr_write', 'bpf_dynptr_write', RET_INTEGER, [ARG_PTR_TO_DYNPTR | MEM_RDONLY, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING])
P('event_output_data', 'bpf_event_output_data', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO], gpl_only=True)
P('find_vma', 'bpf_find_vma', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_ANYTHING, ARG_PTR_TO_FUNC, ARG_PTR_TO_STACK | PTR_MAYBE_NULL, ARG_ANYTHING], arg_btf={0: '&btf_tracing_ids[BTF_TRACING_TYPE_TASK]'})
P('flow_dissector_load_bytes', 'bpf_flow_dissector_load_bytes', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('for_each_map_elem', 'bpf_for_each_map_elem', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_FUNC, ARG_PTR_TO_STACK | PTR_MAYBE_NULL, ARG_ANYTHING])
P('get_attach_cookie', 'bpf_get_attach_cookie', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_attach_cookie_proto_kmulti', 'bpf_get_attach_cookie_kprobe_multi', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_attach_cookie_proto_pe', 'bpf_get_attach_cookie_pe', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_attach_cookie_proto_trace', 'bpf_get_attach_cookie_trace', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_attach_cookie_proto_tracing', 'bpf_get_attach_cookie_tracing', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_attach_cookie_proto_umulti', 'bpf_get_attach_cookie_uprobe_multi', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_branch_snapshot', 'bpf_get_branch_snapshot', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO], gpl_only=True)
P('get_cgroup_classid_curr', 'bpf_get_cgroup_classid_curr', RET_INTEGER, [])
P('get_cgroup_classid', 'bpf_get_cgroup_classid', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_current_ancestor_cgroup_id', 'bpf_get_current_ancestor_cgroup_id', RET_INTEGER, [ARG_ANYTHING])
P('get_current_cgroup_id', 'bpf_get_current_cgroup_id', RET_INTEGER, [])
P('get_current_comm', 'bpf_get_current_comm', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('get_current_pid_tgid', 'bpf_get_current_pid_tgid', RET_INTEGER, [])
P('get_current_task_btf', 'bpf_get_current_task_btf', RET_PTR_TO_BTF_ID | PTR_TRUSTED, [], gpl_only=True, ret_btf='&btf_tracing_ids[BTF_TRACING_TYPE_TASK]')
P('get_current_task', 'bpf_get_current_task', RET_INTEGER, [], gpl_only=True)
P('get_current_uid_gid', 'bpf_get_current_uid_gid', RET_INTEGER, [])
P('get_func_arg_cnt', 'get_func_arg_cnt', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_func_arg', 'get_func_arg', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_FIXED_SIZE | MEM_UNINIT | MEM_WRITE | MEM_ALIGNED], arg_size={2: 8})
P('get_func_ip_proto_kprobe', 'bpf_get_func_ip_kprobe', RET_INTEGER, [ARG_PTR_TO_CTX], gpl_only=True)
P('get_func_ip_proto_kprobe_multi', 'bpf_get_func_ip_kprobe_multi', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_func_ip_proto_tracing', 'bpf_get_func_ip_tracing', RET_INTEGER, [ARG_PTR_TO_CTX], gpl_only=True)
P('get_func_ip_proto_uprobe_multi', 'bpf_get_func_ip_uprobe_multi', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_func_ret', 'get_func_ret', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_FIXED_SIZE | MEM_UNINIT | MEM_WRITE | MEM_ALIGNED], arg_size={1: 8})
P('get_hash_recalc', 'bpf_get_hash_recalc', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_listener_sock', 'bpf_get_listener_sock', RET_PTR_TO_SOCKET | PTR_MAYBE_NULL, [ARG_PTR_TO_SOCK_COMMON])
P('get_local_storage', 'bpf_get_local_storage', RET_PTR_TO_MAP_VALUE, [ARG_CONST_MAP_PTR, ARG_ANYTHING])
P('get_netns_cookie_sk_msg', 'bpf_get_netns_cookie_sk_msg', RET_INTEGER, [ARG_PTR_TO_CTX | PTR_MAYBE_NULL])
P('get_netns_cookie_sock_addr', 'bpf_get_netns_cookie_sock_addr', RET_INTEGER, [ARG_PTR_TO_CTX | PTR_MAYBE_NULL])
P('get_netns_cookie_sock_ops', 'bpf_get_netns_cookie_sock_ops', RET_INTEGER, [ARG_PTR_TO_CTX | PTR_MAYBE_NULL])
P('get_netns_cookie_sock', 'bpf_get_netns_cookie_sock', RET_INTEGER, [ARG_PTR_TO_CTX | PTR_MAYBE_NULL])
P('get_netns_cookie_sockopt', 'bpf_get_netns_cookie_sockopt', RET_INTEGER, [ARG_PTR_TO_CTX | PTR_MAYBE_NULL])
P('get_ns_current_pid_tgid', 'bpf_get_ns_current_pid_tgid', RET_INTEGER, [ARG_ANYTHING, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('get_numa_node_id', 'bpf_get_numa_node_id', RET_INTEGER, [])
P('get_prandom_u32', 'bpf_user_rnd_u32', RET_INTEGER, [])
P('get_raw_smp_processor_id', 'bpf_get_raw_cpu_id', RET_INTEGER, [])
P('get_retval', 'bpf_get_retval', RET_INTEGER, [])
P('get_route_realm', 'bpf_get_route_realm', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_smp_processor_id', 'bpf_get_smp_processor_id', RET_INTEGER, [])
P('get_socket_cookie', 'bpf_get_socket_cookie', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_socket_cookie_sock_addr', 'bpf_get_socket_cookie_sock_addr', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_socket_cookie_sock_ops', 'bpf_get_socket_cookie_sock_ops', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_socket_cookie_sock', 'bpf_get_socket_cookie_sock', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_socket_ptr_cookie', 'bpf_get_socket_ptr_cookie', RET_INTEGER, [ARG_PTR_TO_BTF_ID_SOCK_COMMON | PTR_MAYBE_NULL])
P('get_socket_uid', 'bpf_get_socket_uid', RET_INTEGER, [ARG_PTR_TO_CTX])
P('get_stack', 'bpf_get_stack', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True)
P('get_stack_proto_pe', 'bpf_get_stack_pe', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True)
P('get_stack_proto_raw_tp', 'bpf_get_stack_raw_tp', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True)
P('get_stack_proto_tp', 'bpf_get_stack_tp', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True)
P('get_stack_sleepable', 'bpf_get_stack_sleepable', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True, might_sleep=True)
P('get_stackid', 'bpf_get_stackid', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING], gpl_only=True)
P('get_stackid_proto_pe', 'bpf_get_stackid_pe', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING])
P('get_stackid_proto_raw_tp', 'bpf_get_stackid_raw_tp', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING], gpl_only=True)
P('get_stackid_proto_tp', 'bpf_get_stackid_tp', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING], gpl_only=True)
P('get_task_stack', 'bpf_get_task_stack', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], arg_btf={0: '&btf_tracing_ids[BTF_TRACING_TYPE_TASK]'})
P('get_task_stack_sleepable', 'bpf_get_task_stack_sleepable', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], might_sleep=True, arg_btf={0: '&btf_tracing_ids[BTF_TRACING_TYPE_TASK]'})
P('ima_file_hash', 'bpf_ima_file_hash', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE], might_sleep=True, arg_btf={0: '&bpf_ima_file_hash_btf_ids[0]'}, allowed='bpf_ima_inode_hash_allowed')
P('ima_inode_hash', 'bpf_ima_inode_hash', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE], might_sleep=True, arg_btf={0: '&bpf_ima_inode_hash_btf_ids[0]'}, allowed='bpf_ima_inode_hash_allowed')
P('inode_storage_delete', 'bpf_inode_storage_delete', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_BTF_ID | PTR_MAYBE_NULL], arg_btf={1: '&bpf_inode_storage_btf_ids[0]'})
P('inode_storage_get', 'bpf_inode_storage_get', RET_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, [ARG_CONST_MAP_PTR, ARG_PTR_TO_BTF_ID | PTR_MAYBE_NULL, ARG_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, ARG_ANYTHING], arg_btf={1: '&bpf_inode_storage_btf_ids[0]'})
P('jiffies64', 'bpf_jiffies64', RET_INTEGER, [])
P('kallsyms_lookup_name', 'bpf_kallsyms_lookup_name', RET_INTEGER, [ARG_PTR_TO_MEM, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_FIXED_SIZE | MEM_UNINIT | MEM_WRITE | MEM_ALIGNED], arg_size={3: 8})
P('kptr_xchg', 'bpf_kptr_xchg', RET_PTR_TO_BTF_ID | PTR_MAYBE_NULL, [ARG_KPTR_XCHG_DEST, ARG_PTR_TO_BTF_ID | PTR_MAYBE_NULL | OBJ_RELEASE], arg_btf={1: 'BPF_PTR_POISON'}, ret_btf='BPF_PTR_POISON')
P('ktime_get_boot_ns', 'bpf_ktime_get_boot_ns', RET_INTEGER, [])
P('ktime_get_coarse_ns', 'bpf_ktime_get_coarse_ns', RET_INTEGER, [])
P('ktime_get_ns', 'bpf_ktime_get_ns', RET_INTEGER, [])
P('ktime_get_tai_ns', 'bpf_ktime_get_tai_ns', RET_INTEGER, [])
P('l3_csum_replace', 'bpf_l3_csum_replace', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING, ARG_ANYTHING, ARG_ANYTHING])
P('l4_csum_replace', 'bpf_l4_csum_replace', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING, ARG_ANYTHING, ARG_ANYTHING])
P('loop', 'bpf_loop', RET_INTEGER, [ARG_SCALAR, ARG_PTR_TO_FUNC, ARG_PTR_TO_STACK | PTR_MAYBE_NULL, ARG_ANYTHING])
P('lwt_in_push_encap', 'bpf_lwt_in_push_encap', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY])
P('lwt_seg6_action', 'bpf_lwt_seg6_action', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY])
P('lwt_seg6_adjust_srh', 'bpf_lwt_seg6_adjust_srh', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING])
P('lwt_seg6_store_bytes', 'bpf_lwt_seg6_store_bytes', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY])
P('lwt_xmit_push_encap', 'bpf_lwt_xmit_push_encap', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY])
P('map_delete_elem', 'bpf_map_delete_elem', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY], pkt_access=True)
P('map_lookup_elem', 'bpf_map_lookup_elem', RET_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, [ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY], pkt_access=True)
P('map_lookup_percpu_elem', 'bpf_map_lookup_percpu_elem', RET_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, [ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY, ARG_ANYTHING], pkt_access=True)
P('map_peek_elem', 'bpf_map_peek_elem', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_VALUE | MEM_UNINIT | MEM_WRITE])
P('map_pop_elem', 'bpf_map_pop_elem', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_VALUE | MEM_UNINIT | MEM_WRITE])
P('map_push_elem', 'bpf_map_push_elem', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_VALUE, ARG_ANYTHING], pkt_access=True)
P('map_update_elem', 'bpf_map_update_elem', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY, ARG_PTR_TO_MAP_VALUE, ARG_ANYTHING], pkt_access=True)
P('msg_apply_bytes', 'bpf_msg_apply_bytes', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])
P('msg_cork_bytes', 'bpf_msg_cork_bytes', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])
P('msg_pop_data', 'bpf_msg_pop_data', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING, ARG_ANYTHING])
P('msg_pull_data', 'bpf_msg_pull_data', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING, ARG_ANYTHING])
P('msg_push_data', 'bpf_msg_push_data', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING, ARG_ANYTHING])
P('msg_redirect_hash', 'bpf_msg_redirect_hash', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY, ARG_ANYTHING])
P('msg_redirect_map', 'bpf_msg_redirect_map', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_ANYTHING])
P('override_return', 'bpf_override_return', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING], gpl_only=True)
P('per_cpu_ptr', 'bpf_per_cpu_ptr', RET_PTR_TO_MEM_OR_BTF_ID | PTR_MAYBE_NULL | MEM_RDONLY, [ARG_PTR_TO_PERCPU_BTF_ID, ARG_ANYTHING])
P('perf_event_output', 'bpf_perf_event_output', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO], gpl_only=True)
P('perf_event_output_proto_raw_tp', 'bpf_perf_event_output_raw_tp', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO], gpl_only=True)
P('perf_event_output_proto_tp', 'bpf_perf_event_output_tp', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO], gpl_only=True)
P('perf_event_read', 'bpf_perf_event_read', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_ANYTHING], gpl_only=True)
P('perf_event_read_value', 'bpf_perf_event_read_value', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE], gpl_only=True)
P('perf_prog_read_value', 'bpf_perf_prog_read_value', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE], gpl_only=True)
P('probe_read_compat', 'bpf_probe_read_compat', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True)
P('probe_read_compat_str', 'bpf_probe_read_compat_str', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True)
P('probe_read_kernel', 'bpf_probe_read_kernel', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True)
P('probe_read_kernel_str', 'bpf_probe_read_kernel_str', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True)
P('probe_read_user', 'bpf_probe_read_user', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True)
P('probe_read_user_str', 'bpf_probe_read_user_str', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True)
P('probe_write_user', 'bpf_probe_write_user', RET_INTEGER, [ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE], gpl_only=True)
P('read_branch_records', 'bpf_read_branch_records', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | PTR_MAYBE_NULL, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True)
P('redirect_neigh', 'bpf_redirect_neigh', RET_INTEGER, [ARG_ANYTHING, ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING])
P('redirect_peer', 'bpf_redirect_peer', RET_INTEGER, [ARG_ANYTHING, ARG_ANYTHING])
P('redirect', 'bpf_redirect', RET_INTEGER, [ARG_ANYTHING, ARG_ANYTHING])
P('ringbuf_discard_dynptr', 'bpf_ringbuf_discard_dynptr', RET_VOID, [ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_RINGBUF | OBJ_RELEASE, ARG_ANYTHING])
P('ringbuf_discard', 'bpf_ringbuf_discard', RET_VOID, [ARG_PTR_TO_RINGBUF_MEM | OBJ_RELEASE, ARG_ANYTHING])
P('ringbuf_output', 'bpf_ringbuf_output', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING])
P('ringbuf_query', 'bpf_ringbuf_query', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_ANYTHING])
P('ringbuf_reserve_dynptr', 'bpf_ringbuf_reserve_dynptr', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_ANYTHING, ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_RINGBUF | MEM_UNINIT | MEM_WRITE])
P('ringbuf_reserve', 'bpf_ringbuf_reserve', RET_PTR_TO_MEM | MEM_RINGBUF | PTR_MAYBE_NULL, [ARG_CONST_MAP_PTR, ARG_CONST_ALLOC_SIZE_OR_ZERO, ARG_ANYTHING])
P('ringbuf_submit_dynptr', 'bpf_ringbuf_submit_dynptr', RET_VOID, [ARG_PTR_TO_DYNPTR | DYNPTR_TYPE_RINGBUF | OBJ_RELEASE, ARG_ANYTHING])
P('ringbuf_submit', 'bpf_ringbuf_submit', RET_VOID, [ARG_PTR_TO_RINGBUF_MEM | OBJ_RELEASE, ARG_ANYTHING])
P('send_signal', 'bpf_send_signal', RET_INTEGER, [ARG_ANYTHING])
P('send_signal_thread', 'bpf_send_signal_thread', RET_INTEGER, [ARG_ANYTHING])
P('seq_printf_btf', 'bpf_seq_printf_btf', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING], gpl_only=True, arg_btf={0: '&btf_seq_file_ids[0]'})
P('seq_printf', 'bpf_seq_printf', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO], gpl_only=True, arg_btf={0: '&btf_seq_file_ids[0]'})
P('seq_write', 'bpf_seq_write', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO], gpl_only=True, arg_btf={0: '&btf_seq_file_ids[0]'})
P('set_hash_invalid', 'bpf_set_hash_invalid', RET_INTEGER, [ARG_PTR_TO_CTX])
P('set_hash', 'bpf_set_hash', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])
P('set_retval', 'bpf_set_retval', RET_INTEGER, [ARG_ANYTHING])
P('sk_ancestor_cgroup_id', 'bpf_sk_ancestor_cgroup_id', RET_INTEGER, [ARG_PTR_TO_BTF_ID_SOCK_COMMON, ARG_ANYTHING])
P('sk_assign', 'bpf_sk_assign', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_BTF_ID_SOCK_COMMON, ARG_ANYTHING])
P('sk_cgroup_id', 'bpf_sk_cgroup_id', RET_INTEGER, [ARG_PTR_TO_BTF_ID_SOCK_COMMON])
P('sk_fullsock', 'bpf_sk_fullsock', RET_PTR_TO_SOCKET | PTR_MAYBE_NULL, [ARG_PTR_TO_SOCK_COMMON])
P('sk_getsockopt', 'bpf_sk_getsockopt', RET_INTEGER, [ARG_PTR_TO_BTF_ID_SOCK_COMMON, ARG_ANYTHING, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('sk_lookup_assign', 'bpf_sk_lookup_assign', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_SOCKET | PTR_MAYBE_NULL, ARG_ANYTHING])
P('sk_lookup_tcp', 'bpf_sk_lookup_tcp', RET_PTR_TO_SOCKET | PTR_MAYBE_NULL, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_ANYTHING], pkt_access=True)
P('sk_lookup_udp', 'bpf_sk_lookup_udp', RET_PTR_TO_SOCKET | PTR_MAYBE_NULL, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_ANYTHING], pkt_access=True)
P('sk_redirect_hash', 'bpf_sk_redirect_hash', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY, ARG_ANYTHING])
P('sk_redirect_map', 'bpf_sk_redirect_map', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_ANYTHING])
P('sk_release', 'bpf_sk_release', RET_INTEGER, [ARG_PTR_TO_BTF_ID_SOCK_COMMON | OBJ_RELEASE])
P('sk_setsockopt', 'bpf_sk_setsockopt', RET_INTEGER, [ARG_PTR_TO_BTF_ID_SOCK_COMMON, ARG_ANYTHING, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE])
P('sk_storage_delete', 'bpf_sk_storage_delete', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_BTF_ID_SOCK_COMMON])
P('sk_storage_delete_tracing', 'bpf_sk_storage_delete_tracing', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_BTF_ID | PTR_MAYBE_NULL], arg_btf={1: '&btf_sock_ids[BTF_SOCK_TYPE_SOCK_COMMON]'}, allowed='bpf_sk_storage_tracing_allowed')
P('sk_storage_get_cg_sock', 'bpf_sk_storage_get', RET_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, [ARG_CONST_MAP_PTR, ARG_PTR_TO_CTX, ARG_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, ARG_ANYTHING])
P('sk_storage_get', 'bpf_sk_storage_get', RET_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, [ARG_CONST_MAP_PTR, ARG_PTR_TO_BTF_ID_SOCK_COMMON, ARG_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, ARG_ANYTHING])
P('sk_storage_get_tracing', 'bpf_sk_storage_get_tracing', RET_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, [ARG_CONST_MAP_PTR, ARG_PTR_TO_BTF_ID | PTR_MAYBE_NULL, ARG_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, ARG_ANYTHING], arg_btf={1: '&btf_sock_ids[BTF_SOCK_TYPE_SOCK_COMMON]'}, allowed='bpf_sk_storage_tracing_allowed')
P('skb_adjust_room', 'bpf_skb_adjust_room', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING, ARG_ANYTHING])
P('skb_ancestor_cgroup_id', 'bpf_skb_ancestor_cgroup_id', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])
P('skb_cgroup_classid', 'bpf_skb_cgroup_classid', RET_INTEGER, [ARG_PTR_TO_CTX])
P('skb_cgroup_id', 'bpf_skb_cgroup_id', RET_INTEGER, [ARG_PTR_TO_CTX])
P('skb_change_head', 'bpf_skb_change_head', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING])
P('skb_change_proto', 'bpf_skb_change_proto', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING])
P('skb_change_tail', 'bpf_skb_change_tail', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING])
P('skb_change_type', 'bpf_skb_change_type', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])
P('skb_check_mtu', 'bpf_skb_check_mtu', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_FIXED_SIZE | MEM_WRITE | MEM_ALIGNED, ARG_ANYTHING, ARG_ANYTHING], gpl_only=True, arg_size={2: 4})
P('skb_ecn_set_ce', 'bpf_skb_ecn_set_ce', RET_INTEGER, [ARG_PTR_TO_CTX])
P('skb_event_output', 'bpf_skb_event_output', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO], gpl_only=True)
P('skb_fib_lookup', 'bpf_skb_fib_lookup', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM, ARG_CONST_SIZE, ARG_ANYTHING], gpl_only=True)
P('skb_get_tunnel_key', 'bpf_skb_get_tunnel_key', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE, ARG_ANYTHING])
P('skb_get_tunnel_opt', 'bpf_skb_get_tunnel_opt', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('skb_get_xfrm_state', 'bpf_skb_get_xfrm_state', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE, ARG_ANYTHING])
P('skb_load_bytes', 'bpf_skb_load_bytes', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('skb_load_bytes_relative', 'bpf_skb_load_bytes_relative', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE, ARG_ANYTHING])
P('skb_output', 'bpf_skb_event_output', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO], gpl_only=True, arg_btf={0: '&bpf_skb_output_btf_ids[0]'})
P('skb_pull_data', 'bpf_skb_pull_data', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])
P('skb_set_tstamp', 'bpf_skb_set_tstamp', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING])
P('skb_set_tunnel_key', 'bpf_skb_set_tunnel_key', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_ANYTHING])
P('skb_set_tunnel_opt', 'bpf_skb_set_tunnel_opt', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE])
P('skb_store_bytes', 'bpf_skb_store_bytes', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_ANYTHING])
P('skb_under_cgroup', 'bpf_skb_under_cgroup', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING])
P('skb_vlan_pop', 'bpf_skb_vlan_pop', RET_INTEGER, [ARG_PTR_TO_CTX])
P('skb_vlan_push', 'bpf_skb_vlan_push', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING])
P('skc_lookup_tcp', 'bpf_skc_lookup_tcp', RET_PTR_TO_SOCK_COMMON | PTR_MAYBE_NULL, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_ANYTHING], pkt_access=True)
P('skc_to_mptcp_sock', 'bpf_skc_to_mptcp_sock', RET_PTR_TO_BTF_ID | PTR_MAYBE_NULL, [ARG_PTR_TO_SOCK_COMMON], ret_btf='&btf_sock_ids[BTF_SOCK_TYPE_MPTCP]')
P('skc_to_tcp6_sock', 'bpf_skc_to_tcp6_sock', RET_PTR_TO_BTF_ID | PTR_MAYBE_NULL, [ARG_PTR_TO_BTF_ID_SOCK_COMMON], ret_btf='&btf_sock_ids[BTF_SOCK_TYPE_TCP6]')
P('skc_to_tcp_request_sock', 'bpf_skc_to_tcp_request_sock', RET_PTR_TO_BTF_ID | PTR_MAYBE_NULL, [ARG_PTR_TO_BTF_ID_SOCK_COMMON], ret_btf='&btf_sock_ids[BTF_SOCK_TYPE_TCP_REQ]')
P('skc_to_tcp_sock', 'bpf_skc_to_tcp_sock', RET_PTR_TO_BTF_ID | PTR_MAYBE_NULL, [ARG_PTR_TO_BTF_ID_SOCK_COMMON], ret_btf='&btf_sock_ids[BTF_SOCK_TYPE_TCP]')
P('skc_to_tcp_timewait_sock', 'bpf_skc_to_tcp_timewait_sock', RET_PTR_TO_BTF_ID | PTR_MAYBE_NULL, [ARG_PTR_TO_BTF_ID_SOCK_COMMON], ret_btf='&btf_sock_ids[BTF_SOCK_TYPE_TCP_TW]')
P('skc_to_udp6_sock', 'bpf_skc_to_udp6_sock', RET_PTR_TO_BTF_ID | PTR_MAYBE_NULL, [ARG_PTR_TO_BTF_ID_SOCK_COMMON], ret_btf='&btf_sock_ids[BTF_SOCK_TYPE_UDP6]')
P('skc_to_unix_sock', 'bpf_skc_to_unix_sock', RET_PTR_TO_BTF_ID | PTR_MAYBE_NULL, [ARG_PTR_TO_BTF_ID_SOCK_COMMON], ret_btf='&btf_sock_ids[BTF_SOCK_TYPE_UNIX]')
P('snprintf_btf', 'bpf_snprintf_btf', RET_INTEGER, [ARG_PTR_TO_MEM, ARG_CONST_SIZE, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_ANYTHING])
P('snprintf', 'bpf_snprintf', RET_INTEGER, [ARG_PTR_TO_MEM | PTR_MAYBE_NULL, ARG_CONST_SIZE_OR_ZERO, ARG_PTR_TO_CONST_STR, ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO], gpl_only=True)
P('sock_addr_getsockopt', 'bpf_sock_addr_getsockopt', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('sock_addr_setsockopt', 'bpf_sock_addr_setsockopt', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE])
P('sock_addr_sk_lookup_tcp', 'bpf_sock_addr_sk_lookup_tcp', RET_PTR_TO_SOCKET | PTR_MAYBE_NULL, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_ANYTHING])
P('sock_addr_sk_lookup_udp', 'bpf_sock_addr_sk_lookup_udp', RET_PTR_TO_SOCKET | PTR_MAYBE_NULL, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_ANYTHING])
P('sock_addr_skc_lookup_tcp', 'bpf_sock_addr_skc_lookup_tcp', RET_PTR_TO_SOCK_COMMON | PTR_MAYBE_NULL, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_ANYTHING])
P('sock_from_file', 'bpf_sock_from_file', RET_PTR_TO_BTF_ID | PTR_MAYBE_NULL, [ARG_PTR_TO_BTF_ID], arg_btf={0: '&bpf_sock_from_file_btf_ids[1]'}, ret_btf='&bpf_sock_from_file_btf_ids[0]')
P('sock_hash_update', 'bpf_sock_hash_update', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY, ARG_ANYTHING], pkt_access=True)
P('sock_map_update', 'bpf_sock_map_update', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY, ARG_ANYTHING], pkt_access=True)
P('sock_ops_cb_flags_set', 'bpf_sock_ops_cb_flags_set', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])
P('sock_ops_getsockopt', 'bpf_sock_ops_getsockopt', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('sock_ops_load_hdr_opt', 'bpf_sock_ops_load_hdr_opt', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_WRITE, ARG_CONST_SIZE, ARG_ANYTHING])
P('sock_ops_reserve_hdr_opt', 'bpf_sock_ops_reserve_hdr_opt', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING])
P('sock_ops_setsockopt', 'bpf_sock_ops_setsockopt', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE])
P('sock_ops_store_hdr_opt', 'bpf_sock_ops_store_hdr_opt', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_ANYTHING])
P('spin_lock', 'bpf_spin_lock', RET_VOID, [ARG_PTR_TO_SPIN_LOCK], arg_btf={0: 'BPF_PTR_POISON'})
P('spin_unlock', 'bpf_spin_unlock', RET_VOID, [ARG_PTR_TO_SPIN_LOCK], arg_btf={0: 'BPF_PTR_POISON'})
P('strncmp', 'bpf_strncmp', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_PTR_TO_CONST_STR])
P('strtol', 'bpf_strtol', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_FIXED_SIZE | MEM_UNINIT | MEM_WRITE | MEM_ALIGNED], arg_size={3: 8})
P('strtoul', 'bpf_strtoul', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_FIXED_SIZE | MEM_UNINIT | MEM_WRITE | MEM_ALIGNED], arg_size={3: 8})
P('sys_bpf', 'bpf_sys_bpf', RET_INTEGER, [ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE], might_sleep=True)
P('sys_close', 'bpf_sys_close', RET_INTEGER, [ARG_ANYTHING], might_sleep=True)
P('sysctl_get_current_value', 'bpf_sysctl_get_current_value', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('sysctl_get_name', 'bpf_sysctl_get_name', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM, ARG_CONST_SIZE, ARG_ANYTHING])
P('sysctl_get_new_value', 'bpf_sysctl_get_new_value', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('sysctl_set_new_value', 'bpf_sysctl_set_new_value', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE])
P('tail_call', 'BPF_PTR_POISON', RET_VOID, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING])
P('task_pt_regs', 'bpf_task_pt_regs', RET_PTR_TO_BTF_ID, [ARG_PTR_TO_BTF_ID], gpl_only=True, arg_btf={0: '&btf_tracing_ids[BTF_TRACING_TYPE_TASK]'}, ret_btf='&bpf_task_pt_regs_ids[0]')
P('task_storage_delete', 'bpf_task_storage_delete', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_BTF_ID | PTR_MAYBE_NULL], arg_btf={1: '&btf_tracing_ids[BTF_TRACING_TYPE_TASK]'})
P('task_storage_delete_recur', 'bpf_task_storage_delete_recur', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_BTF_ID | PTR_MAYBE_NULL], arg_btf={1: '&btf_tracing_ids[BTF_TRACING_TYPE_TASK]'})
P('task_storage_get', 'bpf_task_storage_get', RET_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, [ARG_CONST_MAP_PTR, ARG_PTR_TO_BTF_ID | PTR_MAYBE_NULL, ARG_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, ARG_ANYTHING], arg_btf={1: '&btf_tracing_ids[BTF_TRACING_TYPE_TASK]'})
P('task_storage_get_recur', 'bpf_task_storage_get_recur', RET_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, [ARG_CONST_MAP_PTR, ARG_PTR_TO_BTF_ID | PTR_MAYBE_NULL, ARG_PTR_TO_MAP_VALUE | PTR_MAYBE_NULL, ARG_ANYTHING], arg_btf={1: '&btf_tracing_ids[BTF_TRACING_TYPE_TASK]'})
P('tc_sk_lookup_tcp', 'bpf_tc_sk_lookup_tcp', RET_PTR_TO_SOCKET | PTR_MAYBE_NULL, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_ANYTHING], pkt_access=True)
P('tc_sk_lookup_udp', 'bpf_tc_sk_lookup_udp', RET_PTR_TO_SOCKET | PTR_MAYBE_NULL, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_ANYTHING], pkt_access=True)
P('tc_skc_lookup_tcp', 'bpf_tc_skc_lookup_tcp', RET_PTR_TO_SOCK_COMMON | PTR_MAYBE_NULL, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_ANYTHING], pkt_access=True)
P('tcp_check_syncookie', 'bpf_tcp_check_syncookie', RET_INTEGER, [ARG_PTR_TO_BTF_ID_SOCK_COMMON, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE], gpl_only=True, pkt_access=True)
P('tcp_gen_syncookie', 'bpf_tcp_gen_syncookie', RET_INTEGER, [ARG_PTR_TO_BTF_ID_SOCK_COMMON, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE], gpl_only=True, pkt_access=True)
P('tcp_raw_check_syncookie_ipv4', 'bpf_tcp_raw_check_syncookie_ipv4', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_FIXED_SIZE, ARG_PTR_TO_MEM | MEM_FIXED_SIZE], gpl_only=True, pkt_access=True, arg_size={0: 20, 1: 20})
P('tcp_raw_check_syncookie_ipv6', 'bpf_tcp_raw_check_syncookie_ipv6', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_FIXED_SIZE, ARG_PTR_TO_MEM | MEM_FIXED_SIZE], gpl_only=True, pkt_access=True, arg_size={0: 40, 1: 20})
P('tcp_raw_gen_syncookie_ipv4', 'bpf_tcp_raw_gen_syncookie_ipv4', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_FIXED_SIZE, ARG_PTR_TO_MEM, ARG_CONST_SIZE_OR_ZERO], gpl_only=True, pkt_access=True, arg_size={0: 20})
P('tcp_raw_gen_syncookie_ipv6', 'bpf_tcp_raw_gen_syncookie_ipv6', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_FIXED_SIZE, ARG_PTR_TO_MEM, ARG_CONST_SIZE_OR_ZERO], gpl_only=True, pkt_access=True, arg_size={0: 40})
P('tcp_send_ack', 'bpf_tcp_send_ack', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_ANYTHING], arg_btf={0: '&tcp_sock_id'})
P('tcp_sock', 'bpf_tcp_sock', RET_PTR_TO_TCP_SOCK | PTR_MAYBE_NULL, [ARG_PTR_TO_SOCK_COMMON])
P('this_cpu_ptr', 'bpf_this_cpu_ptr', RET_PTR_TO_MEM_OR_BTF_ID | MEM_RDONLY, [ARG_PTR_TO_PERCPU_BTF_ID])
P('timer_cancel', 'bpf_timer_cancel', RET_INTEGER, [ARG_PTR_TO_TIMER], gpl_only=True)
P('timer_init', 'bpf_timer_init', RET_INTEGER, [ARG_PTR_TO_TIMER, ARG_CONST_MAP_PTR, ARG_ANYTHING], gpl_only=True)
P('timer_set_callback', 'bpf_timer_set_callback', RET_INTEGER, [ARG_PTR_TO_TIMER, ARG_PTR_TO_FUNC], gpl_only=True)
P('timer_start', 'bpf_timer_start', RET_INTEGER, [ARG_PTR_TO_TIMER, ARG_ANYTHING, ARG_ANYTHING], gpl_only=True)
P('trace_printk', 'bpf_trace_printk', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE], gpl_only=True)
P('trace_vprintk', 'bpf_trace_vprintk', RET_INTEGER, [ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE, ARG_PTR_TO_MEM | PTR_MAYBE_NULL | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO], gpl_only=True)
P('unlocked_sk_getsockopt', 'bpf_unlocked_sk_getsockopt', RET_INTEGER, [ARG_PTR_TO_BTF_ID_SOCK_COMMON, ARG_ANYTHING, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('unlocked_sk_setsockopt', 'bpf_unlocked_sk_setsockopt', RET_INTEGER, [ARG_PTR_TO_BTF_ID_SOCK_COMMON, ARG_ANYTHING, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE])
P('user_ringbuf_drain', 'bpf_user_ringbuf_drain', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_PTR_TO_FUNC, ARG_PTR_TO_STACK | PTR_MAYBE_NULL, ARG_ANYTHING])
P('xdp_adjust_head', 'bpf_xdp_adjust_head', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])
P('xdp_adjust_meta', 'bpf_xdp_adjust_meta', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])
P('xdp_adjust_tail', 'bpf_xdp_adjust_tail', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])
P('xdp_check_mtu', 'bpf_xdp_check_mtu', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_FIXED_SIZE | MEM_WRITE | MEM_ALIGNED, ARG_ANYTHING, ARG_ANYTHING], gpl_only=True, arg_size={2: 4})
P('xdp_event_output', 'bpf_xdp_event_output', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO], gpl_only=True)
P('xdp_fib_lookup', 'bpf_xdp_fib_lookup', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM, ARG_CONST_SIZE, ARG_ANYTHING], gpl_only=True)
P('xdp_get_buff_len', 'bpf_xdp_get_buff_len', RET_INTEGER, [ARG_PTR_TO_CTX])
P('xdp_get_buff_len_trace', 'bpf_xdp_get_buff_len', RET_INTEGER, [ARG_PTR_TO_BTF_ID], arg_btf={0: '&bpf_xdp_get_buff_len_bpf_ids[0]'})
P('xdp_load_bytes', 'bpf_xdp_load_bytes', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('xdp_output', 'bpf_xdp_event_output', RET_INTEGER, [ARG_PTR_TO_BTF_ID, ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO], gpl_only=True, arg_btf={0: '&bpf_xdp_output_btf_ids[0]'})
P('xdp_redirect_map', 'bpf_xdp_redirect_map', RET_INTEGER, [ARG_CONST_MAP_PTR, ARG_ANYTHING, ARG_ANYTHING])
P('xdp_redirect', 'bpf_xdp_redirect', RET_INTEGER, [ARG_ANYTHING, ARG_ANYTHING])
P('xdp_sk_lookup_tcp', 'bpf_xdp_sk_lookup_tcp', RET_PTR_TO_SOCKET | PTR_MAYBE_NULL, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_ANYTHING], pkt_access=True)
P('xdp_sk_lookup_udp', 'bpf_xdp_sk_lookup_udp', RET_PTR_TO_SOCKET | PTR_MAYBE_NULL, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_ANYTHING], pkt_access=True)
P('xdp_skc_lookup_tcp', 'bpf_xdp_skc_lookup_tcp', RET_PTR_TO_SOCK_COMMON | PTR_MAYBE_NULL, [ARG_PTR_TO_CTX, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING, ARG_ANYTHING], pkt_access=True)
P('xdp_store_bytes', 'bpf_xdp_store_bytes', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_RDONLY, ARG_CONST_SIZE])
P('sk_reuseport_load_bytes', 'sk_reuseport_load_bytes', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE])
P('sk_reuseport_load_bytes_relative', 'sk_reuseport_load_bytes_relative', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_PTR_TO_MEM | MEM_UNINIT | MEM_WRITE, ARG_CONST_SIZE, ARG_ANYTHING])
P('sk_select_reuseport', 'sk_select_reuseport', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY, ARG_ANYTHING])
P('sk_skb_adjust_room', 'sk_skb_adjust_room', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING, ARG_ANYTHING])
P('sk_skb_change_head', 'sk_skb_change_head', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING])
P('sk_skb_change_tail', 'sk_skb_change_tail', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING, ARG_ANYTHING])
P('sk_skb_pull_data', 'sk_skb_pull_data', RET_INTEGER, [ARG_PTR_TO_CTX, ARG_ANYTHING])


# helper ids
FUNC_IDS = {n[len("BPF_FUNC_"):]: v for n, v in uapi.ENUMS["bpf_func_id"] if not n.startswith("__")}
FUNC_NAMES = {v: n for n, v in FUNC_IDS.items()}
MAX_FUNC_ID = dict(uapi.ENUMS["bpf_func_id"])["__BPF_FUNC_MAX_ID"]


def bpf_helper_changes_pkt_data(func_id):
    """bpf_helper_changes_pkt_data: helpers after which every packet pointer must be re-checked."""
    return FUNC_NAMES.get(func_id) in _CHANGES_PKT_DATA


_CHANGES_PKT_DATA = frozenset((
    "skb_store_bytes", "skb_change_head", "skb_change_tail", "skb_pull_data", "clone_redirect",
    "skb_vlan_push", "skb_vlan_pop", "skb_change_proto", "skb_adjust_room", "xdp_adjust_head",
    "xdp_adjust_meta", "xdp_adjust_tail", "msg_pull_data", "msg_push_data", "msg_pop_data",
    "l3_csum_replace", "l4_csum_replace", "lwt_push_encap", "lwt_seg6_store_bytes", "lwt_seg6_adjust_srh",
    "lwt_seg6_action", "store_hdr_opt"))
