"""CO-RE relocations (libbpf's relo_core.c): a program compiled against its own idea of kernel types runs on
the kernel it is loaded into.

clang records, for each instruction that depends on a kernel type's layout, a ``bpf_core_relo`` in
``.BTF.ext``: the instruction, the program's (local) type, an access string (``"0:1:2"``: an index into the
root pointer, then member or array indices) and what is wanted (:data:`KINDS`). At load, libbpf finds the
candidate types in the target kernel's BTF (same kind, same name once a ``___flavor`` suffix is dropped),
matches the access path by member *names*, computes the value on both sides and patches the instruction:
an ALU immediate, a load/store offset (and size), or an ld_imm64 constant.

- field relocations (byte offset, byte size, exists, signed, the two bitfield shifts of
  ``BPF_CORE_READ_BITFIELD``), over anonymous embedded structs and arrays;
- type relocations (local/target type id, exists, size, matches);
- enum relocations (enumerator exists, its value), enum and enum64 alike.

A relocation no candidate satisfies gives 0 for the ``*_EXISTS`` and ``TYPE_MATCHES`` kinds and the type
kinds, and otherwise *poisons* the instruction: it becomes a call to the invalid helper 0xbad2310, so the
verifier refuses the program only if that instruction is reachable (libbpf's behaviour, which lets
programs guard field reads with ``bpf_core_field_exists``). Candidates that disagree are an error.
"""
import errno

from ..btf import uapi as BU
from ..btf.types import VOID
from .elf import LIBBPF_ERRNO__RELOC, ObjectError

(FIELD_BYTE_OFFSET, FIELD_BYTE_SIZE, FIELD_EXISTS, FIELD_SIGNED, FIELD_LSHIFT_U64, FIELD_RSHIFT_U64,
 TYPE_ID_LOCAL, TYPE_ID_TARGET, TYPE_EXISTS, TYPE_SIZE, ENUMVAL_EXISTS, ENUMVAL_VALUE, TYPE_MATCHES) = range(13)

KINDS = {FIELD_BYTE_OFFSET: "byte_off", FIELD_BYTE_SIZE: "byte_sz", FIELD_EXISTS: "field_exists",
         FIELD_SIGNED: "signed", FIELD_LSHIFT_U64: "lshift_u64", FIELD_RSHIFT_U64: "rshift_u64",
         TYPE_ID_LOCAL: "local_type_id", TYPE_ID_TARGET: "target_type_id", TYPE_EXISTS: "type_exists",
         TYPE_SIZE: "type_size", ENUMVAL_EXISTS: "enumval_exists", ENUMVAL_VALUE: "enumval_value",
         TYPE_MATCHES: "type_matches"}
FIELD_KINDS = frozenset(range(FIELD_BYTE_OFFSET, FIELD_RSHIFT_U64 + 1))
TYPE_KINDS = frozenset((TYPE_ID_LOCAL, TYPE_ID_TARGET, TYPE_EXISTS, TYPE_SIZE, TYPE_MATCHES))
ENUM_KINDS = frozenset((ENUMVAL_EXISTS, ENUMVAL_VALUE))

POISON_HELPER = 0xbad2310   # the call a poisoned instruction becomes

_MODS = (BU.BTF_KIND_TYPEDEF, BU.BTF_KIND_VOLATILE, BU.BTF_KIND_CONST, BU.BTF_KIND_RESTRICT, BU.BTF_KIND_TYPE_TAG)
_COMPOSITE = (BU.BTF_KIND_STRUCT, BU.BTF_KIND_UNION)
_ENUMS = (BU.BTF_KIND_ENUM, BU.BTF_KIND_ENUM64)
MAX_DEPTH = 32


class CoreError(ObjectError):
    def __init__(self, detail, code=errno.EINVAL):
        ObjectError.__init__(self, code, detail)


def essential_name(name):
    """bpf_core_essential_name_len: the name without a ``___flavor`` suffix."""
    i = name.rfind("___")
    return name[:i] if i > 0 else name


def skip_mods(btf, tid, typedefs=True):
    """(type, id) with const/volatile/restrict/type tags (and typedefs) skipped."""
    t = btf.type_by_id(tid)
    for _ in range(MAX_DEPTH):
        if t is None or t.kind not in _MODS or (not typedefs and t.kind == BU.BTF_KIND_TYPEDEF):
            break
        tid = t.type
        t = btf.type_by_id(tid)
    return t, tid


def _name(btf, off):
    s = btf.str_by_offset(off)
    return (s or b"").decode("latin-1")


def _type_size(btf, tid):
    r = btf.resolve_size(tid)
    if r is None:
        raise CoreError("cannot size type [%d]" % tid)
    return r[1]


def _is_flex_array(btf, prev_acc, nelems):
    """is_flex_arr: a zero-length array that is the last member of the struct the previous accessor names."""
    if nelems or prev_acc[2] is None:
        return False
    return prev_acc[1] == btf.type_by_id(prev_acc[0]).vlen - 1


class Spec:
    """bpf_core_spec: the root type, the accessors ``[(type id, index, name or None)]`` and the raw indices,
    the bit offset of the accessed field."""

    def __init__(self, btf, root_id, kind):
        self.btf, self.root_id, self.kind = btf, root_id, kind
        self.access = []
        self.raw = []
        self.bit_offset = 0


def parse_spec(btf, type_id, access_str, kind):
    """bpf_core_parse_spec for the local (program) side."""
    try:
        raw = [int(x) for x in access_str.split(":")]
    except ValueError:
        raise CoreError("invalid CO-RE access string %r" % access_str) from None
    if not raw or any(x < 0 for x in raw):
        raise CoreError("invalid CO-RE access string %r" % access_str)
    spec = Spec(btf, type_id, kind)
    spec.raw = raw
    if kind in TYPE_KINDS:
        if raw != [0]:
            raise CoreError("type relocation with access %r" % access_str)
        return spec
    t, tid = skip_mods(btf, type_id)
    if t is None:
        raise CoreError("invalid type id %d in a CO-RE relocation" % type_id)
    if kind in ENUM_KINDS:
        if t.kind not in _ENUMS or len(raw) != 1 or raw[0] >= t.vlen:
            raise CoreError("invalid enum relocation %r on [%d]" % (access_str, type_id))
        e = t.members[raw[0]] if t.kind == BU.BTF_KIND_ENUM64 else t.params[raw[0]]
        spec.access.append((tid, raw[0], _name(btf, e[0])))
        return spec
    if kind not in FIELD_KINDS:
        raise CoreError("unknown CO-RE relocation kind %d" % kind, errno.EOPNOTSUPP)
    # the first index is an array index over the root (pointer arithmetic), the rest walk the type
    spec.access.append((tid, raw[0], None))
    spec.bit_offset = raw[0] * _type_size(btf, tid) * 8
    for idx in raw[1:]:
        t, tid = skip_mods(btf, tid)
        if t is None:
            raise CoreError("invalid type in CO-RE access %r" % access_str)
        if t.kind in _COMPOSITE:
            if idx >= t.vlen:
                raise CoreError("member index %d out of range in %r" % (idx, access_str))
            m = t.members[idx]
            spec.bit_offset += _member_bit_offset(t, m)
            name = _name(btf, m[0])
            if name:
                spec.access.append((tid, idx, name))
            tid = m[1]
        elif t.kind == BU.BTF_KIND_ARRAY:
            _elem, _index, nelems = t.array
            if idx >= nelems and not _is_flex_array(btf, spec.access[-1], nelems):
                raise CoreError("array index %d out of range in %r" % (idx, access_str))
            _et, elem = skip_mods(btf, t.array[0])
            spec.access.append((elem, idx, None))
            spec.bit_offset += idx * _type_size(btf, elem) * 8
            tid = elem
        else:
            raise CoreError("CO-RE access %r walks into a %s" % (access_str, BU.KIND_STR[t.kind]))
    return spec


def _member_bit_offset(t, m):
    return (m[2] & 0xFFFFFF) if t.kflag else m[2]


def _member_bitfield_size(t, m):
    return (m[2] >> 24) if t.kflag else 0


# -- compatibility ---------------------------------------------------------------------------------------

def fields_are_compat(lb, lid, tb, tid, depth=0):
    """bpf_core_fields_are_compat: whether a field's local and target types are the same sort of thing."""
    if depth > MAX_DEPTH:
        return False
    lt, lid = skip_mods(lb, lid)
    tt, tid = skip_mods(tb, tid)
    if lt is None or tt is None:
        return False
    if lt.kind in _COMPOSITE and tt.kind in _COMPOSITE:
        return True
    if lt.kind in _ENUMS and tt.kind in _ENUMS:
        return True
    if lt.kind != tt.kind:
        return False
    if lt.kind in (BU.BTF_KIND_INT, BU.BTF_KIND_FLOAT, BU.BTF_KIND_PTR, BU.BTF_KIND_FWD):
        return True
    if lt.kind == BU.BTF_KIND_ARRAY:
        return fields_are_compat(lb, lt.array[0], tb, tt.array[0], depth + 1)
    return False


def types_are_compat(lb, lid, tb, tid, depth=0):
    """bpf_core_types_are_compat: the looser match of type relocations (names are not compared below the
    root; pointers, arrays and function prototypes are followed)."""
    if depth > MAX_DEPTH:
        return False
    lt, lid = skip_mods(lb, lid)
    tt, tid = skip_mods(tb, tid)
    if lt is None or tt is None:
        return False
    if lt.kind != tt.kind and not (lt.kind in _ENUMS and tt.kind in _ENUMS):
        return False
    k = lt.kind
    if lt is VOID or k in (BU.BTF_KIND_INT, BU.BTF_KIND_FLOAT, BU.BTF_KIND_FWD, BU.BTF_KIND_STRUCT,
                           BU.BTF_KIND_UNION) or k in _ENUMS:
        return True
    if k == BU.BTF_KIND_PTR:
        return types_are_compat(lb, lt.type, tb, tt.type, depth + 1)
    if k == BU.BTF_KIND_ARRAY:
        return types_are_compat(lb, lt.array[0], tb, tt.array[0], depth + 1)
    if k == BU.BTF_KIND_FUNC_PROTO:
        if lt.vlen != tt.vlen:
            return False
        for (_, la), (_, ta) in zip(lt.params, tt.params):
            if not types_are_compat(lb, la, tb, ta, depth + 1):
                return False
        return types_are_compat(lb, lt.type, tb, tt.type, depth + 1)
    return False


def types_match(lb, lid, tb, tid, depth=0):
    """bpf_core_types_match (TYPE_MATCHES): a stricter structural match: composite members by name and
    matching type, enums sharing names, integers of the same size and signedness."""
    if depth > MAX_DEPTH:
        return False
    lt, lid = skip_mods(lb, lid, typedefs=False)
    tt, tid = skip_mods(tb, tid, typedefs=False)
    if lt is None or tt is None:
        return False
    if lt.kind == BU.BTF_KIND_TYPEDEF or tt.kind == BU.BTF_KIND_TYPEDEF:
        lt, lid = skip_mods(lb, lid)
        tt, tid = skip_mods(tb, tid)
    if lt.kind in _ENUMS and tt.kind in _ENUMS:
        lnames = {essential_name(_name(lb, e[0])) for e in _enumerators(lt)}
        tnames = {essential_name(_name(tb, e[0])) for e in _enumerators(tt)}
        return lt.size == tt.size and lnames <= tnames
    if lt.kind != tt.kind:
        return False
    k = lt.kind
    if lt is VOID or k == BU.BTF_KIND_FWD:
        return True
    if k == BU.BTF_KIND_INT:
        return lt.size == tt.size and (lt.int_data >> 24) & BU.BTF_INT_SIGNED == (tt.int_data >> 24) & BU.BTF_INT_SIGNED
    if k == BU.BTF_KIND_FLOAT:
        return lt.size == tt.size
    if k == BU.BTF_KIND_PTR:
        return types_match(lb, lt.type, tb, tt.type, depth + 1)
    if k == BU.BTF_KIND_ARRAY:
        return lt.array[2] == tt.array[2] and types_match(lb, lt.array[0], tb, tt.array[0], depth + 1)
    if k in _COMPOSITE:
        tmembers = {_name(tb, m[0]): m for m in tt.members}
        for m in lt.members:
            tm = tmembers.get(_name(lb, m[0]))
            if tm is None or not types_match(lb, m[1], tb, tm[1], depth + 1):
                return False
        return True
    if k == BU.BTF_KIND_FUNC_PROTO:
        if lt.vlen != tt.vlen:
            return False
        return all(types_match(lb, la, tb, ta, depth + 1) for (_, la), (_, ta) in zip(lt.params, tt.params)) and \
            types_match(lb, lt.type, tb, tt.type, depth + 1)
    return False


def _enumerators(t):
    return t.members if t.kind == BU.BTF_KIND_ENUM64 else t.params


def _enum_value(t, e):
    if t.kind == BU.BTF_KIND_ENUM64:
        v = e[1] | (e[2] << 32)
        if t.kflag and v >> 63:
            v -= 1 << 64
        return v
    v = e[1]
    if t.kflag and v >> 31:
        v -= 1 << 32
    return v


# -- matching a candidate --------------------------------------------------------------------------------

def _match_member(lb, local_acc, tb, tid, spec, depth=0):
    """bpf_core_match_member: find the target member named as the local accessor, through anonymous
    embedded structs and unions; appends its accessors to ``spec``. Returns the member's type id or 0."""
    if depth > MAX_DEPTH:
        return 0
    lt = lb.type_by_id(local_acc[0])
    lm = lt.members[local_acc[1]]
    lname = _name(lb, lm[0])
    t, tid = skip_mods(tb, tid)
    if t is None or t.kind not in _COMPOSITE:
        return 0
    for i, m in enumerate(t.members):
        bit_off = _member_bit_offset(t, m)
        name = _name(tb, m[0])
        if not name:
            save = (len(spec.access), spec.bit_offset)
            spec.bit_offset += bit_off
            spec.raw.append(i)
            found = _match_member(lb, local_acc, tb, m[1], spec, depth + 1)
            if found:
                return found
            del spec.access[save[0]:]
            spec.bit_offset = save[1]
            spec.raw.pop()
            continue
        if name != lname:
            continue
        if not fields_are_compat(lb, lm[1], tb, m[1]):
            return 0
        spec.bit_offset += bit_off
        spec.raw.append(i)
        spec.access.append((tid, i, name))
        return m[1]
    return 0


def match_spec(local, tb, cand_id):
    """bpf_core_spec_match: the target Spec of candidate ``cand_id`` for the local spec, or None."""
    lb = local.btf
    kind = local.kind
    spec = Spec(tb, cand_id, kind)
    if kind in TYPE_KINDS:
        if kind == TYPE_MATCHES:
            ok = types_match(lb, local.root_id, tb, cand_id)
        else:
            ok = types_are_compat(lb, local.root_id, tb, cand_id)
        return spec if ok else None
    if kind in ENUM_KINDS:
        t, tid = skip_mods(tb, cand_id)
        if t is None or t.kind not in _ENUMS:
            return None
        want = essential_name(local.access[0][2])
        for i, e in enumerate(_enumerators(t)):
            if essential_name(_name(tb, e[0])) == want:
                spec.access.append((tid, i, _name(tb, e[0])))
                spec.raw = [i]
                return spec
        return None
    # fields
    tid = cand_id
    first = local.access[0]
    spec.access.append((cand_id, first[1], None))
    spec.raw = [first[1]]
    t, tid = skip_mods(tb, cand_id)
    try:
        spec.bit_offset = first[1] * _type_size(tb, tid) * 8
    except CoreError:
        return None
    for acc in local.access[1:]:
        if acc[2] is not None:        # a named member
            nxt = _match_member(lb, acc, tb, tid, spec)
            if not nxt:
                return None
            tid = nxt
        else:                         # an array index
            t, tid = skip_mods(tb, tid)
            if t is None or t.kind != BU.BTF_KIND_ARRAY:
                return None
            _elem, _i, nelems = t.array
            if acc[1] >= nelems and not _is_flex_array(tb, spec.access[-1], nelems):
                return None
            _et, elem = skip_mods(tb, t.array[0])
            spec.access.append((elem, acc[1], None))
            spec.raw.append(acc[1])
            try:
                spec.bit_offset += acc[1] * _type_size(tb, elem) * 8
            except CoreError:
                return None
            tid = elem
    return spec


# -- values ------------------------------------------------------------------------------------------------

class Res:
    """bpf_core_relo_res: ``orig``/``new`` values, sizes and types for a load/store's size adjustment,
    whether to check the instruction holds ``orig``, whether it is poisoned."""

    def __init__(self):
        self.orig = self.new = 0
        self.orig_sz = self.new_sz = 0
        self.orig_type = self.new_type = 0
        self.validate = True
        self.poison = False
        self.fail_memsz_adjust = False


def _field_value(spec, kind):
    """bpf_core_calc_field_relo: (value, field size, field type id, validate) for ``spec`` (None: missing)."""
    if kind == FIELD_EXISTS:
        return (1 if spec is not None else 0), 0, 0, True
    if spec is None:
        return None
    b = spec.btf
    acc = spec.access[-1]
    if acc[2] is None:   # the root or an array element
        size = _type_size(b, acc[0])
        if kind == FIELD_BYTE_OFFSET:
            return spec.bit_offset // 8, size, acc[0], True
        if kind == FIELD_BYTE_SIZE:
            return size, 0, 0, True
        raise CoreError("relocation kind %s is not supported on an array element" % KINDS[kind])
    t = b.type_by_id(acc[0])
    m = t.members[acc[1]]
    field_id = m[1]
    mt, _ = skip_mods(b, field_id)
    bit_off = spec.bit_offset
    bit_sz = _member_bitfield_size(t, m)
    bitfield = bit_sz > 0
    if bitfield:
        byte_sz = mt.size
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise CoreError("bitfield too big for a 64-bit load", errno.E2BIG)
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = _type_size(b, field_id)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    fsz, ftype = (byte_sz, field_id) if not bitfield else (0, 0)
    if kind == FIELD_BYTE_OFFSET:
        val = byte_off
    elif kind == FIELD_BYTE_SIZE:
        val = byte_sz
    elif kind == FIELD_SIGNED:
        if mt.kind in _ENUMS:
            val = 1 if mt.kflag else 0
        elif mt.kind == BU.BTF_KIND_INT:
            val = 1 if (mt.int_data >> 24) & BU.BTF_INT_SIGNED else 0
        else:
            val = 0
        return val, fsz, ftype, True
    elif kind == FIELD_LSHIFT_U64:
        val = 64 - (bit_off + bit_sz - byte_off * 8)
    else:
        val = 64 - bit_sz
    return val, fsz, ftype, not bitfield


def _type_value(spec, kind):
    if spec is None:
        return 0
    if kind in (TYPE_ID_LOCAL, TYPE_ID_TARGET):
        return spec.root_id
    if kind in (TYPE_EXISTS, TYPE_MATCHES):
        return 1
    return _type_size(spec.btf, spec.root_id)


def _enum_relo_value(spec, kind):
    if kind == ENUMVAL_EXISTS:
        return 1 if spec is not None else 0
    if spec is None:
        return None
    tid, i, _n = spec.access[0]
    t = spec.btf.type_by_id(tid)
    return _enum_value(t, _enumerators(t)[i])


def calc_relo(local, targ):
    """bpf_core_calc_relo: the Res of one relocation for the local spec and a target spec (None: no match)."""
    kind = local.kind
    res = Res()
    if kind in FIELD_KINDS:
        lv = _field_value(local, kind)
        res.orig, res.orig_sz, res.orig_type, res.validate = lv
        tv = _field_value(targ, kind)
        if tv is None:
            res.poison = True
            return res
        res.new, res.new_sz, res.new_type, _ = tv
        if res.orig_sz != res.new_sz:
            ot, _ = skip_mods(local.btf, res.orig_type)
            nt, _ = skip_mods(targ.btf, res.new_type)
            ok = (ot.kind == BU.BTF_KIND_PTR and nt.kind == BU.BTF_KIND_PTR) or (
                ot.kind == BU.BTF_KIND_INT and nt.kind == BU.BTF_KIND_INT
                and not (ot.int_data >> 24) & BU.BTF_INT_SIGNED and not (nt.int_data >> 24) & BU.BTF_INT_SIGNED)
            res.fail_memsz_adjust = not ok
    elif kind in TYPE_KINDS:
        res.orig = _type_value(local, kind)
        res.new = res.orig if kind == TYPE_ID_LOCAL else _type_value(targ, kind)
    else:
        res.orig = _enum_relo_value(local, kind)
        v = _enum_relo_value(targ, kind)
        if v is None:
            res.poison = True
        else:
            res.new = v
    return res


def find_candidates(local_btf, local_id, targ_btf):
    """bpf_core_find_cands: target type ids of the same kind (enum/enum64 mixed) and essential name."""
    lt = local_btf.type_by_id(local_id)
    lname = essential_name(_name(local_btf, lt.name_off))
    if not lname:
        raise CoreError("CO-RE relocation on an anonymous type [%d]" % local_id, errno.EOPNOTSUPP)
    out = []
    for cid in targ_btf._ids_named(lname.encode("latin-1")) if hasattr(targ_btf, "_ids_named") and \
            targ_btf._name_offs is not None else _scan_named(targ_btf, lname):
        ct = targ_btf.type_by_id(cid)
        if ct.kind == lt.kind or (ct.kind in _ENUMS and lt.kind in _ENUMS):
            out.append(cid)
    return out


def _scan_named(btf, name):
    total = btf.nr_types_total()
    for i in range(1, total):
        t = btf.type_by_id(i)
        if essential_name(_name(btf, t.name_off)) == name:
            yield i


def resolve(local_btf, targ_btf, type_id, access_str, kind, cache=None):
    """One relocation: the Res against the target BTF (every matching candidate must agree)."""
    local = parse_spec(local_btf, type_id, access_str, kind)
    if kind == TYPE_ID_LOCAL:
        return calc_relo(local, local)
    cands = None if cache is None else cache.get(type_id)
    if cands is None:
        cands = find_candidates(local_btf, type_id, targ_btf)
        if cache is not None:
            cache[type_id] = cands
    chosen = None
    for cid in cands:
        targ = match_spec(local, targ_btf, cid)
        if targ is None:
            continue
        res = calc_relo(local, targ)
        if chosen is None:
            chosen = (targ, res)
            continue
        prev = chosen[1]
        if res.poison != prev.poison or res.new != prev.new:
            raise CoreError("CO-RE relocation %s of [%d] %r is ambiguous: candidates [%d] and [%d] disagree"
                            % (KINDS[kind], type_id, access_str, chosen[0].root_id, cid), errno.EINVAL)
    if chosen is None:
        return calc_relo(local, None)
    return chosen[1]


# -- patching ------------------------------------------------------------------------------------------------

BPF_CLASS = lambda code: code & 0x07   # noqa: E731
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_JMP32, BPF_ALU64 = 0, 1, 2, 3, 4, 5, 6, 7
_SIZE_BYTES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
_BYTES_SIZE = {4: 0x00, 2: 0x08, 1: 0x10, 8: 0x18}


def _s32(v):
    v &= 0xffffffff
    return v - (1 << 32) if v >> 31 else v


def patch_insn(insns, idx, res, where):
    """bpf_core_patch_insn: write ``res`` into instruction ``idx`` of ``insns`` (tuples (code, dst, src, off,
    imm)). Raises CoreError (LIBBPF_ERRNO__RELOC / EINVAL / ERANGE) when the instruction is not what the
    relocation expects."""
    code, dst, src, off, imm = insns[idx]
    if res.poison:   # bpf_core_poison_insn (both halves of an ld_imm64)
        was_ld64 = code == 0x18
        insns[idx] = (BPF_JMP | 0x80, 0, 0, 0, POISON_HELPER)
        if was_ld64 and idx + 1 < len(insns):
            insns[idx + 1] = (BPF_JMP | 0x80, 0, 0, 0, POISON_HELPER)
        return
    cls = BPF_CLASS(code)
    new = res.new
    if cls in (BPF_ALU, BPF_ALU64):
        if code & 0x08:   # BPF_X
            raise CoreError("%s: insn #%d is not an ALU with an immediate" % (where, idx), errno.EINVAL)
        if res.validate and (imm & 0xffffffff) != (res.orig & 0xffffffff):
            raise CoreError("%s: insn #%d has imm %d, expected %d" % (where, idx, imm, res.orig), errno.EINVAL)
        insns[idx] = (code, dst, src, off, _s32(new))
        return
    if cls in (BPF_LDX, BPF_ST, BPF_STX):
        if res.validate and off != res.orig:
            raise CoreError("%s: insn #%d has off %d, expected %d" % (where, idx, off, res.orig), errno.EINVAL)
        if not -0x8000 <= new <= 0x7fff:
            raise CoreError("%s: insn #%d: offset %d does not fit" % (where, idx, new), errno.ERANGE)
        if res.new_sz and res.orig_sz != res.new_sz:
            if res.fail_memsz_adjust:
                raise CoreError("%s: insn #%d: field size changed from %d to %d and cannot be adjusted"
                                % (where, idx, res.orig_sz, res.new_sz), errno.EINVAL)
            if _SIZE_BYTES.get(code & 0x18) != res.orig_sz or res.new_sz not in _BYTES_SIZE:
                raise CoreError("%s: insn #%d: unexpected memory access size" % (where, idx), errno.EINVAL)
            code = (code & ~0x18) | _BYTES_SIZE[res.new_sz]
        insns[idx] = (code, dst, src, new, imm)
        return
    if code == 0x18:   # ld_imm64
        if idx + 1 >= len(insns):
            raise CoreError("%s: insn #%d: truncated ld_imm64" % (where, idx), LIBBPF_ERRNO__RELOC)
        nxt = insns[idx + 1]
        cur = (imm & 0xffffffff) | ((nxt[4] & 0xffffffff) << 32)
        if res.validate and cur != res.orig & 0xffffffffffffffff:
            raise CoreError("%s: insn #%d has imm %d, expected %d" % (where, idx, cur, res.orig), errno.EINVAL)
        v = new & 0xffffffffffffffff
        insns[idx] = (code, dst, src, off, _s32(v))
        insns[idx + 1] = (nxt[0], nxt[1], nxt[2], nxt[3], _s32(v >> 32))
        return
    raise CoreError("%s: insn #%d (code 0x%02x) cannot take a CO-RE relocation" % (where, idx, code), errno.EINVAL)
