"""BPF_PROG_LOAD's attributes one by one, on both backends: the program type x expected_attach_type matrix,
each prog_flags bit, the token, kern_version, prog_ifindex, the license, the attach target fields, fd_array
and fd_array_cnt, the ld_imm64 pseudo forms, the instruction count limits, a signature, the statistics log;
and the program as an object: the maps it holds, PROG_ARRAY owners, memlock. Every expected errno and log
line is the host's (6.18); ``conformance/test_prog_load.py`` has the check order, the log buffer rules and
the CFG errors, ``test_prog_btf_info.py`` func_info/line_info.
"""
import ctypes
import errno
import re

import pytest

from bpfemu import uapi as U
from bpfemu.btf import Builder
from bpfemu.prog import insn as I
from bpfemu.testing.support import (array_map, btf_load, create_map, fdinfo_value, kernel_btf, map_id, need_attr,
                                    update)

RET0 = [I.BPF_MOV64_IMM(0, 0), I.BPF_EXIT_INSN()]
F_STRICT_ALIGNMENT, F_ANY_ALIGNMENT, F_TEST_RND_HI32, F_TEST_STATE_FREQ = 1, 2, 4, 8
F_SLEEPABLE, F_XDP_HAS_FRAGS, F_XDP_DEV_BOUND_ONLY, F_TEST_REG_INVARIANTS = 16, 32, 64, 128
F_TOKEN_FD = 1 << 16
ENOTSUPP = 524
SOCKET_FILTER = U.BPF_PROG_TYPE_SOCKET_FILTER


class Load:
    """One PROG_LOAD attr with its buffers kept alive; ``run(proc)`` -> (errno or 0, cause line)."""

    def __init__(self, insns=RET0, prog_type=SOCKET_FILTER, license=b"GPL", log=True, **fields):
        self.keep = []
        raw = I.encode(insns)
        f = dict(prog_type=prog_type, insns=self.buf(raw), insn_cnt=len(raw) // 8,
                 license=self.buf(license + b"\0") if license is not None else 0)
        if log:
            self.log = ctypes.create_string_buffer(1 << 16)
            f.update(log_level=1, log_size=1 << 16, log_buf=ctypes.addressof(self.log))
        else:
            self.log = None
        f.update(fields)
        self.attr = U.make_attr(**f)

    def buf(self, data):
        b = ctypes.create_string_buffer(bytes(data), max(len(data), 1))
        self.keep.append(b)
        return ctypes.addressof(b)

    def fd(self, proc):
        return proc.bpf(U.BPF_PROG_LOAD, self.attr)

    def run(self, proc):
        try:
            proc.close(self.fd(proc))
            return 0, ""
        except OSError as e:
            return e.errno, self.cause()

    def cause(self):
        if self.log is None:
            return ""
        lines = [ln for ln in self.log.value.decode().splitlines() if ln and not ln.startswith("processed ")]
        return lines[-1] if lines else ""


# -- the program type x expected_attach_type matrix (bpf_prog_load_check_attach) ------------------------------
def _attach_types():
    return sorted({getattr(U, n) for n in dir(U) if n.startswith("BPF_") and n.isupper() and
                   n[4:] in _ATTACH_NAMES})


_ATTACH_NAMES = frozenset(n[4:] for n in dir(U) if n.startswith("BPF_CGROUP_") or n.startswith("BPF_SK_") or
                          n.startswith("BPF_TRACE_") or n in ("BPF_FLOW_DISSECTOR", "BPF_LSM_MAC", "BPF_NETFILTER",
                                                               "BPF_XDP", "BPF_MODIFY_RETURN"))
EVERY = set(range(0, 61)) | {1000}   # every attach type of 6.18 (0..60) and one past them
# the attach types each type accepts without an attach target; every other is EINVAL
ACCEPTS = {
    "CGROUP_SKB": {U.BPF_CGROUP_INET_INGRESS, U.BPF_CGROUP_INET_EGRESS},
    "CGROUP_SOCK": {0, U.BPF_CGROUP_INET_SOCK_CREATE, U.BPF_CGROUP_INET_SOCK_RELEASE, U.BPF_CGROUP_INET4_POST_BIND,
                    U.BPF_CGROUP_INET6_POST_BIND},   # 0 is fixed up to INET_SOCK_CREATE
    "CGROUP_SOCKOPT": {U.BPF_CGROUP_GETSOCKOPT, U.BPF_CGROUP_SETSOCKOPT},
    "CGROUP_SOCK_ADDR": {U.BPF_CGROUP_INET4_BIND, U.BPF_CGROUP_INET6_BIND, U.BPF_CGROUP_INET4_CONNECT,
                         U.BPF_CGROUP_INET6_CONNECT, U.BPF_CGROUP_UDP4_SENDMSG, U.BPF_CGROUP_UDP6_SENDMSG,
                         U.BPF_CGROUP_UNIX_CONNECT, U.BPF_CGROUP_UNIX_SENDMSG},   # r0=0 is a bad retval for the rest
    "NETFILTER": {U.BPF_NETFILTER},
    "SK_LOOKUP": {U.BPF_SK_LOOKUP},
    "SK_REUSEPORT": {0, U.BPF_SK_REUSEPORT_SELECT, U.BPF_SK_REUSEPORT_SELECT_OR_MIGRATE},
}
ANY = ("CGROUP_DEVICE", "CGROUP_SYSCTL", "FLOW_DISSECTOR", "KPROBE", "LWT_IN", "LWT_OUT", "LWT_SEG6LOCAL",
       "LWT_XMIT", "PERF_EVENT", "RAW_TRACEPOINT", "RAW_TRACEPOINT_WRITABLE", "SCHED_ACT", "SCHED_CLS", "SK_MSG",
       "SK_SKB", "SOCKET_FILTER", "SOCK_OPS", "TRACEPOINT", "XDP")
# every attach type gives the same error: no attach target (where the kernel has no trampolines, EXT, LSM and
# TRACING's trampoline types are refused first: profile.trampolines)
ALWAYS = {"UNSPEC": errno.EINVAL, "LIRC_MODE2": errno.EINVAL, "SYSCALL": errno.EINVAL, "EXT": errno.EINVAL,
          "LSM": errno.EINVAL, "TRACING": errno.EINVAL, "STRUCT_OPS": ENOTSUPP}
TRAMPOLINES = {U.BPF_TRACE_FENTRY, U.BPF_TRACE_FEXIT, U.BPF_MODIFY_RETURN}


def _matrix_want(profile, name, eat):
    """The errno of a program of type ``name`` with expected_attach_type ``eat`` and no attach target on the
    kernel version of ``profile``: its program types, attach types and trampolines."""
    if not profile.knows_prog_type(getattr(U, "BPF_PROG_TYPE_" + name)):
        return errno.EINVAL
    if not profile.trampolines and (name in ("EXT", "LSM") or name == "TRACING" and eat in TRAMPOLINES):
        return errno.EPERM
    if name in ALWAYS:
        return ALWAYS[name]
    if name in ANY:
        return 0
    return 0 if eat in ACCEPTS[name] and profile.knows_attach_type(eat) else errno.EINVAL


PROG_TYPE_NAMES = sorted(n[len("BPF_PROG_TYPE_"):] for n in dir(U) if n.startswith("BPF_PROG_TYPE_"))


@pytest.mark.parametrize("name", PROG_TYPE_NAMES)
def test_prog_type_x_expected_attach_type(proc, profile, name):
    pt = getattr(U, "BPF_PROG_TYPE_" + name)
    wrong = []
    for eat in sorted(EVERY):
        e, _ = Load(prog_type=pt, expected_attach_type=eat, log=False).run(proc)
        if e != _matrix_want(profile, name, eat):
            wrong.append("%d: %s" % (eat, errno.errorcode.get(e, e)))
    assert not wrong, wrong


# -- prog_flags -------------------------------------------------------------------------------------------------
XDP = U.BPF_PROG_TYPE_XDP
# XDP: r2 = data, r3 = data_end; if data + 8 > data_end goto out; r0 = *(u32 *)(data + 1)
_MISALIGNED = [I.BPF_LDX_MEM(I.BPF_W, 2, 1, 0), I.BPF_LDX_MEM(I.BPF_W, 3, 1, 4), I.BPF_MOV64_REG(4, 2),
               I.BPF_ALU64_IMM(I.BPF_ADD, 4, 8), I.BPF_JMP_REG(I.BPF_JGT, 4, 3, 1), I.BPF_LDX_MEM(I.BPF_W, 0, 2, 1),
               I.BPF_MOV64_IMM(0, 0), I.BPF_EXIT_INSN()]

FLAGS = {
    "none": (dict(), 0, ""),
    "strict alignment": (dict(prog_flags=F_STRICT_ALIGNMENT), 0, ""),
    "any alignment": (dict(prog_flags=F_ANY_ALIGNMENT), 0, ""),
    "rnd hi32": (dict(prog_flags=F_TEST_RND_HI32), 0, ""),
    "state freq": (dict(prog_flags=F_TEST_STATE_FREQ), 0, ""),
    "reg invariants": (dict(prog_flags=F_TEST_REG_INVARIANTS), 0, ""),
    "sleepable socket filter": (dict(prog_flags=F_SLEEPABLE), errno.EINVAL, "sleepable_log"),
    "sleepable kprobe": (dict(prog_flags=F_SLEEPABLE, prog_type=U.BPF_PROG_TYPE_KPROBE), 0, ""),
    "syscall needs sleepable": (dict(prog_type=U.BPF_PROG_TYPE_SYSCALL), errno.EINVAL,
                                "Syscall programs can only be sleepable"),
    "sleepable syscall": (dict(prog_flags=F_SLEEPABLE, prog_type=U.BPF_PROG_TYPE_SYSCALL), 0, ""),
    "xdp frags on a socket filter": (dict(prog_flags=F_XDP_HAS_FRAGS), 0, ""),
    "xdp frags": (dict(prog_flags=F_XDP_HAS_FRAGS, prog_type=XDP), 0, ""),
    "dev bound only without a device": (dict(prog_flags=F_XDP_DEV_BOUND_ONLY, prog_type=XDP), 0, ""),
    "unknown bit 8": (dict(prog_flags=1 << 8), errno.EINVAL, ""),
    "unknown bit 15": (dict(prog_flags=1 << 15), errno.EINVAL, ""),
    "unknown bit 31": (dict(prog_flags=1 << 31), errno.EINVAL, ""),
    "misaligned packet read": (dict(prog_type=XDP, insns=_MISALIGNED), 0, ""),
    "misaligned packet read, strict": (dict(prog_type=XDP, insns=_MISALIGNED, prog_flags=F_STRICT_ALIGNMENT),
                                       errno.EACCES, "misaligned packet access off 2+%s+0+1 size 4"),
    "misaligned packet read, strict and any": (
        dict(prog_type=XDP, insns=_MISALIGNED, prog_flags=F_STRICT_ALIGNMENT | F_ANY_ALIGNMENT), 0, ""),
}


def _var_off_0(profile):
    """tnum_strn of a known 0 var_off on the kernel version (profile.tnum_strn)."""
    return "(0x0; 0x0)" if profile.tnum_strn == "pair" else "0"


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_prog_flags(proc, profile, name):
    """Each flag as the host (6.18) answers; a flag the kernel version does not know (profile.prog_flags:
    6.1 has no XDP_DEV_BOUND_ONLY nor TEST_REG_INVARIANTS) is EINVAL with an empty log, and the lines carry
    the version's wording (profile.sleepable_log, profile.tnum_strn)."""
    fields, want, why = FLAGS[name]
    fields = dict(fields)
    insns = fields.pop("insns", RET0)
    if fields.get("prog_flags", 0) & ~profile.prog_flags:
        want, why = errno.EINVAL, ""
    elif why == "sleepable_log":
        why = profile.sleepable_log
    elif "%s" in why:
        why = why % _var_off_0(profile)
    assert Load(insns, **fields).run(proc) == (want, why)


def test_a_token_fd_must_be_a_token(proc, profile):
    need_attr(profile, U.BPF_PROG_LOAD, "prog_load.prog_token_fd")
    assert Load(prog_flags=F_TOKEN_FD, prog_token_fd=999).run(proc)[0] == errno.EBADF
    m = array_map(proc)
    try:
        assert Load(prog_flags=F_TOKEN_FD, prog_token_fd=m).run(proc)[0] == errno.EINVAL
    finally:
        proc.close(m)
    # without BPF_F_TOKEN_FD the field is not looked at
    assert Load(prog_token_fd=999).run(proc) == (0, "")


def test_kern_version_is_not_checked(proc):
    assert Load(prog_type=U.BPF_PROG_TYPE_KPROBE, kern_version=0x12345678).run(proc) == (0, "")
    assert Load(kern_version=0xffffffff).run(proc) == (0, "")


@pytest.mark.parametrize("prog_type, ifindex, flags, want", [
    (SOCKET_FILTER, 1, 0, errno.EINVAL),        # only tc and xdp programs can be bound to a device
    (XDP, 1, 0, errno.EOPNOTSUPP),              # lo cannot offload programs
    (XDP, 1, F_XDP_DEV_BOUND_ONLY, errno.EOPNOTSUPP),
    (XDP, 1, F_XDP_HAS_FRAGS, errno.EINVAL),    # frags only with DEV_BOUND_ONLY
    (XDP, 1, F_STRICT_ALIGNMENT, errno.EINVAL),
    (U.BPF_PROG_TYPE_SCHED_CLS, 1, F_XDP_DEV_BOUND_ONLY, errno.EINVAL),
    (XDP, 0x7fff0000, 0, errno.EINVAL),         # no such device
])
def test_prog_ifindex(proc, profile, prog_type, ifindex, flags, want):
    if flags & ~profile.prog_flags:  # a flag the version does not know is EINVAL first
        want = errno.EINVAL
    assert Load(prog_type=prog_type, prog_ifindex=ifindex, prog_flags=flags).run(proc)[0] == want


# -- the license ------------------------------------------------------------------------------------------------
TRACE_PRINTK = [I.BPF_MOV64_REG(1, 10), I.BPF_ALU64_IMM(I.BPF_ADD, 1, -8), I.BPF_ST_MEM(I.BPF_DW, 10, -8, 0),
                I.BPF_MOV64_IMM(2, 8), I.BPF_EMIT_CALL(U.BPF_FUNC_trace_printk)] + RET0


@pytest.mark.parametrize("license, gpl", [
    (b"GPL", True), (b"GPL v2", True), (b"GPL and additional rights", True), (b"Dual BSD/GPL", True),
    (b"Dual MIT/GPL", True), (b"Dual MPL/GPL", True), (b"gpl", False), (b"GPLv2", False), (b"GPL ", False),
    (b"Proprietary", False), (b"", False), (b"G" * 200, False),
])
def test_license(proc, license, gpl):
    assert Load(license=license).run(proc) == (0, "")
    want = (0, "") if gpl else (errno.EINVAL, "cannot call GPL-restricted function from non-GPL compatible program")
    assert Load(TRACE_PRINTK, license=license).run(proc) == want


def test_a_license_is_read_up_to_127_bytes(proc):
    # the kernel copies at most 127 bytes: "GPL" followed by garbage past them is still not "GPL"
    assert Load(TRACE_PRINTK, license=b"GPL" + b"\0" * 200).run(proc) == (0, "")


def test_an_unreadable_license_is_EFAULT(proc):
    assert Load(license=None).run(proc)[0] == errno.EFAULT


def test_the_gpl_flag_in_info(proc):
    from bpfemu import Program
    for lic, flag in (("GPL", True), ("MIT", False)):
        with Program.load(proc, RET0, "socket_filter", license=lic) as p:
            assert p.info().gpl_compatible is flag


# -- attach targets ---------------------------------------------------------------------------------------------
TRACING = U.BPF_PROG_TYPE_TRACING


@pytest.mark.parametrize("fields, want, why", [
    (dict(attach_btf_id=5), errno.EINVAL, ""),                          # a type that takes no BTF target
    (dict(prog_type=TRACING, expected_attach_type=U.BPF_TRACE_RAW_TP, attach_btf_id=0x100000), errno.EINVAL, ""),
    (dict(prog_type=TRACING, expected_attach_type=U.BPF_TRACE_RAW_TP, attach_btf_id=1), errno.EINVAL,
     "attach_btf_id 1 is not a typedef"),
    (dict(prog_type=TRACING, expected_attach_type=U.BPF_TRACE_RAW_TP), errno.EINVAL,
     "Tracing programs must provide btf_id"),
    (dict(prog_type=TRACING, expected_attach_type=U.BPF_TRACE_RAW_TP, attach_btf_id=1, attach_prog_fd=999),
     errno.EINVAL, ""),
    (dict(attach_prog_fd=999), errno.EINVAL, ""),
    (dict(prog_type=TRACING, expected_attach_type=U.BPF_TRACE_ITER), errno.EINVAL,
     "Tracing programs must provide btf_id"),
])
def test_attach_target_fields(proc, fields, want, why):
    assert Load(**fields).run(proc) == (want, why)


def test_attach_fds_of_the_wrong_kind(proc, profile):
    m = array_map(proc)
    try:
        # attach_btf_obj_fd (the same field as attach_prog_fd) that is neither a program nor a BTF
        assert Load(prog_type=TRACING, expected_attach_type=U.BPF_TRACE_RAW_TP, attach_btf_obj_fd=m,
                    attach_btf_id=1).run(proc)[0] == errno.EINVAL
        # fentry needs a trampoline: the reference host refuses that first (profile.trampolines); elsewhere
        # attach_prog_fd is neither a program nor a BTF
        assert Load(prog_type=TRACING, expected_attach_type=U.BPF_TRACE_FENTRY, attach_prog_fd=m,
                    attach_btf_id=1).run(proc)[0] == (errno.EINVAL if profile.trampolines else errno.EPERM)
    finally:
        proc.close(m)


def test_a_raw_tracepoint_target_from_the_kernel_btf(proc):
    from bpfemu import hostenv
    if not hostenv.is_linux():
        pytest.skip("needs the kernel BTF: %s" % hostenv.not_linux_reason())
    from bpfemu.btf import uapi as B
    b = kernel_btf(proc)  # the ids of the kernel the task runs on
    tid = b.find_by_name_kind("btf_trace_sched_switch", B.BTF_KIND_TYPEDEF)
    assert Load(prog_type=TRACING, expected_attach_type=U.BPF_TRACE_RAW_TP, attach_btf_id=tid).run(proc) == (0, "")
    fid = b.find_by_name_kind("sched_switch", B.BTF_KIND_FUNC)
    if fid and fid > 0:
        assert Load(prog_type=TRACING, expected_attach_type=U.BPF_TRACE_RAW_TP,
                    attach_btf_id=fid).run(proc) == (errno.EINVAL, "attach_btf_id %d is not a typedef" % fid)


# -- fd_array, fd_array_cnt and the ld_imm64 forms --------------------------------------------------------------
def LD_IMM64(dst, src, lo, hi=0):
    return [I.BPF_RAW_INSN(0x18, dst, src, 0, lo), I.BPF_RAW_INSN(0, 0, 0, 0, hi)]


def _fd_array(*fds):
    arr = (ctypes.c_int * max(len(fds), 1))(*fds)
    return arr, ctypes.addressof(arr)


def _nr_maps(proc, fd):
    info = U.bpf_prog_info()
    proc.bpf(U.BPF_OBJ_GET_INFO_BY_FD, U.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(info),
                                                       "info.info": ctypes.addressof(info)}))
    return info.nr_map_ids


def test_map_by_index_needs_fd_array(proc):
    assert Load(LD_IMM64(1, I.BPF_PSEUDO_MAP_IDX, 0) + RET0).run(proc) == \
        (errno.EPROTO, "fd_idx without fd_array is invalid")
    arr, a = _fd_array(999, 998)
    assert Load(LD_IMM64(1, I.BPF_PSEUDO_MAP_IDX, 0) + RET0, fd_array=a).run(proc) == \
        (errno.EBADF, "fd 999 is not pointing to valid bpf_map")
    assert Load(LD_IMM64(1, I.BPF_PSEUDO_MAP_IDX, 0) + RET0, fd_array=8).run(proc)[0] == errno.EFAULT


def test_map_and_map_value_by_index(proc):
    m = array_map(proc, value_size=8, max_entries=1)
    m2 = array_map(proc, value_size=8, max_entries=2)
    try:
        arr2, a2 = _fd_array(m2)
        # direct value access needs a single-element array (ENOTSUPP), within the value (EINVAL)
        assert Load(LD_IMM64(1, I.BPF_PSEUDO_MAP_IDX_VALUE, 0, 4) + RET0, fd_array=a2).run(proc) == \
            (ENOTSUPP, "invalid access to map value pointer, value_size=8 off=4")
        arr, a = _fd_array(999, m)
        assert Load(LD_IMM64(1, I.BPF_PSEUDO_MAP_IDX, 1) + RET0, fd_array=a).run(proc) == (0, "")
        assert Load(LD_IMM64(1, I.BPF_PSEUDO_MAP_IDX_VALUE, 1, 4) + [I.BPF_LDX_MEM(I.BPF_W, 0, 1, 0),
                                                                       I.BPF_EXIT_INSN()],
                    fd_array=a).run(proc) == (0, "")
        assert Load(LD_IMM64(1, I.BPF_PSEUDO_MAP_IDX_VALUE, 1, 8) + RET0, fd_array=a).run(proc) == \
            (errno.EINVAL, "invalid access to map value pointer, value_size=8 off=8")
    finally:
        proc.close(m)
        proc.close(m2)


def test_fd_array_cnt_takes_every_map_of_the_array(proc, profile):
    need_attr(profile, U.BPF_PROG_LOAD, "prog_load.fd_array_cnt")
    m1, m2 = array_map(proc), array_map(proc)
    try:
        for fds, want in (((m1, m2), 2), ((m1, m1), 1)):
            arr, a = _fd_array(*fds)
            fd = Load(fd_array=a, fd_array_cnt=len(fds)).fd(proc)
            try:
                assert _nr_maps(proc, fd) == want
            finally:
                proc.close(fd)
        b = btf_load(proc, Builder().int("int", 4, signed=True).blob())
        arr, a = _fd_array(m1, b)   # a BTF fd is taken too (a module BTF for kfuncs)
        proc.close(Load(fd_array=a, fd_array_cnt=2).fd(proc))
        proc.close(b)
        arr, a = _fd_array(m1, 999)
        assert Load(fd_array=a, fd_array_cnt=2).run(proc) == (errno.EBADF, "fd 999 is not pointing to valid bpf_map "
                                                                         "or btf")
        assert Load(fd_array_cnt=2).run(proc)[0] == errno.EFAULT
    finally:
        proc.close(m1)
        proc.close(m2)


def _not_a_ksym(profile, tid):
    """The line for an ld_imm64 of a kernel BTF id that is no variable (nor, where allowed, function)."""
    if profile.ksym_funcs:
        return "pseudo btf_id %d in ldimm64 isn't KIND_VAR or KIND_FUNC" % tid
    return "pseudo btf_id %d in ldimm64 isn't KIND_VAR." % tid


@pytest.mark.parametrize("insns, want, why", [
    (LD_IMM64(1, 7, 3) + RET0, errno.EINVAL, "unrecognized bpf_ld_imm64 insn"),
    (LD_IMM64(1, I.BPF_PSEUDO_BTF_ID, 0x7ffffff) + RET0, errno.ENOENT,
     "ldimm64 insn specifies invalid btf_id 134217727."),
    (LD_IMM64(1, I.BPF_PSEUDO_BTF_ID, 1) + RET0, errno.EINVAL, "not_a_ksym"),
    (LD_IMM64(1, I.BPF_PSEUDO_BTF_ID, 1, 999) + RET0, errno.EINVAL, "invalid module BTF object FD specified."),
    (LD_IMM64(1, I.BPF_PSEUDO_FUNC, 3) + RET0 + RET0, errno.EINVAL, "missing btf func_info"),
    ([I.BPF_RAW_INSN(0x18, 1, 0, 0, 0), I.BPF_RAW_INSN(0, 1, 0, 0, 0)] + RET0, errno.EINVAL,
     "invalid bpf_ld_imm64 insn"),
    ([I.BPF_RAW_INSN(0x18, 1, 0, 0, 0)], errno.EINVAL, "last insn is not an exit or jmp"),
])
def test_ld_imm64_pseudo_forms(proc, profile, insns, want, why):
    if why == "not_a_ksym":
        why = _not_a_ksym(profile, insns[0][4])
    assert Load(insns).run(proc) == (want, why)


def test_ld_imm64_of_a_map_fd_with_a_nonzero_upper_half(proc):
    m = array_map(proc)
    try:
        assert Load(LD_IMM64(1, I.BPF_PSEUDO_MAP_FD, m, 5) + RET0).run(proc) == \
            (errno.EINVAL, "unrecognized bpf_ld_imm64 insn")
        assert Load(LD_IMM64(1, I.BPF_PSEUDO_MAP_FD, m) + RET0).run(proc) == (0, "")
    finally:
        proc.close(m)


def test_ld_imm64_of_a_kernel_function(proc, profile):
    from bpfemu import hostenv
    if not hostenv.is_linux():
        pytest.skip("needs the kernel BTF: %s" % hostenv.not_linux_reason())
    from bpfemu.btf import uapi as B
    fid = kernel_btf(proc).find_by_name_kind("bpf_prog_put", B.BTF_KIND_FUNC)
    kp = U.BPF_PROG_TYPE_KPROBE
    if not profile.ksym_funcs:  # 6.1: a kernel function is no ksym
        assert Load(LD_IMM64(1, I.BPF_PSEUDO_BTF_ID, fid) + RET0, prog_type=kp).run(proc) == \
            (errno.EINVAL, _not_a_ksym(profile, fid))
        return
    # read-only memory of no size: it may be held, not read
    assert Load(LD_IMM64(1, I.BPF_PSEUDO_BTF_ID, fid) + RET0, prog_type=kp).run(proc) == (0, "")
    assert Load(LD_IMM64(1, I.BPF_PSEUDO_BTF_ID, fid) + [I.BPF_LDX_MEM(I.BPF_B, 0, 1, 0)] + RET0,
                prog_type=kp).run(proc) == (errno.EACCES, "R1 min value is outside of the allowed memory range")


# -- instruction counts -----------------------------------------------------------------------------------------
def test_a_privileged_program_may_be_longer_than_4096_instructions(proc):
    assert Load([I.BPF_MOV64_IMM(0, 0)] * 4096 + [I.BPF_EXIT_INSN()], log=False).run(proc) == (0, "")


def _unprivileged(backend, proc):
    from .corpus.runner import host_unprivileged_bpf_disabled, unprivileged_task
    if backend.name == "host":
        if host_unprivileged_bpf_disabled() != 0:
            pytest.skip("the host's kernel.unprivileged_bpf_disabled is not 0")
        import bpfemu
        return unprivileged_task(bpfemu.Host())
    backend.kernel.sysctl["kernel.unprivileged_bpf_disabled"] = 0
    return unprivileged_task(proc)


def test_an_unprivileged_program_has_at_most_4096_instructions(backend, proc):
    task = _unprivileged(backend, proc)
    try:
        assert Load([I.BPF_MOV64_IMM(0, 0)] * 4095 + [I.BPF_EXIT_INSN()], log=False).run(task) == (0, "")
        assert Load([I.BPF_MOV64_IMM(0, 0)] * 4096 + [I.BPF_EXIT_INSN()], log=False).run(task)[0] == errno.E2BIG
    finally:
        task.exit()


# -- the attr's size: PROG_LOAD's fields run to the end of 6.18's union (keyring_id, byte 168) ------------------
def test_the_attr_size_and_tail_rules(proc, profile):
    ld = Load(log=False)
    raw = bytes(ld.attr)
    assert len(raw) == U.ATTR_SIZE == U.offsetofend("keyring_id", type(U.bpf_attr().prog_load))
    # a longer attr with a zero tail loads; a nonzero byte past the union is E2BIG, before anything is read
    proc.close(proc.bpf(U.BPF_PROG_LOAD, bytearray(raw) + bytes(8), len(raw) + 8))
    for at in (len(raw), len(raw) + 7):
        b = bytearray(raw) + bytes(8)
        b[at] = 1
        with pytest.raises(OSError) as e:
            proc.bpf(U.BPF_PROG_LOAD, b, len(b))
        assert e.value.errno == errno.E2BIG
    # a short attr reads as zero-filled: cut before fd_array the load is the same
    short = U.offsetofend("log_true_size", type(U.bpf_attr().prog_load))
    proc.close(proc.bpf(U.BPF_PROG_LOAD, bytearray(raw[:short]), short))
    # cut before insn_cnt: no instructions (E2BIG on 6.18), nor a license (EFAULT first where the license is
    # copied in first: profile.license_first, 6.1)
    with pytest.raises(OSError) as e:
        proc.bpf(U.BPF_PROG_LOAD, bytearray(raw[:4]), 4)
    assert e.value.errno == (errno.EFAULT if profile.license_first else errno.E2BIG)


# -- a signature, the statistics log -----------------------------------------------------------------------------
def test_a_signature_the_kernel_cannot_verify(proc, profile):
    need_attr(profile, U.BPF_PROG_LOAD, "prog_load.signature")
    ld = Load()
    sig = ld.buf(b"x" * 64)
    assert Load(signature=sig, signature_size=64).run(proc)[0] == errno.EOPNOTSUPP
    # checked after the license is copied, before the type and the name
    assert Load(signature=sig, signature_size=64, license=None).run(proc)[0] == errno.EFAULT
    assert Load(signature=sig, signature_size=64, prog_type=999).run(proc)[0] == errno.EOPNOTSUPP
    assert Load(signature=sig, signature_size=64, prog_type=XDP, prog_ifindex=0x7fff0000).run(proc)[0] == \
        errno.EOPNOTSUPP
    assert Load(signature=8, signature_size=64).run(proc)[0] == errno.ENOMEM
    # a size or a keyring without a signature is not looked at
    assert Load(signature_size=64, keyring_id=5).run(proc) == (0, "")


def test_the_statistics_log(proc):
    ld = Load(log=False, log_level=4, log_size=4096)
    buf = ctypes.create_string_buffer(4096)
    ld.attr.prog_load.log_buf = ctypes.addressof(buf)
    proc.close(ld.fd(proc))
    assert re.fullmatch(r"verification time \d+ usec\nstack depth 0\nprocessed 2 insns \(limit 1000000\) "
                        r"max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n", buf.value.decode())


# -- the program as an object -----------------------------------------------------------------------------------
def test_a_program_holds_the_maps_it_uses(proc):
    m = array_map(proc)
    mid = map_id(proc, m)
    fd = Load(LD_IMM64(1, I.BPF_PSEUDO_MAP_FD, m) + RET0).fd(proc)
    proc.close(m)
    try:
        # the map lives on with the program: its id still opens it
        m2 = proc.bpf(U.BPF_MAP_GET_FD_BY_ID, U.make_attr(map_id=mid))
        proc.close(m2)
    finally:
        proc.close(fd)


def test_a_program_array_takes_the_type_of_its_first_program(proc):
    pa = create_map(proc, U.BPF_MAP_TYPE_PROG_ARRAY, key_size=4, value_size=4, max_entries=2)
    xdp = Load(prog_type=XDP).fd(proc)
    sf = Load().fd(proc)
    try:
        update(proc, pa, (0).to_bytes(4, "little"), xdp.to_bytes(4, "little"))
        with pytest.raises(OSError) as ei:
            update(proc, pa, (1).to_bytes(4, "little"), sf.to_bytes(4, "little"))
        assert ei.value.errno == errno.EINVAL
        # a program that tail-calls through the array must be of the owner's type too
        tail = [I.BPF_MOV64_IMM(3, 0)] + LD_IMM64(2, I.BPF_PSEUDO_MAP_FD, pa) + [
            I.BPF_EMIT_CALL(U.BPF_FUNC_tail_call)] + RET0
        assert Load(tail, prog_type=XDP).run(proc) == (0, "")
        assert Load(tail).run(proc)[0] == errno.EINVAL
    finally:
        for fd in (xdp, sf, pa):
            proc.close(fd)


@pytest.mark.parametrize("n", [2, 500, 501, 503, 504, 1012, 1013, 1015, 1016])
def test_memlock_of_a_program(proc, profile, n):
    """fdinfo's memlock: offsetof(struct bpf_prog, insns) (96 bytes on 6.18, 72 on 6.12 and 6.1) and 8 bytes
    an instruction, in pages."""
    memlock = (profile.size("bpf_prog") + 8 * n + 4095) // 4096 * 4096
    fd = Load([I.BPF_MOV64_IMM(0, 0)] * (n - 1) + [I.BPF_EXIT_INSN()], log=False).fd(proc)
    try:
        assert fdinfo_value(proc, fd, "memlock") == str(memlock)
    finally:
        proc.close(fd)
