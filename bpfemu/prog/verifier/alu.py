"""ALU instructions: scalar range arithmetic and pointer arithmetic (check_alu_op and what it calls).

Scalar operations update all five views of the destination (tnum, s64, u64, s32, u32) with the rules of
kernel/bpf/verifier.c: each 32-bit and 64-bit range is computed where it cannot overflow and left unbounded
where it could; reg_bounds_sync then reconciles them. Pointer arithmetic moves the fixed offset for known
constants and the variable part otherwise, with the kernel's restrictions per pointer type.
"""
import errno

from ..insn import (BPF_ADD, BPF_ALU64, BPF_AND, BPF_ARSH, BPF_DIV, BPF_END, BPF_LSH, BPF_MOD, BPF_MOV, BPF_MUL,
                    BPF_NEG, BPF_OR, BPF_RSH, BPF_SUB, BPF_TO_LE, BPF_X, BPF_XOR)
from . import tnum
from .disasm import ALU as ALU_STR
from .regs import (BPF_ADD_CONST, CONST_PTR_TO_MAP, CONST_PTR_TO_DYNPTR, PTR_MAYBE_NULL, PTR_TO_ARENA,
                   PTR_TO_BTF_ID, PTR_TO_BUF, PTR_TO_CTX, PTR_TO_FLOW_KEYS, PTR_TO_FUNC, PTR_TO_MAP_KEY,
                   PTR_TO_MAP_VALUE, PTR_TO_MEM, PTR_TO_PACKET, PTR_TO_PACKET_META, PTR_TO_STACK,
                   PTR_TO_TP_BUFFER, REG_LIVE_WRITTEN, S32_MAX, S32_MIN, S64_MAX, S64_MIN, SCALAR_VALUE, U32,
                   U64, Reg, base_type, mark_32_unbounded, mark_unbounded, mark_64_unbounded, mark_known, mark_known32,
                   reg_bounds_sync, reg_type_str, s32, s64, set_known, type_is_pkt_pointer,
                   update_reg32_bounds, update_reg_bounds, zext_32_to_64)

SRC_OP, DST_OP, DST_OP_NO_MARK = 0, 1, 2
REASON_BOUNDS, REASON_TYPE, REASON_PATHS, REASON_LIMIT, REASON_STACK = 1, 2, 3, 4, 5
ALU_SANITIZE_SRC, ALU_SANITIZE_DST, ALU_NEG_VALUE, ALU_NON_POINTER, ALU_IMMEDIATE = 1, 2, 4, 8, 16
BPF_MAX_VAR_OFF = 1 << 29
BPF_ADDR_SPACE_CAST = 1

_PTR_ARITH_OK = frozenset((PTR_TO_CTX, PTR_TO_MAP_VALUE, PTR_TO_MAP_KEY, PTR_TO_STACK, PTR_TO_PACKET_META,
                           PTR_TO_PACKET, PTR_TO_TP_BUFFER, PTR_TO_BTF_ID, PTR_TO_MEM, PTR_TO_BUF, PTR_TO_FUNC,
                           CONST_PTR_TO_DYNPTR))


def _add_ovf64(a, b):
    r = a + b
    return r, r < S64_MIN or r > S64_MAX


def scalar32_add(dst, src):
    a, b = dst.s32min + src.s32min, dst.s32max + src.s32max
    if a < S32_MIN or a > S32_MAX or b < S32_MIN or b > S32_MAX:
        dst.s32min, dst.s32max = S32_MIN, S32_MAX
    else:
        dst.s32min, dst.s32max = a, b
    # when every sum overflows, or none does, the wrapped bounds stay ordered
    a, b = dst.u32min + src.u32min, dst.u32max + src.u32max
    if a <= U32 < b:
        dst.u32min, dst.u32max = 0, U32
    else:
        dst.u32min, dst.u32max = a & U32, b & U32


def scalar_add(dst, src):
    a, b = dst.smin + src.smin, dst.smax + src.smax
    if a < S64_MIN or a > S64_MAX or b < S64_MIN or b > S64_MAX:
        dst.smin, dst.smax = S64_MIN, S64_MAX
    else:
        dst.smin, dst.smax = a, b
    a, b = dst.umin + src.umin, dst.umax + src.umax
    if a <= U64 < b:
        dst.umin, dst.umax = 0, U64
    else:
        dst.umin, dst.umax = a & U64, b & U64


def scalar32_sub(dst, src):
    a, b = dst.s32min - src.s32max, dst.s32max - src.s32min
    if a < S32_MIN or a > S32_MAX or b < S32_MIN or b > S32_MAX:
        dst.s32min, dst.s32max = S32_MIN, S32_MAX
    else:
        dst.s32min, dst.s32max = a, b
    # when every difference underflows, or none does, the wrapped bounds stay ordered
    a, b = dst.u32min - src.u32max, dst.u32max - src.u32min
    if a < 0 <= b:
        dst.u32min, dst.u32max = 0, U32
    else:
        dst.u32min, dst.u32max = a & U32, b & U32


def scalar_sub(dst, src):
    a, b = dst.smin - src.smax, dst.smax - src.smin
    if a < S64_MIN or a > S64_MAX or b < S64_MIN or b > S64_MAX:
        dst.smin, dst.smax = S64_MIN, S64_MAX
    else:
        dst.smin, dst.smax = a, b
    a, b = dst.umin - src.umax, dst.umax - src.umin
    if a < 0 <= b:
        dst.umin, dst.umax = 0, U64
    else:
        dst.umin, dst.umax = a & U64, b & U64


def scalar32_mul(dst, src):
    a, b = dst.u32max * src.u32max, dst.u32min * src.u32min
    if a > U32 or b > U32:
        dst.u32min, dst.u32max = 0, U32
    else:
        dst.u32min, dst.u32max = b, a
    prods = (dst.s32min * src.s32min, dst.s32min * src.s32max, dst.s32max * src.s32min, dst.s32max * src.s32max)
    if any(p < S32_MIN or p > S32_MAX for p in prods):
        dst.s32min, dst.s32max = S32_MIN, S32_MAX
    else:
        dst.s32min, dst.s32max = min(prods), max(prods)


def scalar_mul(dst, src):
    a, b = dst.umax * src.umax, dst.umin * src.umin
    if a > U64 or b > U64:
        dst.umin, dst.umax = 0, U64
    else:
        dst.umin, dst.umax = b, a
    prods = (dst.smin * src.smin, dst.smin * src.smax, dst.smax * src.smin, dst.smax * src.smax)
    if any(p < S64_MIN or p > S64_MAX for p in prods):
        dst.smin, dst.smax = S64_MIN, S64_MAX
    else:
        dst.smin, dst.smax = min(prods), max(prods)


def _s32_from_u32(dst):
    if s32(dst.u32min) <= s32(dst.u32max):
        dst.s32min, dst.s32max = s32(dst.u32min), s32(dst.u32max)
    else:
        dst.s32min, dst.s32max = S32_MIN, S32_MAX


def _s64_from_u64(dst):
    if s64(dst.umin) <= s64(dst.umax):
        dst.smin, dst.smax = s64(dst.umin), s64(dst.umax)
    else:
        dst.smin, dst.smax = S64_MIN, S64_MAX


def scalar32_and(dst, src):
    src_known = not (src.vm & U32)
    dst_known = not (dst.vm & U32)
    v32, m32 = dst.vv & U32, dst.vm & U32
    if src_known and dst_known:
        mark_known32(dst, v32)
        return
    dst.u32min = v32
    dst.u32max = min(dst.u32max, src.u32max)
    _s32_from_u32(dst)


def scalar_and(dst, src):
    if src.vm == 0 and dst.vm == 0:
        mark_known(dst, dst.vv)
        return
    dst.umin = dst.vv
    dst.umax = min(dst.umax, src.umax)
    _s64_from_u64(dst)
    update_reg_bounds(dst)


def scalar32_or(dst, src):
    src_known = not (src.vm & U32)
    dst_known = not (dst.vm & U32)
    v32, m32 = dst.vv & U32, dst.vm & U32
    if src_known and dst_known:
        mark_known32(dst, v32)
        return
    dst.u32min = max(dst.u32min, src.u32min)
    dst.u32max = v32 | m32
    _s32_from_u32(dst)


def scalar_or(dst, src):
    if src.vm == 0 and dst.vm == 0:
        mark_known(dst, dst.vv)
        return
    dst.umin = max(dst.umin, src.umin)
    dst.umax = dst.vv | dst.vm
    _s64_from_u64(dst)
    update_reg_bounds(dst)


def scalar32_xor(dst, src):
    src_known = not (src.vm & U32)
    dst_known = not (dst.vm & U32)
    v32, m32 = dst.vv & U32, dst.vm & U32
    if src_known and dst_known:
        mark_known32(dst, v32)
        return
    dst.u32min = v32
    dst.u32max = v32 | m32
    _s32_from_u32(dst)


def scalar_xor(dst, src):
    if src.vm == 0 and dst.vm == 0:
        mark_known(dst, dst.vv)
        return
    dst.umin = dst.vv
    dst.umax = dst.vv | dst.vm
    _s64_from_u64(dst)
    update_reg_bounds(dst)


def _scalar32_lsh(dst, umin_val, umax_val):
    dst.s32min, dst.s32max = S32_MIN, S32_MAX
    if umax_val > 31 or dst.u32max > (1 << (31 - umax_val)):
        dst.u32min, dst.u32max = 0, U32
    else:
        dst.u32min = (dst.u32min << umin_val) & U32
        dst.u32max = (dst.u32max << umax_val) & U32


def scalar32_lsh(dst, src):
    umin_val, umax_val = src.u32min, src.u32max
    sub = tnum.subreg((dst.vv, dst.vm))
    _scalar32_lsh(dst, umin_val, umax_val)
    dst.vv, dst.vm = tnum.subreg(tnum.lshift(sub, umin_val))
    mark_64_unbounded(dst)
    update_reg32_bounds(dst)


def _scalar64_lsh(dst, umin_val, umax_val):
    if umin_val == 32 and umax_val == 32:
        dst.smax = s64(dst.s32max << 32)
        dst.smin = s64(dst.s32min << 32)
    else:
        dst.smax, dst.smin = S64_MAX, S64_MIN
    if umax_val > 63 or dst.umax > (1 << (63 - umax_val)):
        dst.umin, dst.umax = 0, U64
    else:
        dst.umin = (dst.umin << umin_val) & U64
        dst.umax = (dst.umax << umax_val) & U64


def scalar_lsh(dst, src):
    umin_val, umax_val = src.umin, src.umax
    _scalar64_lsh(dst, umin_val, umax_val)
    _scalar32_lsh(dst, umin_val, umax_val)
    dst.vv, dst.vm = tnum.lshift((dst.vv, dst.vm), umin_val)
    update_reg_bounds(dst)


def scalar32_rsh(dst, src):
    sub = tnum.subreg((dst.vv, dst.vm))
    umin_val, umax_val = src.u32min, src.u32max
    dst.s32min, dst.s32max = S32_MIN, S32_MAX
    dst.vv, dst.vm = tnum.rshift(sub, umin_val)
    dst.u32min >>= umax_val
    dst.u32max >>= umin_val
    mark_64_unbounded(dst)
    update_reg32_bounds(dst)


def scalar_rsh(dst, src):
    umin_val, umax_val = src.umin, src.umax
    dst.smin, dst.smax = S64_MIN, S64_MAX
    dst.vv, dst.vm = tnum.rshift((dst.vv, dst.vm), umin_val)
    dst.umin >>= umax_val
    dst.umax >>= umin_val
    mark_32_unbounded(dst)
    update_reg_bounds(dst)


def scalar32_arsh(dst, src):
    umin_val = src.u32min
    dst.s32min = s32(dst.s32min >> umin_val)
    dst.s32max = s32(dst.s32max >> umin_val)
    dst.vv, dst.vm = tnum.arshift(tnum.subreg((dst.vv, dst.vm)), umin_val, 32)
    dst.u32min, dst.u32max = 0, U32
    mark_64_unbounded(dst)
    update_reg32_bounds(dst)


def scalar_arsh(dst, src):
    umin_val = src.umin
    dst.smin >>= umin_val
    dst.smax >>= umin_val
    dst.vv, dst.vm = tnum.arshift((dst.vv, dst.vm), umin_val, 64)
    dst.umin, dst.umax = 0, U64
    mark_32_unbounded(dst)
    update_reg_bounds(dst)


def is_safe_to_compute_dst_reg_range(code, src):
    op = code & 0xf0
    if op in (BPF_ADD, BPF_SUB, BPF_AND, BPF_XOR, BPF_OR, BPF_MUL, BPF_NEG, BPF_END):
        return True
    if op in (BPF_LSH, BPF_RSH, BPF_ARSH):
        if code & 7 == BPF_ALU64:
            const = src.vm == 0 and src.smin == src.smax and src.umin == src.umax
            return const and src.umax < 64
        const = not (src.vm & U32) and src.s32min == src.s32max and src.u32min == src.u32max
        return const and src.umax < 32
    return False


def scalar_byte_swap(dreg, insn):
    """BPF_END: a swap (always for bswap, for to_be on this little-endian machine) scrambles the range, which is
    re-derived from the swapped tnum; 16- and 32-bit forms then truncate."""
    code, imm = insn[0], insn[4]
    need_bswap = code & 7 == BPF_ALU64 or code & BPF_X
    if need_bswap or imm in (16, 32):
        dreg.id = 0
    if need_bswap:
        t = (dreg.vv, dreg.vm)
        if imm == 16:
            dreg.vv, dreg.vm = tnum.bswap16(t)
        elif imm == 32:
            dreg.vv, dreg.vm = tnum.bswap32(t)
        elif imm == 64:
            dreg.vv, dreg.vm = tnum.bswap64(t)
        mark_unbounded(dreg)
    if imm in (16, 32):
        coerce_reg_to_size(dreg, imm // 8)


def coerce_reg_to_size(reg, size):
    """Zero-extend the low size bytes (a narrow load)."""
    reg.vv, reg.vm = tnum.cast((reg.vv, reg.vm), size)
    mask = (1 << (size * 8)) - 1
    if (reg.umin & ~mask) == (reg.umax & ~mask):
        reg.umin &= mask
        reg.umax &= mask
    else:
        reg.umin, reg.umax = 0, mask
    reg.smin, reg.smax = reg.umin, reg.umax
    if size < 4:
        mark_32_unbounded(reg)
    reg_bounds_sync(reg)


def _sx(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def set_sext64_default_val(reg, size):
    lo, hi = {1: (-128, 127), 2: (-32768, 32767)}.get(size, (S32_MIN, S32_MAX))
    reg.smin = reg.s32min = lo
    reg.smax = reg.s32max = hi
    reg.umin = reg.u32min = 0
    reg.umax = U64
    reg.u32max = U32
    reg.vv, reg.vm = tnum.UNKNOWN


def coerce_reg_to_size_sx(reg, size):
    bits = size * 8
    if reg.vm == 0:
        v = _sx(reg.vv, bits) & U64
        reg.vv, reg.vm = v, 0
        reg.smin = reg.smax = s64(v)
        reg.umin = reg.umax = v
        reg.s32min = reg.s32max = s32(v)
        reg.u32min = reg.u32max = v & U32
        return
    top_smax = ((reg.smax & U64) >> bits) << bits
    top_smin = ((reg.smin & U64) >> bits) << bits
    if top_smax == top_smin:
        a, b = _sx(reg.smax, bits), _sx(reg.smin, bits)
        mx, mn = max(a, b), min(a, b)
        if (mx >= 0) == (mn >= 0):
            reg.smin = mn
            reg.s32min = s32(mn)
            reg.smax = mx
            reg.s32max = s32(mx)
            reg.umin = mn & U64
            reg.u32min = mn & U32
            reg.umax = mx & U64
            reg.u32max = mx & U32
            reg.vv, reg.vm = tnum.trange(mn & U64, mx & U64)
            return
    set_sext64_default_val(reg, size)


def coerce_subreg_to_size_sx(reg, size):
    bits = size * 8
    if reg.vm == 0:
        v = _sx(reg.vv & U32, bits) & U64
        reg.vv, reg.vm = v, 0
        reg.s32min = reg.s32max = s32(v)
        reg.u32min = reg.u32max = v & U32
        return
    top_smax = ((reg.s32max & U32) >> bits) << bits
    top_smin = ((reg.s32min & U32) >> bits) << bits
    if top_smax == top_smin:
        a, b = _sx(reg.s32max, bits), _sx(reg.s32min, bits)
        mx, mn = max(a, b), min(a, b)
        if (mn >= 0) == (mx >= 0):
            reg.s32min, reg.s32max = mn, mx
            reg.u32min, reg.u32max = mn & U32, mx & U32
            reg.vv, reg.vm = tnum.subreg(tnum.trange(mn & U64, mx & U64))
            return
    lo, hi = (-128, 127) if size == 1 else (-32768, 32767)
    reg.s32min, reg.s32max = lo, hi
    reg.u32min, reg.u32max = 0, U32
    reg.vv, reg.vm = tnum.subreg(tnum.UNKNOWN)


def get_reg_width(reg):
    return reg.umax.bit_length()


class AluMixin:
    """check_alu_op and the pointer/scalar arithmetic it calls."""

    def check_alu_op(self, insn):
        code, dst, src, off, imm = insn
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        op = code & 0xf0
        alu64 = code & 7 == BPF_ALU64
        if op == BPF_END or op == BPF_NEG:
            if op == BPF_NEG:
                if code & BPF_X or src != 0 or off != 0 or imm != 0:
                    self.fail(errno.EINVAL, "BPF_NEG uses reserved fields\n")
            else:
                if src != 0 or off != 0 or imm not in (16, 32, 64) or (alu64 and code & BPF_X != BPF_TO_LE):
                    self.fail(errno.EINVAL, "BPF_END uses reserved fields\n")
            self.check_reg_arg(dst, SRC_OP)
            if self.is_pointer_value(dst):
                self.fail(errno.EACCES, "R%d pointer arithmetic prohibited\n" % dst)
            # 6.18 tracks the ranges of negation and byte swaps of scalars
            if regs[dst].type == SCALAR_VALUE:
                self.check_reg_arg(dst, DST_OP_NO_MARK)
                self.adjust_scalar_min_max_vals(insn, regs[dst], regs[dst].copy())
            else:
                self.check_reg_arg(dst, DST_OP)
        elif op == BPF_MOV:
            if code & BPF_X:
                if off and off != BPF_ADDR_SPACE_CAST and "movsx" not in self.instructions:
                    self.fail(errno.EINVAL, "BPF_MOV uses reserved fields\n")
                if not alu64:
                    if off not in (0, 8, 16) or imm:
                        self.fail(errno.EINVAL, "BPF_MOV uses reserved fields\n")
                elif off == BPF_ADDR_SPACE_CAST:
                    if imm != 1 and imm != 1 << 16:
                        self.fail(errno.EINVAL, "addr_space_cast insn can only convert between address space "
                                                "1 and 0\n")
                    if not self.arena:
                        self.fail(errno.EINVAL, "addr_space_cast insn can only be used in a program that has an "
                                                "associated arena\n")
                else:
                    if off not in (0, 8, 16, 32) or imm:
                        self.fail(errno.EINVAL, "BPF_MOV uses reserved fields\n")
                self.check_reg_arg(src, SRC_OP)
            else:
                if src != 0 or off != 0:
                    self.fail(errno.EINVAL, "BPF_MOV uses reserved fields\n")
            self.check_reg_arg(dst, DST_OP_NO_MARK)
            if code & BPF_X:
                sreg = regs[src]
                dreg = regs[dst]
                if alu64:
                    if imm:
                        self.mark_reg_unknown(dreg)
                        if imm == 1:
                            dreg.type = PTR_TO_ARENA
                            dreg.subreg_def = self.insn_idx + 1
                    elif off == 0:
                        self.assign_scalar_id_before_mov(sreg)
                        dreg.copy_state_from(sreg)
                        dreg.live |= REG_LIVE_WRITTEN
                        dreg.subreg_def = 0
                    else:
                        if self.is_pointer_value(src):
                            self.fail(errno.EACCES, "R%d sign-extension part of pointer\n" % src)
                        elif sreg.type == SCALAR_VALUE:
                            no_sext = sreg.umax < (1 << (off - 1))
                            if no_sext:
                                self.assign_scalar_id_before_mov(sreg)
                            dreg.copy_state_from(sreg)
                            if not no_sext:
                                dreg.id = 0
                                dreg.off = 0
                            coerce_reg_to_size_sx(dreg, off >> 3)
                            dreg.live |= REG_LIVE_WRITTEN
                            dreg.subreg_def = 0
                        else:
                            self.mark_reg_unknown(dreg)
                else:
                    if self.is_pointer_value(src):
                        self.fail(errno.EACCES, "R%d partial copy of pointer\n" % src)
                    elif sreg.type == SCALAR_VALUE:
                        if off == 0:
                            is_u32 = get_reg_width(sreg) <= 32
                            if is_u32:
                                self.assign_scalar_id_before_mov(sreg)
                            dreg.copy_state_from(sreg)
                            if not is_u32:
                                dreg.id = 0
                                dreg.off = 0
                            dreg.live |= REG_LIVE_WRITTEN
                            dreg.subreg_def = self.insn_idx + 1
                        else:
                            no_sext = sreg.umax < (1 << (off - 1))
                            if no_sext:
                                self.assign_scalar_id_before_mov(sreg)
                            dreg.copy_state_from(sreg)
                            if not no_sext:
                                dreg.id = 0
                                dreg.off = 0
                            dreg.live |= REG_LIVE_WRITTEN
                            dreg.subreg_def = self.insn_idx + 1
                            coerce_subreg_to_size_sx(dreg, off >> 3)
                    else:
                        self.mark_reg_unknown(dreg)
                    zext_32_to_64(dreg)
                    reg_bounds_sync(dreg)
            else:
                dreg = regs[dst]
                self.mark_reg_unknown(dreg)
                dreg.type = SCALAR_VALUE
                mark_known(dreg, imm if alu64 else imm & U32)
        elif op > BPF_END:
            self.fail(errno.EINVAL, "invalid BPF_ALU opcode %x\n" % op)
        else:
            # sdiv and smod are div and mod with off 1 (a kernel without them has no off here)
            signed_ok = op in (BPF_MOD, BPF_DIV) and "sdiv_smod" in self.instructions
            if code & BPF_X:
                if imm != 0 or off not in (0, 1) or (off == 1 and not signed_ok):
                    self.fail(errno.EINVAL, "BPF_ALU uses reserved fields\n")
                self.check_reg_arg(src, SRC_OP)
            else:
                if src != 0 or off not in (0, 1) or (off == 1 and not signed_ok):
                    self.fail(errno.EINVAL, "BPF_ALU uses reserved fields\n")
            self.check_reg_arg(dst, SRC_OP)
            if op in (BPF_MOD, BPF_DIV) and not code & BPF_X and imm == 0:
                self.fail(errno.EINVAL, "div by zero\n")
            if op in (BPF_LSH, BPF_RSH, BPF_ARSH) and not code & BPF_X:
                size = 64 if alu64 else 32
                if imm < 0 or imm >= size:
                    self.fail(errno.EINVAL, "invalid shift %d\n" % imm)
            self.check_reg_arg(dst, DST_OP_NO_MARK)
            self.adjust_reg_min_max_vals(insn)
        self.reg_bounds_sanity_check(regs[dst], "alu")

    def assign_scalar_id_before_mov(self, sreg):
        if sreg.type != SCALAR_VALUE:
            return
        if sreg.id & BPF_ADD_CONST:
            sreg.id = 0
            sreg.off = 0
        if not sreg.id and sreg.vm != 0:
            self.id_gen += 1
            sreg.id = self.id_gen

    def adjust_reg_min_max_vals(self, insn):
        code, dst, src, off, imm = insn
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        dreg = regs[dst]
        alu64 = code & 7 == BPF_ALU64
        op = code & 0xf0
        sreg = regs[src] if code & BPF_X else None
        if dreg.type == PTR_TO_ARENA or (sreg is not None and sreg.type == PTR_TO_ARENA):
            if dreg.type != PTR_TO_ARENA:
                self.mark_reg_unknown(dreg)
            dreg.subreg_def = self.insn_idx + 1
            return
        ptr_reg = dreg if dreg.type != SCALAR_VALUE else None
        if sreg is not None:
            if sreg.type != SCALAR_VALUE:
                if dreg.type != SCALAR_VALUE:
                    if op == BPF_SUB and self.allow_ptr_leaks:
                        self.mark_reg_unknown(dreg)
                        return
                    self.fail(errno.EACCES, "R%d pointer %s pointer prohibited\n" % (dst, ALU_STR[op >> 4]))
                off_reg = dreg.copy()
                self.adjust_ptr_min_max_vals(insn, sreg, off_reg, True)
                return
            elif ptr_reg is not None:
                self.adjust_ptr_min_max_vals(insn, dreg, sreg)
                return
        else:
            sreg = Reg()
            sreg.type = SCALAR_VALUE
            mark_known(sreg, imm)
            if ptr_reg is not None:
                self.adjust_ptr_min_max_vals(insn, ptr_reg, sreg)
                return
        self.adjust_scalar_min_max_vals(insn, dreg, sreg.copy())
        if (self.bpf_capable and op == BPF_ADD and alu64 and dreg.id and sreg.type == SCALAR_VALUE and
                sreg.vm == 0 and not (code & BPF_X and src == dst)):
            val = sreg.vv
            if dreg.id & BPF_ADD_CONST or val > S32_MAX:
                dreg.id = 0
                dreg.off = 0
            else:
                dreg.id |= BPF_ADD_CONST
                dreg.off = val
        else:
            dreg.id = 0
            dreg.off = 0

    def adjust_scalar_min_max_vals(self, insn, dreg, sreg):
        code = insn[0]
        op = code & 0xf0
        alu32 = code & 7 != BPF_ALU64
        if not is_safe_to_compute_dst_reg_range(code, sreg):
            self.mark_reg_unknown(dreg)
            return
        if op in (BPF_ADD, BPF_SUB):
            self.sanitize_val_alu(insn)
        if op == BPF_ADD:
            scalar32_add(dreg, sreg)
            scalar_add(dreg, sreg)
            dreg.vv, dreg.vm = tnum.add((dreg.vv, dreg.vm), (sreg.vv, sreg.vm))
        elif op == BPF_SUB:
            scalar32_sub(dreg, sreg)
            scalar_sub(dreg, sreg)
            dreg.vv, dreg.vm = tnum.sub((dreg.vv, dreg.vm), (sreg.vv, sreg.vm))
        elif op == BPF_NEG:
            fake = dreg.copy()
            mark_known(dreg, 0)
            scalar32_sub(dreg, fake)
            scalar_sub(dreg, fake)
            dreg.vv, dreg.vm = tnum.neg((fake.vv, fake.vm))
        elif op == BPF_END:
            scalar_byte_swap(dreg, insn)
            alu32 = False
        elif op == BPF_MUL:
            dreg.vv, dreg.vm = tnum.mul((dreg.vv, dreg.vm), (sreg.vv, sreg.vm))
            scalar32_mul(dreg, sreg)
            scalar_mul(dreg, sreg)
        elif op == BPF_AND:
            if sreg.vm == 0:
                self.maybe_fork_scalars(insn, dreg)
            dreg.vv, dreg.vm = tnum.tand((dreg.vv, dreg.vm), (sreg.vv, sreg.vm))
            scalar32_and(dreg, sreg)
            scalar_and(dreg, sreg)
        elif op == BPF_OR:
            if sreg.vm == 0:
                self.maybe_fork_scalars(insn, dreg)
            dreg.vv, dreg.vm = tnum.tor((dreg.vv, dreg.vm), (sreg.vv, sreg.vm))
            scalar32_or(dreg, sreg)
            scalar_or(dreg, sreg)
        elif op == BPF_XOR:
            dreg.vv, dreg.vm = tnum.txor((dreg.vv, dreg.vm), (sreg.vv, sreg.vm))
            scalar32_xor(dreg, sreg)
            scalar_xor(dreg, sreg)
        elif op == BPF_LSH:
            (scalar32_lsh if alu32 else scalar_lsh)(dreg, sreg)
        elif op == BPF_RSH:
            (scalar32_rsh if alu32 else scalar_rsh)(dreg, sreg)
        elif op == BPF_ARSH:
            (scalar32_arsh if alu32 else scalar_arsh)(dreg, sreg)
        if alu32:
            zext_32_to_64(dreg)
        reg_bounds_sync(dreg)

    def maybe_fork_scalars(self, insn, dreg):
        if dreg.smin == -1 and dreg.smax == 0:
            alu32 = False
        elif dreg.s32min == -1 and dreg.s32max == 0:
            alu32 = True
        else:
            return
        branch = self.push_stack(self.insn_idx, self.insn_idx, False)
        breg = branch.frame[branch.curframe].regs[insn[1]]
        if alu32:
            mark_known32(breg, 0)
            mark_known32(dreg, U64)
        else:
            mark_known(breg, 0)
            mark_known(dreg, U64)

    def check_reg_sane_offset(self, reg, type_):
        known = reg.vm == 0
        val = s64(reg.vv)
        smin = reg.smin
        if known and (val >= BPF_MAX_VAR_OFF or val <= -BPF_MAX_VAR_OFF):
            self.verbose("math between %s pointer and %d is not allowed\n" % (reg_type_str(type_), val))
            return False
        if reg.off >= BPF_MAX_VAR_OFF or reg.off <= -BPF_MAX_VAR_OFF:
            self.verbose("%s pointer offset %d is not allowed\n" % (reg_type_str(type_), reg.off))
            return False
        if smin == S64_MIN:
            self.verbose("math between %s pointer and register with unbounded min value is not allowed\n"
                         % reg_type_str(type_))
            return False
        if smin >= BPF_MAX_VAR_OFF or smin <= -BPF_MAX_VAR_OFF:
            self.verbose("value %d makes %s pointer be out of bounds\n" % (smin, reg_type_str(type_)))
            return False
        return True

    def adjust_ptr_min_max_vals(self, insn, ptr_reg, off_reg, off_is_dst=False):
        code, dst = insn[0], insn[1]
        regs = self.cur_state.frame[self.cur_state.curframe].regs
        dreg = regs[dst]
        op = code & 0xf0
        known = off_reg.vm == 0
        smin_val, smax_val = off_reg.smin, off_reg.smax
        umin_val, umax_val = off_reg.umin, off_reg.umax
        smin_ptr, smax_ptr = ptr_reg.smin, ptr_reg.smax
        umin_ptr, umax_ptr = ptr_reg.umin, ptr_reg.umax
        if (known and (smin_val != smax_val or umin_val != umax_val)) or smin_val > smax_val or \
                umin_val > umax_val:
            self.mark_reg_unknown(dreg)
            return
        if code & 7 != BPF_ALU64:
            if op == BPF_SUB and self.allow_ptr_leaks:
                self.mark_reg_unknown(dreg)
                return
            self.fail(errno.EACCES, "R%d 32-bit pointer arithmetic prohibited\n" % dst)
        if ptr_reg.type & PTR_MAYBE_NULL:
            self.fail(errno.EACCES, "R%d pointer arithmetic on %s prohibited, null-check it first\n"
                      % (dst, reg_type_str(ptr_reg.type)))
        b = base_type(ptr_reg.type)
        ok = b in _PTR_ARITH_OK
        if not ok:
            if b == PTR_TO_FLOW_KEYS and known:
                ok = True
            elif b in (PTR_TO_FLOW_KEYS, CONST_PTR_TO_MAP) and known and smin_val == 0 and op == BPF_ADD:
                ok = True
        if not ok:
            self.fail(errno.EACCES, "R%d pointer arithmetic on %s prohibited\n" % (dst, reg_type_str(ptr_reg.type)))
        ptype = ptr_reg.type
        ptr_is_dst = ptr_reg is dreg
        if not ptr_is_dst:
            dreg.assign(ptr_reg)
        if not self.check_reg_sane_offset(off_reg, ptype) or not self.check_reg_sane_offset(ptr_reg, ptype):
            self.fail(errno.EINVAL)
        info = {"mask_to_left": False, "alu_state": 0, "alu_limit": 0}
        if op in (BPF_ADD, BPF_SUB):
            r = self.sanitize_ptr_alu(insn, ptr_reg, off_reg, dreg, info, False, ptr_is_dst)
            if r:
                self.sanitize_err(insn, r, off_is_dst)
        # pointers carry no 32-bit bounds
        mark_32_unbounded(dreg)
        if op == BPF_ADD:
            if known and S32_MIN <= ptr_reg.off + smin_val <= S32_MAX:
                dreg.smin, dreg.smax = smin_ptr, smax_ptr
                dreg.umin, dreg.umax = umin_ptr, umax_ptr
                dreg.vv, dreg.vm = ptr_reg.vv, ptr_reg.vm
                dreg.off = ptr_reg.off + smin_val
                self._copy_raw(dreg, ptr_reg)
            else:
                a, b2 = smin_ptr + smin_val, smax_ptr + smax_val
                if a < S64_MIN or a > S64_MAX or b2 < S64_MIN or b2 > S64_MAX:
                    dreg.smin, dreg.smax = S64_MIN, S64_MAX
                else:
                    dreg.smin, dreg.smax = a, b2
                a, b2 = umin_ptr + umin_val, umax_ptr + umax_val
                if a > U64 or b2 > U64:
                    dreg.umin, dreg.umax = 0, U64
                else:
                    dreg.umin, dreg.umax = a, b2
                dreg.vv, dreg.vm = tnum.add((ptr_reg.vv, ptr_reg.vm), (off_reg.vv, off_reg.vm))
                dreg.off = ptr_reg.off
                self._copy_raw(dreg, ptr_reg)
                if type_is_pkt_pointer(ptr_reg.type):
                    self.id_gen += 1
                    dreg.id = self.id_gen
                    dreg.range = 0
        elif op == BPF_SUB:
            if not ptr_is_dst:
                self.fail(errno.EACCES, "R%d tried to subtract pointer from scalar\n" % dst)
            if ptr_reg.type == PTR_TO_STACK:
                self.fail(errno.EACCES, "R%d subtraction from stack pointer prohibited\n" % dst)
            if known and S32_MIN <= ptr_reg.off - smin_val <= S32_MAX:
                dreg.smin, dreg.smax = smin_ptr, smax_ptr
                dreg.umin, dreg.umax = umin_ptr, umax_ptr
                dreg.vv, dreg.vm = ptr_reg.vv, ptr_reg.vm
                dreg.id = ptr_reg.id
                dreg.off = ptr_reg.off - smin_val
                self._copy_raw(dreg, ptr_reg)
            else:
                a, b2 = smin_ptr - smax_val, smax_ptr - smin_val
                if a < S64_MIN or a > S64_MAX or b2 < S64_MIN or b2 > S64_MAX:
                    dreg.smin, dreg.smax = S64_MIN, S64_MAX
                else:
                    dreg.smin, dreg.smax = a, b2
                if umin_ptr < umax_val:
                    dreg.umin, dreg.umax = 0, U64
                else:
                    dreg.umin, dreg.umax = umin_ptr - umax_val, umax_ptr - umin_val
                dreg.vv, dreg.vm = tnum.sub((ptr_reg.vv, ptr_reg.vm), (off_reg.vv, off_reg.vm))
                dreg.off = ptr_reg.off
                self._copy_raw(dreg, ptr_reg)
                if type_is_pkt_pointer(ptr_reg.type):
                    self.id_gen += 1
                    dreg.id = self.id_gen
                    if smin_val < 0:
                        dreg.range = 0
        elif op in (BPF_AND, BPF_OR, BPF_XOR):
            self.fail(errno.EACCES, "R%d bitwise operator %s on pointer prohibited\n" % (dst, ALU_STR[op >> 4]))
        else:
            self.fail(errno.EACCES, "R%d pointer arithmetic with %s operator prohibited\n"
                      % (dst, ALU_STR[op >> 4]))
        if not self.check_reg_sane_offset(dreg, ptype):
            self.fail(errno.EINVAL)
        reg_bounds_sync(dreg)
        if not self.bypass_spec_v1:
            self.sanitize_check_bounds(insn, dreg)
        if op in (BPF_ADD, BPF_SUB):
            r = self.sanitize_ptr_alu(insn, dreg, off_reg, dreg, info, True, True)
            if r:
                self.sanitize_err(insn, r, off_is_dst)

    @staticmethod
    def _copy_raw(dreg, ptr_reg):
        dreg.map = ptr_reg.map
        dreg.map_uid = ptr_reg.map_uid
        dreg.range = ptr_reg.range
        dreg.mem_size = ptr_reg.mem_size
        dreg.btf = ptr_reg.btf
        dreg.btf_id = ptr_reg.btf_id
        dreg.subprogno = ptr_reg.subprogno
        dreg.dynptr_type = ptr_reg.dynptr_type

    # -- the unprivileged checks (speculative execution, Spectre v1) --
    def retrieve_ptr_limit(self, ptr_reg, mask_to_left):
        if ptr_reg.type == PTR_TO_STACK:
            mx = 512 + (1 if mask_to_left else 0)
            limit = (-(s64(ptr_reg.vv) + ptr_reg.off)) & U32
        elif ptr_reg.type == PTR_TO_MAP_VALUE:
            mx = ptr_reg.map.value_size
            limit = ((ptr_reg.smin if mask_to_left else ptr_reg.umax) + ptr_reg.off) & U32
        else:
            return REASON_TYPE, 0
        if limit >= mx:
            return REASON_LIMIT, 0
        return 0, limit

    def sanitize_ptr_alu(self, insn, ptr_reg, off_reg, dreg, info, commit, ptr_is_dst):
        """Returns 0 or a REASON_*; records in the instruction's aux how the JIT masks the offset."""
        code = insn[0]
        if self.bypass_spec_v1 or not code & BPF_X:
            return 0
        st = self.cur_state
        off_is_imm = off_reg.vm == 0
        off_is_neg = off_reg.smin < 0
        op = code & 0xf0
        if not st.speculative:
            if not commit:
                if off_reg.vm != 0 and (off_reg.smin < 0) != (off_reg.smax < 0):
                    return REASON_BOUNDS
                info["mask_to_left"] = (op == BPF_ADD and off_is_neg) or (op == BPF_SUB and not off_is_neg)
            err, limit = self.retrieve_ptr_limit(ptr_reg, info["mask_to_left"])
            if err:
                return err
            if commit:
                state = info["alu_state"]
                limit = abs(info["alu_limit"] - limit)
                aux = self.insn_aux[self.insn_idx]
                if aux.alu_state and (aux.alu_state != state or aux.alu_limit != limit):
                    return REASON_PATHS
                aux.alu_state, aux.alu_limit = state, limit
            else:
                state = (ALU_NEG_VALUE if off_is_neg else 0) | (ALU_IMMEDIATE if off_is_imm else 0) | \
                        (ALU_SANITIZE_SRC if ptr_is_dst else ALU_SANITIZE_DST)
                if not off_is_imm:
                    self.explore_alu_limits = True
                info["alu_state"], info["alu_limit"] = state, limit
        if commit or off_is_imm:
            return 0
        # simulate the masked (truncated) offset on a speculative path
        if not ptr_is_dst:
            tmp = dreg.copy()
            dreg.copy_state_from(ptr_reg)
        self.push_stack(self.insn_idx + 1, self.insn_idx, True)
        if not ptr_is_dst:
            dreg.assign(tmp)
        return 0

    def sanitize_err(self, insn, reason, off_is_dst):
        err = "pointer arithmetic with it prohibited for !root"
        op = "add" if insn[0] & 0xf0 == BPF_ADD else "sub"
        dst, src = insn[1], insn[2]
        if reason == REASON_BOUNDS:
            msg = "R%d has unknown scalar with mixed signed bounds, %s\n" % (dst if off_is_dst else src, err)
        elif reason == REASON_TYPE:
            msg = "R%d has pointer with unsupported alu operation, %s\n" % (src if off_is_dst else dst, err)
        elif reason == REASON_PATHS:
            msg = "R%d tried to %s from different maps, paths or scalars, %s\n" % (dst, op, err)
        elif reason == REASON_LIMIT:
            msg = "R%d tried to %s beyond pointer bounds, %s\n" % (dst, op, err)
        else:
            msg = "R%d could not be pushed for speculative verification, %s\n" % (dst, err)
        self.fail(errno.EACCES, msg)

    def sanitize_val_alu(self, insn):
        if self.bypass_spec_v1 or not insn[0] & BPF_X:
            return
        aux = self.insn_aux[self.insn_idx]
        if aux.alu_state and (aux.alu_state != ALU_NON_POINTER or aux.alu_limit != 0):
            op = "add" if insn[0] & 0xf0 == BPF_ADD else "sub"
            self.fail(errno.EACCES, "R%d tried to %s from different maps, paths or scalars, pointer arithmetic "
                                    "with it prohibited for !root\n" % (insn[1], op))
        aux.alu_state, aux.alu_limit = ALU_NON_POINTER, 0

    def sanitize_check_bounds(self, insn, dreg):
        dst = insn[1]
        if dreg.type == PTR_TO_STACK:
            off = dreg.off + s64(dreg.vv)
            if dreg.vm != 0:
                self.fail(errno.EACCES, "R%d variable stack access prohibited for !root, var_off=%s off=%d\n"
                          % (dst, self.tnum_strn((dreg.vv, dreg.vm)), off))
            if off >= 0 or off < -512:
                self.fail(errno.EACCES, "R%d stack pointer arithmetic goes out of range, prohibited for !root; "
                          "off=%d\n" % (dst, off))
        elif dreg.type == PTR_TO_MAP_VALUE:
            try:
                self.check_map_access(dst, dreg.off, 1, False, helper=True)
            except self.Error:
                self.fail(errno.EACCES, "R%d pointer arithmetic of map value goes out of range, prohibited for "
                          "!root\n" % dst)
