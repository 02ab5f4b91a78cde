"""bpfemu.btf.Builder: write BTF blobs for tests without packing bytes by hand.

    blob = (Builder()
            .int("int", 4, signed=True)
            .struct("bpf_spin_lock", [("val", "int")])
            .struct("value", [("cnt", "int"), ("lock", "bpf_spin_lock")])
            .blob())

Every method adds one type and returns the builder; the new type's id is
``builder.last`` (ids start at 1, in the order types are added). Wherever a
type is referred to, give its id (an int) or its name (a str, resolved when
the blob is written, to the first type of that name, so forward references
work: ``.ptr("node").struct("node", [("next", 1)])``). ``0`` is void.

Struct and union members are ``(name, type)`` (laid out at the type's natural
alignment, like a C compiler on x86_64), ``(name, type, bit_offset)`` or
``(name, type, bit_offset, bitfield_size)``; a bitfield size sets kind_flag.
The struct size defaults to the laid-out size rounded up to its alignment.

Nothing is validated: the builder writes what it is told, so it also writes
invalid BTF for negative tests (:meth:`raw` adds a record verbatim, and
:meth:`blob` takes header overrides). Names that are ints are used as raw
string offsets.
"""
import struct

from . import uapi as U

_I = struct.Struct("<I")


class _Type:
    __slots__ = ("kind", "name", "kflag", "vlen", "size_type", "extra", "raw", "layout")

    def __init__(self, kind, name, size_type=0, extra=(), kflag=0, vlen=None, layout=None):
        self.kind = kind
        self.name = name
        self.kflag = kflag
        self.vlen = vlen
        self.size_type = size_type
        self.extra = extra
        self.raw = None
        self.layout = layout


class Builder:
    """Accumulates types and strings; :meth:`blob` returns the BTF bytes."""

    def __init__(self):
        self.types = []
        self._strs = bytearray(b"\0")
        self._str_off = {b"": 0}

    # -- strings ---------------------------------------------------------------------------------
    def add_str(self, s):
        """Offset of string ``s`` (str or bytes) in the string section, adding it once."""
        if isinstance(s, int):
            return s
        b = s.encode() if isinstance(s, str) else bytes(s)
        off = self._str_off.get(b)
        if off is None:
            off = len(self._strs)
            self._strs += b + b"\0"
            self._str_off[b] = off
        return off

    @property
    def last(self):
        """Id of the type added last."""
        return len(self.types)

    def _add(self, t):
        self.types.append(t)
        return self

    # -- kinds -----------------------------------------------------------------------------------
    def int(self, name, size, signed=False, bits=None, offset=0, char=False, bool=False, encoding=None):
        """INT of ``size`` bytes, ``bits`` wide (default size*8) at bit ``offset``."""
        if encoding is None:
            encoding = (U.BTF_INT_SIGNED if signed else 0) | (U.BTF_INT_CHAR if char else 0) | \
                (U.BTF_INT_BOOL if bool else 0)
        if bits is None:
            bits = size * 8
        return self._add(_Type(U.BTF_KIND_INT, name, size, ("int", encoding, offset, bits)))

    def ptr(self, type):
        return self._add(_Type(U.BTF_KIND_PTR, "", ("ref", type)))

    def array(self, elem, nelems, index=None):
        """ARRAY of ``nelems`` ``elem``; ``index`` defaults to the first INT of the builder."""
        return self._add(_Type(U.BTF_KIND_ARRAY, "", 0, ("array", elem, index, nelems)))

    def struct(self, name, members, size=None, kflag=None):
        return self._composite(U.BTF_KIND_STRUCT, name, members, size, kflag)

    def union(self, name, members, size=None, kflag=None):
        return self._composite(U.BTF_KIND_UNION, name, members, size, kflag)

    def _composite(self, kind, name, members, size, kflag):
        if kflag is None:
            kflag = any(len(m) > 3 and m[3] for m in members)
        return self._add(_Type(kind, name, size, ("members", list(members)), kflag=1 if kflag else 0,
                               layout=(size is None)))

    def enum(self, name, values, size=4, signed=False):
        """ENUM; ``values`` are ``(name, value)`` pairs or bare names (numbered from 0)."""
        return self._add(_Type(U.BTF_KIND_ENUM, name, size, ("enum", _enum_values(values)),
                               kflag=1 if signed else 0))

    def enum64(self, name, values, size=8, signed=False):
        return self._add(_Type(U.BTF_KIND_ENUM64, name, size, ("enum64", _enum_values(values)),
                               kflag=1 if signed else 0))

    def fwd(self, name, union=False):
        return self._add(_Type(U.BTF_KIND_FWD, name, 0, kflag=1 if union else 0))

    def typedef(self, name, type):
        return self._add(_Type(U.BTF_KIND_TYPEDEF, name, ("ref", type)))

    def volatile(self, type):
        return self._add(_Type(U.BTF_KIND_VOLATILE, "", ("ref", type)))

    def const(self, type):
        return self._add(_Type(U.BTF_KIND_CONST, "", ("ref", type)))

    def restrict(self, type):
        return self._add(_Type(U.BTF_KIND_RESTRICT, "", ("ref", type)))

    def type_tag(self, value, type):
        return self._add(_Type(U.BTF_KIND_TYPE_TAG, value, ("ref", type)))

    def func_proto(self, ret, params=()):
        """FUNC_PROTO returning ``ret``; params are ``(name, type)`` or types; ``...`` is a vararg."""
        ps = []
        for p in params:
            if p is Ellipsis:
                ps.append(("", 0))
            elif isinstance(p, tuple):
                ps.append(p)
            else:
                ps.append(("", p))
        return self._add(_Type(U.BTF_KIND_FUNC_PROTO, "", ("ref", ret), ("params", ps)))

    def func(self, name, proto, linkage=U.BTF_FUNC_STATIC):
        return self._add(_Type(U.BTF_KIND_FUNC, name, ("ref", proto), vlen=linkage))

    def var(self, name, type, linkage=U.BTF_VAR_GLOBAL_ALLOCATED):
        return self._add(_Type(U.BTF_KIND_VAR, name, ("ref", type), ("words", [linkage])))

    def datasec(self, name, vars, size=None):
        """DATASEC; ``vars`` are ``(var, offset, size)`` or vars laid out one after the other."""
        return self._add(_Type(U.BTF_KIND_DATASEC, name, size, ("secinfo", list(vars)), layout=(size is None)))

    def float(self, name, size):
        return self._add(_Type(U.BTF_KIND_FLOAT, name, size))

    def decl_tag(self, value, type, component_idx=-1):
        return self._add(_Type(U.BTF_KIND_DECL_TAG, value, ("ref", type), ("words", [component_idx & 0xFFFFFFFF])))

    def raw(self, name, info, size_type, *extra_words):
        """A record written verbatim: name (str or raw offset), info, size/type, then u32 words."""
        t = _Type(U.BTF_INFO_KIND(info), name, size_type)
        t.raw = (info, list(extra_words))
        return self._add(t)

    # -- lookup and layout ---------------------------------------------------------------------
    def id_of(self, ref):
        """Type id of ``ref`` (an id, or the name of a type in this builder)."""
        if isinstance(ref, int):
            return ref
        for i, t in enumerate(self.types, 1):
            if t.name == ref and t.raw is None and t.kind not in (U.BTF_KIND_DECL_TAG, U.BTF_KIND_TYPE_TAG):
                return i
        raise KeyError("no type named %r in this builder" % (ref,))

    def _first_int(self):
        for i, t in enumerate(self.types, 1):
            if t.kind == U.BTF_KIND_INT and t.raw is None:
                return i
        raise KeyError("an array needs an index type and this builder has no INT")

    def size_align(self, ref, depth=0, _seen=None):
        """(size, alignment) of a type as a C compiler on a 64-bit target lays it out."""
        tid = self.id_of(ref)
        if _seen is None:
            _seen = set()
        if tid <= 0 or tid > len(self.types) or tid in _seen:  # void, out of range, or a loop
            return 0, 1
        _seen.add(tid)
        try:
            return self._size_align(tid, depth, _seen)
        finally:
            _seen.discard(tid)

    def _size_align(self, tid, depth, seen):
        t = self.types[tid - 1]
        k = t.kind
        if t.raw is not None:
            return (t.size_type if isinstance(t.size_type, int) else 0), 1
        if k in (U.BTF_KIND_INT, U.BTF_KIND_ENUM, U.BTF_KIND_ENUM64, U.BTF_KIND_FLOAT):
            return t.size_type, max(1, min(t.size_type, 8)) if k != U.BTF_KIND_INT else _int_align(t.size_type)
        if k == U.BTF_KIND_PTR:
            return 8, 8
        if k in (U.BTF_KIND_TYPEDEF, U.BTF_KIND_VOLATILE, U.BTF_KIND_CONST, U.BTF_KIND_RESTRICT,
                 U.BTF_KIND_TYPE_TAG, U.BTF_KIND_VAR):
            return self.size_align(t.size_type[1], depth + 1, seen)
        if k == U.BTF_KIND_ARRAY:
            s, a = self.size_align(t.extra[1], depth + 1, seen)
            return s * t.extra[3], a
        if k in (U.BTF_KIND_STRUCT, U.BTF_KIND_UNION):
            return self._layout(t, depth, seen)[:2]
        return 0, 1

    def _layout(self, t, depth=0, seen=None):
        """(size, align, [(name, type, bit offset, bitfield size)]) of a struct or union."""
        members = []
        end = 0
        align = 1
        if seen is None:
            seen = {self.types.index(t) + 1}
        for m in t.extra[1]:
            name, ty = m[0], m[1]
            s, a = self.size_align(ty, depth + 1, seen)
            align = max(align, a)
            if len(m) > 2 and m[2] is not None:
                off = m[2]
                bf = m[3] if len(m) > 3 else 0
                end = max(end, (off + (bf or s * 8) + 7) // 8)
            else:
                bf = 0
                off = 0 if t.kind == U.BTF_KIND_UNION else (end + a - 1) // a * a * 8
                end = max(end, off // 8 + s)
            members.append((name, ty, off, bf))
        size = t.size_type if not t.layout else (end + align - 1) // align * align
        return size, align, members

    # -- output ----------------------------------------------------------------------------------
    def type_section(self):
        out = bytearray()
        for t in self.types:
            out += self._record(t)
        return bytes(out)

    def string_section(self):
        # names are interned while records are written, so write the types first
        self.type_section()
        return bytes(self._strs)

    def _ref(self, r):
        return self.id_of(r) if not isinstance(r, int) else r

    def _record(self, t):
        name_off = self.add_str(t.name) if t.name is not None else 0
        if t.raw is not None:
            info, words = t.raw
            st = t.size_type if isinstance(t.size_type, int) else self._ref(t.size_type)
            return U.TYPE.pack(name_off, info, st & 0xFFFFFFFF) + b"".join(_I.pack(w & 0xFFFFFFFF) for w in words)
        k = t.kind
        extra = b""
        vlen = 0
        size_type = t.size_type
        if isinstance(size_type, tuple):
            size_type = self._ref(size_type[1])
        e = t.extra
        if e:
            tag = e[0]
            if tag == "int":
                extra = _I.pack(U.BTF_INT_ENC(e[1], e[2], e[3]))
            elif tag == "array":
                index = self._first_int() if e[2] is None else self._ref(e[2])
                extra = struct.pack("<III", self._ref(e[1]), index, e[3])
            elif tag == "members":
                size, _align, members = self._layout(t)
                size_type = size
                vlen = len(members)
                for name, ty, off, bf in members:
                    o = U.BTF_MEMBER_OFFSET(bf, off) if t.kflag else off
                    extra += struct.pack("<III", self.add_str(name), self._ref(ty), o & 0xFFFFFFFF)
            elif tag == "enum":
                vlen = len(e[1])
                for name, val in e[1]:
                    extra += struct.pack("<II", self.add_str(name), val & 0xFFFFFFFF)
            elif tag == "enum64":
                vlen = len(e[1])
                for name, val in e[1]:
                    v = val & 0xFFFFFFFFFFFFFFFF
                    extra += struct.pack("<III", self.add_str(name), v & 0xFFFFFFFF, v >> 32)
            elif tag == "params":
                vlen = len(e[1])
                for name, ty in e[1]:
                    extra += struct.pack("<II", self.add_str(name), self._ref(ty))
            elif tag == "secinfo":
                vlen = len(e[1])
                pos = 0
                for v in e[1]:
                    if isinstance(v, tuple):
                        var, off, sz = v
                    else:
                        var = v
                        sz, a = self.size_align(v)
                        off = (pos + a - 1) // a * a
                    pos = max(pos, off + sz)
                    extra += struct.pack("<III", self._ref(var), off, sz)
                if size_type is None:
                    size_type = pos
            elif tag == "words":
                extra = b"".join(_I.pack(w & 0xFFFFFFFF) for w in e[1])
        if t.vlen is not None:
            vlen = t.vlen
        if size_type is None:
            size_type = 0
        info = U.BTF_INFO_ENC(k, t.kflag, vlen)
        return U.TYPE.pack(name_off, info, size_type & 0xFFFFFFFF) + extra

    def blob(self, magic=U.BTF_MAGIC, version=U.BTF_VERSION, flags=0, hdr_len=U.HDR_SIZE, type_off=0,
             type_len=None, str_off=None, str_len=None, types=None, strings=None, hdr_tail=b""):
        """The BTF bytes: header, type section, string section.

        Any header field can be overridden (the sections are still laid out as
        usual); ``types``/``strings`` replace a section's bytes; ``hdr_tail``
        is appended to the 24-byte header (for hdr_len > 24 tests).
        """
        own = self.type_section()  # also interns the names, for the string section
        ts = own if types is None else bytes(types)
        ss = bytes(self._strs) if strings is None else bytes(strings)
        if type_len is None:
            type_len = len(ts)
        if str_off is None:
            str_off = len(ts)
        if str_len is None:
            str_len = len(ss)
        hdr = U.HDR.pack(magic, version, flags, hdr_len, type_off, type_len, str_off, str_len)
        return hdr + bytes(hdr_tail) + ts + ss


def _enum_values(values):
    out = []
    n = 0
    for v in values:
        if isinstance(v, tuple):
            name, n = v
        else:
            name = v
        out.append((name, n))
        n += 1
    return out


def _int_align(size):
    for a in (16, 8, 4, 2, 1):
        if size % a == 0:
            return a
    return 1
