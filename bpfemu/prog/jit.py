"""The translator: a program turned into Python functions, the emulator's JIT (arch/*/net/bpf_jit_comp.c).

:func:`bpf_int_jit_compile` translates an :class:`~bpfemu.prog.core.Image` into Python source, one function
per subprogram, compiles it with ``exec`` and sets ``image.bpf_func(run, ctx) -> R0``, which
:func:`bpfemu.prog.core.bpf_prog_run` then calls instead of interpreting, as the kernel calls
``prog->bpf_func`` once its JIT succeeded. The semantics are exactly the reference interpreter's
(:mod:`bpfemu.prog.core`); ``tests/test_interp_differential.py`` runs random programs on both.

How the code looks:

- registers are the function's locals ``r0``..``r10``; every result is masked to 64 (or 32) bits on the
  spot, with masks and constants folded into literals;
- a stack access through r10 with a constant offset is a ``struct`` call on the frame's bytearray, bounds
  checked at translation time; every other access finds its page in the run's
  :class:`~bpfemu.prog.memory.Memory` page table and is one ``struct`` call on it (a bad address raises from
  C and becomes a :class:`~bpfemu.prog.memory.Fault`);
- control flow: basic blocks with a single predecessor are emitted inline at their jump (so a forward
  ``if`` chain becomes nested Python ``if``/``else``); the others (join points, loop heads) follow in program
  order, each under ``if pc == start``: a forward jump sets ``pc`` and falls through to the later guards,
  a backward jump restarts a ``while True`` around them;
- bpf2bpf calls are Python calls (each frame its own 512-byte stack at its depth), a tail call returns what
  the target program's function returns, helpers are called through ``run.helper(id)``.

A program the translator cannot express (an opcode it does not know, or Python refusing the generated code)
is left to the interpreter: ``image.bpf_func`` stays None and ``image.jit_error`` says why, as when the
kernel's JIT fails and ``bpf_prog_select_runtime`` falls back to the interpreter.
"""
import struct

from .core import (BPF_FUNC_tail_call, BPF_MAX_LOOPS, SYNC_CALLBACK_HELPERS, bpf_skb_load_helper, bswap32,
                   bswap64, s32, s64, sdiv, smod)
from .insn import (BPF_ABS, BPF_ADD, BPF_ALU, BPF_ALU64, BPF_AND, BPF_ARSH, BPF_ATOMIC, BPF_CALL, BPF_CMPXCHG,
                   BPF_DIV, BPF_END, BPF_EXIT, BPF_FETCH, BPF_IMM, BPF_IND, BPF_JA, BPF_JCOND, BPF_JEQ, BPF_JGE,
                   BPF_JGT, BPF_JLE, BPF_JLT, BPF_JMP, BPF_JMP32, BPF_JNE, BPF_JSET, BPF_JSGE, BPF_JSGT,
                   BPF_JSLE, BPF_JSLT, BPF_LD, BPF_LDX, BPF_LOAD_ACQ, BPF_LSH, BPF_MEM, BPF_MEMSX, BPF_MOD,
                   BPF_MOV, BPF_MUL, BPF_NEG, BPF_OR, BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL, BPF_RSH, BPF_ST,
                   BPF_STORE_REL, BPF_STX, BPF_SUB, BPF_X, BPF_XCHG, BPF_XOR)
from .memory import ACCESS_ERRORS, M32, M64, MAX_CALL_FRAMES, PAGE_MASK, PAGE_SHIFT, STACK_SIZE, Fault

SIZE_BYTES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
MOV64_X = BPF_ALU64 | BPF_MOV | BPF_X
INLINE_DEPTH = 40      # nesting of inlined blocks before falling back to dispatch (Python allows ~100 levels)
GROUP = 12             # dispatched blocks per guard group
SB64 = 1 << 63
SB32 = 1 << 31


class Untranslatable(Exception):
    pass


def _x(v):
    return "%#x" % v if v > 9 else str(v)


def _sdiv64(d, s):
    if s == 0:
        return 0
    ss = s64(s)
    if ss == -1:
        return -d & M64
    return sdiv(s64(d), ss) & M64


def _smod64(d, s):
    if s == 0:
        return d
    ss = s64(s)
    if ss == -1:
        return 0
    return smod(s64(d), ss) & M64


def _sdiv32(d, s):
    d &= M32
    s &= M32
    if s == 0:
        return 0
    ss = s32(s)
    if ss == -1:
        return -d & M32
    return sdiv(s32(d), ss) & M32


def _smod32(d, s):
    d &= M32
    s &= M32
    if s == 0:
        return d
    ss = s32(s)
    if ss == -1:
        return 0
    return smod(s32(d), ss) & M32


def _fault(e, pc):
    return Fault("bad memory access in the block at pc %d: %s" % (pc, e), pc=pc)


def _tail(target, run, r1, d, stk, r10):
    """Continue a successful tail call in ``target`` at the same depth and frame."""
    entry = target.jit_entry
    if entry is None:
        bpf_int_jit_compile(target)
        entry = target.jit_entry
        if entry is None:
            raise Fault("tail call into a program the translator refused: %s" % target.jit_error)
    return entry(run, r1, 0, 0, 0, 0, d, stk, r10)


BASE_NS = {
    "M64": M64, "M32": M32, "Fault": Fault, "ACCESS_ERRORS": ACCESS_ERRORS, "_fault": _fault,
    "SDIV64": _sdiv64, "SMOD64": _smod64, "SDIV32": _sdiv32, "SMOD32": _smod32, "BSWAP32": bswap32,
    "BSWAP64": bswap64, "LDABS": bpf_skb_load_helper, "TAIL": _tail,
}
for _n in (1, 2, 4, 8):
    _u = struct.Struct("<" + "BHxIxxxQ"[_n - 1])
    _s = struct.Struct("<" + "bhxixxxq"[_n - 1])
    BASE_NS["U%d" % _n] = _u.unpack_from
    BASE_NS["S%d" % _n] = _s.unpack_from
    BASE_NS["P%d" % _n] = _u.pack_into


# ---- analysis ----------------------------------------------------------------------------------------------

def _subprog_starts(insns):
    starts = {0}
    pc = 0
    n = len(insns)
    while pc < n:
        i = insns[pc]
        if i.code == BPF_JMP | BPF_CALL and i.src_reg == BPF_PSEUDO_CALL:
            t = pc + i.imm + 1
            if not 0 <= t < n:
                raise Untranslatable("call target %d out of the program" % t)
            starts.add(t)
        if i.code == BPF_LD | 0x18 | BPF_IMM:
            if i.src_reg == 4:  # BPF_PSEUDO_FUNC: a callback's start
                t = pc + i.imm + 1
                if 0 <= t < n:
                    starts.add(t)
            pc += 2
            continue
        pc += 1
    return sorted(starts)


def _is_cond_jump(i):
    cls = i.code & 7
    if cls not in (BPF_JMP, BPF_JMP32):
        return False
    op = i.code & 0xf0
    return op not in (BPF_JA, BPF_CALL, BPF_EXIT)


class Block:
    __slots__ = ("start", "end", "succ", "preds", "kind", "target", "fall")

    def __init__(self, start):
        self.start = start
        self.end = start
        self.succ = []
        self.preds = 0
        self.kind = None  # 'cond', 'ja', 'exit', 'fall'
        self.target = None
        self.fall = None


def _blocks(insns, start, end):
    """Basic blocks of the subprogram [start, end): {leader pc: Block}, only those reachable from start."""
    leaders = {start}
    pc = start
    while pc < end:
        i = insns[pc]
        cls = i.code & 7
        if i.code == BPF_LD | 0x18 | BPF_IMM:
            pc += 2
            continue
        if cls in (BPF_JMP, BPF_JMP32):
            op = i.code & 0xf0
            if op == BPF_JA:
                t = pc + 1 + (i.imm if cls == BPF_JMP32 else i.off)
                leaders.add(t)
                leaders.add(pc + 1)
            elif op == BPF_EXIT:
                leaders.add(pc + 1)
            elif op != BPF_CALL:
                leaders.add(pc + 1 + i.off)
                leaders.add(pc + 1)
        pc += 1
    for t in leaders:
        if not start <= t <= end:
            raise Untranslatable("jump to %d leaves the subprogram [%d, %d)" % (t, start, end))
    order = sorted(t for t in leaders if t < end)
    blocks = {}
    for k, s in enumerate(order):
        b = Block(s)
        b.end = order[k + 1] if k + 1 < len(order) else end
        blocks[s] = b
    for b in blocks.values():
        last = b.end - 1
        # the last instruction (skip back over the second slot of an ld_imm64)
        pc = b.start
        lastpc = None
        while pc < b.end:
            lastpc = pc
            pc += 2 if insns[pc].code == BPF_LD | 0x18 | BPF_IMM else 1
        i = insns[lastpc]
        cls = i.code & 7
        op = i.code & 0xf0
        if cls in (BPF_JMP, BPF_JMP32) and op == BPF_EXIT:
            b.kind = "exit"
        elif cls in (BPF_JMP, BPF_JMP32) and op == BPF_JA:
            b.kind = "ja"
            b.target = lastpc + 1 + (i.imm if cls == BPF_JMP32 else i.off)
        elif _is_cond_jump(i):
            b.kind = "cond"
            b.target = lastpc + 1 + i.off
            b.fall = lastpc + 1
        else:
            b.kind = "fall"
            b.fall = b.end
        del last
    # reachability and predecessor counts
    seen = set()
    work = [start]
    while work:
        s = work.pop()
        if s in seen:
            continue
        if s >= end or s not in blocks:
            raise Untranslatable("control reaches %d, past the subprogram" % s)
        seen.add(s)
        b = blocks[s]
        for t in (b.target, b.fall):
            if t is not None:
                work.append(t)
    live = {s: blocks[s] for s in seen}
    for b in live.values():
        for t in (b.target, b.fall):
            if t is not None:
                live[t].preds += 1
    live[start].preds += 1  # the function entry
    return live


# ---- code generation ---------------------------------------------------------------------------------------

class _Gen:
    def __init__(self, image):
        self.image = image
        self.insns = image.insns

    # operands -------------------------------------------------------------------------------------------
    @staticmethod
    def r(n):
        return "r%d" % n

    def stack_off(self, reg, off, size):
        """The frame offset of an access through r10 when it is statically inside the frame, else None."""
        if reg != 10:
            return None
        o = STACK_SIZE + off
        if 0 <= o and o + size <= STACK_SIZE:
            return o
        return None

    def addr(self, reg, off):
        """``a = reg + off``, not masked: an address that wraps past 0 or 2**64 finds no page either way."""
        if off == 0:
            return "a = %s" % self.r(reg)
        return "a = %s %s %d" % (self.r(reg), "-" if off < 0 else "+", abs(off))

    # one instruction -> lines ---------------------------------------------------------------------------
    def insn(self, pc, i, out):
        code, dst, src, off, imm = i
        cls = code & 7
        d = self.r(dst)
        if cls in (BPF_ALU64, BPF_ALU):
            self.alu(cls == BPF_ALU64, code, d, self.r(src), off, imm, out)
            return
        if cls == BPF_LDX:
            size = SIZE_BYTES[code & 0x18]
            mode = code & 0xe0
            if mode == BPF_MEM:
                self.load(d, src, off, size, False, out)
            elif mode == BPF_MEMSX and size != 8:
                self.load(d, src, off, size, True, out)
            else:
                raise Untranslatable("LDX mode %#x" % code)
            return
        if cls in (BPF_ST, BPF_STX):
            size = SIZE_BYTES[code & 0x18]
            mode = code & 0xe0
            mask = (1 << (8 * size)) - 1
            if mode == BPF_MEM:
                v = "%s & %#x" % (self.r(src), mask) if cls == BPF_STX else _x(imm & mask)
                if cls == BPF_STX and size == 8:
                    v = self.r(src)
                self.store(dst, off, size, v, out)
                return
            if mode == BPF_ATOMIC and cls == BPF_STX:
                self.atomic(dst, src, off, size, imm, out)
                return
            if code == BPF_ST | 0xc0:
                out.append("pass  # nospec")
                return
            raise Untranslatable("store mode %#x" % code)
        if cls == BPF_LD:
            size = code & 0x18
            mode = code & 0xe0
            if mode == BPF_IMM and size == 0x18:
                if src == 0:
                    v = (imm & M32) | ((self.insns[pc + 1].imm & M32) << 32)
                    out.append("%s = %s" % (d, _x(v)))
                else:
                    out.append("%s = run.ld_imm64(IMG, %d)" % (d, pc))
                return
            if mode in (BPF_ABS, BPF_IND) and size != 0x18:
                n = SIZE_BYTES[size]
                if mode == BPF_ABS:
                    k = str(imm)
                else:
                    out.append("k = (%s + %d) & %#x" % (self.r(src), imm, M32))
                    k = "(k ^ %#x) - %#x" % (SB32, SB32)
                out.append("v = LDABS(run.skb, %s, %d)" % (k, n))
                out.append("if v is None:")
                out.append("    return 0")
                out.append("r0 = v")
                return
            raise Untranslatable("LD mode %#x" % code)
        if cls in (BPF_JMP, BPF_JMP32):
            op = code & 0xf0
            if op == BPF_CALL and cls == BPF_JMP:
                self.call(pc, i, out)
                return
        raise Untranslatable("opcode %#04x at %d" % (code, pc))

    def alu(self, is64, code, d, s, off, imm, out, dx=None):
        """ALU/ALU64 into register ``d``; ``dx`` is the expression of dst's input value (``d`` itself unless a
        preceding mov was folded in)."""
        op = code & 0xf0
        x = bool(code & BPF_X)
        dx = dx or d
        if is64:
            M = "%#x" % M64
            k = imm & M64
            S = s if x else _x(k)
            if op == BPF_ADD:
                e = "(%s + %s) & %s" % (dx, S, M)
            elif op == BPF_SUB:
                e = "(%s - %s) & %s" % (dx, S, M)
            elif op == BPF_MUL:
                e = "(%s * %s) & %s" % (dx, S, M)
            elif op == BPF_DIV:
                if off == 1:
                    e = "SDIV64(%s, %s)" % (dx, S)
                elif x:
                    e = "%s // %s if %s else 0" % (dx, s, s)
                else:
                    e = "%s // %s" % (dx, S) if k else "0"
            elif op == BPF_MOD:
                if off == 1:
                    e = "SMOD64(%s, %s)" % (dx, S)
                elif x:
                    e = "%s %% %s if %s else %s" % (dx, s, s, dx)
                else:
                    e = "%s %% %s" % (dx, S) if k else dx
            elif op == BPF_OR:
                e = "%s | %s" % (dx, S)
            elif op == BPF_AND:
                e = "%s & %s" % (dx, S)
            elif op == BPF_XOR:
                e = "%s ^ %s" % (dx, S)
            elif op == BPF_LSH:
                n = "(%s & 63)" % s if x else str(k & 63)
                e = "(%s << %s) & %s" % (dx, n, M)
            elif op == BPF_RSH:
                n = "(%s & 63)" % s if x else str(k & 63)
                e = "%s >> %s" % (dx, n)
            elif op == BPF_ARSH:
                n = "(%s & 63)" % s if x else str(k & 63)
                e = "(((%s ^ %#x) - %#x) >> %s) & %s" % (dx, SB64, SB64, n, M)
            elif op == BPF_NEG:
                e = "-%s & %s" % (dx, M)
            elif op == BPF_MOV:
                if x and off in (8, 16, 32):
                    sb = 1 << (off - 1)
                    e = "(((%s & %#x) ^ %#x) - %#x) & %s" % (s, (1 << off) - 1, sb, sb, M)
                else:
                    e = s if x else S
            elif op == BPF_END:
                if imm == 16:
                    e = "((%s & 0xff) << 8) | ((%s >> 8) & 0xff)" % (dx, dx)
                elif imm == 32:
                    e = "BSWAP32(%s)" % dx
                else:
                    e = "BSWAP64(%s)" % dx
            else:
                raise Untranslatable("ALU64 op %#x" % op)
            if e != d:
                out.append("%s = %s" % (d, e))
            return
        M = "%#x" % M32
        k = imm & M32
        S = s if x else _x(k)
        if op == BPF_ADD:
            e = "(%s + %s) & %s" % (dx, S, M)
        elif op == BPF_SUB:
            e = "(%s - %s) & %s" % (dx, S, M)
        elif op == BPF_MUL:
            e = "(%s * %s) & %s" % (dx, S, M)
        elif op == BPF_DIV:
            if off == 1:
                e = "SDIV32(%s, %s)" % (dx, S)
            elif x:
                out.append("t = %s & %s" % (s, M))
                e = "(%s & %s) // t if t else 0" % (dx, M)
            else:
                e = "(%s & %s) // %s" % (dx, M, S) if k else "0"
        elif op == BPF_MOD:
            if off == 1:
                e = "SMOD32(%s, %s)" % (dx, S)
            elif x:
                out.append("t = %s & %s" % (s, M))
                e = "(%s & %s) %% t if t else %s & %s" % (dx, M, dx, M)
            elif k:
                e = "(%s & %s) %% %s" % (dx, M, S)
            else:
                e = "%s & %s" % (dx, M)
        elif op == BPF_OR:
            e = "(%s | %s) & %s" % (dx, S, M)
        elif op == BPF_AND:
            e = "%s & %s & %s" % (dx, S, M) if x else "%s & %s" % (dx, S)
        elif op == BPF_XOR:
            e = "(%s ^ %s) & %s" % (dx, S, M)
        elif op == BPF_LSH:
            n = "(%s & 31)" % s if x else str(k & 31)
            e = "(%s << %s) & %s" % (dx, n, M)
        elif op == BPF_RSH:
            n = "(%s & 31)" % s if x else str(k & 31)
            e = "(%s & %s) >> %s" % (dx, M, n)
        elif op == BPF_ARSH:
            n = "(%s & 31)" % s if x else str(k & 31)
            e = "((((%s & %s) ^ %#x) - %#x) >> %s) & %s" % (dx, M, SB32, SB32, n, M)
        elif op == BPF_NEG:
            e = "-%s & %s" % (dx, M)
        elif op == BPF_MOV:
            if x and off in (8, 16):
                sb = 1 << (off - 1)
                e = "(((%s & %#x) ^ %#x) - %#x) & %s" % (s, (1 << off) - 1, sb, sb, M)
            elif x:
                e = "%s & %s" % (s, M)
            else:
                e = S
        elif op == BPF_END:
            to_be = bool(code & BPF_X)
            if imm == 16:
                e = "((%s & 0xff) << 8) | ((%s >> 8) & 0xff)" % (dx, dx) if to_be else "%s & 0xffff" % dx
            elif imm == 32:
                e = "BSWAP32(%s)" % dx if to_be else "%s & %s" % (dx, M)
            else:
                e = "BSWAP64(%s)" % dx if to_be else dx
        else:
            raise Untranslatable("ALU op %#x" % op)
        if e != d:
            out.append("%s = %s" % (d, e))

    def load(self, d, src, off, size, signed, out):
        o = self.stack_off(src, off, size)
        f = ("S%d" if signed else "U%d") % size
        tail = " & %#x" % M64 if signed else ""
        if o is not None:
            out.append("%s = %s(stk, %d)[0]%s" % (d, f, o, tail))
            return
        out.append(self.addr(src, off))
        out.append("%s = %s(PT[a >> %d], a & %#x)[0]%s" % (d, f, PAGE_SHIFT, PAGE_MASK, tail))

    def store(self, dst, off, size, v, out):
        o = self.stack_off(dst, off, size)
        if o is not None:
            out.append("P%d(stk, %d, %s)" % (size, o, v))
            return
        out.append(self.addr(dst, off))
        out.append("P%d(PT[a >> %d], a & %#x, %s)" % (size, PAGE_SHIFT, PAGE_MASK, v))

    def atomic(self, dst, src, off, size, imm, out):
        s = self.r(src)
        mask = (1 << (8 * size)) - 1
        if imm == BPF_LOAD_ACQ:
            self.load(self.r(dst), src, off, size, False, out)
            return
        if imm == BPF_STORE_REL:
            self.store(dst, off, size, "%s & %#x" % (s, mask), out)
            return
        if size not in (4, 8):
            raise Untranslatable("atomic on %d bytes" % size)
        o = self.stack_off(dst, off, size)
        if o is not None:
            ld = "U%d(stk, %d)[0]" % (size, o)
            st = "P%d(stk, %d, %%s)" % (size, o)
        else:
            out.append(self.addr(dst, off))
            out.append("g = PT[a >> %d]" % PAGE_SHIFT)
            out.append("o = a & %#x" % PAGE_MASK)
            ld = "U%d(g, o)[0]" % size
            st = "P%d(g, o, %%s)" % size
        out.append("old = %s" % ld)
        op = imm & ~BPF_FETCH
        if imm == BPF_XCHG:
            out.append(st % ("%s & %#x" % (s, mask)))
            out.append("%s = old" % s)
            return
        if imm == BPF_CMPXCHG:
            out.append("if old == r0 & %#x:" % mask)
            out.append("    " + st % ("%s & %#x" % (s, mask)))
            out.append("r0 = old")
            return
        if op == BPF_ADD:
            new = "(old + %s) & %#x" % (s, mask)
        elif op == BPF_OR:
            new = "old | (%s & %#x)" % (s, mask)
        elif op == BPF_AND:
            new = "old & %s" % s
        elif op == BPF_XOR:
            new = "old ^ (%s & %#x)" % (s, mask)
        else:
            raise Untranslatable("atomic op %#x" % imm)
        out.append(st % new)
        if imm & BPF_FETCH:
            out.append("%s = old" % s)

    def call(self, pc, i, out):
        if i.src_reg == BPF_PSEUDO_CALL:
            t = pc + i.imm + 1
            out.append("if d >= %d:" % (MAX_CALL_FRAMES - 1))
            out.append("    raise Fault('call depth exceeds %d frames', pc=%d)" % (MAX_CALL_FRAMES, pc))
            out.append("s_, f_ = FRAME(d + 1)")
            out.append("r0 = F%d(run, r1, r2, r3, r4, r5, d + 1, s_, f_)" % t)
            return
        if i.src_reg == BPF_PSEUDO_KFUNC_CALL:
            out.append("r0 = run.kfunc(%d, %d)(run, r1, r2, r3, r4, r5) & %#x" % (i.imm, i.off, M64))
            return
        if i.imm == BPF_FUNC_tail_call:
            out.append("t = run.tail_call(r2, r3)")
            out.append("if t is not None:")
            out.append("    return TAIL(t, run, r1, d, stk, r10)")
            return
        if i.imm in SYNC_CALLBACK_HELPERS:
            out.append("run.depth = d")
        out.append("r0 = run.helper(%d)(run, r1, r2, r3, r4, r5) & %#x" % (i.imm, M64))

    def cond(self, i):
        """The Python condition under which the conditional jump ``i`` is taken."""
        code, dst, src, off, imm = i
        cls = code & 7
        op = code & 0xf0
        d = self.r(dst)
        x = bool(code & BPF_X)
        if op == BPF_JCOND:
            return "mg == 0"
        if cls == BPF_JMP:
            b = self.r(src) if x else _x(imm & M64)
            if op in (BPF_JSGT, BPF_JSGE, BPF_JSLT, BPF_JSLE):
                a = "(%s ^ %#x)" % (d, SB64)
                b = "(%s ^ %#x)" % (b, SB64) if x else _x((imm & M64) ^ SB64)
            else:
                a = d
        else:
            a = "(%s & %#x)" % (d, M32)
            b = "(%s & %#x)" % (self.r(src), M32) if x else _x(imm & M32)
            if op in (BPF_JSGT, BPF_JSGE, BPF_JSLT, BPF_JSLE):
                a = "(%s ^ %#x)" % (a, SB32)
                b = "(%s ^ %#x)" % (b, SB32) if x else _x((imm & M32) ^ SB32)
        rel = {BPF_JEQ: "==", BPF_JNE: "!=", BPF_JGT: ">", BPF_JGE: ">=", BPF_JLT: "<", BPF_JLE: "<=",
               BPF_JSGT: ">", BPF_JSGE: ">=", BPF_JSLT: "<", BPF_JSLE: "<="}.get(op)
        if op == BPF_JSET:
            return "%s & %s" % (a, b)
        if rel is None:
            raise Untranslatable("jump op %#x" % op)
        return "%s %s %s" % (a, rel, b)

    # a subprogram -----------------------------------------------------------------------------------------
    def subprog(self, start, end):
        insns = self.insns
        blocks = _blocks(insns, start, end)
        dispatched = {start}
        for b in blocks.values():
            if b.preds > 1:
                dispatched.add(b.start)
        body_of = {}
        self.blocks = blocks
        self.dispatched = dispatched
        self.pending = []
        needs_loop = [False]
        self.needs_loop = needs_loop

        emitted = {}
        work = [start]
        while work:
            s = work.pop()
            if s in emitted:
                continue
            lines = []
            self.pending = []
            self.owner = s
            self.emit_block(s, lines, 0)
            emitted[s] = lines
            work.extend(self.pending)
        body_of = emitted
        name = "F%d" % start
        text = "\n".join(ln for lines in body_of.values() for ln in lines)
        src = ["def %s(run, r1, r2=0, r3=0, r4=0, r5=0, d=0, stk=None, r10=0):" % name,
               "    mem = run.mem",
               "    if stk is None:",
               "        stk, r10 = mem.frame(d)",
               "    PT = mem.pages",
               "    r0 = r6 = r7 = r8 = r9 = 0"]
        if "FRAME(" in text:
            src.append("    FRAME = mem.frame")
        if "mg" in text:
            src.append("    mg = %d" % BPF_MAX_LOOPS)
        src += ["    pc = %d" % start,
                "    try:"]
        if len(body_of) == 1 and not needs_loop[0]:
            for ln in body_of[start]:
                src.append("        " + ln)
        elif needs_loop[0]:
            src.append("        while True:")
            self.guards(sorted(body_of), body_of, src, "            ")
        else:
            self.guards(sorted(body_of), body_of, src, "        ")
        src.append("    except ACCESS_ERRORS as e:")
        src.append("        if e.__traceback__.tb_next is not None:")
        src.append("            raise")
        src.append("        raise _fault(e, pc) from None")
        return name, src

    def guards(self, keys, body_of, src, ind):
        """The dispatched blocks in program order, each under ``if pc == start:``, in groups of GROUP under
        ``if pc < next group's start:``. A forward jump sets pc and falls through to the later guards; a
        backward one sets pc and restarts the enclosing loop."""
        groups = [keys[i:i + GROUP] for i in range(0, len(keys), GROUP)]
        for gi, group in enumerate(groups):
            gind = ind
            if len(groups) > 1 and gi + 1 < len(groups):
                src.append(ind + "if pc < %d:" % groups[gi + 1][0])
                gind = ind + "    "
            for k in group:
                src.append(gind + "if pc == %d:" % k)
                for ln in body_of[k]:
                    src.append(gind + "    " + ln)

    def goto(self, t, out, depth):
        """Lines that continue at block ``t``: inline when it has this one predecessor, else dispatch."""
        if t in self.dispatched or depth >= INLINE_DEPTH:
            if t not in self.dispatched:
                self.dispatched.add(t)
            self.pending.append(t)
            out.append("pc = %d" % t)
            if t <= self.owner:  # backward: back to the first guard
                self.needs_loop[0] = True
                out.append("continue")
            return
        self.emit_block(t, out, depth + 1)

    def emit_block(self, s, out, depth):
        b = self.blocks[s]
        insns = self.insns
        pc = b.start
        last = None
        while pc < b.end:
            i = insns[pc]
            wide = i.code == BPF_LD | 0x18 | BPF_IMM
            nxt = pc + (2 if wide else 1)
            if nxt >= b.end and b.kind != "fall":
                last = (pc, i)
                break
            if i.code == MOV64_X and i.off == 0 and nxt < b.end and (nxt + 1 < b.end or b.kind == "fall"):
                j = insns[nxt]
                # rd = rs; rd op= (imm | rt, rt != rd): one expression of rs
                if (j.code & 7) == BPF_ALU64 and j.dst_reg == i.dst_reg and j.off == 0 and (
                        not j.code & BPF_X or j.src_reg != i.dst_reg) and (j.code & 0xf0) not in (BPF_MOV,
                                                                                                BPF_END):
                    self.alu(True, j.code, self.r(j.dst_reg), self.r(j.src_reg), j.off, j.imm, out,
                             dx=self.r(i.src_reg))
                    pc = nxt + 1
                    continue
            self.insn(pc, i, out)
            pc = nxt
        if b.kind == "exit":
            out.append("return r0")
            return
        if b.kind == "fall":
            self.goto(b.fall, out, depth)
            return
        if b.kind == "ja":
            self.goto(b.target, out, depth)
            return
        pc, i = last
        cond = self.cond(i)
        is_may_goto = (i.code & 0xf0) == BPF_JCOND
        if b.target == b.fall and not is_may_goto:
            self.goto(b.fall, out, depth)
            return
        out.append("if %s:" % cond)
        taken = []
        self.goto(b.target, taken, depth)
        out.extend("    " + ln for ln in taken)
        out.append("else:")
        other = []
        if is_may_goto:
            other.append("mg -= 1")
        self.goto(b.fall, other, depth)
        out.extend("    " + ln for ln in other)


def bpf_int_jit_compile(image):
    """Translate ``image``; sets ``image.bpf_func`` (or leaves it None with ``image.jit_error``). Returns
    the image."""
    try:
        source, ns = translate(image)
        code = compile(source, "<bpf %s>" % (image.name or "prog"), "exec")
        exec(code, ns)
    except (Untranslatable, SyntaxError, RecursionError, MemoryError, ValueError, IndexError) as e:
        image.bpf_func = None
        image.jit_entry = None
        image.jit_error = "%s: %s" % (type(e).__name__, e)
        return image
    entry = ns["F0"]
    image.jit_entry = entry
    image.jit_source = source
    image.jit_subprogs = {int(k[1:]): v for k, v in ns.items() if k[:1] == "F" and k[1:].isdigit()}

    image.bpf_func = entry  # entry(run, ctx): depth 0, a fresh frame
    image.jit_error = None
    return image


def translate(image):
    """(Python source, namespace to exec it in) of ``image``."""
    insns = image.insns
    if not insns:
        raise Untranslatable("empty program")
    starts = _subprog_starts(insns)
    g = _Gen(image)
    src = []
    for k, s in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(insns)
        _, lines = g.subprog(s, end)
        src.extend(lines)
        src.append("")
    ns = dict(BASE_NS)
    ns["IMG"] = image
    return "\n".join(src) + "\n", ns
