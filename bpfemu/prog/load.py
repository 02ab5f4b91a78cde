"""BPF_PROG_LOAD up to and around the verifier (bpf_prog_load in kernel/bpf/syscall.c), in the kernel's order.

:func:`bpf_prog_load` takes the copied-in ``union bpf_attr`` and a :class:`LoadContext` (the caller's
capabilities, its memory, the fd resolver) and returns a verified :class:`~bpfemu.prog.prog.BpfProg`, or
raises the OSError the kernel returns. The order of the checks decides which errno wins; each was asked
of the host (6.18) and is listed here:

1. prog_flags outside the known set (the profile's ``prog_flags``): EINVAL; 6.1 copies the license here
   (``license_first``: EFAULT); where the profile has no ``trampolines`` (the reference host), TRACING
   fentry/fexit/fmod_ret, LSM and EXT: EPERM
2. expected_attach_type defaulted for CGROUP_SOCK and SK_REUSEPORT
3. BPF_F_TOKEN_FD: the token fd must be a token (EBADF/EINVAL)
4. unprivileged_bpf_disabled without CAP_BPF: EPERM
5. insn_cnt 0 or above the limit (1M with CAP_BPF, 4096 without): E2BIG
6. types other than SOCKET_FILTER and CGROUP_SKB need CAP_BPF; network types CAP_NET_ADMIN, tracing types
   CAP_PERFMON: EPERM
7. attach_prog_fd / attach_btf_id resolution and bpf_prog_load_check_attach (the attach type matrix):
   EINVAL (ENOTSUPP for a non-kernel BTF)
8. copy the instructions, then the license (EFAULT); a signature (EOPNOTSUPP: not verifiable here)
9. prog_ifindex: a device-bound program (bpf_prog_dev_bound_init: EINVAL, EOPNOTSUPP)
10. the program type must exist (EINVAL)
11. prog_name: isalnum, '_' and '.' only, NUL-terminated within 16 bytes (EINVAL)
12. bpf_check: log attributes (EINVAL, EFAULT for an unwritable buffer), func/line info, then the
    verifier itself (its log, its errno, ENOSPC when the log did not fit)
"""
import errno

from .fixups import FixupState
from .. import uapi
from ..errors import bpf_error
from .prog import BpfProg, bpf_prog_select_runtime
from .types import PROG_TYPES
from .verifier import bpf_check, log_attr_valid
from .verifier.cfg import FuncInfo

A = uapi
BPF_MAXINSNS = 4096
BPF_COMPLEXITY_LIMIT_INSNS = 1000000
BTF_MAX_TYPE = 0x000fffff

# prog_flags (#defines of the uapi header, which BTF does not carry)
BPF_F_STRICT_ALIGNMENT = 1 << 0
BPF_F_ANY_ALIGNMENT = 1 << 1
BPF_F_TEST_RND_HI32 = 1 << 2
BPF_F_TEST_STATE_FREQ = 1 << 3
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5
BPF_F_XDP_DEV_BOUND_ONLY = 1 << 6
BPF_F_TEST_REG_INVARIANTS = 1 << 7
BPF_F_TOKEN_FD = A.BPF_F_TOKEN_FD
PROG_FLAGS = (BPF_F_STRICT_ALIGNMENT | BPF_F_ANY_ALIGNMENT | BPF_F_TEST_STATE_FREQ | BPF_F_SLEEPABLE |
              BPF_F_TEST_RND_HI32 | BPF_F_XDP_HAS_FRAGS | BPF_F_XDP_DEV_BOUND_ONLY | BPF_F_TEST_REG_INVARIANTS |
              BPF_F_TOKEN_FD)

GPL_COMPATIBLE = frozenset((b"GPL", b"GPL v2", b"GPL and additional rights", b"Dual BSD/GPL", b"Dual MIT/GPL",
                            b"Dual MPL/GPL"))

NET_ADMIN_TYPES = frozenset((
    A.BPF_PROG_TYPE_SCHED_CLS, A.BPF_PROG_TYPE_SCHED_ACT, A.BPF_PROG_TYPE_XDP, A.BPF_PROG_TYPE_LWT_IN,
    A.BPF_PROG_TYPE_LWT_OUT, A.BPF_PROG_TYPE_LWT_XMIT, A.BPF_PROG_TYPE_LWT_SEG6LOCAL, A.BPF_PROG_TYPE_SK_SKB,
    A.BPF_PROG_TYPE_SK_MSG, A.BPF_PROG_TYPE_FLOW_DISSECTOR, A.BPF_PROG_TYPE_CGROUP_DEVICE,
    A.BPF_PROG_TYPE_CGROUP_SOCK, A.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, A.BPF_PROG_TYPE_CGROUP_SOCKOPT,
    A.BPF_PROG_TYPE_CGROUP_SYSCTL, A.BPF_PROG_TYPE_SOCK_OPS, A.BPF_PROG_TYPE_EXT, A.BPF_PROG_TYPE_NETFILTER))
PERFMON_TYPES = frozenset((
    A.BPF_PROG_TYPE_KPROBE, A.BPF_PROG_TYPE_TRACEPOINT, A.BPF_PROG_TYPE_PERF_EVENT,
    A.BPF_PROG_TYPE_RAW_TRACEPOINT, A.BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE, A.BPF_PROG_TYPE_TRACING,
    A.BPF_PROG_TYPE_LSM, A.BPF_PROG_TYPE_STRUCT_OPS, A.BPF_PROG_TYPE_EXT))

# bpf_prog_load_check_attach: the attach types each type accepts (types not listed accept any)
ATTACH_MATRIX = {
    A.BPF_PROG_TYPE_CGROUP_SOCK: (A.BPF_CGROUP_INET_SOCK_CREATE, A.BPF_CGROUP_INET_SOCK_RELEASE,
                                  A.BPF_CGROUP_INET4_POST_BIND, A.BPF_CGROUP_INET6_POST_BIND),
    A.BPF_PROG_TYPE_CGROUP_SOCK_ADDR: (
        A.BPF_CGROUP_INET4_BIND, A.BPF_CGROUP_INET6_BIND, A.BPF_CGROUP_INET4_CONNECT, A.BPF_CGROUP_INET6_CONNECT,
        A.BPF_CGROUP_UNIX_CONNECT, A.BPF_CGROUP_INET4_GETPEERNAME, A.BPF_CGROUP_INET6_GETPEERNAME,
        A.BPF_CGROUP_UNIX_GETPEERNAME, A.BPF_CGROUP_INET4_GETSOCKNAME, A.BPF_CGROUP_INET6_GETSOCKNAME,
        A.BPF_CGROUP_UNIX_GETSOCKNAME, A.BPF_CGROUP_UDP4_SENDMSG, A.BPF_CGROUP_UDP6_SENDMSG,
        A.BPF_CGROUP_UNIX_SENDMSG, A.BPF_CGROUP_UDP4_RECVMSG, A.BPF_CGROUP_UDP6_RECVMSG,
        A.BPF_CGROUP_UNIX_RECVMSG),
    A.BPF_PROG_TYPE_CGROUP_SKB: (A.BPF_CGROUP_INET_INGRESS, A.BPF_CGROUP_INET_EGRESS),
    A.BPF_PROG_TYPE_CGROUP_SOCKOPT: (A.BPF_CGROUP_SETSOCKOPT, A.BPF_CGROUP_GETSOCKOPT),
    A.BPF_PROG_TYPE_SK_LOOKUP: (A.BPF_SK_LOOKUP,),
    A.BPF_PROG_TYPE_SK_REUSEPORT: (A.BPF_SK_REUSEPORT_SELECT, A.BPF_SK_REUSEPORT_SELECT_OR_MIGRATE),
    A.BPF_PROG_TYPE_NETFILTER: (A.BPF_NETFILTER,),
    A.BPF_PROG_TYPE_SYSCALL: (0,),
    A.BPF_PROG_TYPE_EXT: (0,),
}
BTF_ATTACH_TYPES = frozenset((A.BPF_PROG_TYPE_TRACING, A.BPF_PROG_TYPE_LSM, A.BPF_PROG_TYPE_STRUCT_OPS,
                              A.BPF_PROG_TYPE_EXT))


class LoadContext:
    """What PROG_LOAD needs from the syscall layer. Subclass or duck-type:

    - ``capable(name)``: 'bpf', 'perfmon', 'net_admin', 'sys_admin';
    - ``unprivileged_bpf_disabled``: the sysctl value;
    - ``read(addr, n)`` -> bytes and ``write(addr, data)``, raising OSError(EFAULT);
    - ``read_str(addr, maxlen)`` -> bytes without the NUL (strncpy_from_user), OSError(EFAULT);
    - ``map_of_fd(fd)`` -> map object, or an errno (EBADF closed fd, EINVAL not a map);
    - ``obj_name_cpy(raw16)`` -> the name bytes, raising OSError(EINVAL);
    - ``token_of_fd(fd)`` -> raises the errno for a fd that is no token;
    - ``btf_of_fd(fd)`` -> a BTF object (``bpfemu.btf.Btf`` interface), raising OSError (EBADF, EINVAL);
    - ``kernel_btf``: the kernel's BTF (``bpfemu.btf.Btf`` interface) or None;
    - ``profile``: the kernel version's :class:`bpfemu.profiles.Profile` (its ``instructions``, ``st_to_ctx``,
      ``array_const_key_nonnull``), or None for the newest.
    """

    unprivileged_bpf_disabled = 0
    profile = None
    jit_enabled = True  # net.core.bpf_jit_enable: translate the verified program (bpfemu.prog.jit)

    def capable(self, name):
        return True


def fixup_attach_type(prog_type, eat):
    """bpf_prog_load_fixup_attach_type."""
    if prog_type == A.BPF_PROG_TYPE_CGROUP_SOCK and not eat:
        return A.BPF_CGROUP_INET_SOCK_CREATE
    if prog_type == A.BPF_PROG_TYPE_SK_REUSEPORT and not eat:
        return A.BPF_SK_REUSEPORT_SELECT
    return eat


def check_attach(prog_type, eat, attach_btf, btf_id, dst_prog, profile=None):
    """bpf_prog_load_check_attach: True when the (type, attach type, BTF target) triple is valid. ``profile``
    (None: the newest) bounds the attach types a type's list may hold to those its kernel knows."""
    if btf_id:
        if btf_id > BTF_MAX_TYPE:
            return False
        if attach_btf is None and dst_prog is None:
            return False
        if prog_type not in BTF_ATTACH_TYPES:
            return False
    if attach_btf is not None and (not btf_id or dst_prog is not None):
        return False
    if dst_prog is not None and prog_type not in (A.BPF_PROG_TYPE_TRACING, A.BPF_PROG_TYPE_EXT):
        return False
    allowed = ATTACH_MATRIX.get(prog_type)
    return allowed is None or eat in allowed and (profile is None or profile.knows_attach_type(eat))


# the network devices of the emulated task's namespace: the loopback device alone, which (as on the host)
# has no ndo_bpf, so it can neither offload nor bind a program
NETDEVS = {1: "lo"}


def bpf_prog_dev_bound_init(prog_type, flags, ifindex):
    """bpf_prog_dev_bound_init (kernel/bpf/offload.c): a program for a device (prog_ifindex)."""
    if prog_type not in (A.BPF_PROG_TYPE_SCHED_CLS, A.BPF_PROG_TYPE_XDP):
        raise bpf_error(errno.EINVAL, "only tc and xdp programs can be bound to a device")
    if flags & ~(BPF_F_XDP_DEV_BOUND_ONLY | BPF_F_XDP_HAS_FRAGS):
        raise bpf_error(errno.EINVAL, "prog_flags not allowed for a device-bound program")
    if flags & BPF_F_XDP_HAS_FRAGS and not flags & BPF_F_XDP_DEV_BOUND_ONLY:
        raise bpf_error(errno.EINVAL, "frags need BPF_F_XDP_DEV_BOUND_ONLY")
    if prog_type == A.BPF_PROG_TYPE_SCHED_CLS and flags & BPF_F_XDP_DEV_BOUND_ONLY:
        raise bpf_error(errno.EINVAL, "BPF_F_XDP_DEV_BOUND_ONLY is for xdp programs")
    if ifindex not in NETDEVS:
        raise bpf_error(errno.EINVAL, "no network device %d" % ifindex)
    # bpf_dev_offload_check: no emulated device has ndo_bpf
    raise bpf_error(errno.EOPNOTSUPP, "%s cannot offload or bind programs" % NETDEVS[ifindex])


MAX_SIG_SIZE = 8192   # the largest signature PROG_LOAD copies in


def bpf_prog_verify_signature(p, ctx):
    """A signed program (6.18's attr.signature): the emulator has no keyrings nor PKCS#7 verification, so a
    signature is refused as the reference host refuses one it cannot verify (EOPNOTSUPP); an unreadable one
    is ENOMEM there (the copy fails). A signature over 8192 bytes is EINVAL before any copy (measured on the
    host: 8192 EOPNOTSUPP, 8193 EINVAL)."""
    if p.signature_size > MAX_SIG_SIZE:
        raise bpf_error(errno.EINVAL, "signature_size over %d" % MAX_SIG_SIZE)
    try:
        ctx.read(p.signature, p.signature_size)
    except OSError:
        raise bpf_error(errno.ENOMEM, "cannot copy the signature")
    raise bpf_error(errno.EOPNOTSUPP, "program signatures are not verified by the emulator")


def license_is_gpl_compatible(lic):
    return lic in GPL_COMPATIBLE


def bpf_prog_load(attr, ctx, uattr_size=uapi.ATTR_SIZE, uattr=None):
    """The PROG_LOAD command after CHECK_ATTR: returns (BpfProg, CheckResult); raises OSError(errno)."""
    p = attr.prog_load if hasattr(attr, "prog_load") else attr
    profile = getattr(ctx, "profile", None)
    prog_type = p.prog_type
    flags = p.prog_flags
    if flags & ~(profile.prog_flags if profile is not None else PROG_FLAGS):
        raise bpf_error(errno.EINVAL, "unknown prog_flags")
    lic = None
    if profile is not None and profile.license_first:  # 6.1: the license is copied in before anything else
        lic = ctx.read_str(p.license, 127)
    eat = fixup_attach_type(prog_type, p.expected_attach_type)
    trampolines = profile.trampolines if profile is not None else False
    if not trampolines and (
            prog_type in (A.BPF_PROG_TYPE_LSM, A.BPF_PROG_TYPE_EXT) or
            (prog_type == A.BPF_PROG_TYPE_TRACING and eat in (A.BPF_TRACE_FENTRY, A.BPF_TRACE_FEXIT,
                                                              A.BPF_MODIFY_RETURN))):
        # the reference host (6.18.44-fc) refuses every trampoline-based program type here, before any
        # other check (kernel-notes.md; the profile's ``trampolines``)
        raise bpf_error(errno.EPERM, "trampoline-based program types are not available on this kernel")
    if flags & BPF_F_TOKEN_FD:
        ctx.token_of_fd(p.prog_token_fd)
    bpf_cap = ctx.capable("bpf")
    if ctx.unprivileged_bpf_disabled and not bpf_cap:
        raise bpf_error(errno.EPERM, "unprivileged BPF is disabled")
    if p.insn_cnt == 0 or p.insn_cnt > (BPF_COMPLEXITY_LIMIT_INSNS if bpf_cap else BPF_MAXINSNS):
        raise bpf_error(errno.E2BIG, "insn_cnt %d" % p.insn_cnt)
    if prog_type not in (A.BPF_PROG_TYPE_SOCKET_FILTER, A.BPF_PROG_TYPE_CGROUP_SKB) and not bpf_cap:
        raise bpf_error(errno.EPERM, "this program type needs CAP_BPF")
    if prog_type in NET_ADMIN_TYPES and not ctx.capable("net_admin"):
        raise bpf_error(errno.EPERM, "this program type needs CAP_NET_ADMIN")
    if prog_type in PERFMON_TYPES and not ctx.capable("perfmon"):
        raise bpf_error(errno.EPERM, "this program type needs CAP_PERFMON")
    dst_prog = None
    attach_btf = None
    if p.attach_prog_fd:
        dst_prog = ctx.prog_of_fd(p.attach_prog_fd) if hasattr(ctx, "prog_of_fd") else None
        if dst_prog is None:
            raise bpf_error(errno.EINVAL, "attach_prog_fd/attach_btf_obj_fd is no program nor BTF")
    elif p.attach_btf_id:
        attach_btf = "vmlinux"
    if not check_attach(prog_type, eat, attach_btf, p.attach_btf_id, dst_prog, profile):
        raise bpf_error(errno.EINVAL, "invalid expected_attach_type/attach target for this program type")
    raw = ctx.read(p.insns, p.insn_cnt * 8)
    insns = [(c, r & 0xf, r >> 4, o, i) for c, r, o, i in _unpack(raw)]
    if lic is None:
        lic = ctx.read_str(p.license, 127)
    gpl = license_is_gpl_compatible(lic)
    if getattr(p, "signature", 0):
        bpf_prog_verify_signature(p, ctx)
    if p.prog_ifindex:
        bpf_prog_dev_bound_init(prog_type, flags, p.prog_ifindex)
    ops = PROG_TYPES.get(prog_type)
    if ops is None or profile is not None and not profile.knows_prog_type(prog_type):
        raise bpf_error(errno.EINVAL, "unknown program type %d" % prog_type)
    name = ctx.obj_name_cpy(_raw_field(p, "prog_name"))
    profile = getattr(ctx, "profile", None)
    prog = BpfProg(prog_type, eat, insns, name, gpl, bool(flags & BPF_F_SLEEPABLE),
                   tag_hash=profile.prog_tag if profile is not None else "sha256")
    prog.attach_btf_id = p.attach_btf_id
    prog.kern_version = p.kern_version
    prog.prog_flags = flags
    prog.xdp_has_frags = bool(flags & BPF_F_XDP_HAS_FRAGS)
    res = verify(prog, p, ctx, uattr_size, uattr)
    if res.errno:
        raise bpf_error(res.errno, "verifier: " + _last_line(res.log))
    # bpf_prog_select_runtime -> bpf_check_tail_call: the program arrays it uses must accept it
    for m in prog.maps:
        if m.map_type == A.BPF_MAP_TYPE_PROG_ARRAY and hasattr(prog, "map_compatible") and \
                not prog.map_compatible(m):
            raise bpf_error(errno.EINVAL, "program does not match the owner of a program array it uses")
    bpf_prog_select_runtime(prog, jit=bool(ctx.jit_enabled))
    return prog, res


def verify(prog, p, ctx, uattr_size=uapi.ATTR_SIZE, uattr=None):
    """bpf_check for a program PROG_LOAD built: log attributes, then the verifier; writes the log buffer
    and log_true_size back. Returns the CheckResult (errno 0 when accepted)."""
    level, size, buf = p.log_level, p.log_size, p.log_buf
    profile = getattr(ctx, "profile", None)
    if not log_attr_valid(level, bool(buf), size, profile.verifier_log if profile is not None else "rotating"):
        raise bpf_error(errno.EINVAL, "invalid log attributes")
    flags = p.prog_flags
    strict = bool(flags & BPF_F_STRICT_ALIGNMENT) and not flags & BPF_F_ANY_ALIGNMENT
    fd_array = None
    if p.fd_array:
        def fd_array(i, _base=p.fd_array):
            return int.from_bytes(ctx.read(_base + 4 * i, 4), "little", signed=True)
    func_info = _info_attr(p, ctx, uattr, "func_info")
    line_info = _info_attr(p, ctx, uattr, "line_info")
    btf_of_fd = getattr(ctx, "btf_of_fd", None)   # the program's BTF (LoadCtx keeps the object it names)
    res = bpf_check(prog.insns, prog.type, PROG_TYPES[prog.type], log_level=level, log_size=size,
                    has_log_buf=bool(buf), expected_attach_type=prog.expected_attach_type,
                    caps={"bpf": ctx.capable("bpf"), "perfmon": ctx.capable("perfmon")},
                    map_resolver=ctx.map_of_fd, fd_array=fd_array, gpl_compatible=prog.gpl_compatible,
                    strict_alignment=strict, test_state_freq=bool(flags & BPF_F_TEST_STATE_FREQ),
                    sleepable=prog.sleepable, attach_btf_id=p.attach_btf_id,
                    kernel_btf=getattr(ctx, "kernel_btf", None), func_info=func_info, line_info=line_info,
                    btf_of_fd=btf_of_fd,
                    prog_btf_fd=p.prog_btf_fd, fd_array_cnt=getattr(p, "fd_array_cnt", 0),
                    **_version_facts(getattr(ctx, "profile", None)))
    fault = None
    if res.log_buf is not None and buf:
        try:
            ctx.write(buf, res.log_buf)
        except OSError as e:    # the log lost its buffer (EFAULT); log_true_size is still reported
            fault = e
    if uattr is not None and uattr_size >= uapi.offsetofend("prog_load.log_true_size"):
        off, _ = uapi.attr_field("prog_load.log_true_size")
        ctx.write(uattr + off, res.log_true_size.to_bytes(4, "little"))
    if fault is not None:
        raise fault
    if not res.errno:
        prog.maps = res.used_maps
        env = res.env
        prog.insn_maps = {i: env.used_maps[env.insn_aux[i].map_index] for i, ins in enumerate(prog.insns)
                          if ins[0] == 0x18 and ins[2] in (1, 2, 5, 6) and i in env.insn_aux}
        prog.verified_insns = res.verified_insns
        prog.stack_depth = res.stack_depth
        prog.enforce_expected_attach_type = res.env.enforce_expected_attach_type
        prog.max_ctx_offset = env.max_ctx_offset
        ops = PROG_TYPES[prog.type]
        prog.helper_protos = {}
        for c, _d, src, _o, imm in prog.insns:
            if c == 0x85 and src == 0 and imm not in prog.helper_protos:  # BPF_JMP | BPF_CALL of a helper
                proto = ops.get_func_proto(imm, env)
                if proto is not None:
                    prog.helper_protos[imm] = proto
        prog.fixup_state = FixupState(env)   # for the xlated program
    return res


def _version_facts(profile):
    """The verifier settings a kernel version's profile decides (none: the newest's)."""
    if profile is None:
        return {}
    return {"instructions": profile.instructions, "st_to_ctx": profile.st_to_ctx,
            "array_const_key_nonnull": profile.array_const_key_nonnull, "log_mode": profile.verifier_log,
            "sleepable_log": profile.sleepable_log, "ksym_funcs": profile.ksym_funcs,
            "tnum_strn": profile.tnum_strn, "log_liveness_marks": profile.log_liveness_marks}


def _info_attr(p, ctx, uattr, kind):
    """The func_info or line_info array of the attr as a FuncInfo (None when its count is 0)."""
    cnt = getattr(p, kind + "_cnt")
    if not cnt:
        return None
    base = getattr(p, kind)

    def read(off, n):
        return ctx.read(base + off, n)

    def set_rec_size(v):
        if uattr is not None:
            off, _ = uapi.attr_field("prog_load.%s_rec_size" % kind)
            ctx.write(uattr + off, v.to_bytes(4, "little"))
    return FuncInfo(cnt, getattr(p, kind + "_rec_size"), read, set_rec_size)


def _raw_field(s, name):
    """The raw bytes of a ctypes array field (a char array reads as a str up to its NUL otherwise)."""
    import ctypes
    f = getattr(type(s), name)
    return ctypes.string_at(ctypes.addressof(s) + f.offset, f.size)


def _unpack(raw):
    import struct
    return struct.iter_unpack("<BBhi", bytes(raw))


def _last_line(log):
    lines = [ln for ln in log.split("\n") if ln and not ln.startswith("processed ")]
    return lines[-1] if lines else ""
