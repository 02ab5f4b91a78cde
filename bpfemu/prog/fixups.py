"""The rewrites bpf_check() makes to a verified program before it runs, as far as they are the same on every
machine: what OBJ_GET_INFO_BY_FD's ``xlated_prog_insns`` shows (kernel/bpf/verifier.c: ``opt_hard_wire_dead_code_branches``,
``opt_remove_dead_code``, ``opt_remove_nops``, ``sanitize_dead_code``, the division guards of
``do_misc_fixups``; the branch and line-info adjustments of ``bpf_patch_insn_single``/``bpf_remove_insns``
in kernel/bpf/core.c).

:func:`rewrite` takes the loaded instructions (5-tuples ``(code, dst, src, off, imm)``) and the indices the
walk reached on a non-speculative path, and returns ``(insns, where)``: the rewritten program and, for each
loaded instruction, its index in it (a removed instruction maps to the one that took its place).

- A program loaded with CAP_BPF loses its dead code: a conditional jump one of whose sides was never
  reached becomes ``goto`` (or a ``goto +0``), unreached instructions go, then every ``goto +0``.
  Without CAP_BPF, each unreached instruction becomes ``goto -1`` instead.
- Division and modulo by a register get the guards that make division by zero (and, for the signed forms,
  by -1) defined; a signed division or modulo by the constant -1 becomes a negation or a zeroing move.

Not modelled (they depend on the machine's kernel: addresses, struct layouts, the JIT): context access
conversion (``convert_ctx_accesses``), helper call immediates (addresses relative to ``__bpf_call_base``),
inlined helpers and map lookups, LD_ABS/LD_IND calls, tail call sequences, bpf_loop inlining, Spectre
masking, zero extension.
"""
from .insn import (BPF_ALU, BPF_ALU64, BPF_CALL, BPF_DIV, BPF_EXIT, BPF_JA, BPF_JEQ, BPF_JGT, BPF_JMP, BPF_JMP32,
                   BPF_JNE, BPF_K, BPF_MOD, BPF_MOV, BPF_NEG, BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, BPF_X, BPF_ADD,
                   BPF_XOR)

BPF_REG_AX = 11
_NOP = (BPF_JMP | BPF_JA, 0, 0, 0, 0)
_LD_IMM64 = 0x18


def _is_cond_jump(code):
    cls, op = code & 7, code & 0xf0
    if cls == BPF_JMP32:
        return op != BPF_JA
    return cls == BPF_JMP and op not in (BPF_JA, BPF_EXIT, BPF_CALL)


def _target(insns, i):
    """The index a jump, a bpf2bpf call or a ld_imm64 of a function at ``i`` refers to, or None."""
    code, _d, src, off, imm = insns[i]
    cls, op = code & 7, code & 0xf0
    if cls in (BPF_JMP, BPF_JMP32):
        if op == BPF_EXIT:
            return None
        if op == BPF_CALL:
            return i + imm + 1 if cls == BPF_JMP and src == BPF_PSEUDO_CALL else None
        if cls == BPF_JMP32 and op == BPF_JA:
            return i + imm + 1           # gotol
        return i + off + 1
    if code == _LD_IMM64 and src == BPF_PSEUDO_FUNC:
        return i + imm + 1
    return None


def _retarget(insn, at, to):
    """``insn`` (now at ``at``) made to refer to ``to``."""
    code, dst, src, off, imm = insn
    rel = to - at - 1
    cls, op = code & 7, code & 0xf0
    if (cls == BPF_JMP and op == BPF_CALL) or code == _LD_IMM64 or (cls == BPF_JMP32 and op == BPF_JA):
        return (code, dst, src, off, rel)
    return (code, dst, src, rel, imm)


def _rebuild(insns, pieces):
    """``pieces[i]``: what replaces instruction i (a list, empty to remove it; the original may be in it,
    first when it is a jump). Jumps, calls and function loads of the original instructions are adjusted;
    the instructions of a patch keep their own offsets. Returns (insns, where)."""
    where, pos = [], 0
    for p in pieces:
        where.append(pos)
        pos += len(p)
    where.append(pos)
    out = []
    for i, p in enumerate(pieces):
        for k, ins in enumerate(p):
            if ins is insns[i]:
                t = _target(insns, i)
                if t is not None:
                    ins = _retarget(ins, len(out), where[t])
            out.append(ins)
    return out, where[:-1]


def _div_guard(insn):
    """do_misc_fixups' patch for a division or modulo, or None."""
    code, dst, src, off, imm = insn
    cls, op, srcm = code & 7, code & 0xf0, code & 0x08
    if cls not in (BPF_ALU, BPF_ALU64) or op not in (BPF_DIV, BPF_MOD):
        return None
    is64 = cls == BPF_ALU64
    jcls = BPF_JMP if is64 else BPF_JMP32
    isdiv = op == BPF_DIV
    if srcm == BPF_K:
        if off == 1 and imm == -1:
            return [(cls | BPF_NEG | BPF_K, dst, 0, 0, 0)] if isdiv else [(BPF_ALU | BPF_MOV | BPF_K, dst, 0, 0, 0)]
        return None
    mov32 = (BPF_ALU | BPF_MOV | BPF_X, dst, dst, 0, 0)
    ja1 = (BPF_JMP | BPF_JA, 0, 0, 1, 0)
    if off != 1:
        if isdiv:   # x / 0 = 0
            return [(jcls | BPF_JNE | BPF_K, src, 0, 2, 0), (BPF_ALU | BPF_XOR | BPF_X, dst, dst, 0, 0), ja1, insn]
        # x % 0 = x (its low half for the 32-bit form)
        p = [(jcls | BPF_JEQ | BPF_K, src, 0, 1 + (0 if is64 else 1), 0), insn, ja1, mov32]
        return p[:2] if is64 else p
    ax = [(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_AX, src, 0, 0), (cls | BPF_ADD | BPF_K, BPF_REG_AX, 0, 0, 1)]
    if isdiv:   # x s/ 0 = 0, x s/ -1 = -x
        return ax + [(jcls | BPF_JGT | BPF_K, BPF_REG_AX, 0, 4, 1), (jcls | BPF_JEQ | BPF_K, BPF_REG_AX, 0, 1, 0),
                     (cls | BPF_MOV | BPF_K, dst, 0, 0, 0), (cls | BPF_NEG | BPF_K, dst, 0, 0, 0), ja1, insn]
    # x s% 0 = x, x s% -1 = 0
    p = ax + [(jcls | BPF_JGT | BPF_K, BPF_REG_AX, 0, 3, 1),
              (jcls | BPF_JEQ | BPF_K, BPF_REG_AX, 0, 3 + (0 if is64 else 1), 1),
              (BPF_ALU | BPF_MOV | BPF_K, dst, 0, 0, 0), ja1, insn, ja1, mov32]
    return p[:-2] if is64 else p


def rewrite(insns, seen, bpf_capable=True):
    """The program as the kernel keeps it after verification (see the module docstring).

    ``insns``: the loaded program; ``seen``: indices reached on a non-speculative path (the second half of a
    ld_imm64 goes with its first); ``bpf_capable``: the loader had CAP_BPF. Returns ``(insns, where)``."""
    insns = [tuple(i) for i in insns]
    n = len(insns)
    seen = set(seen)
    for i in range(n - 1):
        if i in seen and insns[i][0] == _LD_IMM64:
            seen.add(i + 1)
    where = list(range(n))

    def compose(w2):
        return [w2[w] if w < len(w2) else len(w2) for w in where]

    if bpf_capable:
        # opt_hard_wire_dead_code_branches
        for i in range(n):
            code, _d, _s, off, _imm = insns[i]
            if i not in seen or not _is_cond_jump(code):
                continue
            if i + 1 not in seen:
                insns[i] = (BPF_JMP | BPF_JA, 0, 0, off, 0)
            elif i + 1 + off not in seen:
                insns[i] = _NOP
        # opt_remove_dead_code, then opt_remove_nops
        insns, w = _rebuild(insns, [[ins] if i in seen else [] for i, ins in enumerate(insns)])
        where = compose(w)
        insns, w = _rebuild(insns, [[] if ins == _NOP else [ins] for ins in insns])
        where = compose(w)
    else:
        # sanitize_dead_code
        insns = [ins if i in seen else (BPF_JMP | BPF_JA, 0, 0, -1, 0) for i, ins in enumerate(insns)]
    pieces = []
    for ins in insns:
        p = _div_guard(ins)
        pieces.append([ins] if p is None else p)
    insns, w = _rebuild(insns, pieces)
    # a removed instruction maps to the one that took its place; a patched one to the start of its patch
    return insns, compose(w)
