"""Program section names: libbpf's conventions for ``SEC("...")`` (the table libbpf 1.x matches them against).

Each entry is (section pattern, program type, expected attach type, flags). A pattern ending in ``+``
matches the name itself or the name followed by ``/`` and anything (``kprobe/do_sys_open``); one ending in
``/`` matches any name it prefixes; any other pattern matches only itself. The first entry that matches
wins. A leading ``?`` on the section name (``SEC("?xdp")``) turns the program's autoload off and is not
part of the match.

Flags, as libbpf names them:

- ``SEC_EXP_ATTACH_OPT``: the expected attach type is sent only to kernels that know it (all modern ones);
- ``SEC_ATTACHABLE``: attachable with BPF_PROG_ATTACH / BPF_LINK_CREATE by its expected attach type;
- ``SEC_ATTACH_BTF``: needs an attach target in the kernel's BTF, named after the ``/``
  (``fentry/do_unlinkat``): a FUNC for fentry/fexit/fmod_ret, ``btf_trace_<name>`` for tp_btf,
  ``bpf_lsm_<name>`` for lsm, ``bpf_iter_<name>`` for iter;
- ``SEC_SLEEPABLE``: loaded with BPF_F_SLEEPABLE;
- ``SEC_XDP_FRAGS``: loaded with BPF_F_XDP_HAS_FRAGS;
- ``SEC_USDT``: USDT probes (uprobe_multi when the kernel has it).
"""
from collections import namedtuple

from .. import uapi as U

SEC_NONE = 0
SEC_EXP_ATTACH_OPT = 1
SEC_ATTACHABLE = 2
SEC_ATTACHABLE_OPT = SEC_ATTACHABLE | SEC_EXP_ATTACH_OPT
SEC_ATTACH_BTF = 4
SEC_SLEEPABLE = 8
SEC_XDP_FRAGS = 16
SEC_USDT = 32

SecDef = namedtuple("SecDef", "sec prog_type expected_attach_type flags")


def _d(sec, ptype, eat, flags):
    return SecDef(sec, getattr(U, "BPF_PROG_TYPE_" + ptype), getattr(U, eat) if eat else 0, flags)


SECTION_DEFS = [_d(*row) for row in (
    ("socket", "SOCKET_FILTER", 0, SEC_NONE),
    ("sk_reuseport/migrate", "SK_REUSEPORT", "BPF_SK_REUSEPORT_SELECT_OR_MIGRATE", SEC_ATTACHABLE),
    ("sk_reuseport", "SK_REUSEPORT", "BPF_SK_REUSEPORT_SELECT", SEC_ATTACHABLE),
    ("kprobe+", "KPROBE", 0, SEC_NONE),
    ("uprobe+", "KPROBE", 0, SEC_NONE),
    ("uprobe.s+", "KPROBE", 0, SEC_SLEEPABLE),
    ("kretprobe+", "KPROBE", 0, SEC_NONE),
    ("uretprobe+", "KPROBE", 0, SEC_NONE),
    ("uretprobe.s+", "KPROBE", 0, SEC_SLEEPABLE),
    ("kprobe.multi+", "KPROBE", "BPF_TRACE_KPROBE_MULTI", SEC_NONE),
    ("kretprobe.multi+", "KPROBE", "BPF_TRACE_KPROBE_MULTI", SEC_NONE),
    ("kprobe.session+", "KPROBE", "BPF_TRACE_KPROBE_SESSION", SEC_NONE),
    ("uprobe.multi+", "KPROBE", "BPF_TRACE_UPROBE_MULTI", SEC_NONE),
    ("uretprobe.multi+", "KPROBE", "BPF_TRACE_UPROBE_MULTI", SEC_NONE),
    ("uprobe.multi.s+", "KPROBE", "BPF_TRACE_UPROBE_MULTI", SEC_SLEEPABLE),
    ("uretprobe.multi.s+", "KPROBE", "BPF_TRACE_UPROBE_MULTI", SEC_SLEEPABLE),
    ("ksyscall+", "KPROBE", 0, SEC_NONE),
    ("kretsyscall+", "KPROBE", 0, SEC_NONE),
    ("usdt+", "KPROBE", 0, SEC_USDT),
    ("usdt.s+", "KPROBE", 0, SEC_USDT | SEC_SLEEPABLE),
    ("tc/ingress", "SCHED_CLS", "BPF_TCX_INGRESS", SEC_NONE),
    ("tc/egress", "SCHED_CLS", "BPF_TCX_EGRESS", SEC_NONE),
    ("tcx/ingress", "SCHED_CLS", "BPF_TCX_INGRESS", SEC_NONE),
    ("tcx/egress", "SCHED_CLS", "BPF_TCX_EGRESS", SEC_NONE),
    ("tc", "SCHED_CLS", 0, SEC_NONE),
    ("classifier", "SCHED_CLS", 0, SEC_NONE),
    ("action", "SCHED_ACT", 0, SEC_NONE),
    ("netkit/primary", "SCHED_CLS", "BPF_NETKIT_PRIMARY", SEC_NONE),
    ("netkit/peer", "SCHED_CLS", "BPF_NETKIT_PEER", SEC_NONE),
    ("tracepoint+", "TRACEPOINT", 0, SEC_NONE),
    ("tp+", "TRACEPOINT", 0, SEC_NONE),
    ("raw_tracepoint+", "RAW_TRACEPOINT", 0, SEC_NONE),
    ("raw_tp+", "RAW_TRACEPOINT", 0, SEC_NONE),
    ("raw_tracepoint.w+", "RAW_TRACEPOINT_WRITABLE", 0, SEC_NONE),
    ("raw_tp.w+", "RAW_TRACEPOINT_WRITABLE", 0, SEC_NONE),
    ("tp_btf+", "TRACING", "BPF_TRACE_RAW_TP", SEC_ATTACH_BTF),
    ("fentry+", "TRACING", "BPF_TRACE_FENTRY", SEC_ATTACH_BTF),
    ("fmod_ret+", "TRACING", "BPF_MODIFY_RETURN", SEC_ATTACH_BTF),
    ("fexit+", "TRACING", "BPF_TRACE_FEXIT", SEC_ATTACH_BTF),
    ("fentry.s+", "TRACING", "BPF_TRACE_FENTRY", SEC_ATTACH_BTF | SEC_SLEEPABLE),
    ("fmod_ret.s+", "TRACING", "BPF_MODIFY_RETURN", SEC_ATTACH_BTF | SEC_SLEEPABLE),
    ("fexit.s+", "TRACING", "BPF_TRACE_FEXIT", SEC_ATTACH_BTF | SEC_SLEEPABLE),
    ("freplace+", "EXT", 0, SEC_ATTACH_BTF),
    ("lsm+", "LSM", "BPF_LSM_MAC", SEC_ATTACH_BTF),
    ("lsm.s+", "LSM", "BPF_LSM_MAC", SEC_ATTACH_BTF | SEC_SLEEPABLE),
    ("lsm_cgroup+", "LSM", "BPF_LSM_CGROUP", SEC_ATTACH_BTF),
    ("iter+", "TRACING", "BPF_TRACE_ITER", SEC_ATTACH_BTF),
    ("iter.s+", "TRACING", "BPF_TRACE_ITER", SEC_ATTACH_BTF | SEC_SLEEPABLE),
    ("syscall", "SYSCALL", 0, SEC_SLEEPABLE),
    ("xdp.frags/devmap", "XDP", "BPF_XDP_DEVMAP", SEC_XDP_FRAGS),
    ("xdp/devmap", "XDP", "BPF_XDP_DEVMAP", SEC_ATTACHABLE),
    ("xdp.frags/cpumap", "XDP", "BPF_XDP_CPUMAP", SEC_XDP_FRAGS),
    ("xdp/cpumap", "XDP", "BPF_XDP_CPUMAP", SEC_ATTACHABLE),
    ("xdp.frags", "XDP", "BPF_XDP", SEC_XDP_FRAGS),
    ("xdp", "XDP", "BPF_XDP", SEC_ATTACHABLE_OPT),
    ("perf_event", "PERF_EVENT", 0, SEC_NONE),
    ("lwt_in", "LWT_IN", 0, SEC_NONE),
    ("lwt_out", "LWT_OUT", 0, SEC_NONE),
    ("lwt_xmit", "LWT_XMIT", 0, SEC_NONE),
    ("lwt_seg6local", "LWT_SEG6LOCAL", 0, SEC_NONE),
    ("sockops", "SOCK_OPS", "BPF_CGROUP_SOCK_OPS", SEC_ATTACHABLE_OPT),
    ("sk_skb/stream_parser", "SK_SKB", "BPF_SK_SKB_STREAM_PARSER", SEC_ATTACHABLE_OPT),
    ("sk_skb/stream_verdict", "SK_SKB", "BPF_SK_SKB_STREAM_VERDICT", SEC_ATTACHABLE_OPT),
    ("sk_skb/verdict", "SK_SKB", "BPF_SK_SKB_VERDICT", SEC_ATTACHABLE_OPT),
    ("sk_skb", "SK_SKB", 0, SEC_NONE),
    ("sk_msg", "SK_MSG", "BPF_SK_MSG_VERDICT", SEC_ATTACHABLE_OPT),
    ("lirc_mode2", "LIRC_MODE2", "BPF_LIRC_MODE2", SEC_ATTACHABLE_OPT),
    ("flow_dissector", "FLOW_DISSECTOR", "BPF_FLOW_DISSECTOR", SEC_ATTACHABLE_OPT),
    ("cgroup_skb/ingress", "CGROUP_SKB", "BPF_CGROUP_INET_INGRESS", SEC_ATTACHABLE_OPT),
    ("cgroup_skb/egress", "CGROUP_SKB", "BPF_CGROUP_INET_EGRESS", SEC_ATTACHABLE_OPT),
    ("cgroup/skb", "CGROUP_SKB", 0, SEC_NONE),
    ("cgroup/sock_create", "CGROUP_SOCK", "BPF_CGROUP_INET_SOCK_CREATE", SEC_ATTACHABLE),
    ("cgroup/sock_release", "CGROUP_SOCK", "BPF_CGROUP_INET_SOCK_RELEASE", SEC_ATTACHABLE),
    ("cgroup/sock", "CGROUP_SOCK", "BPF_CGROUP_INET_SOCK_CREATE", SEC_ATTACHABLE_OPT),
    ("cgroup/post_bind4", "CGROUP_SOCK", "BPF_CGROUP_INET4_POST_BIND", SEC_ATTACHABLE),
    ("cgroup/post_bind6", "CGROUP_SOCK", "BPF_CGROUP_INET6_POST_BIND", SEC_ATTACHABLE),
    ("cgroup/bind4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET4_BIND", SEC_ATTACHABLE),
    ("cgroup/bind6", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET6_BIND", SEC_ATTACHABLE),
    ("cgroup/connect4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET4_CONNECT", SEC_ATTACHABLE),
    ("cgroup/connect6", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET6_CONNECT", SEC_ATTACHABLE),
    ("cgroup/connect_unix", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UNIX_CONNECT", SEC_ATTACHABLE),
    ("cgroup/sendmsg4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UDP4_SENDMSG", SEC_ATTACHABLE),
    ("cgroup/sendmsg6", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UDP6_SENDMSG", SEC_ATTACHABLE),
    ("cgroup/sendmsg_unix", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UNIX_SENDMSG", SEC_ATTACHABLE),
    ("cgroup/recvmsg4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UDP4_RECVMSG", SEC_ATTACHABLE),
    ("cgroup/recvmsg6", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UDP6_RECVMSG", SEC_ATTACHABLE),
    ("cgroup/recvmsg_unix", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UNIX_RECVMSG", SEC_ATTACHABLE),
    ("cgroup/getpeername4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET4_GETPEERNAME", SEC_ATTACHABLE),
    ("cgroup/getpeername6", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET6_GETPEERNAME", SEC_ATTACHABLE),
    ("cgroup/getpeername_unix", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UNIX_GETPEERNAME", SEC_ATTACHABLE),
    ("cgroup/getsockname4", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET4_GETSOCKNAME", SEC_ATTACHABLE),
    ("cgroup/getsockname6", "CGROUP_SOCK_ADDR", "BPF_CGROUP_INET6_GETSOCKNAME", SEC_ATTACHABLE),
    ("cgroup/getsockname_unix", "CGROUP_SOCK_ADDR", "BPF_CGROUP_UNIX_GETSOCKNAME", SEC_ATTACHABLE),
    ("cgroup/sysctl", "CGROUP_SYSCTL", "BPF_CGROUP_SYSCTL", SEC_ATTACHABLE),
    ("cgroup/getsockopt", "CGROUP_SOCKOPT", "BPF_CGROUP_GETSOCKOPT", SEC_ATTACHABLE),
    ("cgroup/setsockopt", "CGROUP_SOCKOPT", "BPF_CGROUP_SETSOCKOPT", SEC_ATTACHABLE),
    ("cgroup/dev", "CGROUP_DEVICE", "BPF_CGROUP_DEVICE", SEC_ATTACHABLE_OPT),
    ("struct_ops+", "STRUCT_OPS", 0, SEC_NONE),
    ("struct_ops.s+", "STRUCT_OPS", 0, SEC_SLEEPABLE),
    ("sk_lookup", "SK_LOOKUP", "BPF_SK_LOOKUP", SEC_ATTACHABLE),
    ("netfilter", "NETFILTER", "BPF_NETFILTER", SEC_NONE),
)]

# where an SEC_ATTACH_BTF program's target is found in the kernel BTF: (name prefix, BTF kind)
BTF_TRACE_PREFIX = "btf_trace_"
BTF_LSM_PREFIX = "bpf_lsm_"
BTF_ITER_PREFIX = "bpf_iter_"


def sec_def_matches(pattern, name):
    """Whether section ``name`` matches ``pattern`` (libbpf's sec_def_matches)."""
    if pattern.endswith("/"):
        return name.startswith(pattern)
    if pattern.endswith("+"):
        stem = pattern[:-1]
        return name == stem or name.startswith(stem + "/")
    return name == pattern


def find_sec_def(name):
    """The SecDef for section ``name`` (a leading '?' is ignored), or None when libbpf knows none."""
    if name.startswith("?"):
        name = name[1:]
    for d in SECTION_DEFS:
        if sec_def_matches(d.sec, name):
            return d
    return None


def attach_target(sec_def, sec_name):
    """For an SEC_ATTACH_BTF program: (name to find in the kernel BTF, BTF kind name 'FUNC' or 'TYPEDEF'),
    or None when the section names no target (``SEC("fentry")``: the target must be set before load)."""
    name = sec_name[1:] if sec_name.startswith("?") else sec_name
    if "/" not in name:
        return None
    target = name.split("/", 1)[1]
    eat = sec_def.expected_attach_type
    if eat == U.BPF_TRACE_RAW_TP:
        return BTF_TRACE_PREFIX + target, "TYPEDEF"
    if sec_def.prog_type == U.BPF_PROG_TYPE_LSM:
        return BTF_LSM_PREFIX + target, "FUNC"
    if eat == U.BPF_TRACE_ITER:
        return BTF_ITER_PREFIX + target, "FUNC"
    return target, "FUNC"
