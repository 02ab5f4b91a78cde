"""struct bpf_verifier_env and the walk (do_check): one instruction at a time along one path, the other
sides of branches kept on a stack, checkpoints and pruning at prune points.
"""
import errno

from ..insn import (BPF_ALU, BPF_ALU64, BPF_ATOMIC, BPF_CALL, BPF_EXIT, BPF_IMM, BPF_JA, BPF_JMP, BPF_JMP32, BPF_LD,
                    BPF_LDX, BPF_MEM, BPF_MEMSX, BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL, BPF_ST, BPF_STX, BPF_X)
from ..helpers import FUNC_IDS
from .alu import AluMixin
from .calls import CallMixin
from .cfg import ALL_INSTRUCTIONS, AttachMixin, BtfInfoMixin, CfgMixin, GlobalFuncMixin, opcode_table
from .btf import BTF_KIND_FUNC, BTF_KIND_STRUCT, BTF_KIND_UNION, HELPER_BTF_STRUCTS, NamesOnlyBtf
from .disasm import print_insn
from .jmp import JmpMixin
from .kfunc import KfuncMixin
from .log import BPF_LOG_LEVEL, BPF_LOG_LEVEL2, BPF_LOG_STATS
from .mem import MemMixin
from . import tnum
from .prune import PruneMixin
from .regs import NOT_INIT, bounds_invariant_violation, mark_unbounded, mark_unknown
from .state import VerifierState, format_func_state, init_func_state

BPF_COMPLEXITY_LIMIT_INSNS = 1000000
BPF_COMPLEXITY_LIMIT_JMP_SEQ = 8192
NEXT, JUMPED, EXIT, FUNC_EXIT = 0, 1, 2, 3


class VerifierError(Exception):
    """Raised to unwind the walk; ``errno`` is the positive errno the load fails with."""

    def __init__(self, err):
        super().__init__(err)
        self.errno = err


class InsnAux:
    """struct bpf_insn_aux_data (what the walk records per instruction)."""
    __slots__ = ("prune_point", "jmp_point", "force_checkpoint", "calls_callback", "is_may_goto",
                 "is_iter_next", "ptr_type", "map_index", "map_off", "map_ptr", "map_ptr_poisoned", "seen",
                 "alu_state", "alu_limit", "map_key_state", "map_ptr_unpriv", "btf_var")

    def __init__(self):
        self.prune_point = False
        self.jmp_point = False
        self.force_checkpoint = False
        self.calls_callback = False
        self.is_may_goto = False
        self.is_iter_next = False
        self.ptr_type = NOT_INIT
        self.map_index = 0
        self.map_off = 0
        self.map_ptr = None
        self.map_ptr_poisoned = False
        self.seen = False
        self.alu_state = 0
        self.alu_limit = 0
        self.map_key_state = None
        self.map_ptr_unpriv = False
        self.btf_var = None   # (reg type, mem size, btf, btf id) of a ld_imm64 of a kernel variable


class AuxTable(dict):
    """insn_aux_data, created on first use (most instructions never need one)."""

    def __missing__(self, idx):
        a = self[idx] = InsnAux()
        return a


class Env(AluMixin, MemMixin, JmpMixin, CallMixin, KfuncMixin, PruneMixin, CfgMixin, AttachMixin, BtfInfoMixin,
          GlobalFuncMixin):
    """One verification. See :func:`bpfemu.prog.verifier.bpf_check` for how it is built and run."""

    Error = VerifierError

    def __init__(self, insns, ops, log, prog_type, expected_attach_type=0, caps=None, map_resolver=None,
                 fd_array=None, gpl_compatible=True, strict_alignment=False, test_state_freq=False,
                 sleepable=False, attach_btf_id=0, has_func_info=False, jit_requested=True, nr_cpu_ids=2,
                 kernel_btf=None, func_info=None, line_info_cnt=0, line_info=None, instructions=None,
                 st_to_ctx=True, array_const_key_nonnull=True, sleepable_log=None,
                 ksym_funcs=True, tnum_strn="constant"):
        caps = caps or {}
        # the kernel version's instruction set (a profile's ``instructions``; None: every one this model knows)
        # and whether BPF_ST may write to the context (``st_to_ctx``)
        self.instructions = ALL_INSTRUCTIONS if instructions is None else frozenset(instructions)
        self.opcodes = opcode_table(self.instructions)
        self.st_to_ctx = st_to_ctx
        self.array_const_key_nonnull = array_const_key_nonnull
        # the line for BPF_F_SLEEPABLE on a type that cannot sleep (a profile's ``sleepable_log``)
        self.sleepable_log = sleepable_log or ("Only fentry/fexit/fmod_ret, lsm, iter, uprobe, and struct_ops "
                                               "programs can be sleepable")
        self.ksym_funcs = ksym_funcs  # an ld_imm64 may name a kernel function (a profile's ``ksym_funcs``)
        self.tnum_pairs = tnum_strn == "pair"  # a profile's ``tnum_strn``: see :meth:`tnum_strn`
        self.insns = insns
        self.insn_cnt = len(insns)
        self.ops = ops
        self.log = log
        self.log_level = log.level
        self.prog_type = prog_type
        self.expected_attach_type = expected_attach_type
        self.bpf_capable = caps.get("bpf", True)
        self.perfmon_capable = caps.get("perfmon", True)
        self.caps_sys_boot = caps.get("sys_boot", True)
        self.allow_ptr_leaks = caps.get("ptr_leaks", self.perfmon_capable)
        self.allow_uninit_stack = self.allow_ptr_leaks
        self.bypass_spec_v1 = caps.get("spec_v1", self.perfmon_capable)
        self.bypass_spec_v4 = caps.get("spec_v4", self.perfmon_capable)
        self.map_resolver = map_resolver
        self.fd_array = fd_array
        self.gpl_compatible = gpl_compatible
        self.strict_alignment = strict_alignment
        self.test_state_freq = test_state_freq and self.bpf_capable
        self.sleepable = sleepable
        self.attach_btf_id = attach_btf_id
        self.func_info_attr = func_info     # cfg.FuncInfo or None
        self.line_info_attr = line_info     # cfg.FuncInfo of line_info, or None
        self.line_info_cnt = line_info.cnt if line_info is not None else line_info_cnt
        self.has_func_info = has_func_info or bool(func_info and func_info.cnt)
        self.jit_requested = jit_requested
        self.jit_tail_calls = jit_requested
        self.nr_cpu_ids = nr_cpu_ids
        self.kernel_btf = kernel_btf    # the kernel's BTF (bpfemu.btf.Btf interface), or None
        self.has_trampoline = False
        self.kallsyms_all = False   # CONFIG_KALLSYMS_ALL: whether kernel variables have kallsyms entries
        self.attach_func_returns = True
        self.arena = None
        self.flow_keys_size = 56
        self.track_all_precise = True
        self.explore_alu_limits = False
        self.enforce_expected_attach_type = False
        self.insn_aux = AuxTable()
        self.insn_seen = set()   # insn_aux_data[].seen: reached on a non-speculative path
        self.seen_direct_write = False
        self.prune_points = bytearray(len(insns))
        self.subprogs = []
        self.kfunc_calls = []
        self.exception_callback_subprog = 0
        self.used_maps = []
        self.used_map_fds = []
        self.id_gen = 0
        self.insn_idx = 0
        self.prev_insn_idx = -1
        self.insn_processed = 0
        self.max_ctx_offset = 0
        self.complexity_limit = BPF_COMPLEXITY_LIMIT_INSNS
        self.jmps_processed = 0
        self.prev_jmps_processed = 0
        self.prev_insn_processed = 0
        self.total_states = 0
        self.peak_states = 0
        self.max_states_per_insn = 0
        self.max_pkt_offset = 0
        self.max_tp_access = 0
        self.explored = {}
        self.stack = []
        self.cur_state = None
        self.scratched = set()
        self.scratch_all = False
        self.nospec = set()
        self.kfunc0_seen = set()
        self.tail_calls = set()
        self.prev_log_pos = 0
        self.prev_insn_print_pos = 0

    # ---- the log ----
    def verbose(self, s):
        if self.log_level:
            self.log.write(s)

    def tnum_strn(self, a):
        """tnum_strn of the kernel version: a known tnum as its value, or (6.1) always '(value; mask)'."""
        if self.tnum_pairs:
            return "(%#x; %#x)" % a
        return tnum.strn(a)

    def fail(self, err, msg=None):
        if msg and self.log_level:
            self.log.write(msg)
        raise VerifierError(err)

    def verbose_linfo(self, insn_off, prefix):
        """Source lines from BTF line info; the emulator loads none, so nothing is printed."""

    def reg_bounds_sanity_check(self, reg, ctx):
        msg = bounds_invariant_violation(reg)
        if msg is None:
            return
        self.verbose("REG INVARIANTS VIOLATION (%s): %s u64=[%#x, %#x] s64=[%#x, %#x] u32=[%#x, %#x] "
                     "s32=[%#x, %#x] var_off=(%#x, %#x)\n"
                     % (ctx, msg, reg.umin, reg.umax, reg.smin & (2 ** 64 - 1), reg.smax & (2 ** 64 - 1),
                        reg.u32min, reg.u32max, reg.s32min & 0xffffffff, reg.s32max & 0xffffffff, reg.vv, reg.vm))
        mark_unbounded(reg)

    def bounds_sync(self, reg):
        from .regs import reg_bounds_sync
        reg_bounds_sync(reg)

    def mark_reg_unknown(self, reg):
        mark_unknown(reg, not self.bpf_capable)

    def in_sleepable(self):
        return self.cur_state.in_sleepable

    def subprog_is_global(self, sub):
        return self.subprogs[sub].linkage == 1

    def subprog_name(self, sub):
        return self.subprogs[sub].name

    def note_stack_depth(self, state, depth):
        sub = self.subprogs[state.subprogno]
        if depth > sub.stack_depth:
            sub.stack_depth = depth

    def print_insn_state(self):
        st = self.cur_state
        f = st.frame[st.curframe]
        if self.prev_log_pos and self.prev_log_pos == self.log.end_pos:
            self.log.reset(self.prev_log_pos - 1)
            pad = _vlog_alignment(self.prev_insn_print_pos)
            self.verbose(" " * (pad - 1) + " ;" if pad > 0 else ";")
        else:
            self.verbose("%d:" % self.insn_idx)
        self.verbose(format_func_state(f, self.scratch_all, self.scratched, refs=st.refs, marks=self.log.liveness_marks))
        self.scratched = set()
        self.scratch_all = False

    # ---- the branch stack ----
    def push_stack(self, insn_idx, prev_insn_idx, speculative):
        cur = self.cur_state
        elem = cur.copy()
        elem.speculative = elem.speculative or speculative
        self.stack.append((elem, insn_idx, prev_insn_idx, self.log.end_pos))
        if len(self.stack) > BPF_COMPLEXITY_LIMIT_JMP_SEQ:
            self.fail(errno.E2BIG, "The sequence of %d jumps is too complex.\n" % len(self.stack))
        if elem.parent is not None:
            elem.parent.branches += 1
        return elem

    def pop_stack(self, pop_log):
        if not self.stack:
            return None
        elem, insn_idx, prev_idx, log_pos = self.stack.pop()
        if pop_log and self.log_level:
            self.log.reset(log_pos)
        self.cur_state = elem
        self.insn_idx = insn_idx
        return prev_idx

    # ---- the walk ----
    def do_check(self):
        insns = self.insns
        n = self.insn_cnt
        aux = self.insn_aux
        prune_points = self.prune_points
        pop_log = not (self.log_level & BPF_LOG_LEVEL2)
        do_print_state = False
        prev_insn_idx = -1
        log_level = self.log_level
        while True:
            self.prev_insn_idx = prev_insn_idx
            idx = self.insn_idx
            if idx >= n:
                self.fail(errno.EFAULT, "invalid insn idx %d insn_cnt %d\n" % (idx, n))
            insn = insns[idx]
            code = insn[0]
            cls = code & 7
            self.insn_processed += 1
            if self.insn_processed > self.complexity_limit:
                self.fail(errno.E2BIG, "BPF program is too large. Processed %d insn\n" % self.insn_processed)
            st = self.cur_state
            st.last_insn_idx = prev_insn_idx
            if prune_points[idx]:
                if self.is_state_visited(idx):
                    if log_level & BPF_LOG_LEVEL:
                        if do_print_state:
                            self.verbose("\nfrom %d to %d%s: safe\n" % (prev_insn_idx, idx, " (speculative execution)"
                                                                        if st.speculative else ""))
                        else:
                            self.verbose("%d: safe\n" % idx)
                    prev_insn_idx = self._process_exit(pop_log)
                    if prev_insn_idx is None:
                        return
                    do_print_state = True
                    continue
            if log_level:
                if log_level & BPF_LOG_LEVEL2 and do_print_state:
                    self.verbose("\nfrom %d to %d%s:" % (prev_insn_idx, idx, " (speculative execution)"
                                                         if st.speculative else ""))
                    self.verbose(format_func_state(st.frame[st.curframe], True, refs=st.refs, marks=self.log.liveness_marks))
                    do_print_state = False
                if log_level & BPF_LOG_LEVEL:
                    if self.scratched or self.scratch_all:
                        self.print_insn_state()
                    self.prev_log_pos = self.log.end_pos
                    self.verbose("%d: " % idx)
                    nxt = insns[idx + 1] if idx + 1 < n else None
                    if insn[0] == 0x18 and insn[2] in (1, 2, 5, 6) and self.allow_ptr_leaks:
                        insn, nxt = self.ld_imm64_as_resolved(idx, insn, nxt)
                    self.verbose(print_insn(insn, nxt, self.allow_ptr_leaks, self.call_name))
                    self.prev_insn_print_pos = self.log.end_pos - self.prev_log_pos
                    self.prev_log_pos = self.log.end_pos
            prev_insn_idx = idx
            if st.speculative and idx in self.nospec:
                # a barrier stops this speculative path here
                prev_insn_idx = self._process_exit(pop_log)
                if prev_insn_idx is None:
                    return
                do_print_state = True
                continue
            if not st.speculative:
                self.insn_seen.add(idx)   # sanitize_mark_insn_seen
            try:
                r = self.do_check_insn(insn, idx, st, code, cls)
            except VerifierError as e:
                if st.speculative and e.errno in (errno.EPERM, errno.EACCES, errno.EINVAL):
                    # 6.17+: an unsafe instruction on a speculative path gets a nospec barrier instead of
                    # failing the load
                    self.nospec.add(self.insn_idx)
                    r = EXIT
                else:
                    raise
            if r == NEXT:
                self.insn_idx += 1
            elif r == EXIT:
                prev_insn_idx = self._process_exit(pop_log)
                if prev_insn_idx is None:
                    return
                do_print_state = True
            elif r == FUNC_EXIT:
                do_print_state = True

    def do_check_insn(self, insn, idx, st, code, cls):
        """One instruction (do_check_insn): NEXT, JUMPED (insn_idx already set), EXIT (the path ends) or
        FUNC_EXIT (returned to the caller's frame)."""
        if cls == BPF_ALU or cls == BPF_ALU64:
            self.check_alu_op(insn)
        elif cls == BPF_LDX:
            self.check_load_mem(insn, False, code & 0xe0 == BPF_MEMSX, True, "ldx")
        elif cls == BPF_STX:
            if code & 0xe0 == BPF_ATOMIC:
                self.check_atomic(insn)
                return NEXT
            if code & 0xe0 != BPF_MEM or insn[4] != 0:
                self.fail(errno.EINVAL, "BPF_STX uses reserved fields\n")
            self.check_store_reg(insn, False)
        elif cls == BPF_ST:
            self.check_st(insn)
        elif cls == BPF_JMP or cls == BPF_JMP32:
            op = code & 0xf0
            self.jmps_processed += 1
            if op == BPF_CALL:
                if (code & BPF_X or (insn[2] != BPF_PSEUDO_KFUNC_CALL and insn[3] != 0) or
                        insn[2] not in (0, BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL) or insn[1] != 0 or
                        cls == BPF_JMP32):
                    self.fail(errno.EINVAL, "BPF_CALL uses reserved fields\n")
                if st.active_lock is not None:
                    if (insn[2] == 0 and insn[4] != FUNC_IDS["spin_unlock"]) or \
                            insn[2] == BPF_PSEUDO_KFUNC_CALL:
                        self.fail(errno.EINVAL, "function calls are not allowed while holding a lock\n")
                if insn[2] == BPF_PSEUDO_CALL:
                    self.check_func_call(insn)
                elif insn[2] == BPF_PSEUDO_KFUNC_CALL:
                    self.check_kfunc_call(insn)
                else:
                    self.check_helper_call(insn)
                if self.log_level:
                    self.scratched.add(0)
            elif op == BPF_JA:
                if (code & BPF_X or insn[2] != 0 or insn[1] != 0 or (cls == BPF_JMP and insn[4] != 0) or
                        (cls == BPF_JMP32 and insn[3] != 0)):
                    self.fail(errno.EINVAL, "BPF_JA uses reserved fields\n")
                self.insn_idx += (insn[3] if cls == BPF_JMP else insn[4]) + 1
                return JUMPED
            elif op == BPF_EXIT:
                if code & BPF_X or insn[4] != 0 or insn[2] != 0 or insn[1] != 0 or cls == BPF_JMP32:
                    self.fail(errno.EINVAL, "BPF_EXIT uses reserved fields\n")
                if st.active_lock is not None and not st.curframe:
                    self.fail(errno.EINVAL, "BPF_EXIT instruction in main prog cannot be used inside "
                                            "bpf_spin_lock-ed region\n")
                if self.check_reference_leak(False):
                    self.fail(errno.EINVAL, self.leak_msg())
                # check_resource_leak: then the RCU and preemption regions of the main program
                if st.active_rcu_lock and not st.curframe:
                    self.fail(errno.EINVAL, "BPF_EXIT instruction in main prog cannot be used inside "
                                            "bpf_rcu_read_lock-ed region\n")
                if st.active_preempt_lock and not st.curframe:
                    self.fail(errno.EINVAL, "BPF_EXIT instruction in main prog cannot be used inside "
                                            "bpf_preempt_disable-ed region\n")
                if st.curframe:
                    self.prepare_func_exit()
                    return FUNC_EXIT
                self.check_return_code(0, "R0")
                return EXIT
            else:
                self.check_cond_jmp_op(insn)
        elif cls == BPF_LD:
            mode = code & 0xe0
            if mode == 0x20 or mode == 0x40:
                self.check_ld_abs(insn)
            elif mode == BPF_IMM:
                self.check_ld_imm(insn, self.insns[idx + 1])
                self.insn_idx += 1
            else:
                self.fail(errno.EINVAL, "invalid BPF_LD mode\n")
        else:
            self.fail(errno.EINVAL, "unknown insn class %d\n" % cls)
        return NEXT

    def do_misc_fixups(self):
        """The checks of the rewriting pass after the walk (do_misc_fixups, fixup_kfunc_call)."""
        for idx in sorted(self.kfunc0_seen | self.tail_calls):
            if idx in self.kfunc0_seen:
                self.fail(errno.EINVAL, "invalid kernel function call not eliminated in verifier pass\n")
            aux = self.insn_aux[idx]
            if aux.map_ptr_unpriv and aux.map_ptr_poisoned:
                self.fail(errno.EINVAL, "tail_call abusing map_ptr\n")

    def leak_msg(self):
        st = self.cur_state
        if st.curframe and st.frame[st.curframe].in_callback_fn:
            return "BPF_EXIT instruction in callback would lead to reference leak\n"
        return "BPF_EXIT instruction in main prog would lead to reference leak\n"

    def _process_exit(self, pop_log):
        self.scratch_all = True
        self.update_branch_counts(self.cur_state)
        prev = self.pop_stack(pop_log)
        return prev

    def ld_imm64_as_resolved(self, idx, insn, nxt):
        """The ld_imm64 of a map as the log shows it once resolve_pseudo_ldimm64 put the map's kernel address
        (or its value's) in the immediate. The emulator's addresses are made up: a kernel-like address per
        map id."""
        aux = self.insn_aux.get(idx) if hasattr(self.insn_aux, "get") else None
        if aux is None or not self.used_maps:
            return insn, nxt
        m = self.used_maps[aux.map_index]
        addr = 0xffff888100000000 + ((getattr(m, "id", 0) or 1) << 16)
        if insn[2] in (2, 6):   # a map value: the value area, plus the offset
            addr += 0x110 + (aux.map_off or 0)
        lo, hi = addr & 0xffffffff, addr >> 32
        to_s32 = lambda v: v - (1 << 32) if v >> 31 else v  # noqa: E731
        return (insn[0], insn[1], insn[2], insn[3], to_s32(lo)), (nxt[0], nxt[1], nxt[2], nxt[3], to_s32(hi))

    @property
    def vmlinux(self):
        """The kernel's BTF (a stand-in that only knows struct names when none was given)."""
        b = self.kernel_btf
        if b is None:
            b = self.kernel_btf = NamesOnlyBtf()
        elif not hasattr(b, "type_by_id"):   # a loader: the kernel BTF is read on first use
            try:
                b = b()
            except OSError:
                b = None
            b = self.kernel_btf = b if b is not None else NamesOnlyBtf()
        return b

    def btf_struct(self, name):
        """(kernel BTF, id) of ``struct name`` (a name of a helper prototype's BTF id is translated first)."""
        if isinstance(name, tuple):
            return name
        name = HELPER_BTF_STRUCTS.get(name, name)
        b = self.vmlinux
        tid = b.find_by_name_kind(name, BTF_KIND_STRUCT)
        if tid is None or tid < 0:
            tid = b.find_by_name_kind(name, BTF_KIND_UNION)
        return b, max(tid or 0, 0)

    def kernel_func_name(self, btf_id):
        """The name of the kernel BTF's FUNC ``btf_id``, or None when it is no function."""
        b = self.vmlinux
        t = b.type_by_id(btf_id) if 0 < btf_id else None
        if t is None or t.kind != BTF_KIND_FUNC:
            return None
        return b.name(t)

    # ---- the whole check ----
    def do_check_common(self, sub):
        self.prev_linfo = None
        self.id_gen = 0 if False else self.id_gen
        st = VerifierState()
        st.curframe = 0
        st.speculative = False
        st.branches = 1
        st.in_sleepable = self.sleepable
        st.frame = [init_func_state(-1, 0, sub, not self.bpf_capable)]
        st.first_insn_idx = self.subprogs[sub].start
        st.last_insn_idx = -1
        self.cur_state = st
        regs = st.frame[0].regs
        if sub:
            self.setup_global_func_regs(sub, regs)
        else:
            # the main program gets the context in R1
            from .regs import PTR_TO_CTX, mark_known_zero
            mark_known_zero(regs[1])
            regs[1].type = PTR_TO_CTX
        self.insn_idx = self.subprogs[sub].start
        self.scratch_all = True
        self.explored = {}
        self.stack = []
        try:
            self.do_check()
        finally:
            self.stack = []
            self.cur_state = None

    def print_verification_stats(self):
        if self.log_level & BPF_LOG_STATS:
            self.verbose("verification time %d usec\n" % 0)
            self.verbose("stack depth ")
            parts = []
            for s in self.subprogs:
                parts.append("%d" % s.stack_depth)
            self.verbose("+".join(parts))
            self.verbose("\n")
        self.verbose("processed %d insns (limit %d) max_states_per_insn %d total_states %d peak_states %d "
                     "mark_read %d\n" % (self.insn_processed, BPF_COMPLEXITY_LIMIT_INSNS, self.max_states_per_insn,
                                         self.total_states, self.peak_states, 0))


def _vlog_alignment(pos):
    BPF_LOG_MIN_ALIGNMENT = 8
    BPF_LOG_ALIGNMENT = 40
    v = max(pos + BPF_LOG_MIN_ALIGNMENT // 2, BPF_LOG_ALIGNMENT)
    return (v + BPF_LOG_MIN_ALIGNMENT - 1) // BPF_LOG_MIN_ALIGNMENT * BPF_LOG_MIN_ALIGNMENT - pos - 1
