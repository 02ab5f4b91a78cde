"""struct btf_type and the records that follow it (include/uapi/linux/btf.h).

A :class:`BtfType` is a view of one type record inside a BTF blob: the common
12 bytes are decoded at once, the kind-specific part on first use. ``VOID`` is
type id 0 of every base BTF (``btf_void`` of kernel/bpf/btf.c): all zeros,
kind 0, and the only object for which :func:`is_void` is true.
"""
import struct

from . import uapi as U

_III = struct.Struct("<III")
_II = struct.Struct("<II")
_I = struct.Struct("<I")
_i = struct.Struct("<i")


class BtfType:
    """One type record: ``name_off``, ``info`` (``kind``, ``vlen``, ``kflag``), ``size``/``type``."""

    __slots__ = ("data", "off", "name_off", "info", "kind", "vlen", "kflag", "size", "_extra")

    def __init__(self, data, off):
        self.data = data
        self.off = off
        if data is None:
            self.name_off = self.info = self.size = 0
        else:
            self.name_off, self.info, self.size = _III.unpack_from(data, off)
        self.kind = (self.info >> 24) & 0x1F
        self.vlen = self.info & 0xFFFF
        self.kflag = self.info >> 31
        self._extra = None

    # ``type`` and ``size`` share the same u32, as in the C union
    @property
    def type(self):
        return self.size

    def __repr__(self):
        return "<BtfType %s name_off=%d size/type=%d vlen=%d kflag=%d>" % (
            U.KIND_STR[self.kind] if self.kind < len(U.KIND_STR) else self.kind, self.name_off, self.size,
            self.vlen, self.kflag)

    def word(self, i):
        """The i-th u32 after the common 12 bytes."""
        return _I.unpack_from(self.data, self.off + 12 + 4 * i)[0]

    # -- kind-specific records (decoded once) ---------------------------------------------------
    @property
    def int_data(self):
        """INT: the u32 encoding/offset/bits word."""
        return self.word(0)

    @property
    def array(self):
        """ARRAY: (elem type, index type, nelems)."""
        if self._extra is None:
            self._extra = _III.unpack_from(self.data, self.off + 12)
        return self._extra

    @property
    def members(self):
        """STRUCT/UNION: [(name_off, type, offset)]; DATASEC: [(type, offset, size)]; ENUM64: [(name_off, lo, hi)]."""
        if self._extra is None:
            base = self.off + 12
            self._extra = [_III.unpack_from(self.data, base + 12 * i) for i in range(self.vlen)]
        return self._extra

    vsis = members
    enum64s = members

    @property
    def params(self):
        """FUNC_PROTO: [(name_off, type)]; ENUM: [(name_off, u32 value)]."""
        if self._extra is None:
            base = self.off + 12
            self._extra = [_II.unpack_from(self.data, base + 8 * i) for i in range(self.vlen)]
        return self._extra

    enums = params

    @property
    def linkage(self):
        """VAR: its linkage; FUNC: vlen is the linkage."""
        if self.kind == U.BTF_KIND_FUNC:
            return self.vlen
        return self.word(0)

    @property
    def component_idx(self):
        """DECL_TAG: signed component index (-1: the type itself)."""
        return _i.unpack_from(self.data, self.off + 12)[0]

    def record_size(self):
        """Bytes of this record, common part included."""
        return 12 + U.extra_size(self.kind, self.vlen)

    def raw(self):
        return bytes(self.data[self.off:self.off + self.record_size()])


VOID = BtfType(None, 0)


def is_void(t):
    return t is VOID


def is_modifier(t):
    return t.kind in (U.BTF_KIND_TYPEDEF, U.BTF_KIND_VOLATILE, U.BTF_KIND_CONST, U.BTF_KIND_RESTRICT,
                      U.BTF_KIND_TYPE_TAG)


def is_struct(t):
    """Struct or union (btf_type_is_struct)."""
    return t.kind in (U.BTF_KIND_STRUCT, U.BTF_KIND_UNION)


def has_size(t):
    return t.kind in (U.BTF_KIND_INT, U.BTF_KIND_STRUCT, U.BTF_KIND_UNION, U.BTF_KIND_ENUM, U.BTF_KIND_DATASEC,
                      U.BTF_KIND_FLOAT, U.BTF_KIND_ENUM64)


def nosize(t):
    return t is VOID or t.kind in (U.BTF_KIND_FWD, U.BTF_KIND_FUNC, U.BTF_KIND_FUNC_PROTO, U.BTF_KIND_DECL_TAG)


def nosize_or_null(t):
    return t is None or nosize(t)


def is_resolve_source_only(t):
    return t.kind in (U.BTF_KIND_VAR, U.BTF_KIND_DECL_TAG, U.BTF_KIND_DATASEC)


def needs_resolve(t):
    return is_modifier(t) or t.kind in (U.BTF_KIND_PTR, U.BTF_KIND_STRUCT, U.BTF_KIND_UNION, U.BTF_KIND_ARRAY,
                                        U.BTF_KIND_VAR, U.BTF_KIND_FUNC, U.BTF_KIND_DECL_TAG,
                                        U.BTF_KIND_DATASEC)


def is_decl_tag_target(t):
    return t.kind in (U.BTF_KIND_FUNC, U.BTF_KIND_STRUCT, U.BTF_KIND_UNION, U.BTF_KIND_VAR, U.BTF_KIND_TYPEDEF)


def int_is_regular(t):
    """A whole u8/u16/u32/u64/u128 (not a bitfield int)."""
    d = t.int_data
    bits = d & 0xFF
    nbytes = (bits >> 3) + (1 if bits & 7 else 0)
    return not (bits & 7) and not ((d >> 16) & 0xFF) and nbytes in (1, 2, 4, 8, 16)
