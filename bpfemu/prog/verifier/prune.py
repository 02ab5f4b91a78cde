"""State pruning (is_state_visited): checkpoints at prune points, the 'old state covers the new one' test,
liveness propagation, and the detection of infinite loops.

A checkpoint is a copy of the state taken when the walk reaches a prune point; registers of the live state
then point at the checkpoint's registers (``parent``) so reads mark them live. When the walk comes back to
an instruction with a finished checkpoint whose live registers and stack cover the current ones
(``states_equal``), the current path is safe and is dropped. A checkpoint still being explored (its
``branches`` not zero) reached again with an identical state is an infinite loop.

The emulator does not track scalar precision: every live scalar of a checkpoint is compared by range
(as the kernel does for precise scalars). That prunes less than the kernel but never accepts a path the
kernel would reject.
"""
import errno

from . import tnum
from .regs import (BPF_ADD_CONST, NOT_INIT, PTR_TO_ARENA, PTR_TO_BUF, PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE,
                   PTR_TO_MEM, PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_STACK, PTR_TO_TP_BUFFER,
                   REG_LIVE_DONE, REG_LIVE_NONE, REG_LIVE_READ, REG_LIVE_READ64, SCALAR_VALUE, Reg,
                   mark_not_init, mark_unknown, range_within)
from .state import (BPF_REG_SIZE, STACK_DYNPTR, STACK_INVALID, STACK_ITER, STACK_MISC, STACK_SPILL,
                    STACK_ZERO, format_func_state)

NOT_EXACT, EXACT, RANGE_WITHIN = 0, 1, 2

_UNBOUND = Reg()
mark_unknown(_UNBOUND)
_UNBOUND.live |= REG_LIVE_READ


class IdMap:
    __slots__ = ("map", "tmp")

    def __init__(self, tmp):
        self.map = {}
        self.tmp = tmp

    def check(self, old_id, cur_id):
        if not old_id and not cur_id:
            return True
        if not (old_id and cur_id):
            return False
        m = self.map
        if old_id in m:
            return m[old_id] == cur_id
        m[old_id] = cur_id
        return True

    def check_scalar(self, old_id, cur_id):
        if not old_id:
            return True
        if not cur_id:
            self.tmp += 1
            cur_id = self.tmp
        if not self.check(old_id, cur_id):
            return False
        if old_id & BPF_ADD_CONST:
            if not self.check(old_id & ~BPF_ADD_CONST, cur_id & ~BPF_ADD_CONST):
                return False
        return True


def regs_exact(old, cur, idmap):
    return old.raw_eq(cur) and idmap.check(old.id, cur.id) and idmap.check(old.ref_obj_id, cur.ref_obj_id)


def regsafe(env, old, cur, idmap, exact):
    if exact == EXACT:
        return regs_exact(old, cur, idmap)
    if not (old.live & REG_LIVE_READ) and exact == NOT_EXACT:
        return True
    if old.type == NOT_INIT:
        if exact == NOT_EXACT or cur.type == NOT_INIT:
            return True
    if old.type != cur.type:
        return False
    b = old.type & 0xff
    if b == SCALAR_VALUE:
        if env.explore_alu_limits:
            return old.raw_eq(cur) and idmap.check_scalar(old.id, cur.id)
        if not old.precise and not env.track_all_precise and exact == NOT_EXACT:
            return True
        if old.id & BPF_ADD_CONST and not cur.id & BPF_ADD_CONST:
            return False
        if old.id and not old.id & BPF_ADD_CONST and cur.id & BPF_ADD_CONST:
            return False
        if old.id & BPF_ADD_CONST and old.off != cur.off:
            return False
        if not idmap.check_scalar(old.id, cur.id):
            return False
        return range_within(old, cur) and tnum.tin((old.vv, old.vm), (cur.vv, cur.vm))
    if b in (PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE, PTR_TO_MEM, PTR_TO_BUF, PTR_TO_TP_BUFFER):
        return (old.off == cur.off and old.map is cur.map and old.map_uid == cur.map_uid and
                old.mem_size == cur.mem_size and old.btf_id == cur.btf_id and old.btf is cur.btf and
                range_within(old, cur) and tnum.tin((old.vv, old.vm), (cur.vv, cur.vm)) and
                idmap.check(old.id, cur.id) and idmap.check(old.ref_obj_id, cur.ref_obj_id))
    if b in (PTR_TO_PACKET_META, PTR_TO_PACKET):
        if old.range < 0 or cur.range < 0:
            if old.range != cur.range:
                return False
        elif old.range > cur.range:
            return False
        if old.off != cur.off:
            return False
        if not idmap.check(old.id, cur.id):
            return False
        return range_within(old, cur) and tnum.tin((old.vv, old.vm), (cur.vv, cur.vm))
    if b == PTR_TO_STACK:
        return regs_exact(old, cur, idmap) and old.frameno == cur.frameno
    if b == PTR_TO_ARENA:
        return True
    return regs_exact(old, cur, idmap)


def _scalar_reg_for_stack(env, slot):
    if slot.st[0] == STACK_SPILL and slot.spilled.type == SCALAR_VALUE:
        return slot.spilled
    for t in slot.st:
        if t == STACK_MISC or (t == STACK_INVALID and env.allow_uninit_stack):
            continue
        return None
    return _UNBOUND


def stacksafe(env, old, cur, idmap, exact):
    old_alloc = len(old.stack) * BPF_REG_SIZE
    cur_alloc = len(cur.stack) * BPF_REG_SIZE
    i = 0
    while i < old_alloc:
        spi = i // BPF_REG_SIZE
        k = i % BPF_REG_SIZE
        oslot = old.stack[spi]
        if exact != NOT_EXACT and (i >= cur_alloc or oslot.st[k] != cur.stack[spi].st[k]):
            return False
        if not (oslot.spilled.live & REG_LIVE_READ) and exact == NOT_EXACT:
            i += BPF_REG_SIZE
            continue
        ot = oslot.st[k]
        if ot == STACK_INVALID:
            i += 1
            continue
        if env.allow_uninit_stack and ot == STACK_MISC:
            i += 1
            continue
        if i >= cur_alloc:
            return False
        cslot = cur.stack[spi]
        oreg = _scalar_reg_for_stack(env, oslot)
        creg = _scalar_reg_for_stack(env, cslot)
        if oreg is not None and creg is not None:
            if not regsafe(env, oreg, creg, idmap, exact):
                return False
            i = (spi + 1) * BPF_REG_SIZE
            continue
        ct = cslot.st[k]
        if ot == STACK_MISC and ct == STACK_ZERO:
            i += 1
            continue
        if ot != ct:
            return False
        if k != BPF_REG_SIZE - 1:
            i += 1
            continue
        last = oslot.st[BPF_REG_SIZE - 1]
        if last == STACK_SPILL:
            if not regsafe(env, oslot.spilled, cslot.spilled, idmap, exact):
                return False
        elif last == STACK_DYNPTR:
            o, c = oslot.spilled, cslot.spilled
            if o.dynptr_type != c.dynptr_type or o.dynptr_first != c.dynptr_first or \
                    not idmap.check(o.ref_obj_id, c.ref_obj_id):
                return False
        elif last == STACK_ITER:
            o, c = oslot.spilled, cslot.spilled
            # the iteration depth is not compared (it only keeps the infinite loop check from firing)
            if o.type != c.type or (o.iter or ())[:3] != (c.iter or ())[:3] or \
                    not idmap.check(o.ref_obj_id, c.ref_obj_id):
                return False
        elif last not in (STACK_MISC, STACK_ZERO, STACK_INVALID):
            return False
        i += 1
    return True


def refsafe(old, cur, idmap):
    if len(old.refs) != len(cur.refs):
        return False
    for a, b in zip(old.refs, cur.refs):
        if a.kind != b.kind or not idmap.check(a.id, b.id):
            return False
        if a.kind == "lock" and a.ptr is not b.ptr:
            return False
    return True


def func_states_equal(env, old, cur, idmap, exact):
    if old.callback_depth > cur.callback_depth:
        return False
    for o, c in zip(old.regs, cur.regs):
        if not regsafe(env, o, c, idmap, exact):
            return False
    return stacksafe(env, old, cur, idmap, exact)


def states_equal(env, old, cur, exact):
    if old.curframe != cur.curframe:
        return False
    idmap = IdMap(env.id_gen)
    if old.speculative and not cur.speculative:
        return False
    if (old.active_lock is None) != (cur.active_lock is None):
        return False
    if old.active_lock is not None:
        # the lock's map and the id of the pointer it was taken through (the id enters the id map first)
        if old.active_lock[0] is not cur.active_lock[0]:
            return False
        if old.active_lock[1] and not idmap.check(old.active_lock[1], cur.active_lock[1]):
            return False
    if old.active_rcu_lock != cur.active_rcu_lock:
        return False
    if old.active_preempt_lock != cur.active_preempt_lock:
        return False
    if old.in_sleepable != cur.in_sleepable:
        return False
    for i in range(old.curframe + 1):
        if old.frame[i].callsite != cur.frame[i].callsite:
            return False
        if not func_states_equal(env, old.frame[i], cur.frame[i], idmap, exact):
            return False
    return refsafe(old, cur, idmap)


def states_maybe_looping(old, cur):
    fold = old.frame[old.curframe]
    fcur = cur.frame[cur.curframe]
    if old.curframe != cur.curframe:
        return False
    for o, c in zip(fold.regs, fcur.regs):
        if not o.raw_eq(c) or o.id != c.id or o.ref_obj_id != c.ref_obj_id:
            return False
    return True


def clean_func_state(env, st):
    for r in st.regs[:10]:
        live = r.live
        r.live |= REG_LIVE_DONE
        if not live & REG_LIVE_READ:
            mark_not_init(r, not env.bpf_capable)
    for slot in st.stack:
        live = slot.spilled.live
        slot.spilled.live |= REG_LIVE_DONE
        if not live & REG_LIVE_READ:
            mark_not_init(slot.spilled, not env.bpf_capable)
            for j in range(8):
                slot.st[j] = STACK_INVALID


def clean_verifier_state(env, st):
    if st.frame[0].regs[0].live & REG_LIVE_DONE:
        return
    for f in st.frame[:st.curframe + 1]:
        clean_func_state(env, f)


def same_callsites(a, b):
    if a.curframe != b.curframe:
        return False
    for i in range(a.curframe, -1, -1):
        if a.frame[i].callsite != b.frame[i].callsite:
            return False
    return True


def get_loop_entry(st):
    top = st.loop_entry
    while top is not None and top.loop_entry is not None and top is not top.loop_entry:
        top = top.loop_entry
    s = st
    while s is not None and s.loop_entry is not top:
        old = s.loop_entry
        s.loop_entry = top
        s = old
    return top


def update_loop_entry(cur, hdr):
    cur1 = get_loop_entry(cur) or cur
    hdr1 = get_loop_entry(hdr) or hdr
    if hdr1.branches and hdr1.dfs_depth <= cur1.dfs_depth:
        cur.loop_entry = hdr
        hdr.used_as_loop_entry = True


class PruneMixin:

    def mark_chain_precision(self, regno):
        """mark_chain_precision: every scalar is compared as precise already (``track_all_precise``)."""

    def update_branch_counts(self, st):
        while st is not None:
            st.branches -= 1
            br = st.branches
            if br == 0 and st.parent is not None and st.loop_entry is not None:
                update_loop_entry(st.parent, st.loop_entry)
            if br:
                break
            st = st.parent

    def propagate_liveness_reg(self, reg, parent_reg):
        parent_flag = parent_reg.live & REG_LIVE_READ
        flag = reg.live & REG_LIVE_READ
        if parent_flag == REG_LIVE_READ64 or not flag or parent_flag == flag:
            return
        # mark_reg_read(reg -> parent_reg ...)
        state = reg
        parent = parent_reg
        while parent is not None:
            if state.live & 4 and state is not reg:     # REG_LIVE_WRITTEN
                break
            if parent.live & REG_LIVE_READ64 or (parent.live & flag) == flag:
                break
            parent.live |= flag
            state = parent
            parent = state.parent

    def propagate_liveness(self, vstate, vparent):
        for fi in range(vstate.curframe + 1):
            parent = vparent.frame[fi]
            state = vstate.frame[fi]
            start = 6 if fi < vstate.curframe else 0
            for i in range(start, 10):
                self.propagate_liveness_reg(state.regs[i], parent.regs[i])
            for i in range(min(len(state.stack), len(parent.stack))):
                self.propagate_liveness_reg(state.stack[i].spilled, parent.stack[i].spilled)

    def is_state_visited(self, insn_idx):
        cur = self.cur_state
        aux = self.insn_aux[insn_idx]
        force_new = self.test_state_freq or aux.force_checkpoint
        add_new = force_new
        if self.jmps_processed - self.prev_jmps_processed >= 2 and \
                self.insn_processed - self.prev_insn_processed >= 8:
            add_new = True
        lst = self.explored.get(insn_idx)
        if lst is None:
            lst = self.explored[insn_idx] = []
        # clean_live_states
        for sl in lst:
            if sl.branches:
                continue
            le = get_loop_entry(sl)
            if le is not None and le.branches:
                continue
            if not same_callsites(sl, cur):
                continue
            clean_verifier_state(self, sl)
        states_cnt = 0
        i = 0
        while i < len(lst):
            sl = lst[i]
            states_cnt += 1
            hit = False
            if sl.branches:
                frame = sl.frame[sl.curframe]
                skip_loop_check = False
                if frame.in_async_callback_fn and frame.async_entry_cnt != cur.frame[cur.curframe].async_entry_cnt:
                    skip_loop_check = True
                elif aux.is_iter_next:
                    if states_equal(self, sl, cur, RANGE_WITHIN) and self.iter_active(cur):
                        update_loop_entry(cur, sl)
                        hit = True
                    skip_loop_check = True
                else:
                    if aux.is_may_goto:
                        if sl.may_goto_depth != cur.may_goto_depth and states_equal(self, sl, cur, RANGE_WITHIN):
                            update_loop_entry(cur, sl)
                            hit = True
                    if not hit and aux.calls_callback:
                        if states_equal(self, sl, cur, RANGE_WITHIN):
                            hit = True
                        skip_loop_check = True
                if not hit and not skip_loop_check:
                    if (states_maybe_looping(sl, cur) and states_equal(self, sl, cur, EXACT) and
                            not self.iter_active_depths_differ(sl, cur) and
                            sl.may_goto_depth == cur.may_goto_depth and
                            sl.callback_unroll_depth == cur.callback_unroll_depth):
                        self.verbose_linfo(insn_idx, "; ")
                        self.verbose("infinite loop detected at insn %d\n" % insn_idx)
                        self.verbose("cur state:" + format_func_state(cur.frame[cur.curframe], True,
                                                                      refs=cur.refs, marks=self.log.liveness_marks))
                        self.verbose("old state:" + format_func_state(sl.frame[cur.curframe], True,
                                                                      refs=sl.refs, marks=self.log.liveness_marks))
                        self.fail(errno.EINVAL)
                if not hit:
                    if not force_new and self.jmps_processed - self.prev_jmps_processed < 20 and \
                            self.insn_processed - self.prev_insn_processed < 100:
                        add_new = False
            else:
                le = get_loop_entry(sl)
                force_exact = le is not None and le.branches > 0
                if states_equal(self, sl, cur, RANGE_WITHIN if force_exact else NOT_EXACT):
                    if force_exact:
                        update_loop_entry(cur, le)
                    hit = True
            if hit:
                sl.hit_cnt += 1
                self.propagate_liveness(sl, cur)
                return True
            # miss
            if add_new:
                sl.miss_cnt += 1
            n = 64 if aux.force_checkpoint and sl.branches > 0 else 3
            if sl.miss_cnt > sl.hit_cnt * n + n:
                # a state that misses often leaves the list; it is freed unless a path still needs it
                # (the kernel's free_list)
                del lst[i]
                if sl.frame[0].regs[0].live & REG_LIVE_DONE and not sl.used_as_loop_entry:
                    self.peak_states -= 1
                continue
            i += 1
        if self.max_states_per_insn < states_cnt:
            self.max_states_per_insn = states_cnt
        if not self.bpf_capable and states_cnt > 64:
            return False
        if not add_new:
            return False
        self.total_states += 1
        self.peak_states += 1
        self.prev_jmps_processed = self.jmps_processed
        self.prev_insn_processed = self.insn_processed
        new = cur.copy()
        new.insn_idx = insn_idx
        new.branches = 1
        cur.parent = new
        cur.first_insn_idx = insn_idx
        cur.dfs_depth = new.dfs_depth + 1
        lst.insert(0, new)
        for j in range(cur.curframe + 1):
            cf = cur.frame[j]
            nf = new.frame[j]
            start = 6 if j < cur.curframe else 0
            for r in range(start, 10):
                cf.regs[r].parent = nf.regs[r]
            for r in range(10):
                cf.regs[r].live = REG_LIVE_NONE
            for si in range(len(cf.stack)):
                cf.stack[si].spilled.live = REG_LIVE_NONE
                cf.stack[si].spilled.parent = nf.stack[si].spilled
        return False

    def find_prev_entry(self, parent, insn_idx):
        lst = self.explored.get(insn_idx, ())
        for sl in lst:
            if sl.insn_idx == insn_idx and sl.branches and same_callsites(sl, self.cur_state):
                return sl
        return None

    def widen_imprecise_scalars(self, old, cur):
        for fi in range(old.curframe, -1, -1):
            fold = old.frame[fi]
            fcur = cur.frame[fi]
            for i in range(10):
                o, c = fold.regs[i], fcur.regs[i]
                if c.type == SCALAR_VALUE and o.type == SCALAR_VALUE and not c.precise and not o.raw_eq(c):
                    mark_unknown(c)
            for i in range(min(len(fold.stack), len(fcur.stack))):
                os_, cs = fold.stack[i], fcur.stack[i]
                if os_.is_spilled_reg() and cs.is_spilled_reg():
                    o, c = os_.spilled, cs.spilled
                    if c.type == SCALAR_VALUE and o.type == SCALAR_VALUE and not c.precise and not o.raw_eq(c):
                        mark_unknown(c)
