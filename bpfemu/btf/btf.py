"""struct btf: a parsed BTF blob and the lookups the rest of the kernel does on it.

A :class:`Btf` is what :func:`bpfemu.btf.btf_parse` returns for a blob the
kernel accepts (and what the kernel's own BTF is, see :mod:`bpfemu.btf.vmlinux`).
Type ids are global across a base BTF and the split BTFs on top of it (a
split BTF's first id is ``start_id``, its first string offset
``start_str_off``), as in kernel/bpf/btf.c.

Names are bytes (C strings); :meth:`Btf.name` decodes one for display.
"""
import errno
from array import array
from collections import namedtuple

from . import uapi as U
from .types import VOID, BtfType, has_size, is_modifier, nosize_or_null

Header = namedtuple("Header", "magic version flags hdr_len type_off type_len str_off str_len")

MAX_RESOLVE_DEPTH = 32
U32_MAX = 0xFFFFFFFF


class Btf:
    """A BTF object: header, types (``types[0]`` is void in a base BTF), strings, resolved sizes."""

    def __init__(self, data, base=None, name="", kernel_btf=False):
        self.data = bytes(data)
        self.data_size = len(self.data)
        self.hdr = Header(0, 0, 0, 0, 0, 0, 0, 0)
        self.types = [VOID] if base is None else []  # BtfType, or None where not decoded yet (lazy)
        self._offsets = None  # lazy: byte offset of each type record
        self.str_start = 0  # offset of the string section in data
        self.base_btf = base
        self.start_id = base.nr_types_total() if base is not None else 0
        self.start_str_off = base.hdr.str_len if base is not None else 0
        self.resolved_ids = None
        self.resolved_sizes = None
        self.name_str = name
        self.kernel_btf = kernel_btf
        self.id = 0
        self.struct_meta_tab = None
        self._name_offs = None

    # -- sizes and ids -------------------------------------------------------------------------
    @property
    def nr_types(self):
        """Types of this BTF alone (void counted in a base BTF)."""
        return len(self.types)

    def nr_types_total(self):
        """btf_nr_types: this BTF and all its bases."""
        n, b = 0, self
        while b is not None:
            n += b.nr_types
            b = b.base_btf
        return n

    def type_by_id(self, type_id):
        """The BtfType of ``type_id`` (VOID for 0 in a base BTF), or None when there is no such id."""
        b = self
        while type_id < b.start_id:
            b = b.base_btf
        i = type_id - b.start_id
        if i >= len(b.types):
            return None
        t = b.types[i]
        if t is None:
            t = b.types[i] = BtfType(b.data, b._offsets[i])
        return t

    def __len__(self):
        return self.nr_types_total()

    def __getitem__(self, type_id):
        t = self.type_by_id(type_id)
        if t is None:
            raise KeyError(type_id)
        return t

    # -- strings -------------------------------------------------------------------------------
    def name_offset_valid(self, off):
        if off > U.BTF_MAX_NAME_OFFSET:
            return False
        b = self
        while off < b.start_str_off:
            b = b.base_btf
        return off - b.start_str_off < b.hdr.str_len

    def str_by_offset(self, off):
        """The C string at string offset ``off`` (bytes, without its NUL), or None when out of range."""
        b = self
        while off < b.start_str_off:
            b = b.base_btf
        off -= b.start_str_off
        if off >= b.hdr.str_len:
            return None
        start = b.str_start + off
        end = b.data.find(b"\0", start, b.str_start + b.hdr.str_len)
        if end < 0:  # only a blob still being validated can lack the final NUL
            end = b.str_start + b.hdr.str_len
        return b.data[start:end]

    name_by_offset = str_by_offset

    def log_name(self, off):
        """__btf_name_by_offset: what the verifier log prints for a name offset."""
        if not off:
            return b"(anon)"
        s = self.str_by_offset(off)
        return b"(invalid-name-offset)" if s is None else s

    def name(self, type_id_or_type):
        """The name of a type as str ('' when anonymous)."""
        t = type_id_or_type if isinstance(type_id_or_type, BtfType) else self.type_by_id(type_id_or_type)
        if t is None or t is VOID:
            return ""
        s = self.str_by_offset(t.name_off)
        return (s or b"").decode("latin-1")

    # -- lookups -------------------------------------------------------------------------------
    def find_by_name_kind(self, name, kind):
        """btf_find_by_name_kind: the first id with this name and kind, or -ENOENT."""
        if isinstance(name, str):
            name = name.encode("latin-1")
        if self._offsets is not None and self.base_btf is None:
            for i in self._ids_named(name):
                if self.type_by_id(i).kind == kind:
                    return i
            return -errno.ENOENT
        total = self.nr_types_total()
        for i in range(1, total):
            t = self.type_by_id(i)
            if t.kind == kind and self.str_by_offset(t.name_off) == name:
                return i
        return -errno.ENOENT

    def _ids_named(self, name):
        """Ids (ascending) of the types named ``name``, by the string's offsets (lazy kernel BTF)."""
        strs = self.data
        s0, s1 = self.str_start, self.str_start + self.hdr.str_len
        needle = b"\0" + name + b"\0"
        offs = []
        p = strs.find(needle, s0, s1)
        while p >= 0:
            offs.append(p + 1 - s0)
            p = strs.find(needle, p + 1, s1)
        if not name:
            offs.append(0)
        names = self._name_offs
        ids = []
        for off in offs:
            i = 1
            while True:
                try:
                    i = names.index(off, i)
                except ValueError:
                    break
                ids.append(i)
                i += 1
        return sorted(ids)

    def ids(self):
        """All type ids of this BTF (not its base), void excluded."""
        first = 1 if self.base_btf is None else self.start_id
        return range(first, self.start_id + self.nr_types)

    def skip_modifiers(self, type_id):
        """btf_type_skip_modifiers: (type, id) after typedef/const/volatile/restrict/type_tag."""
        t = self.type_by_id(type_id)
        while t is not None and is_modifier(t):
            type_id = t.type
            t = self.type_by_id(type_id)
        return t, type_id

    def resolve_ptr(self, type_id):
        """btf_type_resolve_ptr: (pointee type, id) with modifiers skipped, or (None, 0)."""
        t, _ = self.skip_modifiers(type_id)
        if t is None or t.kind != U.BTF_KIND_PTR:
            return None, 0
        return self.skip_modifiers(t.type)

    def resolved_type_id(self, type_id):
        b = self
        while type_id < b.start_id:
            b = b.base_btf
        return b.resolved_ids[type_id - b.start_id]

    def resolved_type_size(self, type_id):
        b = self
        while type_id < b.start_id:
            b = b.base_btf
        return b.resolved_sizes[type_id - b.start_id]

    def type_id_size(self, type_id):
        """btf_type_id_size: (type, id, size) of what ``type_id`` resolves to, or None (no size).

        Modifiers and VARs are followed through the ids resolved while parsing;
        the kernel's BTF (not resolved) follows the chain instead.
        """
        t = self.type_by_id(type_id)
        if nosize_or_null(t):
            return None
        if has_size(t):
            return t, type_id, t.size
        if t.kind == U.BTF_KIND_ARRAY:
            return t, type_id, self._array_size(type_id, t)
        if t.kind == U.BTF_KIND_PTR:
            return t, type_id, 8
        if not is_modifier(t) and t.kind != U.BTF_KIND_VAR:
            return None
        type_id = self._follow(type_id, t)
        t = self.type_by_id(type_id)
        if nosize_or_null(t):
            return None
        if has_size(t):
            return t, type_id, t.size
        if t.kind == U.BTF_KIND_ARRAY:
            return t, type_id, self._array_size(type_id, t)
        if t.kind == U.BTF_KIND_PTR:
            return t, type_id, 8
        return None

    def _resolved_for(self, type_id):
        b = self
        while type_id < b.start_id:
            b = b.base_btf
        return b.resolved_ids is not None

    def _follow(self, type_id, t):
        if self._resolved_for(type_id):
            return self.resolved_type_id(type_id)
        for _ in range(MAX_RESOLVE_DEPTH):  # an unresolved (kernel) BTF: walk the chain
            if t is None or not (is_modifier(t) or t.kind == U.BTF_KIND_VAR):
                break
            type_id = t.type
            t = self.type_by_id(type_id)
        return type_id

    def _array_size(self, type_id, t):
        if self._resolved_for(type_id):
            return self.resolved_type_size(type_id)
        r = self.resolve_size(type_id)
        return r[1] if r else 0

    def resolve_size(self, type_id):
        """__btf_resolve_size: (type, total size, elem type, elem id, total nelems) or None (-EINVAL).

        ``type`` is the outermost array when ``type_id`` names (a modifier of)
        an array, else the sized type itself.
        """
        t = self.type_by_id(type_id)
        array_type = None
        elem_id = 0
        nelems = 1
        for _ in range(MAX_RESOLVE_DEPTH):
            if t is None:
                return None
            k = t.kind
            if k in (U.BTF_KIND_INT, U.BTF_KIND_STRUCT, U.BTF_KIND_UNION, U.BTF_KIND_ENUM, U.BTF_KIND_FLOAT,
                     U.BTF_KIND_ENUM64):
                size = t.size
                break
            if k == U.BTF_KIND_PTR:
                size = 8
                break
            if is_modifier(t):
                t = self.type_by_id(t.type)
                continue
            if k == U.BTF_KIND_ARRAY:
                if array_type is None:
                    array_type = t
                et, _idx, n = t.array
                if nelems and n > U32_MAX // nelems:
                    return None
                nelems *= n
                elem_id = et
                t = self.type_by_id(et)
                continue
            return None
        else:
            return None
        if nelems and size > U32_MAX // nelems:
            return None
        return (array_type or t), nelems * size, t, elem_id, nelems

    def size_of(self, type_id):
        """Size in bytes of ``type_id`` (modifiers followed), or None when it has no size."""
        r = self.type_id_size(type_id)
        return r[2] if r else None

    @staticmethod
    def member_bit_offset(struct_t, m):
        return (m[2] & 0xFFFFFF) if struct_t.kflag else m[2]

    @staticmethod
    def member_bitfield_size(struct_t, m):
        return (m[2] >> 24) if struct_t.kflag else 0

    def raw_bytes(self):
        """The blob as loaded (what bpf_btf_info.btf returns)."""
        return self.data


def lazy_btf(data, name="vmlinux", kernel_btf=True):
    """A Btf over a trusted blob (the kernel's own), types decoded on first use.

    Only the header, the offset and the name offset of each type record are
    computed here (about 0.2 s and 1 MB for a 5 MB vmlinux BTF).
    """
    b = Btf(data, name=name, kernel_btf=kernel_btf)
    h = Header(*U.HDR.unpack_from(b.data, 0))
    b.hdr = h
    base = h.hdr_len
    b.str_start = base + h.str_off
    start = base + h.type_off
    words = array("I")
    words.frombytes(b.data[start:start + (h.type_len & ~3)])
    nwords = len(words)
    offs = array("I", [0])
    names = array("I", [0])
    append_off = offs.append
    append_name = names.append
    fixed = [0] * 32
    per = [0] * 32
    for kind, (f, p) in U.EXTRA.items():
        fixed[kind] = f >> 2
        per[kind] = p >> 2
    pos = 0
    while pos + 3 <= nwords:
        append_off(start + 4 * pos)
        append_name(words[pos])
        info = words[pos + 1]
        kind = (info >> 24) & 0x1F
        pos += 3 + fixed[kind] + per[kind] * (info & 0xFFFF)
    b._offsets = offs
    b._name_offs = names
    b.types = [None] * len(offs)
    b.types[0] = VOID
    return b
