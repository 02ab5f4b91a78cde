"""kfunc calls (BPF_PSEUDO_KFUNC_CALL) on both backends: which program types may call which kfunc, and what
the verifier says of calls to the common ones.

The availability test asks each backend, for every kfunc of ``bpfemu.prog.kfuncs`` and every program type
that loads here, whether a call is allowed ("calling kernel function %s is not allowed" is the refusal),
and compares with the emulator's table: on the host it checks the table, on the emulator the verifier.
The kfunc ids are the kernel BTF's (the host's /sys/kernel/btf/vmlinux, which the emulator uses too).
"""
import errno

import pytest

from bpfemu import BpfError, Program
from bpfemu import hostenv, profiles, uapi as U
from bpfemu.btf import uapi as B
from bpfemu.prog import insn as I
from bpfemu.prog.kfuncs import DEV_BOUND_KFUNCS, KFUNC_SETS, kfunc_flags, known_kfuncs
from bpfemu.testing.support import need_prog_type

F_SLEEPABLE = 1 << 4
LOG_SIZE = 16384


def _kernel_btf():
    if not hostenv.is_linux():
        pytest.skip("kfunc ids come from the kernel BTF: %s" % hostenv.not_linux_reason())
    from bpfemu.btf.vmlinux import vmlinux_btf
    b = vmlinux_btf(fallback=False)
    if b is None:
        pytest.skip("no kernel BTF on this machine")
    return b


_IDS = {}


@pytest.fixture(autouse=True)
def _ids_are_the_hosts(request):
    """The kfunc ids are the host's BTF's and the kfunc table (bpfemu.prog.kfuncs) is its version's: a real
    kernel of another version (a VM) has other ids and other kfunc sets, which no profile models."""
    if "proc" not in request.fixturenames and "backend" not in request.fixturenames:
        return
    b = request.getfixturevalue("backend")
    if b.name != "emu" and b.profile.version != (profiles.host_version() or b.profile.version):
        pytest.skip("the kfunc ids and sets are the host's %s; the real kernel is %s (its BTF and kfunc sets "
                    "are not modelled)" % (profiles.host_version(), b.profile.version))


def kfunc_id(name):
    if name in _IDS:
        return _IDS[name]
    b = _kernel_btf()
    tid = b.find_by_name_kind(name, B.BTF_KIND_FUNC)
    if tid is None or tid < 0:
        pytest.skip("%s is not in this kernel's BTF" % name)
    _IDS[name] = tid
    return tid


def KCALL(name):
    return I.BPF_RAW_INSN(I.BPF_JMP | I.BPF_CALL, 0, I.BPF_PSEUDO_KFUNC_CALL, 0, kfunc_id(name))


RET0 = [I.BPF_MOV64_IMM(0, 0), I.BPF_EXIT_INSN()]
# the program types that load with a plain program here, with what they need
TYPES = {
    "socket_filter": {}, "kprobe": {}, "sched_cls": {}, "sched_act": {}, "tracepoint": {}, "xdp": {},
    "perf_event": {}, "cgroup_skb": {}, "cgroup_sock": {}, "lwt_in": {}, "lwt_out": {}, "lwt_xmit": {},
    "sock_ops": {}, "sk_skb": {}, "cgroup_device": {}, "sk_msg": {}, "raw_tracepoint": {},
    "cgroup_sock_addr": {"expected_attach_type": U.BPF_CGROUP_INET4_CONNECT}, "lwt_seg6local": {},
    "sk_reuseport": {}, "flow_dissector": {}, "cgroup_sysctl": {}, "raw_tracepoint_writable": {},
    "cgroup_sockopt": {"expected_attach_type": U.BPF_CGROUP_SETSOCKOPT},
    "tracing": {"expected_attach_type": U.BPF_TRACE_RAW_TP, "attach_btf": "btf_trace_sched_switch"},
    "sk_lookup": {"expected_attach_type": U.BPF_SK_LOOKUP},
    "syscall": {"prog_flags": F_SLEEPABLE},
    "netfilter": {"expected_attach_type": U.BPF_NETFILTER},
}


def load(proc, insns, prog_type="sched_cls"):
    """(errno or 0, verifier log) of loading ``insns``."""
    fields = dict(TYPES.get(prog_type, {}))
    attach = fields.pop("attach_btf", None)
    if attach:
        fields["attach_btf_id"] = _kernel_btf().find_by_name_kind(attach, B.BTF_KIND_TYPEDEF)
    try:
        Program.load(proc, insns, prog_type, log_level=1, log_size=LOG_SIZE, **fields).close()
        return 0, ""
    except BpfError as e:
        return e.errno, e.log


def cause(log):
    lines = [ln for ln in log.splitlines() if ln and not ln.startswith("processed ")]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("prog_type", sorted(TYPES))
def test_which_kfuncs_a_program_type_may_call(proc, profile, prog_type):
    _kernel_btf()
    ptype = getattr(U, "BPF_PROG_TYPE_" + prog_type.upper())
    need_prog_type(profile, ptype)
    wrong = []
    for name in known_kfuncs():
        if name in DEV_BOUND_KFUNCS:
            continue
        prog = [I.BPF_MOV64_IMM(r, 0) for r in range(1, 6)] + [KCALL(name)] + RET0
        e, log = load(proc, prog, prog_type)
        refused = e == errno.EACCES and "calling kernel function %s is not allowed" % name in log
        if refused != (kfunc_flags(name, ptype) is None):
            wrong.append("%s: %s" % (name, "refused" if refused else "allowed (%s)" % cause(log)))
    assert not wrong, "%s: %s" % (prog_type, "; ".join(wrong))


def test_every_modelled_kfunc_is_a_kfunc_of_the_kernel_btf():
    b = _kernel_btf()
    tagged = set()
    for tid in b.ids():
        t = b.type_by_id(tid)
        if t.kind == B.BTF_KIND_DECL_TAG and b.name(t) == "bpf_kfunc":
            tagged.add(b.name(t.type))
    assert set(known_kfuncs()) <= tagged, sorted(set(known_kfuncs()) - tagged)
    assert KFUNC_SETS["common"]["bpf_cast_to_kern_ctx"]


def test_device_bound_metadata_kfuncs_need_a_device(proc):
    e, log = load(proc, [I.BPF_MOV64_IMM(1, 0), KCALL("bpf_xdp_metadata_rx_hash")] + RET0, "xdp")
    assert (e, cause(log)) == (errno.EINVAL, "metadata kfuncs require device-bound program")


def _fp(reg, off):
    return [I.BPF_MOV64_REG(reg, I.BPF_REG_10), I.BPF_ALU64_IMM(I.BPF_ADD, reg, off)]


def _iter_loop(body_load=True, destroy=True):
    prog = _fp(1, -8) + [I.BPF_MOV64_IMM(2, 0), I.BPF_MOV64_IMM(3, 10), KCALL("bpf_iter_num_new")]
    prog += _fp(1, -8) + [KCALL("bpf_iter_num_next"), I.BPF_JMP_IMM(I.BPF_JEQ, 0, 0, 2),
                          I.BPF_LDX_MEM(I.BPF_W, 2, 0, 0) if body_load else I.BPF_MOV64_IMM(2, 0),
                          I.BPF_JMP_IMM(I.BPF_JA, 0, 0, -6)]
    if destroy:
        prog += _fp(1, -8) + [KCALL("bpf_iter_num_destroy")]
    return prog + RET0


def _cases():
    return {
        # bpf_cast_to_kern_ctx gives the kernel's context struct, trusted; a read walks it
        "cast_to_kern_ctx": ([KCALL("bpf_cast_to_kern_ctx"), I.BPF_LDX_MEM(I.BPF_W, 0, 0, 0)] + RET0, "sched_cls",
                             errno.EACCES, "cannot access ptr member next with moff 0 in struct (anon) with off 0 size 4"),
        "cast_to_kern_ctx_ok": ([KCALL("bpf_cast_to_kern_ctx"), I.BPF_LDX_MEM(I.BPF_W, 0, 0, 0x70)] + RET0, "sched_cls",
                                0, ""),
        "cast_needs_ctx": ([I.BPF_MOV64_REG(1, 10), KCALL("bpf_cast_to_kern_ctx")] + RET0, "xdp",
                           errno.EINVAL, "arg#0 expected pointer to ctx, but got fp"),
        "rcu_lock_unlock": ([KCALL("bpf_rcu_read_lock"), KCALL("bpf_rcu_read_unlock")] + RET0, "sched_cls", 0, ""),
        "rcu_nested": ([KCALL("bpf_rcu_read_lock"), KCALL("bpf_rcu_read_lock")] + RET0, "sched_cls",
                       errno.EINVAL, "nested rcu read lock (kernel function bpf_rcu_read_lock)"),
        "rcu_unmatched": ([KCALL("bpf_rcu_read_unlock")] + RET0, "xdp",
                          errno.EINVAL, "unmatched rcu read unlock (kernel function bpf_rcu_read_unlock)"),
        "rcu_exit_inside": ([KCALL("bpf_rcu_read_lock")] + RET0, "xdp",
                            errno.EINVAL, "BPF_EXIT instruction in main prog cannot be used inside bpf_rcu_read_lock-ed "
                                          "region"),
        "preempt": ([KCALL("bpf_preempt_disable"), KCALL("bpf_preempt_enable")] + RET0, "xdp", 0, ""),
        "preempt_unmatched": ([KCALL("bpf_preempt_enable")] + RET0, "xdp", errno.EINVAL,
                              "unmatched attempt to enable preemption (kernel function bpf_preempt_enable)"),
        "preempt_helper_call": ([KCALL("bpf_preempt_disable"), I.BPF_EMIT_CALL(U.BPF_FUNC_ktime_get_ns),
                                 KCALL("bpf_preempt_enable")] + RET0, "xdp", 0, ""),
        "iter_num_loop": (_iter_loop(), "sched_cls", 0, ""),
        "iter_num_leak": (_iter_loop(destroy=False), "sched_cls", errno.EINVAL,
                          "BPF_EXIT instruction in main prog would lead to reference leak"),
        "iter_num_uninit_next": (_fp(1, -8) + [KCALL("bpf_iter_num_next")] + RET0, "sched_cls", errno.EINVAL,
                                 "expected an initialized iter_num as arg #0"),
        "iter_num_twice": (_fp(1, -8) + [I.BPF_MOV64_IMM(2, 0), I.BPF_MOV64_IMM(3, 10), KCALL("bpf_iter_num_new")] +
                           _fp(1, -8) + [I.BPF_MOV64_IMM(2, 0), I.BPF_MOV64_IMM(3, 10), KCALL("bpf_iter_num_new")] + RET0,
                           "sched_cls", errno.EINVAL, "expected uninitialized iter_num as arg #0"),
        "iter_num_not_stack": ([I.BPF_MOV64_IMM(2, 0), I.BPF_MOV64_IMM(3, 10), KCALL("bpf_iter_num_new")] + RET0, "xdp",
                               errno.EINVAL, "arg#0 expected pointer to an iterator on stack"),
        "iter_num_misaligned": (_fp(1, -12) + [I.BPF_MOV64_IMM(2, 0), I.BPF_MOV64_IMM(3, 10), KCALL("bpf_iter_num_new")]
                                + RET0, "xdp", errno.EINVAL, "expected uninitialized iter_num as arg #0"),
        "rdonly_cast_struct": ([I.BPF_MOV64_IMM(2, _struct_id("task_struct")), KCALL("bpf_rdonly_cast"),
                                I.BPF_LDX_MEM(I.BPF_W, 0, 0, 0)] + RET0, "sched_cls", 0, ""),
        "rdonly_cast_int": ([I.BPF_MOV64_IMM(2, 1), KCALL("bpf_rdonly_cast")] + RET0, "sched_cls", errno.EINVAL,
                            "kfunc bpf_rdonly_cast type ID argument must be of a struct or void"),
        "rdonly_cast_not_const": ([I.BPF_MOV64_REG(2, 1), KCALL("bpf_rdonly_cast")] + RET0, "sched_cls", errno.EINVAL,
                                  "R2 is not a scalar"),
        "task_from_pid_released": ([I.BPF_MOV64_IMM(1, 1), KCALL("bpf_task_from_pid"), I.BPF_JMP_IMM(I.BPF_JEQ, 0, 0, 2),
                                    I.BPF_MOV64_REG(1, 0), KCALL("bpf_task_release")] + RET0, "tracepoint", 0, ""),
        "task_from_pid_leak": ([I.BPF_MOV64_IMM(1, 1), KCALL("bpf_task_from_pid")] + RET0, "tracepoint", errno.EINVAL,
                               "BPF_EXIT instruction in main prog would lead to reference leak"),
        "task_release_unchecked": ([I.BPF_MOV64_IMM(1, 1), KCALL("bpf_task_from_pid"), I.BPF_MOV64_REG(1, 0),
                                    KCALL("bpf_task_release")] + RET0, "tracepoint", errno.EACCES,
                                   "Possibly NULL pointer passed to trusted arg0"),
        "task_release_twice": ([I.BPF_MOV64_IMM(1, 1), KCALL("bpf_task_from_pid"), I.BPF_JMP_IMM(I.BPF_JEQ, 0, 0, 4),
                                I.BPF_MOV64_REG(6, 0), I.BPF_MOV64_REG(1, 0), KCALL("bpf_task_release"),
                                I.BPF_MOV64_REG(1, 6), KCALL("bpf_task_release")] + RET0, "tracepoint", errno.EINVAL,
                               "arg#0 pointer type STRUCT task_struct must point to scalar, or struct with scalar"),
        "task_release_of_ctx": ([KCALL("bpf_task_release")] + RET0, "tracepoint", errno.EINVAL,
                                "arg#0 pointer type STRUCT task_struct must point to scalar, or struct with scalar"),
        "sleepable_kfunc": ([I.BPF_MOV64_REG(1, 10), I.BPF_ALU64_IMM(I.BPF_ADD, 1, -8), I.BPF_MOV64_IMM(2, 8),
                             I.BPF_MOV64_IMM(3, 0), I.BPF_MOV64_IMM(4, 0), KCALL("bpf_copy_from_user_str")] + RET0, "xdp",
                            errno.EACCES, "program must be sleepable to call sleepable kfunc bpf_copy_from_user_str"),
        "scalar_arg_is_pointer": ([I.BPF_MOV64_REG(1, 10), KCALL("bpf_task_from_pid")] + RET0, "tracepoint", errno.EINVAL,
                                  "R1 is not a scalar"),
        "strlen_ignores_its_pointer": ([I.BPF_MOV64_IMM(1, 0), KCALL("bpf_strlen")] + RET0, "socket_filter", 0, ""),
    }


CASES = ("cast_to_kern_ctx", "cast_to_kern_ctx_ok", "cast_needs_ctx", "rcu_lock_unlock", "rcu_nested", "rcu_unmatched",
         "rcu_exit_inside", "preempt", "preempt_unmatched", "preempt_helper_call", "iter_num_loop", "iter_num_leak",
         "iter_num_uninit_next", "iter_num_twice", "iter_num_not_stack", "iter_num_misaligned", "rdonly_cast_struct",
         "rdonly_cast_int", "rdonly_cast_not_const", "task_from_pid_released", "task_from_pid_leak",
         "task_release_unchecked", "task_release_twice", "task_release_of_ctx", "sleepable_kfunc",
         "scalar_arg_is_pointer", "strlen_ignores_its_pointer")


def _struct_id(name):
    return _kernel_btf().find_by_name_kind(name, B.BTF_KIND_STRUCT)


@pytest.mark.parametrize("name", CASES)
def test_kfunc_call(proc, name):
    cases = _cases()
    assert set(cases) == set(CASES)
    prog, prog_type, want, why = cases[name]
    e, log = load(proc, prog, prog_type)
    assert (e, cause(log) if e else "") == (want, why)


def test_the_log_names_a_kfunc_call(proc):
    prog = [KCALL("bpf_rcu_read_lock"), KCALL("bpf_rcu_read_unlock")] + RET0
    p = Program.load(proc, prog, "xdp", log_level=2)
    p.close()
    e, log = load(proc, [KCALL("bpf_rcu_read_unlock")] + RET0, "xdp")
    assert "0: (85) call bpf_rcu_read_unlock#%d" % kfunc_id("bpf_rcu_read_unlock") in log.splitlines()


def test_kfuncs_need_a_gpl_compatible_license(proc):
    with pytest.raises(BpfError) as ei:
        Program.load(proc, [KCALL("bpf_rcu_read_lock"), KCALL("bpf_rcu_read_unlock")] + RET0, "xdp",
                     license="MIT", log_level=1)
    assert ei.value.errno == errno.EINVAL
    assert cause(ei.value.log) == "cannot call kernel function from non-GPL compatible program"


def test_a_btf_id_that_is_no_function(proc):
    b = _kernel_btf()
    tid = b.find_by_name_kind("task_struct", B.BTF_KIND_STRUCT)
    e, log = load(proc, [I.BPF_RAW_INSN(I.BPF_JMP | I.BPF_CALL, 0, I.BPF_PSEUDO_KFUNC_CALL, 0, tid)] + RET0, "xdp")
    assert (e, cause(log)) == (errno.EINVAL, "kernel btf_id %d is not a function" % tid)
