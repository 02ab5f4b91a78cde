"""Verifier states: struct bpf_func_state (one call frame: registers, stack) and struct bpf_verifier_state
(the frames of one path, its references and locks), their copies, and how the log prints them.

The stack of a frame is a list of 8-byte slots, slot ``spi`` covering ``fp-8*(spi+1) .. fp-8*spi-1``; each
slot has eight byte types (``slot_type[i]`` is the byte at ``fp - 8*spi - 1 - i``) and the register spilled
there.
"""
from .regs import (NOT_INIT, PTR_TO_STACK, REG_LIVE_DONE, REG_LIVE_READ, REG_LIVE_WRITTEN, SCALAR_VALUE, Reg,
                   format_reg, mark_known_zero, mark_not_init)

MAX_BPF_REG = 11
BPF_REG_FP = 10
BPF_REG_SIZE = 8
MAX_CALL_FRAMES = 8

STACK_INVALID = 0
STACK_SPILL = 1
STACK_MISC = 2
STACK_ZERO = 3
STACK_DYNPTR = 4
STACK_ITER = 5
STACK_IRQ_FLAG = 6
SLOT_CHAR = "?rm0dii"


class StackSlot:
    __slots__ = ("st", "spilled")

    def __init__(self):
        self.st = [STACK_INVALID] * 8
        self.spilled = Reg()

    def copy(self):
        s = StackSlot.__new__(StackSlot)
        s.st = self.st[:]
        s.spilled = self.spilled.copy()
        return s

    def is_spilled_reg(self):
        return self.st[7] == STACK_SPILL

    def is_spilled_scalar(self):
        return self.st[7] == STACK_SPILL and self.spilled.type == SCALAR_VALUE

    def is_spilled_scalar64(self):
        return self.is_spilled_scalar() and self.st[0] == STACK_SPILL


class FuncState:
    """struct bpf_func_state."""

    __slots__ = ("regs", "callsite", "frameno", "subprogno", "stack", "in_callback_fn",
                 "in_async_callback_fn", "in_exception_callback_fn", "callback_ret_range", "callback_depth",
                 "async_entry_cnt")

    def __init__(self, callsite=-1, frameno=0, subprogno=0):
        self.regs = [Reg() for _ in range(MAX_BPF_REG)]
        self.callsite = callsite
        self.frameno = frameno
        self.subprogno = subprogno
        self.stack = []
        self.in_callback_fn = False
        self.in_async_callback_fn = False
        self.in_exception_callback_fn = False
        self.callback_ret_range = (0, 0)
        self.callback_depth = 0
        self.async_entry_cnt = 0

    @property
    def allocated_stack(self):
        return len(self.stack) * BPF_REG_SIZE

    def grow_stack(self, size):
        """grow_stack_state: make room for size bytes (rounded up to slots)."""
        n = (size + BPF_REG_SIZE - 1) // BPF_REG_SIZE
        while len(self.stack) < n:
            self.stack.append(StackSlot())

    def copy(self):
        f = FuncState.__new__(FuncState)
        f.regs = [r.copy() for r in self.regs]
        f.callsite = self.callsite
        f.frameno = self.frameno
        f.subprogno = self.subprogno
        f.stack = [s.copy() for s in self.stack]
        f.in_callback_fn = self.in_callback_fn
        f.in_async_callback_fn = self.in_async_callback_fn
        f.in_exception_callback_fn = self.in_exception_callback_fn
        f.callback_ret_range = self.callback_ret_range
        f.callback_depth = self.callback_depth
        f.async_entry_cnt = self.async_entry_cnt
        return f


class RefState:
    """An acquired reference (struct bpf_reference_state): id, the instruction that acquired it, kind."""
    __slots__ = ("id", "insn_idx", "kind", "ptr")

    def __init__(self, id, insn_idx, kind="ptr", ptr=None):
        self.id = id
        self.insn_idx = insn_idx
        self.kind = kind     # 'ptr', 'lock', 'rcu', 'irq'
        self.ptr = ptr


class VerifierState:
    """struct bpf_verifier_state."""

    __slots__ = ("frame", "curframe", "refs", "active_lock", "active_rcu_lock", "active_preempt_lock",
                 "speculative", "in_sleepable", "branches", "parent", "insn_idx", "first_insn_idx",
                 "last_insn_idx", "dfs_depth", "may_goto_depth", "callback_unroll_depth", "loop_entry",
                 "used_as_loop_entry", "hit_cnt", "miss_cnt")

    def __init__(self):
        self.frame = []
        self.curframe = 0
        self.refs = []
        self.active_lock = None   # (map or btf object, id) of the held bpf_spin_lock
        self.active_rcu_lock = False
        self.active_preempt_lock = 0
        self.speculative = False
        self.in_sleepable = False
        self.branches = 1
        self.parent = None
        self.insn_idx = 0
        self.first_insn_idx = 0
        self.last_insn_idx = -1
        self.dfs_depth = 0
        self.may_goto_depth = 0
        self.callback_unroll_depth = 0
        self.loop_entry = None
        self.used_as_loop_entry = False
        self.hit_cnt = 0
        self.miss_cnt = 0

    def copy(self):
        """copy_verifier_state (the copy is a new object; parent and branches are copied as they are)."""
        v = VerifierState.__new__(VerifierState)
        v.frame = [f.copy() for f in self.frame[:self.curframe + 1]]
        v.curframe = self.curframe
        v.refs = list(self.refs)
        v.active_lock = self.active_lock
        v.active_rcu_lock = self.active_rcu_lock
        v.active_preempt_lock = self.active_preempt_lock
        v.speculative = self.speculative
        v.in_sleepable = self.in_sleepable
        v.branches = self.branches
        v.parent = self.parent
        v.insn_idx = self.insn_idx
        v.first_insn_idx = self.first_insn_idx
        v.last_insn_idx = self.last_insn_idx
        v.dfs_depth = self.dfs_depth
        v.may_goto_depth = self.may_goto_depth
        v.callback_unroll_depth = self.callback_unroll_depth
        v.loop_entry = self.loop_entry
        v.used_as_loop_entry = self.used_as_loop_entry
        v.hit_cnt = 0
        v.miss_cnt = 0
        return v

    @property
    def cur(self):
        return self.frame[self.curframe]

    def all_regs(self):
        """bpf_for_each_reg_in_vstate: every register and spilled register of every frame."""
        for f in self.frame[:self.curframe + 1]:
            for r in f.regs:
                yield r
            for s in f.stack:
                if s.st[7] == STACK_SPILL:
                    yield s.spilled


def format_func_state(state, print_all=True, scratched=None, refs=None, marks=False):
    """print_verifier_state's text for one frame (without the leading insn number); ``marks``: each register
    and spilled slot shows its liveness (``R0_w=``, as kernels before 6.18 print it)."""
    out = []
    if state.frameno:
        out.append(" frame%d:" % state.frameno)
    for i, reg in enumerate(state.regs):
        if reg.type == NOT_INIT:
            continue
        if not print_all and scratched is not None and i not in scratched:
            continue
        out.append(" R%d%s=%s" % (i, _liveness(reg.live, marks), format_reg(reg, state.frameno)))
    for i, slot in enumerate(state.stack):
        st = slot.st
        if all(t == STACK_INVALID for t in st):
            continue
        if not print_all and scratched is not None and ("s", i) not in scratched:
            continue
        types = "".join(SLOT_CHAR[t] for t in st)
        reg = slot.spilled
        kind = st[7]
        if kind == STACK_SPILL:
            j = 0
            while j < 8 and st[j] != STACK_SPILL:
                j += 1
            out.append(" fp%d%s=%s%s" % ((-i - 1) * 8, _liveness(reg.live, marks), types[:j],
                                        format_reg(reg, state.frameno)))
        elif kind == STACK_DYNPTR:
            if not reg.dynptr_first:
                continue
            attrs = []
            if reg.id:
                attrs.append("id=%d" % reg.id)
            if reg.ref_obj_id:
                attrs.append("ref_id=%d" % reg.ref_obj_id)
            if reg.dynptr_id:
                attrs.append("dynptr_id=%d" % reg.dynptr_id)
            out.append(" fp%d%s=dynptr_%s(%s)" % ((-i - 1) * 8, _liveness(reg.live, marks), reg.dynptr_type,
                                                   ",".join(attrs)))
        elif kind == STACK_ITER:
            if not reg.ref_obj_id:
                continue
            it = reg.iter or (0, "<invalid>", "<invalid>", 0)
            out.append(" fp%d%s=iter_%s(ref_id=%d,state=%s,depth=%u)" % (
                (-i - 1) * 8, _liveness(reg.live, marks), it[1], reg.ref_obj_id, it[2], it[3]))
        else:
            out.append(" fp%d%s=%s" % ((-i - 1) * 8, _liveness(reg.live, marks), types))
    if refs:
        ids = [r.id for r in refs if r.id]
        if ids:
            out.append(" refs=" + ",".join(str(i) for i in ids))
    if state.in_callback_fn:
        out.append(" cb")
    if state.in_async_callback_fn:
        out.append(" async_cb")
    out.append("\n")
    return "".join(out)


def _liveness(live, marks):
    """print_liveness: '_' and r (read), w (written), D (done); '' without ``marks`` (6.18 no longer prints them:
    register liveness is computed before the walk)."""
    if not marks or not live & (REG_LIVE_READ | REG_LIVE_WRITTEN | REG_LIVE_DONE):
        return ""
    s = "_"
    if live & REG_LIVE_READ:
        s += "r"
    if live & REG_LIVE_WRITTEN:
        s += "w"
    if live & REG_LIVE_DONE:
        s += "D"
    return s


def init_func_state(callsite, frameno, subprogno, precise=False):
    """init_func_state + init_reg_state: R10 is the frame pointer, the rest not initialized."""
    f = FuncState(callsite, frameno, subprogno)
    for r in f.regs:
        mark_not_init(r, precise)
    fp = f.regs[BPF_REG_FP]
    mark_known_zero(fp)
    fp.type = PTR_TO_STACK
    fp.frameno = frameno
    return f
