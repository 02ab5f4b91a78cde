"""The verifier (kernel/bpf/verifier.c): :func:`bpf_check` decides whether a program may load.

It runs the kernel's passes in the kernel's order (subprograms, jumps, ld_imm64 resolution, the CFG walk,
then the abstract interpretation of every path, then the stack depth check) and always ends with the
verification statistics in the log. The result is the errno (0 when the program is accepted) plus what
the load reports: the log buffer contents, ``log_true_size``, the maps the program uses, stack depth and
``verified_insns``.
"""
from .log import VerifierLog, log_attr_valid


def __getattr__(name):
    # the walk's modules import the helper table, which imports .regs from this package: load them lazily
    if name in ("Env", "VerifierError"):
        from . import env
        return getattr(env, name)
    raise AttributeError(name)


class CheckResult:
    """What bpf_check hands back to PROG_LOAD."""

    __slots__ = ("errno", "log", "log_buf", "log_true_size", "used_maps", "verified_insns", "stack_depth",
                 "env")

    def __init__(self, err, log, log_buf, log_true_size, env):
        self.errno = err
        self.log = log
        self.log_buf = log_buf
        self.log_true_size = log_true_size
        self.used_maps = list(env.used_maps) if env is not None else []
        self.verified_insns = env.insn_processed if env is not None else 0
        self.stack_depth = [s.stack_depth for s in env.subprogs] if env is not None else []
        self.env = env


def bpf_check(insns, prog_type, ops, log_level=0, log_size=0, has_log_buf=False, **kw):
    """Verify ``insns`` (a list of 5-tuples ``(code, dst, src, off, imm)``) as a program of ``prog_type``
    with verifier ops ``ops`` (a :class:`bpfemu.prog.types.ProgType`).

    Keywords are the :class:`Env` settings: ``expected_attach_type``, ``caps`` (dict of 'bpf', 'perfmon'...),
    ``map_resolver`` (fd -> map object or None), ``fd_array`` (index -> fd), ``gpl_compatible``,
    ``strict_alignment``, ``test_state_freq``, ``sleepable``...

    Returns a :class:`CheckResult`; ``errno`` 0 means accepted. Log attributes are assumed already
    validated (PROG_LOAD's checks, :func:`log_attr_valid`).
    """
    from .env import Env, VerifierError
    log = VerifierLog(log_level, has_log_buf, log_size, kw.pop("log_mode", "rotating"),
                      kw.pop("log_liveness_marks", False))
    btf_of_fd = kw.pop("btf_of_fd", None)
    prog_btf_fd = kw.pop("prog_btf_fd", 0)
    fd_array_cnt = kw.pop("fd_array_cnt", 0)
    env = Env(insns, ops, log, prog_type, **kw)
    err = 0
    try:
        env.process_fd_array(fd_array_cnt, btf_of_fd)
        env.check_btf_info_early(btf_of_fd, prog_btf_fd)
        env.add_subprog_and_kfunc()
        env.check_subprogs()
        env.check_btf_info()
        env.resolve_pseudo_ldimm64()
        env.check_cfg()
        env.check_attach_btf_id()
        env.do_check_common(0)
        env.do_check_subprogs()
    except VerifierError as e:
        err = e.errno
    if err == 0:
        try:
            env.check_max_stack_depth()
            env.do_misc_fixups()
        except VerifierError as e:
            err = e.errno
    if err == 0 and log_level & 3 == 1:
        # a level-1 log only keeps the trace of a failing path
        log.reset(0)
    env.print_verification_stats()
    data, true_size, lerr = log.finalize()
    if lerr and not err:
        err = lerr
    elif lerr:
        err = lerr
    return CheckResult(err, log.text(), data, true_size, env)


__all__ = ["bpf_check", "CheckResult", "Env", "VerifierError", "VerifierLog", "log_attr_valid"]
