"""Conditional jumps (check_cond_jmp_op): which way a branch can go, and what each side learns.

When both outcomes are possible the current path continues on the fall-through side and the taken side is
pushed for later, each with its registers narrowed by the comparison (regs_refine_cond_op), null checks
turning ``*_or_null`` pointers into pointers or zeros, and comparisons of packet pointers with
``data_end`` proving packet ranges.
"""
import errno

from ..insn import (BPF_JA, BPF_JCOND, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JLE, BPF_JLT, BPF_JMP, BPF_JMP32, BPF_JNE,
                    BPF_JSET, BPF_JSGE, BPF_JSGT, BPF_JSLE, BPF_JSLT, BPF_X)
from . import tnum
from .alu import SRC_OP, scalar32_add, scalar_add
from .regs import (BPF_ADD_CONST, CONST_PTR_TO_MAP, PTR_TO_SOCKET, PTR_TO_XDP_SOCK, PTR_MAYBE_NULL, PTR_TO_BTF_ID, PTR_TO_PACKET, PTR_TO_PACKET_END,
                   PTR_TO_PACKET_META, PTR_TO_MAP_VALUE, SCALAR_VALUE, U32, U64, Reg, base_type, mark_known,
                   mark_unbounded, reg_bounds_sync, reg_not_null, s32, s64, type_may_be_null)
from .mem import inner_map_of, map_fields
from .state import STACK_SPILL
from ... import uapi

BPF_MAP_TYPE_XSKMAP = uapi.BPF_MAP_TYPE_XSKMAP
BPF_MAP_TYPE_SOCKMAP = uapi.BPF_MAP_TYPE_SOCKMAP
BPF_MAP_TYPE_SOCKHASH = uapi.BPF_MAP_TYPE_SOCKHASH

AT_PKT_END = -1
BEYOND_PKT_END = -2
MAX_PACKET_OFF = 0xffff

FLIP = {BPF_JEQ: BPF_JEQ, BPF_JNE: BPF_JNE, BPF_JSET: BPF_JSET, BPF_JGE: BPF_JLE, BPF_JGT: BPF_JLT,
        BPF_JLE: BPF_JGE, BPF_JLT: BPF_JGT, BPF_JSGE: BPF_JSLE, BPF_JSGT: BPF_JSLT, BPF_JSLE: BPF_JSGE,
        BPF_JSLT: BPF_JSGT}
REV = {BPF_JEQ: BPF_JNE, BPF_JNE: BPF_JEQ, BPF_JSET: BPF_JSET | BPF_X, BPF_JSET | BPF_X: BPF_JSET,
       BPF_JGE: BPF_JLT, BPF_JGT: BPF_JLE, BPF_JLE: BPF_JGT, BPF_JLT: BPF_JGE, BPF_JSGE: BPF_JSLT,
       BPF_JSGT: BPF_JSLE, BPF_JSLE: BPF_JSGT, BPF_JSLT: BPF_JSGE}


def is_reg_const(reg, is32):
    return reg.type == SCALAR_VALUE and (not (reg.vm & U32) if is32 else reg.vm == 0)


def reg_const_value(reg, is32):
    return reg.vv & U32 if is32 else reg.vv


def is_scalar_branch_taken(r1, r2, op, is32):
    if is32:
        t1 = (r1.vv & U32, r1.vm & U32)
        t2 = (r2.vv & U32, r2.vm & U32)
        umin1, umax1, smin1, smax1 = r1.u32min, r1.u32max, r1.s32min, r1.s32max
        umin2, umax2, smin2, smax2 = r2.u32min, r2.u32max, r2.s32min, r2.s32max
    else:
        t1 = (r1.vv, r1.vm)
        t2 = (r2.vv, r2.vm)
        umin1, umax1, smin1, smax1 = r1.umin, r1.umax, r1.smin, r1.smax
        umin2, umax2, smin2, smax2 = r2.umin, r2.umax, r2.smin, r2.smax
    if op == BPF_JEQ or op == BPF_JNE:
        res_ne = None
        if t1[1] == 0 and t2[1] == 0:
            eq = t1[0] == t2[0]
            return int(eq) if op == BPF_JEQ else int(not eq)
        if not tnum.overlap(t1, t2) or umin1 > umax2 or umax1 < umin2 or smin1 > smax2 or smax1 < smin2:
            res_ne = True
        elif not is32 and (r1.u32min > r2.u32max or r1.u32max < r2.u32min or r1.s32min > r2.s32max or
                           r1.s32max < r2.s32min):
            res_ne = True
        if res_ne:
            return 0 if op == BPF_JEQ else 1
        return -1
    if op == BPF_JSET:
        if not is_reg_const(r2, is32):
            r1, r2 = r2, r1
            t1, t2 = t2, t1
        if not is_reg_const(r2, is32):
            return -1
        if (~t1[1] & t1[0]) & t2[0]:
            return 1
        if not ((t1[1] | t1[0]) & t2[0]):
            return 0
        return -1
    if op == BPF_JGT:
        if umin1 > umax2:
            return 1
        if umax1 <= umin2:
            return 0
    elif op == BPF_JSGT:
        if smin1 > smax2:
            return 1
        if smax1 <= smin2:
            return 0
    elif op == BPF_JLT:
        if umax1 < umin2:
            return 1
        if umin1 >= umax2:
            return 0
    elif op == BPF_JSLT:
        if smax1 < smin2:
            return 1
        if smin1 >= smax2:
            return 0
    elif op == BPF_JGE:
        if umin1 >= umax2:
            return 1
        if umax1 < umin2:
            return 0
    elif op == BPF_JSGE:
        if smin1 >= smax2:
            return 1
        if smax1 < smin2:
            return 0
    elif op == BPF_JLE:
        if umax1 <= umin2:
            return 1
        if umin1 > umax2:
            return 0
    elif op == BPF_JSLE:
        if smax1 <= smin2:
            return 1
        if smin1 > smax2:
            return 0
    return -1


def is_pkt_ptr_branch_taken(dreg, sreg, op):
    if sreg.type == PTR_TO_PACKET_END:
        pkt = dreg
    elif dreg.type == PTR_TO_PACKET_END:
        pkt = sreg
        op = FLIP[op]
    else:
        return -1
    if pkt.range >= 0:
        return -1
    if op in (BPF_JLE, BPF_JGT):
        if pkt.range == BEYOND_PKT_END:
            return int(op == BPF_JGT)
    elif op in (BPF_JLT, BPF_JGE):
        if pkt.range in (BEYOND_PKT_END, AT_PKT_END):
            return int(op == BPF_JGE)
    return -1


def _pkt_any(reg):
    return reg.type in (PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_PACKET_END)


def is_branch_taken(r1, r2, op, is32):
    if _pkt_any(r1) and _pkt_any(r2) and not is32:
        return is_pkt_ptr_branch_taken(r1, r2, op)
    if r1.type != SCALAR_VALUE or r2.type != SCALAR_VALUE:
        if is32:
            return -1
        if not is_reg_const(r2, is32):
            op = FLIP[op]
            r1, r2 = r2, r1
        if not is_reg_const(r2, is32):
            return -1
        if not reg_not_null(r1):
            return -1
        if reg_const_value(r2, is32) != 0:
            return -1
        if op == BPF_JEQ:
            return 0
        if op == BPF_JNE:
            return 1
        return -1
    return is_scalar_branch_taken(r1, r2, op, is32)


def regs_refine_cond_op(r1, r2, op, is32):
    if op in (BPF_JGE, BPF_JGT, BPF_JSGE, BPF_JSGT):
        op = FLIP[op]
        r1, r2 = r2, r1
    if op == BPF_JEQ:
        if is32:
            r1.u32min = max(r1.u32min, r2.u32min)
            r1.u32max = min(r1.u32max, r2.u32max)
            r1.s32min = max(r1.s32min, r2.s32min)
            r1.s32max = min(r1.s32max, r2.s32max)
            r2.u32min, r2.u32max, r2.s32min, r2.s32max = r1.u32min, r1.u32max, r1.s32min, r1.s32max
            t = tnum.intersect(tnum.subreg((r1.vv, r1.vm)), tnum.subreg((r2.vv, r2.vm)))
            r1.vv, r1.vm = tnum.with_subreg((r1.vv, r1.vm), t)
            r2.vv, r2.vm = tnum.with_subreg((r2.vv, r2.vm), t)
        else:
            r1.umin = max(r1.umin, r2.umin)
            r1.umax = min(r1.umax, r2.umax)
            r1.smin = max(r1.smin, r2.smin)
            r1.smax = min(r1.smax, r2.smax)
            r2.umin, r2.umax, r2.smin, r2.smax = r1.umin, r1.umax, r1.smin, r1.smax
            r1.vv, r1.vm = tnum.intersect((r1.vv, r1.vm), (r2.vv, r2.vm))
            r2.vv, r2.vm = r1.vv, r1.vm
    elif op == BPF_JNE:
        if not is_reg_const(r2, is32):
            r1, r2 = r2, r1
        if not is_reg_const(r2, is32):
            return
        val = reg_const_value(r2, is32)
        # a tnum with one unknown bit holds two values: excluding one leaves the other
        if is32:
            m = r1.vm & U32
            if m and not m & (m - 1) and (r1.vv & U32) | (val & m) == val:
                r1.vv, r1.vm = tnum.with_subreg((r1.vv, r1.vm), (val ^ m, 0))
        else:
            m = r1.vm
            if m and not m & (m - 1) and r1.vv | (val & m) == val:
                r1.vv, r1.vm = val ^ m, 0
        if is32:
            if r1.u32min == val & U32:
                r1.u32min += 1
            if r1.u32max == val & U32:
                r1.u32max -= 1
            if r1.s32min == s32(val):
                r1.s32min += 1
            if r1.s32max == s32(val):
                r1.s32max -= 1
        else:
            if r1.umin == val:
                r1.umin += 1
            if r1.umax == val:
                r1.umax -= 1
            if r1.smin == s64(val):
                r1.smin += 1
            if r1.smax == s64(val):
                r1.smax -= 1
        _wrap(r1)
    elif op == BPF_JSET:
        if not is_reg_const(r2, is32):
            r1, r2 = r2, r1
        if not is_reg_const(r2, is32):
            return
        val = reg_const_value(r2, is32)
        if not val or val & (val - 1):
            return
        if is32:
            t = tnum.tor(tnum.subreg((r1.vv, r1.vm)), (val, 0))
            r1.vv, r1.vm = tnum.with_subreg((r1.vv, r1.vm), t)
        else:
            r1.vv, r1.vm = tnum.tor((r1.vv, r1.vm), (val, 0))
    elif op == BPF_JSET | BPF_X:
        if not is_reg_const(r2, is32):
            r1, r2 = r2, r1
        if not is_reg_const(r2, is32):
            return
        val = reg_const_value(r2, is32)
        mark_unbounded(r1)
        if is32:
            t = tnum.tand(tnum.subreg((r1.vv, r1.vm)), (~val & U64, 0))
            r1.vv, r1.vm = tnum.with_subreg((r1.vv, r1.vm), t)
        else:
            r1.vv, r1.vm = tnum.tand((r1.vv, r1.vm), (~val & U64, 0))
    elif op == BPF_JLE:
        if is32:
            r1.u32max = min(r1.u32max, r2.u32max)
            r2.u32min = max(r1.u32min, r2.u32min)
        else:
            r1.umax = min(r1.umax, r2.umax)
            r2.umin = max(r1.umin, r2.umin)
    elif op == BPF_JLT:
        if is32:
            r1.u32max = min(r1.u32max, (r2.u32max - 1) & U32)
            r2.u32min = max((r1.u32min + 1) & U32, r2.u32min)
        else:
            r1.umax = min(r1.umax, (r2.umax - 1) & U64)
            r2.umin = max((r1.umin + 1) & U64, r2.umin)
    elif op == BPF_JSLE:
        if is32:
            r1.s32max = min(r1.s32max, r2.s32max)
            r2.s32min = max(r1.s32min, r2.s32min)
        else:
            r1.smax = min(r1.smax, r2.smax)
            r2.smin = max(r1.smin, r2.smin)
    elif op == BPF_JSLT:
        if is32:
            r1.s32max = min(r1.s32max, s32(r2.s32max - 1))
            r2.s32min = max(s32(r1.s32min + 1), r2.s32min)
        else:
            r1.smax = min(r1.smax, s64(r2.smax - 1))
            r2.smin = max(s64(r1.smin + 1), r2.smin)


def _wrap(r):
    """Keep C's wrap-around of the u/s fields after ++/--."""
    r.umin &= U64
    r.umax &= U64
    r.u32min &= U32
    r.u32max &= U32
    r.smin = s64(r.smin)
    r.smax = s64(r.smax)
    r.s32min = s32(r.s32min)
    r.s32max = s32(r.s32max)


class JmpMixin:

    def check_cond_jmp_op(self, insn):
        code, dst, src, off, imm = insn
        st = self.cur_state
        regs = st.frame[st.curframe].regs
        op = code & 0xf0
        if op == BPF_JA or op > BPF_JCOND:
            self.fail(errno.EINVAL, "invalid BPF_JMP/JMP32 opcode %x\n" % op)
        if op == BPF_JCOND:
            if code != BPF_JMP | BPF_JCOND or src != 0 or dst or imm or off == 0:
                self.fail(errno.EINVAL, "invalid may_goto off %d imm %d\n" % (off, imm))
            queued = self.push_stack(self.insn_idx + 1, self.insn_idx, False)
            queued.may_goto_depth += 1
            prev = self.find_prev_entry(st.parent, self.insn_idx)
            if prev is not None:
                self.widen_imprecise_scalars(prev, queued)
            self.insn_idx += off
            return
        self.check_reg_arg(dst, SRC_OP)
        dreg = regs[dst]
        if code & BPF_X:
            if imm != 0:
                self.fail(errno.EINVAL, "BPF_JMP/JMP32 uses reserved fields\n")
            self.check_reg_arg(src, SRC_OP)
            sreg = regs[src]
            if not (_pkt_any(dreg) and _pkt_any(sreg)) and self.is_pointer_value(src):
                self.fail(errno.EACCES, "R%d pointer comparison prohibited\n" % src)
        else:
            if src != 0:
                self.fail(errno.EINVAL, "BPF_JMP/JMP32 uses reserved fields\n")
            sreg = Reg()
            sreg.type = SCALAR_VALUE
            mark_known(sreg, imm)
        is32 = code & 7 == BPF_JMP32
        pred = is_branch_taken(dreg, sreg, op, is32)
        if pred == 1:
            if not self.bypass_spec_v1:
                self.sanitize_speculative_path(insn, self.insn_idx + 1, self.insn_idx)
            if self.log_level & 3:
                self.print_insn_state()
            self.insn_idx += off
            return
        if pred == 0:
            if not self.bypass_spec_v1:
                self.sanitize_speculative_path(insn, self.insn_idx + off + 1, self.insn_idx)
            if self.log_level & 3:
                self.print_insn_state()
            return
        linked = []
        if code & BPF_X and sreg.type == SCALAR_VALUE and sreg.id:
            self.collect_linked_regs(st, sreg.id, linked)
        if dreg.type == SCALAR_VALUE and dreg.id:
            self.collect_linked_regs(st, dreg.id, linked)
        other = self.push_stack(self.insn_idx + off + 1, self.insn_idx, False)
        oregs = other.frame[other.curframe].regs
        if code & BPF_X:
            self.reg_set_min_max(oregs[dst], oregs[src], dreg, sreg, op, is32)
        else:
            fake1 = sreg
            fake2 = sreg.copy()
            self.reg_set_min_max(oregs[dst], fake1, dreg, fake2, op, is32)
        if code & BPF_X and sreg.type == SCALAR_VALUE and sreg.id:
            self.sync_linked_regs(st, sreg, linked)
            self.sync_linked_regs(other, oregs[src], linked)
        if dreg.type == SCALAR_VALUE and dreg.id:
            self.sync_linked_regs(st, dreg, linked)
            self.sync_linked_regs(other, oregs[dst], linked)
        if (not is32 and code & BPF_X and sreg.type != SCALAR_VALUE and dreg.type != SCALAR_VALUE and
                base_type(sreg.type) != PTR_TO_BTF_ID and base_type(dreg.type) != PTR_TO_BTF_ID):
            eq = None
            if op == BPF_JEQ:
                eq = oregs
            elif op == BPF_JNE:
                eq = regs
            if eq is not None:
                if reg_not_null(dreg) and type_may_be_null(sreg.type):
                    self.mark_ptr_not_null_reg(eq[src])
                if reg_not_null(sreg) and type_may_be_null(dreg.type):
                    self.mark_ptr_not_null_reg(eq[dst])
        if not is32 and not code & BPF_X and imm == 0 and op in (BPF_JEQ, BPF_JNE) and \
                type_may_be_null(dreg.type):
            self.mark_ptr_or_null_regs(st, dst, op == BPF_JNE)
            self.mark_ptr_or_null_regs(other, dst, op == BPF_JEQ)
        elif not self.try_match_pkt_pointers(insn, dreg, regs[src], st, other) and self.is_pointer_value(dst):
            self.fail(errno.EACCES, "R%d pointer comparison prohibited\n" % dst)
        if self.log_level & 3:
            self.print_insn_state()

    def reg_set_min_max(self, t1, t2, f1, f2, op, is32):
        if f1.type != SCALAR_VALUE or f2.type != SCALAR_VALUE:
            return
        regs_refine_cond_op(f1, f2, REV[op], is32)
        reg_bounds_sync(f1)
        reg_bounds_sync(f2)
        regs_refine_cond_op(t1, t2, op, is32)
        reg_bounds_sync(t1)
        reg_bounds_sync(t2)
        self.reg_bounds_sanity_check(t1, "true_reg1")
        self.reg_bounds_sanity_check(t2, "true_reg2")
        self.reg_bounds_sanity_check(f1, "false_reg1")
        self.reg_bounds_sanity_check(f2, "false_reg2")

    # -- linked scalars (same id: copies of one value, possibly plus a constant) --
    @staticmethod
    def collect_linked_regs(vstate, id_, out):
        id_ &= ~BPF_ADD_CONST
        for i in range(vstate.curframe, -1, -1):
            f = vstate.frame[i]
            for j in range(10):
                r = f.regs[j]
                if r.type == SCALAR_VALUE and (r.id & ~BPF_ADD_CONST) == id_:
                    out.append((i, True, j))
            for j, s in enumerate(f.stack):
                if s.st[7] != STACK_SPILL:
                    continue
                r = s.spilled
                if r.type == SCALAR_VALUE and (r.id & ~BPF_ADD_CONST) == id_:
                    out.append((i, False, j))

    @staticmethod
    def sync_linked_regs(vstate, known, linked):
        for frameno, is_reg, n in linked:
            f = vstate.frame[frameno]
            reg = f.regs[n] if is_reg else f.stack[n].spilled
            if reg.type != SCALAR_VALUE or reg is known:
                continue
            if (reg.id & ~BPF_ADD_CONST) != (known.id & ~BPF_ADD_CONST):
                continue
            if (not (reg.id & BPF_ADD_CONST) and not (known.id & BPF_ADD_CONST)) or reg.off == known.off:
                sd = reg.subreg_def
                reg.copy_state_from(known)
                reg.subreg_def = sd
            else:
                sd, so, sid = reg.subreg_def, reg.off, reg.id
                fake = Reg()
                fake.type = SCALAR_VALUE
                mark_known(fake, s32(reg.off) - s32(known.off))
                reg.copy_state_from(known)
                reg.off, reg.id, reg.subreg_def = so, sid, sd
                scalar32_add(reg, fake)
                scalar_add(reg, fake)
                reg.vv, reg.vm = tnum.add((reg.vv, reg.vm), (fake.vv, fake.vm))

    # -- null checks --
    def mark_ptr_not_null_reg(self, reg):
        if base_type(reg.type) == PTR_TO_MAP_VALUE:
            m = reg.map
            inner = inner_map_of(m)
            if inner is not None:
                reg.type = CONST_PTR_TO_MAP
                reg.map = inner
                if any(k in ("timer", "wq") for k, _, _, _ in map_fields(inner)):
                    reg.map_uid = reg.id
            elif m.map_type == BPF_MAP_TYPE_XSKMAP:
                reg.type = PTR_TO_XDP_SOCK
            elif m.map_type in (BPF_MAP_TYPE_SOCKMAP, BPF_MAP_TYPE_SOCKHASH):
                reg.type = PTR_TO_SOCKET
            else:
                reg.type = PTR_TO_MAP_VALUE
            return
        reg.type &= ~PTR_MAYBE_NULL

    def mark_ptr_or_null_reg(self, reg, id_, is_null):
        if type_may_be_null(reg.type) and reg.id == id_:
            if reg.smin or reg.smax or reg.vm or reg.vv:
                return
            if is_null:
                reg.type = SCALAR_VALUE
                reg.id = 0
                reg.ref_obj_id = 0
                return
            self.mark_ptr_not_null_reg(reg)
            if not self.reg_may_point_to_spin_lock(reg):
                reg.id = 0

    def mark_ptr_or_null_regs(self, vstate, regno, is_null):
        regs = vstate.frame[vstate.curframe].regs
        ref_obj_id = regs[regno].ref_obj_id
        id_ = regs[regno].id
        if ref_obj_id and ref_obj_id == id_ and is_null:
            self.release_reference_state(vstate, id_)
        for r in vstate.all_regs():
            self.mark_ptr_or_null_reg(r, id_, is_null)

    def reg_may_point_to_spin_lock(self, reg):
        if base_type(reg.type) != PTR_TO_MAP_VALUE or reg.map is None:
            return False
        return any(k == "spin_lock" for k, _, _, _ in map_fields(reg.map))

    # -- packet pointers --
    @staticmethod
    def find_good_pkt_pointers(vstate, dreg, type_, range_right_open):
        if dreg.off < 0 or (dreg.off == 0 and range_right_open):
            return
        if dreg.umax > MAX_PACKET_OFF or dreg.umax + dreg.off > MAX_PACKET_OFF:
            return
        new_range = dreg.off
        if range_right_open:
            new_range += 1
        did = dreg.id
        for r in vstate.all_regs():
            if r.type == type_ and r.id == did:
                r.range = max(r.range, new_range)

    @staticmethod
    def mark_pkt_end(vstate, regn, range_open):
        reg = vstate.frame[vstate.curframe].regs[regn]
        if reg.type != PTR_TO_PACKET:
            return
        reg.range = BEYOND_PKT_END if range_open else AT_PKT_END

    def try_match_pkt_pointers(self, insn, dreg, sreg, this, other):
        code, dst, src = insn[0], insn[1], insn[2]
        if not code & BPF_X or code & 7 == BPF_JMP32:
            return False
        op = code & 0xf0

        def init_pkt(r):
            return r.type == PTR_TO_PACKET and r.off == 0 and r.vm == 0 and r.vv == 0
        a = (dreg.type == PTR_TO_PACKET and sreg.type == PTR_TO_PACKET_END) or \
            (dreg.type == PTR_TO_PACKET_META and init_pkt(sreg))
        b = (dreg.type == PTR_TO_PACKET_END and sreg.type == PTR_TO_PACKET) or \
            (init_pkt(dreg) and sreg.type == PTR_TO_PACKET_META)
        if op == BPF_JGT:
            if a:
                self.find_good_pkt_pointers(this, dreg, dreg.type, False)
                self.mark_pkt_end(other, dst, True)
            elif b:
                self.find_good_pkt_pointers(other, sreg, sreg.type, True)
                self.mark_pkt_end(this, src, False)
            else:
                return False
        elif op == BPF_JLT:
            if a:
                self.find_good_pkt_pointers(other, dreg, dreg.type, True)
                self.mark_pkt_end(this, dst, False)
            elif b:
                self.find_good_pkt_pointers(this, sreg, sreg.type, False)
                self.mark_pkt_end(other, src, True)
            else:
                return False
        elif op == BPF_JGE:
            if a:
                self.find_good_pkt_pointers(this, dreg, dreg.type, True)
                self.mark_pkt_end(other, dst, False)
            elif b:
                self.find_good_pkt_pointers(other, sreg, sreg.type, False)
                self.mark_pkt_end(this, src, True)
            else:
                return False
        elif op == BPF_JLE:
            if a:
                self.find_good_pkt_pointers(other, dreg, dreg.type, False)
                self.mark_pkt_end(this, dst, True)
            elif b:
                self.find_good_pkt_pointers(this, sreg, sreg.type, True)
                self.mark_pkt_end(other, src, False)
            else:
                return False
        else:
            return False
        return True

    def sanitize_speculative_path(self, insn, next_idx, curr_idx):
        branch = self.push_stack(next_idx, curr_idx, True)
        if insn is not None:
            regs = branch.frame[branch.curframe].regs
            self.mark_reg_unknown(regs[insn[1]])
            if insn[0] & BPF_X:
                self.mark_reg_unknown(regs[insn[2]])
