"""Context access rules: which bytes of each program type's context a load or store may touch.

Each ``*_is_valid_access(env, off, size, t, is_ldsx)`` models the ``is_valid_access`` verifier op of
net/core/filter.c, kernel/trace/bpf_trace.c and kernel/bpf/cgroup.c: it returns ``None`` for a refused
access, or ``(reg_type, btf_type_name, s32_range)`` for an allowed one (``reg_type`` is SCALAR_VALUE for
plain fields, a pointer type for ``data``, ``data_end``, ``sk``...). Offsets come from the uapi layouts
generated from the kernel's BTF. The socket views (``struct bpf_sock``, ``bpf_tcp_sock``,
``bpf_xdp_sock``) have their own checks for the pointers programs obtain.
"""
import functools

from .. import uapi, uapi_layout as L
from .verifier.regs import (PTR_MAYBE_NULL, PTR_TO_BTF_ID, PTR_TRUSTED, PTR_TO_FLOW_KEYS, PTR_TO_PACKET, PTR_TO_PACKET_END,
                            PTR_TO_PACKET_META, PTR_TO_SOCK_COMMON, PTR_TO_SOCKET, PTR_TO_TCP_SOCK,
                            PTR_TO_TP_BUFFER, PTR_TO_XDP_SOCK, SCALAR_VALUE)

BPF_READ, BPF_WRITE = 1, 2
SCALAR = (SCALAR_VALUE, None, None)
A = uapi  # attach types


@functools.lru_cache(maxsize=None)
def rng(cls, first, last=None):
    """(start, end) of bpf_ctx_range / bpf_ctx_range_till: offsetof(first) .. offsetofend(last)."""
    o1, _ = uapi.field_layout(cls, first)
    o2, s2 = uapi.field_layout(cls, last or first)
    return o1, o2 + s2


def inr(off, r):
    return r[0] <= off < r[1]


def offsetof(cls, f):
    return uapi.field_layout(cls, f)[0]


def sizeof(cls):
    import ctypes
    return ctypes.sizeof(cls)


def narrow_ok(size, size_default):
    """bpf_ctx_narrow_access_ok."""
    return size <= size_default and (size & (size - 1)) == 0


def _ptr(t):
    return (t, None, None)


SKB = L.__sk_buff


# ---- struct __sk_buff ----

def bpf_skb_is_valid_access(env, off, size, t, is_ldsx, reg_type=SCALAR_VALUE):
    if off < 0 or off >= sizeof(SKB):
        return None
    if off % size:
        return None
    if inr(off, rng(SKB, "cb")):
        if off + size > rng(SKB, "cb")[1]:
            return None
    elif inr(off, rng(SKB, "data")) or inr(off, rng(SKB, "data_meta")) or inr(off, rng(SKB, "data_end")):
        if is_ldsx or size != 4:
            return None
    elif (inr(off, rng(SKB, "remote_ip6")) or inr(off, rng(SKB, "local_ip6")) or
          inr(off, rng(SKB, "remote_ip4")) or inr(off, rng(SKB, "local_ip4"))):
        if size != 4:
            return None
    elif inr(off, rng(SKB, "flow_keys")):
        return None
    elif inr(off, rng(SKB, "hwtstamp")):
        if t == BPF_WRITE or size != 8:
            return None
    elif inr(off, rng(SKB, "tstamp")):
        if size != 8:
            return None
    elif inr(off, rng(SKB, "sk")):
        if t == BPF_WRITE or size != 8:
            return None
        reg_type = PTR_TO_SOCK_COMMON | PTR_MAYBE_NULL
    elif off == offsetof(SKB, "tstamp_type"):
        return None
    elif rng(SKB, "tstamp_type")[1] <= off < offsetof(SKB, "hwtstamp"):
        return None
    else:
        if t == BPF_WRITE:
            if size != 4:
                return None
        else:
            if not narrow_ok(size, 4):
                return None
    return (reg_type, None, None)


def sk_filter_is_valid_access(env, off, size, t, is_ldsx):
    for f in ("tc_classid", "data", "data_meta", "data_end", "tstamp", "wire_len", "hwtstamp"):
        if inr(off, rng(SKB, f)):
            return None
    if inr(off, rng(SKB, "family", "local_port")):
        return None
    if t == BPF_WRITE and not inr(off, rng(SKB, "cb")):
        return None
    return bpf_skb_is_valid_access(env, off, size, t, is_ldsx)


def cg_skb_is_valid_access(env, off, size, t, is_ldsx):
    for f in ("tc_classid", "data_meta", "wire_len"):
        if inr(off, rng(SKB, f)):
            return None
    if inr(off, rng(SKB, "data")) or inr(off, rng(SKB, "data_end")):
        if not env.bpf_capable:
            return None
    if t == BPF_WRITE:
        if inr(off, rng(SKB, "mark")) or inr(off, rng(SKB, "priority")) or inr(off, rng(SKB, "cb")):
            pass
        elif inr(off, rng(SKB, "tstamp")):
            if not env.bpf_capable:
                return None
        else:
            return None
    rt = SCALAR_VALUE
    if inr(off, rng(SKB, "data")):
        rt = PTR_TO_PACKET
    elif inr(off, rng(SKB, "data_end")):
        rt = PTR_TO_PACKET_END
    return bpf_skb_is_valid_access(env, off, size, t, is_ldsx, rt)


def lwt_is_valid_access(env, off, size, t, is_ldsx):
    for f in ("tc_classid", "data_meta", "tstamp", "wire_len", "hwtstamp"):
        if inr(off, rng(SKB, f)):
            return None
    if inr(off, rng(SKB, "family", "local_port")):
        return None
    if t == BPF_WRITE and not (inr(off, rng(SKB, "mark")) or inr(off, rng(SKB, "priority")) or
                               inr(off, rng(SKB, "cb"))):
        return None
    rt = SCALAR_VALUE
    if inr(off, rng(SKB, "data")):
        rt = PTR_TO_PACKET
    elif inr(off, rng(SKB, "data_end")):
        rt = PTR_TO_PACKET_END
    return bpf_skb_is_valid_access(env, off, size, t, is_ldsx, rt)


def tc_cls_act_is_valid_access(env, off, size, t, is_ldsx):
    if t == BPF_WRITE:
        if not any(inr(off, rng(SKB, f)) for f in ("mark", "tc_index", "priority", "tc_classid", "cb", "tstamp",
                                                    "queue_mapping")):
            return None
    rt = SCALAR_VALUE
    if inr(off, rng(SKB, "data")):
        rt = PTR_TO_PACKET
    elif inr(off, rng(SKB, "data_meta")):
        rt = PTR_TO_PACKET_META
    elif inr(off, rng(SKB, "data_end")):
        rt = PTR_TO_PACKET_END
    elif inr(off, rng(SKB, "family", "local_port")):
        return None
    elif off == offsetof(SKB, "tstamp_type"):
        return SCALAR if size == 1 else None
    return bpf_skb_is_valid_access(env, off, size, t, is_ldsx, rt)


def sk_skb_is_valid_access(env, off, size, t, is_ldsx):
    for f in ("tc_classid", "data_meta", "tstamp", "wire_len", "hwtstamp"):
        if inr(off, rng(SKB, f)):
            return None
    if t == BPF_WRITE and not (inr(off, rng(SKB, "tc_index")) or inr(off, rng(SKB, "priority"))):
        return None
    rt = SCALAR_VALUE
    if inr(off, rng(SKB, "mark")):
        return None
    if inr(off, rng(SKB, "data")):
        rt = PTR_TO_PACKET
    elif inr(off, rng(SKB, "data_end")):
        rt = PTR_TO_PACKET_END
    return bpf_skb_is_valid_access(env, off, size, t, is_ldsx, rt)


def flow_dissector_is_valid_access(env, off, size, t, is_ldsx):
    if off < 0 or off >= sizeof(SKB) or off % size or t == BPF_WRITE:
        return None
    if inr(off, rng(SKB, "data")):
        return None if is_ldsx or size != 4 else _ptr(PTR_TO_PACKET)
    if inr(off, rng(SKB, "data_end")):
        return None if is_ldsx or size != 4 else _ptr(PTR_TO_PACKET_END)
    if inr(off, rng(SKB, "flow_keys")):
        return None if size != 8 else _ptr(PTR_TO_FLOW_KEYS)
    return None


# ---- struct xdp_md ----

def xdp_is_valid_access(env, off, size, t, is_ldsx):
    X = L.xdp_md
    if env.expected_attach_type != A.BPF_XDP_DEVMAP and off == offsetof(X, "egress_ifindex"):
        return None
    if t == BPF_WRITE:
        return None
    if off in (offsetof(X, "data_meta"), offsetof(X, "data"), offsetof(X, "data_end")) and is_ldsx:
        return None
    rt = SCALAR_VALUE
    if off == offsetof(X, "data"):
        rt = PTR_TO_PACKET
    elif off == offsetof(X, "data_meta"):
        rt = PTR_TO_PACKET_META
    elif off == offsetof(X, "data_end"):
        rt = PTR_TO_PACKET_END
    if off < 0 or off >= sizeof(X) or off % size or size != 4:
        return None
    return (rt, None, None)


# ---- struct bpf_sock and the socket views ----

def bpf_sock_is_valid_access(off, size, t):
    S = L.bpf_sock
    if off < 0 or off >= sizeof(S) or off % size:
        return False
    if off in (offsetof(S, "state"), offsetof(S, "family"), offsetof(S, "type"), offsetof(S, "protocol"),
               offsetof(S, "src_port"), offsetof(S, "rx_queue_mapping")) or \
            inr(off, rng(S, "src_ip4")) or inr(off, rng(S, "src_ip6")) or inr(off, rng(S, "dst_ip4")) or \
            inr(off, rng(S, "dst_ip6")):
        return narrow_ok(size, 4)
    if inr(off, rng(S, "dst_port")):
        fs = 4 if size == 4 else uapi.field_layout(S, "dst_port")[1]
        return narrow_ok(size, fs)
    if rng(S, "dst_port")[1] <= off < offsetof(S, "dst_ip4"):
        return False
    return size == 4


def bpf_sock_common_is_valid_access(off, size, t):
    S = L.bpf_sock
    if inr(off, rng(S, "type", "priority")):
        return False
    return bpf_sock_is_valid_access(off, size, t)


def bpf_tcp_sock_is_valid_access(off, size, t):
    T = L.bpf_tcp_sock
    if off < 0 or off >= rng(T, "icsk_retransmits")[1] or off % size:
        return False
    if off in (offsetof(T, "bytes_received"), offsetof(T, "bytes_acked")):
        return size == 8
    return size == 4


def bpf_xdp_sock_is_valid_access(off, size, t):
    X = L.bpf_xdp_sock
    if off < 0 or off >= rng(X, "queue_id")[1] or off % size:
        return False
    return size == 4


def sock_access_ok(reg_type, off, size, t):
    """check_sock_access's dispatch on the socket pointer type."""
    if reg_type == PTR_TO_SOCK_COMMON:
        return bpf_sock_common_is_valid_access(off, size, t)
    if reg_type == PTR_TO_SOCKET:
        return bpf_sock_is_valid_access(off, size, t)
    if reg_type == PTR_TO_TCP_SOCK:
        return bpf_tcp_sock_is_valid_access(off, size, t)
    if reg_type == PTR_TO_XDP_SOCK:
        return bpf_xdp_sock_is_valid_access(off, size, t)
    return False


def sock_filter_is_valid_access(env, off, size, t, is_ldsx):
    """BPF_PROG_TYPE_CGROUP_SOCK: bpf_sock, some fields per attach type."""
    S = L.bpf_sock
    if not bpf_sock_is_valid_access(off, size, t):
        return None
    at = env.expected_attach_type
    if off in (offsetof(S, "bound_dev_if"), offsetof(S, "mark"), offsetof(S, "priority")):
        if at in (A.BPF_CGROUP_INET_SOCK_CREATE, A.BPF_CGROUP_INET_SOCK_RELEASE):
            return SCALAR
        return None
    if inr(off, rng(S, "src_ip4")):
        if at != A.BPF_CGROUP_INET4_POST_BIND:
            return None
    elif inr(off, rng(S, "src_ip6")):
        if at != A.BPF_CGROUP_INET6_POST_BIND:
            return None
    elif inr(off, rng(S, "src_port")):
        if at not in (A.BPF_CGROUP_INET4_POST_BIND, A.BPF_CGROUP_INET6_POST_BIND):
            return None
    return SCALAR if t == BPF_READ else None


# ---- struct bpf_sock_addr ----

def sock_addr_is_valid_access(env, off, size, t, is_ldsx):
    S = L.bpf_sock_addr
    if off < 0 or off >= sizeof(S) or off % size:
        return None
    at = env.expected_attach_type
    if inr(off, rng(S, "user_ip4")):
        if at not in (A.BPF_CGROUP_INET4_BIND, A.BPF_CGROUP_INET4_CONNECT, A.BPF_CGROUP_INET4_GETPEERNAME,
                      A.BPF_CGROUP_INET4_GETSOCKNAME, A.BPF_CGROUP_UDP4_SENDMSG, A.BPF_CGROUP_UDP4_RECVMSG):
            return None
    elif inr(off, rng(S, "user_ip6")):
        if at not in (A.BPF_CGROUP_INET6_BIND, A.BPF_CGROUP_INET6_CONNECT, A.BPF_CGROUP_INET6_GETPEERNAME,
                      A.BPF_CGROUP_INET6_GETSOCKNAME, A.BPF_CGROUP_UDP6_SENDMSG, A.BPF_CGROUP_UDP6_RECVMSG):
            return None
    elif inr(off, rng(S, "msg_src_ip4")):
        if at != A.BPF_CGROUP_UDP4_SENDMSG:
            return None
    elif inr(off, rng(S, "msg_src_ip6")):
        if at != A.BPF_CGROUP_UDP6_SENDMSG:
            return None

    def wide(field):
        r = rng(S, field)
        return size == 8 and off >= r[0] and off + 8 <= r[1] and off % 8 == 0
    if any(inr(off, rng(S, f)) for f in ("user_ip4", "user_ip6", "msg_src_ip4", "msg_src_ip6", "user_port")):
        if t == BPF_READ:
            if wide("user_ip6") or wide("msg_src_ip6"):
                return SCALAR
            if not narrow_ok(size, 4):
                return None
        else:
            if wide("user_ip6") or wide("msg_src_ip6"):
                return SCALAR
            if size != 4:
                return None
        return SCALAR
    if inr(off, rng(S, "sk")):
        if t != BPF_READ or size != 8:
            return None
        return _ptr(PTR_TO_SOCKET)
    if any(inr(off, rng(S, f)) for f in ("user_family", "family", "type", "protocol")):
        if t != BPF_READ or size != 4:
            return None
        return SCALAR
    return None


# ---- struct bpf_sock_ops ----

def sock_ops_is_valid_access(env, off, size, t, is_ldsx):
    S = L.bpf_sock_ops
    if off < 0 or off >= sizeof(S) or off % size:
        return None
    if t == BPF_WRITE:
        if off in (offsetof(S, "reply"), offsetof(S, "sk_txhash")):
            return SCALAR if size == 4 else None
        return None
    if inr(off, rng(S, "bytes_received", "bytes_acked")):
        return SCALAR if size == 8 else None
    if inr(off, rng(S, "sk")):
        return (PTR_TO_SOCKET | PTR_MAYBE_NULL, None, None) if size == 8 else None
    if inr(off, rng(S, "skb_data")):
        return _ptr(PTR_TO_PACKET) if size == 8 else None
    if inr(off, rng(S, "skb_data_end")):
        return _ptr(PTR_TO_PACKET_END) if size == 8 else None
    if off == offsetof(S, "skb_tcp_flags"):
        return SCALAR if narrow_ok(size, 4) else None
    if inr(off, rng(S, "skb_hwtstamp")):
        return SCALAR if size == 8 else None
    return SCALAR if size == 4 else None


# ---- struct sk_msg_md ----

def sk_msg_is_valid_access(env, off, size, t, is_ldsx):
    M = L.sk_msg_md
    if t == BPF_WRITE or off % size:
        return None
    if inr(off, rng(M, "data")):
        return _ptr(PTR_TO_PACKET) if size == 8 else None
    if inr(off, rng(M, "data_end")):
        return _ptr(PTR_TO_PACKET_END) if size == 8 else None
    if inr(off, rng(M, "sk")):
        return _ptr(PTR_TO_SOCKET) if size == 8 else None
    if any(inr(off, rng(M, f)) for f in ("family", "remote_ip4", "local_ip4", "remote_ip6", "local_ip6",
                                         "remote_port", "local_port", "size")):
        return SCALAR if size == 4 else None
    return None


# ---- struct sk_reuseport_md ----

def sk_reuseport_is_valid_access(env, off, size, t, is_ldsx):
    R = L.sk_reuseport_md
    if off < 0 or off >= sizeof(R) or off % size or t != BPF_READ:
        return None
    if off == offsetof(R, "data"):
        return _ptr(PTR_TO_PACKET) if size == 8 else None
    if off == offsetof(R, "data_end"):
        return _ptr(PTR_TO_PACKET_END) if size == 8 else None
    if off == offsetof(R, "hash"):
        return SCALAR if size == 4 else None
    if off == offsetof(R, "sk"):
        return _ptr(PTR_TO_SOCKET) if size == 8 else None
    if off == offsetof(R, "migrating_sk"):
        return (PTR_TO_SOCK_COMMON | PTR_MAYBE_NULL, None, None) if size == 8 else None
    if inr(off, rng(R, "eth_protocol")):
        if size < 2:
            return None
        return SCALAR if narrow_ok(size, 4) else None
    if any(inr(off, rng(R, f)) for f in ("ip_protocol", "bind_inany", "len")):
        return SCALAR if narrow_ok(size, 4) else None
    return None


# ---- struct bpf_sk_lookup ----

def sk_lookup_is_valid_access(env, off, size, t, is_ldsx):
    K = L.bpf_sk_lookup
    if off < 0 or off >= sizeof(K) or off % size or t != BPF_READ:
        return None
    if inr(off, rng(K, "sk")):
        return (PTR_TO_SOCKET | PTR_MAYBE_NULL, None, None) if size == 8 else None
    if any(inr(off, rng(K, f)) for f in ("family", "protocol", "remote_ip4", "local_ip4", "remote_ip6",
                                         "local_ip6", "local_port", "ingress_ifindex")):
        return SCALAR if narrow_ok(size, 4) else None
    if inr(off, rng(K, "remote_port")):
        if size == 4:
            return SCALAR
        return SCALAR if narrow_ok(size, 2) else None
    if rng(K, "remote_port")[1] <= off < offsetof(K, "local_ip4"):
        return SCALAR if narrow_ok(size, 2) else None
    return None


# ---- cgroup device, sysctl, sockopt ----

def cgroup_dev_is_valid_access(env, off, size, t, is_ldsx):
    D = L.bpf_cgroup_dev_ctx
    if t == BPF_WRITE or off < 0 or off + size > sizeof(D) or off % size:
        return None
    if inr(off, rng(D, "access_type")):
        return SCALAR if narrow_ok(size, 4) else None
    return SCALAR if size == 4 else None


def sysctl_is_valid_access(env, off, size, t, is_ldsx):
    S = L.bpf_sysctl
    if off < 0 or off + size > sizeof(S) or off % size:
        return None
    if inr(off, rng(S, "write")):
        if t != BPF_READ:
            return None
        return SCALAR if narrow_ok(size, 4) else None
    if inr(off, rng(S, "file_pos")):
        if t == BPF_READ:
            return SCALAR if narrow_ok(size, 4) else None
        return SCALAR if size == 4 else None
    return None


def cg_sockopt_is_valid_access(env, off, size, t, is_ldsx):
    S = L.bpf_sockopt
    if off < 0 or off >= sizeof(S) or off % size:
        return None
    at = env.expected_attach_type
    if t == BPF_WRITE:
        if off == offsetof(S, "retval"):
            return SCALAR if size == 4 and at == A.BPF_CGROUP_GETSOCKOPT else None
        if off in (offsetof(S, "optname"), offsetof(S, "level")):
            return SCALAR if size == 4 and at == A.BPF_CGROUP_SETSOCKOPT else None
        if off == offsetof(S, "optlen"):
            return SCALAR if size == 4 else None
        return None
    if inr(off, rng(S, "sk")):
        return _ptr(PTR_TO_SOCKET) if size == 8 else None
    if inr(off, rng(S, "optval")):
        return _ptr(PTR_TO_PACKET) if size == 8 else None
    if inr(off, rng(S, "optval_end")):
        return _ptr(PTR_TO_PACKET_END) if size == 8 else None
    if inr(off, rng(S, "retval")):
        return SCALAR if size == 4 and at == A.BPF_CGROUP_GETSOCKOPT else None
    return SCALAR if size == 4 else None


# ---- tracing ----

PERF_MAX_TRACE_SIZE = 8192
MAX_BPF_FUNC_ARGS = 12


def kprobe_is_valid_access(env, off, size, t, is_ldsx):
    n = sizeof(L.pt_regs)
    if off < 0 or off >= n or t != BPF_READ or off % size or off + size > n:
        return None
    return SCALAR


def tp_is_valid_access(env, off, size, t, is_ldsx):
    if off < 8 or off >= PERF_MAX_TRACE_SIZE or t != BPF_READ or off % size:
        return None
    return SCALAR


def pe_is_valid_access(env, off, size, t, is_ldsx):
    P = L.bpf_perf_event_data
    if off < 0 or off >= sizeof(P) or t != BPF_READ or off % size:
        return None
    if inr(off, rng(P, "sample_period")) or inr(off, rng(P, "addr")):
        return SCALAR if narrow_ok(size, 8) else None
    return SCALAR if size == 8 else None


def raw_tp_is_valid_access(env, off, size, t, is_ldsx):
    if off < 0 or off >= 8 * MAX_BPF_FUNC_ARGS or t != BPF_READ or off % size:
        return None
    return SCALAR


def raw_tp_writable_is_valid_access(env, off, size, t, is_ldsx):
    if off == 0:
        if size != 8 or t != BPF_READ:
            return None
        if raw_tp_is_valid_access(env, off, size, t, is_ldsx) is None:
            return None
        return _ptr(PTR_TO_TP_BUFFER)
    return raw_tp_is_valid_access(env, off, size, t, is_ldsx)


def tracing_is_valid_access(env, off, size, t, is_ldsx):
    """bpf_tracing_btf_ctx_access: u64 slots read whole; the argument types come from the attach target."""
    if raw_tp_is_valid_access(env, off, size, t, is_ldsx) is None:
        return None
    fn = getattr(env, "btf_ctx_access", None)
    if fn is not None:
        return fn(off, size, t)
    return SCALAR


def bpf_map_struct_access(m, off, size):
    """Reads through CONST_PTR_TO_MAP (struct bpf_map fields, e.g. max_entries). Without the kernel BTF
    of struct bpf_map the emulator allows reads within its first 256 bytes."""
    return 0 <= off and off + size <= 256
