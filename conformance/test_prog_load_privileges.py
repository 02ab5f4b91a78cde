"""BPF_PROG_LOAD and capabilities, on both backends (tasks with a chosen set of capabilities; on the host a
child that called capset): kernel.unprivileged_bpf_disabled, which program types need CAP_BPF, CAP_NET_ADMIN
or CAP_PERFMON (CAP_SYS_ADMIN stands in for all three), and the restrictions a program loaded without
CAP_PERFMON gets (no pointer leaks, Spectre v1 rules).
"""
import errno

import pytest

from bpfemu import uapi as U
from bpfemu.host.sysinfo import host_unprivileged_bpf_disabled
from bpfemu.prog import insn as I

RET0 = [I.BPF_MOV64_IMM(0, 0), I.BPF_EXIT_INSN()]
CREDS = {
    "uid0-nocaps": (),
    "CAP_BPF": ("CAP_BPF",),
    "CAP_PERFMON": ("CAP_PERFMON",),
    "CAP_NET_ADMIN": ("CAP_NET_ADMIN",),
    "CAP_BPF+PERFMON": ("CAP_BPF", "CAP_PERFMON"),
    "CAP_BPF+NET_ADMIN": ("CAP_BPF", "CAP_NET_ADMIN"),
    "CAP_SYS_ADMIN": ("CAP_SYS_ADMIN",),
}
# type: (the capability it needs besides CAP_BPF, expected_attach_type, prog_flags)
TYPES = {
    "socket_filter": (None, 0, 0), "cgroup_skb": (None, U.BPF_CGROUP_INET_INGRESS, 0),
    "xdp": ("CAP_NET_ADMIN", 0, 0), "sched_cls": ("CAP_NET_ADMIN", 0, 0), "sk_lookup": ("CAP_BPF", U.BPF_SK_LOOKUP, 0),
    "cgroup_sock": ("CAP_NET_ADMIN", 0, 0),
    "kprobe": ("CAP_PERFMON", 0, 0), "tracepoint": ("CAP_PERFMON", 0, 0), "perf_event": ("CAP_PERFMON", 0, 0),
    "raw_tracepoint": ("CAP_PERFMON", 0, 0), "syscall": ("CAP_BPF", 0, 1 << 4),
}


def expected(caps, prog_type):
    caps = set(caps)
    admin = "CAP_SYS_ADMIN" in caps
    bpf = "CAP_BPF" in caps or admin
    if not bpf and host_unprivileged_bpf_disabled():
        return errno.EPERM
    need = TYPES[prog_type][0]
    if need is not None and not bpf:
        return errno.EPERM
    if need not in (None, "CAP_BPF") and not (need in caps or admin):
        return errno.EPERM
    return 0


def _load(task, insns, prog_type, eat=0, flags=0):
    from bpfemu import Program
    try:
        Program.load(task, insns, prog_type, expected_attach_type=eat, prog_flags=flags, log_level=1,
                     log_size=1 << 14).close()
        return 0, ""
    except OSError as e:
        lines = [ln for ln in (getattr(e, "log", "") or "").splitlines() if ln and not ln.startswith("processed ")]
        return e.errno, lines[-1] if lines else ""


@pytest.mark.parametrize("cred", sorted(CREDS))
def test_which_capabilities_a_program_type_needs(backend, cred):
    t = backend.spawn(uid=0, caps=CREDS[cred])
    try:
        got = {pt: _load(t, RET0, pt, *TYPES[pt][1:])[0] for pt in TYPES}
    finally:
        t.exit()
    assert got == {pt: expected(CREDS[cred], pt) for pt in TYPES}


# r0 = r10 (the frame pointer) returned: a pointer leak
LEAK = [I.BPF_MOV64_REG(0, 10), I.BPF_EXIT_INSN()]


@pytest.mark.parametrize("cred, want", [
    ("CAP_BPF", (errno.EACCES, "R0 leaks addr as return value")),
    ("CAP_BPF+PERFMON", (0, "")),
    ("CAP_SYS_ADMIN", (0, "")),
])
def test_without_perfmon_a_pointer_may_not_leak(backend, cred, want):
    t = backend.spawn(uid=0, caps=CREDS[cred])
    try:
        assert _load(t, LEAK, "socket_filter") == want
    finally:
        t.exit()


def test_without_perfmon_variable_stack_access_gets_a_barrier(backend):
    # fp plus a bounded unknown offset: 6.17+ no longer refuses it to a CAP_BPF-only loader (a nospec barrier
    # goes where the speculative path would be unsafe)
    prog = [I.BPF_ST_MEM(I.BPF_DW, 10, -8, 0), I.BPF_LDX_MEM(I.BPF_B, 1, 10, -8), I.BPF_ALU64_IMM(I.BPF_AND, 1, 7),
            I.BPF_MOV64_REG(2, 10), I.BPF_ALU64_IMM(I.BPF_ADD, 2, -8), I.BPF_ALU64_REG(I.BPF_ADD, 2, 1),
            I.BPF_LDX_MEM(I.BPF_B, 0, 2, 0), I.BPF_MOV64_IMM(0, 0), I.BPF_EXIT_INSN()]
    got = {}
    for cred in ("CAP_BPF", "CAP_BPF+PERFMON"):
        t = backend.spawn(uid=0, caps=CREDS[cred])
        try:
            got[cred] = _load(t, prog, "socket_filter")
        finally:
            t.exit()
    assert got == {"CAP_BPF": (0, ""), "CAP_BPF+PERFMON": (0, "")}
