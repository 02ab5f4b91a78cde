"""An assembler for the BPF "pseudo-C" assembly syntax of LLVM (what ``asm volatile (...)`` holds in the
kernel's ``progs/verifier_*.c`` selftests), to ``bpfemu.prog.insn`` slots.

Statements are separated by ``;`` or newlines; ``name:`` defines a label; ``/* ... */`` and ``//`` comments are
ignored. Registers are ``r0``-``r10`` (64-bit operations) and ``w0``-``w10`` (32-bit). Forms::

    exit                                 call 12 | call name          goto L | goto +3 | gotol L | may_goto L
    if r1 s> r2 goto L | if w1 & 3 goto L                     r1 = r2 | r1 = 5 | r1 = 5 ll | r1 = name ll
    r1 += r2 | w1 s/= -2 | r1 s%= r2 | r1 s>>= 3 | r1 = -r1  r1 = (s8)r2 | r1 = be16 r1 | r1 = bswap64 r1
    r1 = *(u32 *)(r2 + 4) | r1 = *(s16 *)(r2 - 2)              *(u64 *)(r10 - 8) = r1 | = 42
    lock *(u64 *)(r10 - 8) += r1 | |= | &= | ^=                r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)
    r1 = xchg_64(r10 - 8, r1) | w1 = xchg32_32(...)            r0 = cmpxchg_64(r10 - 8, r0, r1)
    r0 = *(u8 *)skb[12] | r0 = *(u16 *)skb[r1 + 2]             .8byte N | .byte/.short/.long/.quad N

Symbols (names that are not registers) are resolved by the caller's ``resolve(name, use)`` where ``use`` is
'call' (a helper number, a local function, or a kfunc), 'ld_imm64' (a map, a function, a variable) or
'imm' (a constant); it returns an int, or a tuple ``(src_reg, imm, reloc)`` for pseudo forms: the assembled
slot keeps ``reloc`` in :attr:`Program.relocs` so the loader can patch map fds, subprogram offsets or BTF ids.

:class:`AsmError` names the statement that could not be assembled.
"""
import re

from bpfemu.prog import insn as I

__all__ = ["AsmError", "Program", "assemble"]


class AsmError(Exception):
    pass


class Program:
    """Assembled slots, the labels (slot index by name) and relocations ``[(slot, reloc)]``."""

    def __init__(self):
        self.slots = []
        self.labels = {}
        self.relocs = []
        self._fixups = []  # (slot, label, field, statement number) for jumps to labels
        self._order = 0
        self._raw = bytearray()  # pending .byte/.short/.long data


_REG = r"([rw])(\d+)"
_NUM = r"[-+]?(?:0x[0-9a-fA-F]+|\d+)(?:[uUlL]*)"
_SIZE = {"u8": I.BPF_B, "u16": I.BPF_H, "u32": I.BPF_W, "u64": I.BPF_DW,
         "s8": I.BPF_B, "s16": I.BPF_H, "s32": I.BPF_W, "s64": I.BPF_DW}
_ALU = {"+": I.BPF_ADD, "-": I.BPF_SUB, "*": I.BPF_MUL, "/": I.BPF_DIV, "%": I.BPF_MOD, "&": I.BPF_AND,
        "|": I.BPF_OR, "^": I.BPF_XOR, "<<": I.BPF_LSH, ">>": I.BPF_RSH, "s>>": I.BPF_ARSH,
        "s/": I.BPF_DIV, "s%": I.BPF_MOD}
_JMP = {"==": I.BPF_JEQ, "!=": I.BPF_JNE, ">": I.BPF_JGT, ">=": I.BPF_JGE, "<": I.BPF_JLT, "<=": I.BPF_JLE,
        "s>": I.BPF_JSGT, "s>=": I.BPF_JSGE, "s<": I.BPF_JSLT, "s<=": I.BPF_JSLE, "&": I.BPF_JSET}
_ATOMIC = {"+": I.BPF_ADD, "|": I.BPF_OR, "&": I.BPF_AND, "^": I.BPF_XOR}
_FETCH = {"add": I.BPF_ADD, "or": I.BPF_OR, "and": I.BPF_AND, "xor": I.BPF_XOR}


def _num(text):
    t = text.rstrip("uUlL")
    return int(t, 0)


def _mem(text):
    """'(r2 + 4)' / 'r2 - 8' / '(r2)' -> (reg, off)."""
    m = re.fullmatch(r"\(?\s*r(\d+)\s*(?:([-+])\s*(%s))?\s*\)?" % _NUM, text.strip())
    if not m:
        raise AsmError("bad memory operand %r" % text)
    off = _num(m.group(3)) if m.group(3) else 0
    return int(m.group(1)), -off if m.group(2) == "-" else off


_STMT = [
    ("exit", re.compile(r"exit")),
    ("call", re.compile(r"call\s+(\S+)")),
    ("ja", re.compile(r"goto\s+(\S+)")),
    ("gotol", re.compile(r"gotol\s+(\S+)")),
    ("may_goto", re.compile(r"may_goto\s+(\S+)")),
    ("if", re.compile(r"if\s+%s\s+(s?[<>]=?|==|!=|&)\s+(\S+)\s+goto\s+(\S+)" % _REG)),
    ("ldabs", re.compile(r"r0\s*=\s*\*\(\s*(u8|u16|u32)\s*\*\s*\)\s*skb\[\s*(.+?)\s*\]")),
    ("ldx", re.compile(r"%s\s*=\s*\*\(\s*([us]\d+)\s*\*\s*\)\s*(\(.+\))" % _REG)),
    ("st", re.compile(r"\*\(\s*(u\d+)\s*\*\s*\)\s*(\(.+?\))\s*=\s*(.+)")),
    ("lock", re.compile(r"lock\s+\*\(\s*(u\d+)\s*\*\s*\)\s*(\(.+?\))\s*([-+|&^])=\s*%s" % _REG)),
    ("fetch", re.compile(r"%s\s*=\s*atomic_fetch_(add|or|and|xor)\(\s*\(\s*(u\d+)\s*\*\s*\)\s*(\(.+?\))\s*,\s*%s\s*\)"
                         % (_REG, _REG))),
    ("xchg", re.compile(r"%s\s*=\s*xchg(32_32|_64)\(\s*(.+?)\s*,\s*%s\s*\)" % (_REG, _REG))),
    ("cmpxchg", re.compile(r"%s\s*=\s*cmpxchg(32_32|_64)\(\s*(.+?)\s*,\s*%s\s*,\s*%s\s*\)" % (_REG, _REG, _REG))),
    ("neg", re.compile(r"%s\s*=\s*-\s*%s" % (_REG, _REG))),
    ("movsx", re.compile(r"%s\s*=\s*\(\s*s(8|16|32)\s*\)\s*%s" % (_REG, _REG))),
    ("end", re.compile(r"%s\s*=\s*(be|le|bswap)(16|32|64)\s+%s" % (_REG, _REG))),
    ("alu", re.compile(r"%s\s*(s>>|<<|>>|s/|s%%|[-+*/%%&|^])=\s*(\S+)" % _REG)),
    ("mov", re.compile(r"%s\s*=\s*(.+?)(\s+ll)?" % _REG)),
]


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _statements(text):
    """The statements of the text, with ``.rept N`` ... ``.endr`` blocks repeated."""
    out = []
    stack = []  # [(count, statements)]
    for raw in re.split(r"[;\n]", _strip_comments(text)):
        stmt = raw.strip()
        m = re.fullmatch(r"\.rept\s+(%s)" % _NUM, stmt)
        if m:
            stack.append((_num(m.group(1)), []))
            continue
        if stmt == ".endr":
            if not stack:
                raise AsmError(".endr without .rept")
            n, body = stack.pop()
            (stack[-1][1] if stack else out).extend(body * n)
            continue
        (stack[-1][1] if stack else out).append(stmt)
    if stack:
        raise AsmError(".rept without .endr")
    return out


def assemble(text, resolve=None):
    """Assemble ``text`` into a :class:`Program`; jumps to labels are resolved within the text (numeric local
    labels ``1:`` are referred to as ``1b`` / ``1f``, the nearest one before / after)."""
    prog = Program()
    resolve = resolve or (lambda name, use: (_ for _ in ()).throw(AsmError("unknown symbol %s" % name)))
    numeric = {}  # label number -> [(statement number, slot)]
    prog._order = 0
    for stmt in _statements(text):
        prog._order += 1
        while True:
            m = re.match(r"([A-Za-z_.$][\w.$]*|\d+)\s*:(?!=)\s*", stmt)
            if not m:
                break
            _flush_raw(prog)
            if m.group(1).isdigit():
                numeric.setdefault(m.group(1), []).append((prog._order, len(prog.slots)))
            else:
                prog.labels[m.group(1)] = len(prog.slots)
            stmt = stmt[m.end():]
        if not stmt:
            continue
        try:
            _one(prog, stmt, resolve)
        except AsmError as e:
            raise AsmError("%s (in %r)" % (e, stmt))
    _flush_raw(prog, final=True)
    for slot, label, field, order in prog._fixups:
        m = re.fullmatch(r"(\d+)([bf])", label)
        if m:
            defs = numeric.get(m.group(1), [])
            if m.group(2) == "b":
                cands = [at for o, at in defs if o <= order]
                target = cands[-1] if cands else None
            else:
                cands = [at for o, at in defs if o > order]
                target = cands[0] if cands else None
        else:
            target = prog.labels.get(label)
        if target is None:
            raise AsmError("undefined label %s" % label)
        off = target - slot - 1
        ins = prog.slots[slot]
        prog.slots[slot] = ins._replace(**{field: I._s32(off) if field == "imm" else I._s16(off)})
    return prog


def _flush_raw(prog, final=False):
    if not prog._raw:
        return
    if len(prog._raw) % 8:
        if final:
            raise AsmError("raw data of %d bytes is not a whole instruction" % len(prog._raw))
        return
    prog.slots.extend(I.decode(bytes(prog._raw)))
    prog._raw.clear()


def _target(prog, tok, field="off"):
    """A jump target: '+3'/'-2' (slots) or a label (fixed up at the end)."""
    if re.fullmatch(r"[-+]?\d+", tok):
        return int(tok)
    prog._fixups.append((len(prog.slots), tok, field, prog._order))
    return 0


def _imm_or_reg(tok, resolve):
    m = re.fullmatch(_REG, tok)
    if m:
        return "reg", int(m.group(2))
    if re.fullmatch(_NUM, tok):
        return "imm", _num(tok)
    v = resolve(tok, "imm")
    if isinstance(v, tuple):
        raise AsmError("%s cannot be an immediate" % tok)
    return "imm", v


def _cls(w, base64, base32):
    return base32 if w == "w" else base64


def _one(prog, s, resolve):
    if s.startswith("."):
        m = re.fullmatch(r"\.(8byte|quad|byte|short|2byte|long|4byte)\s+(.+)", s)
        if not m:
            raise AsmError("unknown directive")
        size = {"8byte": 8, "quad": 8, "byte": 1, "short": 2, "2byte": 2, "long": 4, "4byte": 4}[m.group(1)]
        tok = m.group(2).strip()
        v = _num(tok) if re.fullmatch(_NUM, tok) else resolve(tok, "imm")
        prog._raw += (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        _flush_raw(prog)
        return
    if prog._raw:
        raise AsmError("instruction after a partial raw instruction")
    for kind, rx in _STMT:
        m = rx.fullmatch(s)
        if m:
            break
    else:
        raise AsmError("cannot parse")
    emit = prog.slots.append
    g = m.groups()
    if kind == "exit":
        emit(I.BPF_EXIT_INSN())
    elif kind == "call":
        tok = g[0]
        if re.fullmatch(_NUM, tok):
            emit(I.BPF_EMIT_CALL(_num(tok)))
        else:
            v = resolve(tok, "call")
            if isinstance(v, tuple):
                src, imm, reloc = v
                prog.relocs.append((len(prog.slots), reloc))
                emit(I.BPF_RAW_INSN(I.BPF_JMP | I.BPF_CALL, 0, src, 0, imm))
            else:
                emit(I.BPF_EMIT_CALL(v))
    elif kind == "ja":
        emit(I.BPF_JMP_A(_target(prog, g[0])))
    elif kind == "gotol":
        emit(I.BPF_JMP32_A(_target(prog, g[0], "imm")))
    elif kind == "may_goto":
        emit(I.BPF_MAY_GOTO_INSN(_target(prog, g[0])))
    elif kind == "if":
        w, dst, op, src, tgt = g
        cls = I.BPF_JMP32 if w == "w" else I.BPF_JMP
        how, v = _imm_or_reg(src, resolve)
        off = _target(prog, tgt)
        if how == "reg":
            emit(I.Insn(cls | _JMP[op] | I.BPF_X, int(dst), v, I._s16(off), 0))
        else:
            emit(I.Insn(cls | _JMP[op] | I.BPF_K, int(dst), 0, I._s16(off), I._s32(v)))
    elif kind == "ldabs":
        size, where = g
        mi = re.fullmatch(r"r(\d+)\s*(?:\+\s*(%s))?" % _NUM, where)
        if mi:
            emit(I.BPF_LD_IND(_SIZE[size], int(mi.group(1)), _num(mi.group(2)) if mi.group(2) else 0))
        else:
            emit(I.BPF_LD_ABS(_SIZE[size], _num(where)))
    elif kind == "ldx":
        _w, dst, size, memop = g
        src, off = _mem(memop)
        if size.startswith("s"):
            emit(I.BPF_LDX_MEMSX(_SIZE[size], int(dst), src, off))
        else:
            emit(I.BPF_LDX_MEM(_SIZE[size], int(dst), src, off))
    elif kind == "st":
        size, memop, val = g
        dst, off = _mem(memop)
        how, v = _imm_or_reg(val.strip(), resolve)
        if how == "reg":
            emit(I.BPF_STX_MEM(_SIZE[size], dst, v, off))
        else:
            emit(I.BPF_ST_MEM(_SIZE[size], dst, off, v))
    elif kind == "lock":
        size, memop, op, _w, src = g
        dst, off = _mem(memop)
        emit(I.BPF_ATOMIC_OP(_SIZE[size], _ATOMIC[op], dst, int(src), off))
    elif kind == "fetch":
        _w, dst, op, size, memop, _w2, src = g
        base, off = _mem(memop)
        if dst != src:
            raise AsmError("atomic_fetch_%s must return into its source register" % op)
        emit(I.BPF_ATOMIC_OP(_SIZE[size], _FETCH[op] | I.BPF_FETCH, base, int(src), off))
    elif kind == "xchg":
        _w, dst, width, memop, _w2, src = g
        base, off = _mem(memop)
        emit(I.BPF_ATOMIC_OP(I.BPF_W if width == "32_32" else I.BPF_DW, I.BPF_XCHG, base, int(src), off))
    elif kind == "cmpxchg":
        _w, dst, width, memop, _w2, old, _w3, new = g
        base, off = _mem(memop)
        if dst != "0" or old != "0":
            raise AsmError("cmpxchg compares and returns in r0")
        emit(I.BPF_ATOMIC_OP(I.BPF_W if width == "32_32" else I.BPF_DW, I.BPF_CMPXCHG, base, int(new), off))
    elif kind == "neg":
        w, dst, _w2, src = g
        if dst != src:
            raise AsmError("negation is in place")
        emit(I.Insn(_cls(w, I.BPF_ALU64, I.BPF_ALU) | I.BPF_NEG | I.BPF_K, int(dst), 0, 0, 0))
    elif kind == "movsx":
        w, dst, bits, _w2, src = g
        emit(I.Insn(_cls(w, I.BPF_ALU64, I.BPF_ALU) | I.BPF_MOV | I.BPF_X, int(dst), int(src), int(bits), 0))
    elif kind == "end":
        w, dst, how, bits, _w2, src = g
        if dst != src:
            raise AsmError("byte swaps are in place")
        if how == "bswap":
            emit(I.BPF_BSWAP(int(dst), int(bits)))
        else:
            emit(I.BPF_ENDIAN(I.BPF_TO_BE if how == "be" else I.BPF_TO_LE, int(dst), int(bits)))
    elif kind == "alu":
        w, dst, op, src = g
        cls = _cls(w, I.BPF_ALU64, I.BPF_ALU)
        signed = op in ("s/", "s%")
        how, v = _imm_or_reg(src, resolve)
        if how == "reg":
            emit(I.Insn(cls | _ALU[op] | I.BPF_X, int(dst), v, 1 if signed else 0, 0))
        else:
            emit(I.Insn(cls | _ALU[op] | I.BPF_K, int(dst), 0, 1 if signed else 0, I._s32(v)))
    elif kind == "mov":
        w, dst, src, ll = g
        src = src.strip()
        cls = _cls(w, I.BPF_ALU64, I.BPF_ALU)
        if ll:
            if w == "w":
                raise AsmError("ld_imm64 needs an r register")
            if re.fullmatch(_NUM, src):
                prog.slots.extend(I.BPF_LD_IMM64(int(dst), _num(src) & 0xffffffffffffffff))
            else:
                v = resolve(src, "ld_imm64")
                if isinstance(v, tuple):
                    srcreg, imm, reloc = v
                    prog.relocs.append((len(prog.slots), reloc))
                    prog.slots.extend(I.BPF_LD_IMM64_RAW(int(dst), srcreg, imm))
                else:
                    prog.slots.extend(I.BPF_LD_IMM64(int(dst), v & 0xffffffffffffffff))
            return
        how, v = _imm_or_reg(src, resolve)
        if how == "reg":
            emit(I.Insn(cls | I.BPF_MOV | I.BPF_X, int(dst), v, 0, 0))
        else:
            emit(I.Insn(cls | I.BPF_MOV | I.BPF_K, int(dst), 0, 0, I._s32(v)))

