"""The verifier's instruction printer (kernel/bpf/disasm.c's print_bpf_insn), as the log shows it.

``print_insn(insn, next_insn, allow_ptr_leaks, call_name)`` returns the text of one line, newline included,
e.g. ``(b7) r0 = 0\n``. ``call_name(insn)`` may name kfuncs and subprograms; helpers are named from the
uapi enum.
"""
from ..insn import (BPF_ABS, BPF_ALU, BPF_ALU64, BPF_ATOMIC, BPF_CALL, BPF_CMPXCHG, BPF_DIV, BPF_DW, BPF_END,
                    BPF_EXIT, BPF_FETCH, BPF_IMM, BPF_IND, BPF_JA, BPF_JCOND, BPF_JMP, BPF_JMP32, BPF_LD,
                    BPF_LDX, BPF_MEM, BPF_MEMSX, BPF_MOD, BPF_MOV, BPF_NEG, BPF_PSEUDO_BTF_ID, BPF_PSEUDO_CALL,
                    BPF_PSEUDO_KFUNC_CALL, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE,
                    BPF_PSEUDO_MAP_VALUE, BPF_ST, BPF_STX, BPF_TO_BE, BPF_X, BPF_XCHG, BPF_LOAD_ACQ,
                    BPF_STORE_REL)
from ... import uapi

CLASS = ["ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64"]
ALU = {0x0: "+=", 0x1: "-=", 0x2: "*=", 0x3: "/=", 0x4: "|=", 0x5: "&=", 0x6: "<<=", 0x7: ">>=", 0x8: "neg",
       0x9: "%=", 0xa: "^=", 0xb: "=", 0xc: "s>>=", 0xd: "endian"}
ALU_SIGN = {0x3: "s/=", 0x9: "s%="}
MOVSX = {8: "(s8)", 16: "(s16)", 32: "(s32)"}
ATOMIC_ALU = {0x0: "add", 0x5: "and", 0x4: "or", 0xa: "xor"}
LDST = {0x00: "u32", 0x08: "u16", 0x10: "u8", 0x18: "u64"}
LDSX = {0x00: "s32", 0x08: "s16", 0x10: "s8"}
JMP = {0x0: "jmp", 0x1: "==", 0x2: ">", 0xa: "<", 0x3: ">=", 0xb: "<=", 0x4: "&", 0x5: "!=", 0x6: "s>",
       0xc: "s<", 0x7: "s>=", 0xd: "s<=", 0x8: "call", 0x9: "exit"}

FUNC_NAMES = {}
for _n, _v in uapi.ENUMS["bpf_func_id"]:
    if not _n.startswith("__"):
        FUNC_NAMES[_v] = "bpf_" + _n[len("BPF_FUNC_"):]
MAX_FUNC_ID = dict(uapi.ENUMS["bpf_func_id"])["__BPF_FUNC_MAX_ID"]


def func_id_name(fid):
    """disasm's func_id_name: 'bpf_map_lookup_elem', or 'unknown'."""
    if 0 <= fid < MAX_FUNC_ID and fid in FUNC_NAMES:
        return FUNC_NAMES[fid]
    return "unknown"


def _s(v):
    return "%+d" % v


def print_insn(insn, nxt=None, allow_ptr_leaks=True, call_name=None):
    code, dst, src, off, imm = insn
    cls = code & 7
    op = code & 0xf0
    if cls in (BPF_ALU, BPF_ALU64):
        w = "w" if cls == BPF_ALU else "r"
        if op == BPF_END:
            if cls == BPF_ALU64:
                return "(%02x) r%d = bswap%d r%d\n" % (code, dst, imm, dst)
            return "(%02x) r%d = %s%d r%d\n" % (code, dst, "be" if code & BPF_X == BPF_TO_BE else "le", imm, dst)
        if op == BPF_NEG:
            return "(%02x) %s%d = -%s%d\n" % (code, w, dst, w, dst)
        if code == BPF_ALU64 | BPF_MOV | BPF_X and off == 1:
            return "(%02x) r%d = addr_space_cast(r%d, %d, %d)\n" % (code, dst, src, (imm & 0xffffffff) >> 16,
                                                                     imm & 0xffff)
        if code == BPF_ALU64 | BPF_MOV | BPF_X and off == -1:
            return "(%02x) r%d = &(void __percpu *)(r%d)\n" % (code, dst, src)
        sdiv = op in (BPF_DIV, BPF_MOD) and off == 1
        opname = ALU_SIGN[op >> 4] if sdiv else ALU.get(op >> 4, "")
        if code & BPF_X:
            movsx = MOVSX.get(off, "") if op == BPF_MOV else ""
            return "(%02x) %s%d %s %s%s%d\n" % (code, w, dst, opname, movsx, w, src)
        return "(%02x) %s%d %s %d\n" % (code, w, dst, opname, imm)
    if cls == BPF_STX:
        mode = code & 0xe0
        size = LDST[code & 0x18]
        if mode == BPF_MEM:
            return "(%02x) *(%s *)(r%d %+d) = r%d\n" % (code, size, dst, off, src)
        if mode == BPF_ATOMIC:
            if imm in (0x00, 0x50, 0x40, 0xa0):
                return "(%02x) lock *(%s *)(r%d %+d) %s r%d\n" % (code, size, dst, off, ALU[imm >> 4], src)
            if imm in (0x01, 0x51, 0x41, 0xa1):
                return "(%02x) r%d = atomic%s_fetch_%s((%s *)(r%d %+d), r%d)\n" % (
                    code, src, "64" if code & 0x18 == BPF_DW else "", ATOMIC_ALU[imm >> 4], size, dst, off, src)
            if imm == BPF_CMPXCHG:
                return "(%02x) r0 = atomic%s_cmpxchg((%s *)(r%d %+d), r0, r%d)\n" % (
                    code, "64" if code & 0x18 == BPF_DW else "", size, dst, off, src)
            if imm == BPF_XCHG:
                return "(%02x) r%d = atomic%s_xchg((%s *)(r%d %+d), r%d)\n" % (
                    code, src, "64" if code & 0x18 == BPF_DW else "", size, dst, off, src)
            if imm == BPF_LOAD_ACQ:
                return "(%02x) r%d = load_acquire((%s *)(r%d %+d))\n" % (code, dst, size, src, off)
            if imm == BPF_STORE_REL:
                return "(%02x) store_release((%s *)(r%d %+d), r%d)\n" % (code, size, dst, off, src)
        return "BUG_%02x\n" % code
    if cls == BPF_ST:
        mode = code & 0xe0
        if mode == BPF_MEM:
            return "(%02x) *(%s *)(r%d %+d) = %d\n" % (code, LDST[code & 0x18], dst, off, imm)
        if mode == 0xc0:
            return "(%02x) nospec\n" % code
        return "BUG_st_%02x\n" % code
    if cls == BPF_LDX:
        mode = code & 0xe0
        if mode not in (BPF_MEM, BPF_MEMSX):
            return "BUG_ldx_%02x\n" % code
        size = LDST[code & 0x18] if mode == BPF_MEM else LDSX.get(code & 0x18, "")
        return "(%02x) r%d = *(%s *)(r%d %+d)\n" % (code, dst, size, src, off)
    if cls == BPF_LD:
        mode = code & 0xe0
        if mode == BPF_ABS:
            return "(%02x) r0 = *(%s *)skb[%d]\n" % (code, LDST[code & 0x18], imm)
        if mode == BPF_IND:
            return "(%02x) r0 = *(%s *)skb[r%d + %d]\n" % (code, LDST[code & 0x18], src, imm)
        if mode == BPF_IMM and code & 0x18 == BPF_DW:
            hi = nxt[4] if nxt is not None else 0
            full = ((hi & 0xffffffff) << 32) | (imm & 0xffffffff)
            if src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE,
                       BPF_PSEUDO_BTF_ID) and not allow_ptr_leaks:
                full = 0
            return "(%02x) r%d = 0x%x\n" % (code, dst, full)
        return "BUG_ld_%02x\n" % code
    if cls in (BPF_JMP, BPF_JMP32):
        if op == BPF_CALL:
            if src == BPF_PSEUDO_CALL:
                name = call_name(insn) if call_name else None
                return "(%02x) call pc%s\n" % (code, name or "%+d" % imm)
            if src == 0 and 0 <= imm < MAX_FUNC_ID and imm in FUNC_NAMES:
                name = FUNC_NAMES[imm]
            else:
                name = (call_name(insn) if call_name else None) or (
                    "kernel-function" if src == BPF_PSEUDO_KFUNC_CALL else "unknown")
            return "(%02x) call %s#%d\n" % (code, name, imm)
        if code == BPF_JMP | BPF_JA:
            return "(%02x) goto pc%+d\n" % (code, off)
        if code == BPF_JMP | BPF_JCOND and src == 0:
            return "(%02x) may_goto pc%+d\n" % (code, off)
        if code == BPF_JMP32 | BPF_JA:
            return "(%02x) gotol pc%+d\n" % (code, imm)
        if code == BPF_JMP | BPF_EXIT:
            return "(%02x) exit\n" % code
        w = "w" if cls == BPF_JMP32 else "r"
        if code & BPF_X:
            return "(%02x) if %s%d %s %s%d goto pc%+d\n" % (code, w, dst, JMP.get(op >> 4, ""), w, src, off)
        return "(%02x) if %s%d %s 0x%x goto pc%+d\n" % (code, w, dst, JMP.get(op >> 4, ""), imm & 0xffffffff, off)
    return "(%02x) %s\n" % (code, CLASS[cls])
