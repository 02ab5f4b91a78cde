"""Program types (the kernel's bpf_types.h registry): per type its verifier ops and prog ops.

``@prog_type(BPF_PROG_TYPE_X)`` registers a :class:`ProgType` subclass giving:

- ``is_valid_access``: the context access rule (:mod:`bpfemu.prog.ctx`);
- ``get_func_proto(func_id, env)``: the helper prototype this type gets for a helper id, or None
  (helper availability as ``*_func_proto`` in net/core/filter.c, kernel/trace/bpf_trace.c,
  kernel/bpf/cgroup.c and kernel/bpf/helpers.c: a type's own cases, then its fallback chain);
- ``gen_ld_abs`` (LD_ABS/LD_IND allowed), ``convert_ctx_access`` (context is rewritten, so helpers may not
  read it as memory), direct packet access rules, and whether BPF_PROG_TEST_RUN exists for it.
"""
from .. import uapi
from . import ctx
from .helpers import FUNC_NAMES, PROTOS

PROG_TYPES = {}
A = uapi


def prog_type(*types):
    def deco(cls):
        for t in types:
            PROG_TYPES[t] = cls()
            PROG_TYPES[t].type = t
        return cls
    return deco


def _p(name):
    return PROTOS[name]


# ---- shared chains of helper availability ----

_BASE = {
    "map_lookup_elem": "map_lookup_elem", "map_update_elem": "map_update_elem",
    "map_delete_elem": "map_delete_elem", "map_push_elem": "map_push_elem", "map_pop_elem": "map_pop_elem",
    "map_peek_elem": "map_peek_elem", "map_lookup_percpu_elem": "map_lookup_percpu_elem",
    "get_prandom_u32": "get_prandom_u32", "get_smp_processor_id": "get_raw_smp_processor_id",
    "get_numa_node_id": "get_numa_node_id", "tail_call": "tail_call", "ktime_get_ns": "ktime_get_ns",
    "ktime_get_boot_ns": "ktime_get_boot_ns", "ktime_get_tai_ns": "ktime_get_tai_ns",
    "ringbuf_output": "ringbuf_output", "ringbuf_reserve": "ringbuf_reserve", "ringbuf_submit": "ringbuf_submit",
    "ringbuf_discard": "ringbuf_discard", "ringbuf_query": "ringbuf_query", "strncmp": "strncmp",
    "strtol": "strtol", "strtoul": "strtoul", "get_current_pid_tgid": "get_current_pid_tgid",
    "get_ns_current_pid_tgid": "get_ns_current_pid_tgid",
}
_BASE_CAP_BPF = {
    "spin_lock": "spin_lock", "spin_unlock": "spin_unlock", "jiffies64": "jiffies64",
    "per_cpu_ptr": "per_cpu_ptr", "this_cpu_ptr": "this_cpu_ptr", "timer_init": "timer_init",
    "timer_set_callback": "timer_set_callback", "timer_start": "timer_start", "timer_cancel": "timer_cancel",
    "kptr_xchg": "kptr_xchg", "for_each_map_elem": "for_each_map_elem", "loop": "loop",
    "user_ringbuf_drain": "user_ringbuf_drain", "ringbuf_reserve_dynptr": "ringbuf_reserve_dynptr",
    "ringbuf_submit_dynptr": "ringbuf_submit_dynptr", "ringbuf_discard_dynptr": "ringbuf_discard_dynptr",
    "dynptr_from_mem": "dynptr_from_mem", "dynptr_read": "dynptr_read", "dynptr_write": "dynptr_write",
    "dynptr_data": "dynptr_data", "cgrp_storage_get": "cgrp_storage_get",
    "cgrp_storage_delete": "cgrp_storage_delete", "get_current_cgroup_id": "get_current_cgroup_id",
    "get_current_ancestor_cgroup_id": "get_current_ancestor_cgroup_id",
}
_BASE_CAP_PERFMON = {
    "trace_printk": "trace_printk", "get_current_task": "get_current_task",
    "get_current_task_btf": "get_current_task_btf", "probe_read_user": "probe_read_user",
    "probe_read_kernel": "probe_read_kernel", "probe_read_user_str": "probe_read_user_str",
    "probe_read_kernel_str": "probe_read_kernel_str", "snprintf_btf": "snprintf_btf", "snprintf": "snprintf",
    "task_pt_regs": "task_pt_regs", "trace_vprintk": "trace_vprintk",
}


def base_func_proto(name, env):
    """bpf_base_func_proto."""
    p = _BASE.get(name)
    if p:
        return p
    if not env.bpf_capable:
        return None
    p = _BASE_CAP_BPF.get(name)
    if p:
        return p
    if not env.perfmon_capable:
        return None
    return _BASE_CAP_PERFMON.get(name)


_SK_BASE_PERFMON = {"skc_to_tcp6_sock", "skc_to_tcp_sock", "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock",
                    "skc_to_udp6_sock", "skc_to_unix_sock", "skc_to_mptcp_sock"}


def sk_base_func_proto(name, env):
    """bpf_sk_base_func_proto."""
    if name in _SK_BASE_PERFMON:
        return name if env.perfmon_capable else None
    if name == "ktime_get_coarse_ns":
        return "ktime_get_coarse_ns"
    return base_func_proto(name, env)


_TRACING = {
    "map_lookup_elem": "map_lookup_elem", "map_update_elem": "map_update_elem",
    "map_delete_elem": "map_delete_elem", "map_push_elem": "map_push_elem", "map_pop_elem": "map_pop_elem",
    "map_peek_elem": "map_peek_elem", "map_lookup_percpu_elem": "map_lookup_percpu_elem",
    "ktime_get_ns": "ktime_get_ns", "ktime_get_boot_ns": "ktime_get_boot_ns", "tail_call": "tail_call",
    "get_current_task": "get_current_task", "get_current_task_btf": "get_current_task_btf",
    "task_pt_regs": "task_pt_regs", "get_current_uid_gid": "get_current_uid_gid",
    "get_current_comm": "get_current_comm", "trace_printk": "trace_printk",
    "get_smp_processor_id": "get_smp_processor_id", "get_numa_node_id": "get_numa_node_id",
    "perf_event_read": "perf_event_read", "get_prandom_u32": "get_prandom_u32",
    "probe_write_user": "probe_write_user", "probe_read_user": "probe_read_user",
    "probe_read_kernel": "probe_read_kernel", "probe_read_user_str": "probe_read_user_str",
    "probe_read_kernel_str": "probe_read_kernel_str", "probe_read": "probe_read_compat",
    "probe_read_str": "probe_read_compat_str", "cgrp_storage_get": "cgrp_storage_get",
    "cgrp_storage_delete": "cgrp_storage_delete", "current_task_under_cgroup": "current_task_under_cgroup",
    "send_signal": "send_signal", "send_signal_thread": "send_signal_thread",
    "perf_event_read_value": "perf_event_read_value", "ringbuf_output": "ringbuf_output",
    "ringbuf_reserve": "ringbuf_reserve", "ringbuf_submit": "ringbuf_submit",
    "ringbuf_discard": "ringbuf_discard", "ringbuf_query": "ringbuf_query", "jiffies64": "jiffies64",
    "get_task_stack": "get_task_stack", "copy_from_user": "copy_from_user",
    "copy_from_user_task": "copy_from_user_task", "snprintf_btf": "snprintf_btf",
    "per_cpu_ptr": "per_cpu_ptr", "this_cpu_ptr": "this_cpu_ptr", "task_storage_get": "task_storage_get",
    "task_storage_delete": "task_storage_delete", "for_each_map_elem": "for_each_map_elem",
    "snprintf": "snprintf", "get_func_ip": "get_func_ip_proto_tracing", "get_branch_snapshot": "get_branch_snapshot",
    "find_vma": "find_vma", "trace_vprintk": "trace_vprintk",
}


def tracing_func_proto(name, env):
    """bpf_tracing_func_proto."""
    p = _TRACING.get(name)
    if p:
        return p
    return base_func_proto(name, env)


_CGROUP_COMMON_NO_RETVAL = None


def cgroup_common_func_proto(name, env):
    if name == "get_local_storage":
        return "get_local_storage"
    if name in ("get_retval", "set_retval"):
        if env.expected_attach_type in (
                A.BPF_CGROUP_INET_INGRESS, A.BPF_CGROUP_INET_EGRESS, A.BPF_CGROUP_SOCK_OPS,
                A.BPF_CGROUP_UDP4_RECVMSG, A.BPF_CGROUP_UDP6_RECVMSG, A.BPF_CGROUP_UNIX_RECVMSG,
                A.BPF_CGROUP_INET4_GETPEERNAME, A.BPF_CGROUP_INET6_GETPEERNAME, A.BPF_CGROUP_UNIX_GETPEERNAME,
                A.BPF_CGROUP_INET4_GETSOCKNAME, A.BPF_CGROUP_INET6_GETSOCKNAME, A.BPF_CGROUP_UNIX_GETSOCKNAME):
            return None
        return name
    return None


def cgroup_current_func_proto(name, env):
    return {"get_current_uid_gid": "get_current_uid_gid", "get_current_comm": "get_current_comm",
            "get_cgroup_classid": "get_cgroup_classid_curr",
            "current_task_under_cgroup": "current_task_under_cgroup"}.get(name)


class ProgType:
    """struct bpf_verifier_ops + struct bpf_prog_ops of one program type."""
    type = 0
    gen_ld_abs = False
    convert_ctx_access = True
    test_run = False
    # direct packet access: None (none), 'rw' (read and write), 'ro' (read only)
    pkt_access = None
    own = {}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return None

    def fallback(self, name, env):
        return base_func_proto(name, env)

    def func_proto_name(self, name, env):
        p = self.own.get(name)
        if p:
            return p
        return self.fallback(name, env)

    def get_func_proto(self, func_id, env):
        name = FUNC_NAMES.get(func_id)
        if name is None:
            return None
        pname = self.func_proto_name(name, env)
        if pname is None:
            return None
        return PROTOS.get(pname)

    def may_access_direct_pkt_data(self, env, meta, t):
        if self.pkt_access is None:
            return False
        if self.pkt_access == "ro" and t == 2:
            return False
        if self.pkt_access == "sockopt":
            return True
        if meta is not None:
            return meta.pkt_access
        return True


@prog_type(A.BPF_PROG_TYPE_SOCKET_FILTER)
class SocketFilter(ProgType):
    gen_ld_abs = True
    test_run = True
    own = {"skb_load_bytes": "skb_load_bytes", "skb_load_bytes_relative": "skb_load_bytes_relative",
           "get_socket_cookie": "get_socket_cookie", "get_socket_uid": "get_socket_uid",
           "perf_event_output": "skb_event_output"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.sk_filter_is_valid_access(env, off, size, t, is_ldsx)

    def fallback(self, name, env):
        return sk_base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_SCHED_CLS, A.BPF_PROG_TYPE_SCHED_ACT)
class TcClsAct(ProgType):
    gen_ld_abs = True
    test_run = True
    pkt_access = "rw"
    own = {n: n for n in (
        "skb_store_bytes", "skb_load_bytes", "skb_load_bytes_relative", "skb_pull_data", "csum_diff",
        "csum_update", "csum_level", "l3_csum_replace", "l4_csum_replace", "clone_redirect",
        "get_cgroup_classid", "skb_vlan_push", "skb_vlan_pop", "skb_change_proto", "skb_change_type",
        "skb_adjust_room", "skb_change_tail", "skb_change_head", "skb_get_tunnel_key", "skb_set_tunnel_key",
        "skb_get_tunnel_opt", "skb_set_tunnel_opt", "redirect", "redirect_neigh", "redirect_peer",
        "get_route_realm", "get_hash_recalc", "set_hash_invalid", "set_hash", "get_smp_processor_id",
        "skb_under_cgroup", "get_socket_cookie", "get_socket_uid", "check_mtu", "sk_fullsock",
        "sk_storage_get", "sk_storage_delete", "skb_get_xfrm_state", "skb_cgroup_classid", "skb_cgroup_id",
        "skb_ancestor_cgroup_id", "sk_release", "tcp_sock", "get_listener_sock", "tcp_check_syncookie",
        "skb_ecn_set_ce", "tcp_gen_syncookie", "sk_assign", "skb_set_tstamp", "tcp_raw_gen_syncookie_ipv4",
        "tcp_raw_gen_syncookie_ipv6", "tcp_raw_check_syncookie_ipv4", "tcp_raw_check_syncookie_ipv6")}
    own.update({"perf_event_output": "skb_event_output", "fib_lookup": "skb_fib_lookup",
                "check_mtu": "skb_check_mtu", "sk_lookup_tcp": "tc_sk_lookup_tcp",
                "sk_lookup_udp": "tc_sk_lookup_udp", "skc_lookup_tcp": "tc_skc_lookup_tcp",
                "skb_set_tunnel_key": "skb_set_tunnel_key", "skb_set_tunnel_opt": "skb_set_tunnel_opt"})

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.tc_cls_act_is_valid_access(env, off, size, t, is_ldsx)

    def fallback(self, name, env):
        return sk_base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_XDP)
class Xdp(ProgType):
    test_run = True
    pkt_access = "rw"
    own = {"perf_event_output": "xdp_event_output", "get_smp_processor_id": "get_smp_processor_id",
           "csum_diff": "csum_diff", "xdp_adjust_head": "xdp_adjust_head", "xdp_adjust_meta": "xdp_adjust_meta",
           "redirect": "xdp_redirect", "redirect_map": "xdp_redirect_map", "xdp_adjust_tail": "xdp_adjust_tail",
           "xdp_get_buff_len": "xdp_get_buff_len", "xdp_load_bytes": "xdp_load_bytes",
           "xdp_store_bytes": "xdp_store_bytes", "fib_lookup": "xdp_fib_lookup", "check_mtu": "xdp_check_mtu",
           "sk_lookup_udp": "xdp_sk_lookup_udp", "sk_lookup_tcp": "xdp_sk_lookup_tcp",
           "sk_release": "sk_release", "skc_lookup_tcp": "xdp_skc_lookup_tcp",
           "tcp_check_syncookie": "tcp_check_syncookie", "tcp_gen_syncookie": "tcp_gen_syncookie",
           "tcp_raw_gen_syncookie_ipv4": "tcp_raw_gen_syncookie_ipv4",
           "tcp_raw_gen_syncookie_ipv6": "tcp_raw_gen_syncookie_ipv6",
           "tcp_raw_check_syncookie_ipv4": "tcp_raw_check_syncookie_ipv4",
           "tcp_raw_check_syncookie_ipv6": "tcp_raw_check_syncookie_ipv6"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.xdp_is_valid_access(env, off, size, t, is_ldsx)

    def fallback(self, name, env):
        return sk_base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_CGROUP_SKB)
class CgroupSkb(ProgType):
    test_run = True
    pkt_access = "ro"
    own = {"sk_fullsock": "sk_fullsock", "sk_storage_get": "sk_storage_get",
           "sk_storage_delete": "sk_storage_delete", "perf_event_output": "skb_event_output",
           "skb_cgroup_id": "skb_cgroup_id", "skb_ancestor_cgroup_id": "skb_ancestor_cgroup_id",
           "sk_cgroup_id": "sk_cgroup_id", "sk_ancestor_cgroup_id": "sk_ancestor_cgroup_id",
           "sk_lookup_tcp": "sk_lookup_tcp", "sk_lookup_udp": "sk_lookup_udp", "sk_release": "sk_release",
           "skc_lookup_tcp": "skc_lookup_tcp", "tcp_sock": "tcp_sock", "get_listener_sock": "get_listener_sock",
           "skb_ecn_set_ce": "skb_ecn_set_ce"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.cg_skb_is_valid_access(env, off, size, t, is_ldsx)

    def func_proto_name(self, name, env):
        p = cgroup_common_func_proto(name, env)
        if p:
            return p
        p = self.own.get(name)
        if p:
            return p
        return SocketFilter.func_proto_name(PROG_TYPES[A.BPF_PROG_TYPE_SOCKET_FILTER], name, env)


@prog_type(A.BPF_PROG_TYPE_LWT_IN, A.BPF_PROG_TYPE_LWT_OUT, A.BPF_PROG_TYPE_LWT_XMIT,
           A.BPF_PROG_TYPE_LWT_SEG6LOCAL)
class Lwt(ProgType):
    test_run = True
    _OUT = {"skb_load_bytes": "skb_load_bytes", "skb_pull_data": "skb_pull_data", "csum_diff": "csum_diff",
            "get_cgroup_classid": "get_cgroup_classid", "get_route_realm": "get_route_realm",
            "get_hash_recalc": "get_hash_recalc", "perf_event_output": "skb_event_output",
            "get_smp_processor_id": "get_smp_processor_id", "skb_under_cgroup": "skb_under_cgroup"}
    _XMIT = {"skb_get_tunnel_key": "skb_get_tunnel_key", "skb_set_tunnel_key": "skb_set_tunnel_key",
             "skb_get_tunnel_opt": "skb_get_tunnel_opt", "skb_set_tunnel_opt": "skb_set_tunnel_opt",
             "redirect": "redirect", "clone_redirect": "clone_redirect", "skb_change_tail": "skb_change_tail",
             "skb_change_head": "skb_change_head", "skb_store_bytes": "skb_store_bytes",
             "csum_update": "csum_update", "csum_level": "csum_level", "l3_csum_replace": "l3_csum_replace",
             "l4_csum_replace": "l4_csum_replace", "set_hash_invalid": "set_hash_invalid",
             "lwt_push_encap": "lwt_xmit_push_encap"}

    @property
    def pkt_access(self):
        return "rw" if self.type == A.BPF_PROG_TYPE_LWT_XMIT else "ro"

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.lwt_is_valid_access(env, off, size, t, is_ldsx)

    def func_proto_name(self, name, env):
        if self.type == A.BPF_PROG_TYPE_LWT_IN and name == "lwt_push_encap":
            return "lwt_in_push_encap"
        if self.type == A.BPF_PROG_TYPE_LWT_XMIT and name in self._XMIT:
            return self._XMIT[name]
        if self.type == A.BPF_PROG_TYPE_LWT_SEG6LOCAL:
            if name == "skb_pull_data":
                return None
            if name in ("lwt_seg6_store_bytes", "lwt_seg6_action", "lwt_seg6_adjust_srh"):
                return name
        p = self._OUT.get(name)
        if p:
            return p
        return sk_base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_SK_SKB)
class SkSkb(ProgType):
    test_run = True
    pkt_access = "rw"
    own = {"skb_store_bytes": "skb_store_bytes", "skb_load_bytes": "skb_load_bytes",
           "skb_pull_data": "sk_skb_pull_data", "skb_change_tail": "sk_skb_change_tail",
           "skb_change_head": "sk_skb_change_head", "skb_adjust_room": "sk_skb_adjust_room",
           "get_socket_cookie": "get_socket_cookie", "get_socket_uid": "get_socket_uid",
           "sk_redirect_map": "sk_redirect_map", "sk_redirect_hash": "sk_redirect_hash",
           "perf_event_output": "skb_event_output", "sk_lookup_tcp": "sk_lookup_tcp",
           "sk_lookup_udp": "sk_lookup_udp", "sk_release": "sk_release", "skc_lookup_tcp": "skc_lookup_tcp"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.sk_skb_is_valid_access(env, off, size, t, is_ldsx)

    def fallback(self, name, env):
        return sk_base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_SK_MSG)
class SkMsg(ProgType):
    pkt_access = "rw"
    own = {"msg_redirect_map": "msg_redirect_map", "msg_redirect_hash": "msg_redirect_hash",
           "msg_apply_bytes": "msg_apply_bytes", "msg_cork_bytes": "msg_cork_bytes",
           "msg_pull_data": "msg_pull_data", "msg_push_data": "msg_push_data", "msg_pop_data": "msg_pop_data",
           "perf_event_output": "event_output_data", "get_current_uid_gid": "get_current_uid_gid",
           "sk_storage_get": "sk_storage_get", "sk_storage_delete": "sk_storage_delete",
           "get_netns_cookie": "get_netns_cookie_sk_msg", "get_cgroup_classid": "get_cgroup_classid_curr"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.sk_msg_is_valid_access(env, off, size, t, is_ldsx)

    def fallback(self, name, env):
        return sk_base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_FLOW_DISSECTOR)
class FlowDissector(ProgType):
    test_run = True
    pkt_access = "ro"
    own = {"skb_load_bytes": "flow_dissector_load_bytes"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.flow_dissector_is_valid_access(env, off, size, t, is_ldsx)

    def fallback(self, name, env):
        return sk_base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_SOCK_OPS)
class SockOps(ProgType):
    own = {"setsockopt": "sock_ops_setsockopt", "getsockopt": "sock_ops_getsockopt",
           "sock_ops_cb_flags_set": "sock_ops_cb_flags_set", "sock_map_update": "sock_map_update",
           "sock_hash_update": "sock_hash_update", "get_socket_cookie": "get_socket_cookie_sock_ops",
           "perf_event_output": "event_output_data", "sk_storage_get": "sk_storage_get",
           "sk_storage_delete": "sk_storage_delete", "get_netns_cookie": "get_netns_cookie_sock_ops",
           "load_hdr_opt": "sock_ops_load_hdr_opt", "store_hdr_opt": "sock_ops_store_hdr_opt",
           "reserve_hdr_opt": "sock_ops_reserve_hdr_opt", "tcp_sock": "tcp_sock"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.sock_ops_is_valid_access(env, off, size, t, is_ldsx)

    def func_proto_name(self, name, env):
        p = cgroup_common_func_proto(name, env)
        if p:
            return p
        p = self.own.get(name)
        if p:
            return p
        return sk_base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_CGROUP_SOCK)
class CgroupSock(ProgType):
    own = {"get_socket_cookie": "get_socket_cookie_sock", "get_netns_cookie": "get_netns_cookie_sock",
           "perf_event_output": "event_output_data", "sk_storage_get": "sk_storage_get_cg_sock",
           "ktime_get_coarse_ns": "ktime_get_coarse_ns"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.sock_filter_is_valid_access(env, off, size, t, is_ldsx)

    def func_proto_name(self, name, env):
        p = cgroup_common_func_proto(name, env) or cgroup_current_func_proto(name, env)
        if p:
            return p
        p = self.own.get(name)
        if p:
            return p
        return base_func_proto(name, env)


_SOCK_ADDR_SOCKOPT = frozenset((
    A.BPF_CGROUP_INET4_BIND, A.BPF_CGROUP_INET6_BIND, A.BPF_CGROUP_INET4_CONNECT, A.BPF_CGROUP_INET6_CONNECT,
    A.BPF_CGROUP_UNIX_CONNECT, A.BPF_CGROUP_UDP4_RECVMSG, A.BPF_CGROUP_UDP6_RECVMSG, A.BPF_CGROUP_UNIX_RECVMSG,
    A.BPF_CGROUP_UDP4_SENDMSG, A.BPF_CGROUP_UDP6_SENDMSG, A.BPF_CGROUP_UNIX_SENDMSG,
    A.BPF_CGROUP_INET4_GETPEERNAME, A.BPF_CGROUP_INET6_GETPEERNAME, A.BPF_CGROUP_INET4_GETSOCKNAME,
    A.BPF_CGROUP_INET6_GETSOCKNAME))


@prog_type(A.BPF_PROG_TYPE_CGROUP_SOCK_ADDR)
class CgroupSockAddr(ProgType):
    own = {"get_socket_cookie": "get_socket_cookie_sock_addr", "get_netns_cookie": "get_netns_cookie_sock_addr",
           "perf_event_output": "event_output_data", "sk_lookup_tcp": "sock_addr_sk_lookup_tcp",
           "sk_lookup_udp": "sock_addr_sk_lookup_udp", "sk_release": "sk_release",
           "skc_lookup_tcp": "sock_addr_skc_lookup_tcp", "sk_storage_get": "sk_storage_get",
           "sk_storage_delete": "sk_storage_delete"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.sock_addr_is_valid_access(env, off, size, t, is_ldsx)

    def func_proto_name(self, name, env):
        p = cgroup_common_func_proto(name, env) or cgroup_current_func_proto(name, env)
        if p:
            return p
        if name == "bind":
            return "bind" if env.expected_attach_type in (A.BPF_CGROUP_INET4_CONNECT,
                                                          A.BPF_CGROUP_INET6_CONNECT) else None
        if name in ("setsockopt", "getsockopt"):
            return "sock_addr_" + name if env.expected_attach_type in _SOCK_ADDR_SOCKOPT else None
        p = self.own.get(name)
        if p:
            return p
        return sk_base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_CGROUP_DEVICE)
class CgroupDevice(ProgType):
    own = {"perf_event_output": "event_output_data"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.cgroup_dev_is_valid_access(env, off, size, t, is_ldsx)

    def func_proto_name(self, name, env):
        p = cgroup_common_func_proto(name, env) or cgroup_current_func_proto(name, env)
        if p:
            return p
        return self.own.get(name) or base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_CGROUP_SYSCTL)
class CgroupSysctl(ProgType):
    own = {"sysctl_get_name": "sysctl_get_name", "sysctl_get_current_value": "sysctl_get_current_value",
           "sysctl_get_new_value": "sysctl_get_new_value", "sysctl_set_new_value": "sysctl_set_new_value",
           "ktime_get_coarse_ns": "ktime_get_coarse_ns", "perf_event_output": "event_output_data"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.sysctl_is_valid_access(env, off, size, t, is_ldsx)

    def func_proto_name(self, name, env):
        p = cgroup_common_func_proto(name, env) or cgroup_current_func_proto(name, env)
        if p:
            return p
        return self.own.get(name) or base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_CGROUP_SOCKOPT)
class CgroupSockopt(ProgType):
    pkt_access = "sockopt"
    own = {"get_netns_cookie": "get_netns_cookie_sockopt", "sk_storage_get": "sk_storage_get",
           "sk_storage_delete": "sk_storage_delete", "tcp_sock": "tcp_sock",
           "perf_event_output": "event_output_data"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.cg_sockopt_is_valid_access(env, off, size, t, is_ldsx)

    def func_proto_name(self, name, env):
        p = cgroup_common_func_proto(name, env) or cgroup_current_func_proto(name, env)
        if p:
            return p
        if name in ("setsockopt", "getsockopt"):
            return "sk_" + name if env.expected_attach_type == A.BPF_CGROUP_SETSOCKOPT else None
        return self.own.get(name) or base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_SK_REUSEPORT)
class SkReuseport(ProgType):
    pkt_access = "ro"
    own = {"sk_select_reuseport": "sk_select_reuseport", "skb_load_bytes": "sk_reuseport_load_bytes",
           "skb_load_bytes_relative": "sk_reuseport_load_bytes_relative",
           "get_socket_cookie": "get_socket_ptr_cookie", "ktime_get_coarse_ns": "ktime_get_coarse_ns"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.sk_reuseport_is_valid_access(env, off, size, t, is_ldsx)


@prog_type(A.BPF_PROG_TYPE_SK_LOOKUP)
class SkLookup(ProgType):
    test_run = True
    own = {"perf_event_output": "event_output_data", "sk_assign": "sk_lookup_assign", "sk_release": "sk_release"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.sk_lookup_is_valid_access(env, off, size, t, is_ldsx)

    def fallback(self, name, env):
        return sk_base_func_proto(name, env)


# ---- tracing ----

@prog_type(A.BPF_PROG_TYPE_KPROBE)
class Kprobe(ProgType):
    convert_ctx_access = False
    own = {"perf_event_output": "perf_event_output", "get_stackid": "get_stackid", "get_stack": "get_stack",
           "override_return": "override_return", "get_func_ip": "get_func_ip_proto_kprobe",
           "get_attach_cookie": "get_attach_cookie_proto_trace"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.kprobe_is_valid_access(env, off, size, t, is_ldsx)

    def fallback(self, name, env):
        return tracing_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_TRACEPOINT)
class Tracepoint(ProgType):
    convert_ctx_access = False
    own = {"perf_event_output": "perf_event_output_proto_tp", "get_stackid": "get_stackid_proto_tp",
           "get_stack": "get_stack_proto_tp", "get_attach_cookie": "get_attach_cookie_proto_trace"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.tp_is_valid_access(env, off, size, t, is_ldsx)

    def fallback(self, name, env):
        return tracing_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_PERF_EVENT)
class PerfEvent(ProgType):
    own = {"perf_event_output": "perf_event_output_proto_tp", "get_stackid": "get_stackid_proto_pe",
           "get_stack": "get_stack_proto_pe", "perf_prog_read_value": "perf_prog_read_value",
           "read_branch_records": "read_branch_records", "get_attach_cookie": "get_attach_cookie_proto_pe"}

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.pe_is_valid_access(env, off, size, t, is_ldsx)

    def fallback(self, name, env):
        return tracing_func_proto(name, env)


_RAW_TP = {"perf_event_output": "perf_event_output_proto_raw_tp", "get_stackid": "get_stackid_proto_raw_tp",
           "get_stack": "get_stack_proto_raw_tp", "get_attach_cookie": "get_attach_cookie_proto_tracing"}


@prog_type(A.BPF_PROG_TYPE_RAW_TRACEPOINT)
class RawTracepoint(ProgType):
    convert_ctx_access = False
    test_run = True
    own = _RAW_TP

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.raw_tp_is_valid_access(env, off, size, t, is_ldsx)

    def fallback(self, name, env):
        return tracing_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE)
class RawTracepointWritable(RawTracepoint):
    test_run = False

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.raw_tp_writable_is_valid_access(env, off, size, t, is_ldsx)


_TRACING_OWN = {
    "skb_output": "skb_output", "xdp_output": "xdp_output", "skc_to_tcp6_sock": "skc_to_tcp6_sock",
    "skc_to_tcp_sock": "skc_to_tcp_sock", "skc_to_tcp_timewait_sock": "skc_to_tcp_timewait_sock",
    "skc_to_tcp_request_sock": "skc_to_tcp_request_sock", "skc_to_udp6_sock": "skc_to_udp6_sock",
    "skc_to_unix_sock": "skc_to_unix_sock", "skc_to_mptcp_sock": "skc_to_mptcp_sock",
    "sk_storage_get": "sk_storage_get_tracing", "sk_storage_delete": "sk_storage_delete_tracing",
    "sock_from_file": "sock_from_file", "get_socket_cookie": "get_socket_ptr_cookie",
    "xdp_get_buff_len": "xdp_get_buff_len_trace", "d_path": "d_path"}


@prog_type(A.BPF_PROG_TYPE_TRACING, A.BPF_PROG_TYPE_LSM)
class Tracing(ProgType):
    convert_ctx_access = False
    test_run = True

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return ctx.tracing_is_valid_access(env, off, size, t, is_ldsx)

    def func_proto_name(self, name, env):
        p = _TRACING_OWN.get(name)
        if p:
            return p
        at = env.expected_attach_type
        if name in ("seq_printf", "seq_write", "seq_printf_btf"):
            return name if at == A.BPF_TRACE_ITER else None
        if name in ("get_func_arg", "get_func_ret", "get_func_arg_cnt"):
            return name if env.has_trampoline else None
        if name == "get_attach_cookie":
            return "get_attach_cookie_proto_tracing" if (at == A.BPF_TRACE_RAW_TP or env.has_trampoline) else None
        p = _RAW_TP.get(name)
        if p:
            return p
        return tracing_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_EXT)
class Extension(ProgType):
    """BPF_PROG_TYPE_EXT (bpf_extension_verifier_ops): a replacement for a function of another program. The
    emulator has no attach target for one (check_attach_btf_id refuses every target), so it never loads; it
    is registered so that PROG_LOAD reaches that check as the kernel does (where the kernel's trampolines
    are: profile ``trampolines``)."""

    def is_valid_access(self, env, off, size, t, is_ldsx):
        return None


@prog_type(A.BPF_PROG_TYPE_SYSCALL)
class Syscall(ProgType):
    test_run = True

    def is_valid_access(self, env, off, size, t, is_ldsx):
        if off < 0 or off + size > 65536 or off % size:   # U16_MAX context
            return None
        return ctx.SCALAR


@prog_type(A.BPF_PROG_TYPE_NETFILTER)
class Netfilter(ProgType):
    test_run = True

    def is_valid_access(self, env, off, size, t, is_ldsx):
        """nf_is_valid_access: struct bpf_nf_ctx { const struct nf_hook_state *state; struct sk_buff *skb; },
        each field read whole as a trusted pointer (any offset inside the field)."""
        if off < 0 or off >= 16 or t == 2 or size != 8:
            return None
        return (ctx.PTR_TO_BTF_ID | ctx.PTR_TRUSTED, "nf_hook_state" if off < 8 else "sk_buff", None)

    def fallback(self, name, env):
        return sk_base_func_proto(name, env)


@prog_type(A.BPF_PROG_TYPE_STRUCT_OPS)
class StructOps(ProgType):
    """BPF_PROG_TYPE_STRUCT_OPS (bpf_struct_ops_verifier_ops). The emulator registers no struct_ops type, so
    check_struct_ops_btf_id refuses every attach target (ENOTSUPP) before the walk."""
