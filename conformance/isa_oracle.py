"""What each instruction computes, written from Documentation/bpf/standardization/instruction-set.rst.

The oracle of the ISA conformance suite (``test_isa*.py``): plain Python over unbounded ints, independent
of the emulator's engines. The host kernel proves it (every case runs there too); the emulator must agree.
"""
M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def signed(v, bits):
    """Two's complement value of the low ``bits`` of v."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def trunc_div(a, b):
    """C division: the quotient rounded toward zero."""
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def trunc_mod(a, b):
    """C remainder: a - b * trunc(a / b) (the sign of the dividend)."""
    return a - b * trunc_div(a, b)


def bswap(v, bits):
    return int.from_bytes((v & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")


def alu(op, width, dst, src):
    """ALU (width 32) or ALU64 (width 64) ``op`` of dst and src, u64 in, u64 out.

    For 32-bit operations both operands are their low 32 bits and the result is zero-extended.
    """
    mask = (1 << width) - 1
    d, s = dst & mask, src & mask
    if op == "add":
        r = d + s
    elif op == "sub":
        r = d - s
    elif op == "mul":
        r = d * s
    elif op == "div":
        r = d // s if s else 0
    elif op == "sdiv":
        r = trunc_div(signed(d, width), signed(s, width)) if s else 0
    elif op == "mod":
        r = d % s if s else d  # modulo by zero: ALU64 leaves dst, ALU zeroes its upper half
    elif op == "smod":
        r = trunc_mod(signed(d, width), signed(s, width)) if s else d
    elif op == "or":
        r = d | s
    elif op == "and":
        r = d & s
    elif op == "xor":
        r = d ^ s
    elif op == "lsh":
        r = d << (s & (width - 1))
    elif op == "rsh":
        r = d >> (s & (width - 1))
    elif op == "arsh":
        r = signed(d, width) >> (s & (width - 1))
    elif op == "mov":
        r = s
    else:
        raise ValueError(op)
    return r & mask


def unary(op, width, dst):
    mask = (1 << width) - 1
    if op == "neg":
        return -dst & mask
    if op.startswith("movsx"):
        bits = int(op[5:])
        return signed(dst, bits) & mask
    if op.startswith("le"):  # to little endian on a little-endian host: truncation
        return dst & ((1 << int(op[2:])) - 1)
    if op.startswith("be"):
        return bswap(dst, int(op[2:]))
    if op.startswith("bswap"):
        return bswap(dst, int(op[5:]))
    raise ValueError(op)


def jump(op, width, a, b):
    """Whether a conditional jump is taken (JMP: 64-bit operands, JMP32: the low 32 bits)."""
    a &= (1 << width) - 1
    b &= (1 << width) - 1
    sa, sb = signed(a, width), signed(b, width)
    return {
        "jeq": a == b, "jne": a != b, "jgt": a > b, "jge": a >= b, "jlt": a < b, "jle": a <= b,
        "jset": (a & b) != 0, "jsgt": sa > sb, "jsge": sa >= sb, "jslt": sa < sb, "jsle": sa <= sb,
    }[op]


def atomic(op, size, mem, src, r0=0):
    """(new memory value, new src register, new r0) of an atomic op on a ``size``-byte memory word."""
    mask = (1 << (8 * size)) - 1
    m, s = mem & mask, src & mask
    fetch = op.endswith("_fetch")
    base = op[:-len("_fetch")] if fetch else op
    if base == "xchg":
        return s, m, r0
    if base == "cmpxchg":
        return (s if m == (r0 & mask) else m), src, m
    new = {"add": (m + s) & mask, "or": m | s, "and": m & s, "xor": m ^ s}[base]
    return new, (m if fetch else src), r0
