"""A read-only stand-in for :class:`bpfemu.btf.btf.Btf` (the parsed ``struct btf``), for the measuring tools.

The verifier reads BTF through the ``Btf`` interface of ``bpfemu.btf`` (``type_by_id``, ``name``,
``str_by_offset``, ``find_by_name_kind``, ``skip_modifiers``, ``resolve_ptr``, ``resolve_size``,
``type_id_size``, ``ids``; types with ``kind``, ``vlen``, ``kflag``, ``size``/``type``, ``members``,
``params``, ``array``, ``int_data``, ``linkage``, ``component_idx``). Until that package is on this branch,
the tools parse a blob that is known to be valid (the kernel's own, or one the host accepted) with this.
:func:`load` uses ``bpfemu.btf`` when it is importable.
"""
import errno
import struct

EXTRA = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8), 14: (4, 0), 15: (0, 12),
         17: (4, 0), 19: (0, 12)}
MODIFIERS = (8, 9, 10, 11, 18)


class ShimType:
    __slots__ = ("name_off", "info", "kind", "vlen", "kflag", "size", "members", "params", "array", "int_data",
                 "linkage", "component_idx")

    @property
    def type(self):
        return self.size


VOID = ShimType()
VOID.name_off = VOID.info = VOID.kind = VOID.vlen = VOID.kflag = VOID.size = 0
VOID.members = VOID.params = ()


class ShimBtf:
    def __init__(self, data, kernel_btf=False):
        data = bytes(data)
        _m, _v, _f, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
        self.strs = data[hdr_len + str_off:hdr_len + str_off + str_len]
        self.kernel_btf = kernel_btf
        self.types = [VOID]
        self._by_name = None
        tsec = data[hdr_len + type_off:hdr_len + type_off + type_len]
        n = len(tsec) // 4
        w = struct.unpack("<%dI" % n, tsec[:4 * n])
        pos = 0
        while pos + 3 <= n:
            t = ShimType()
            t.name_off, info, t.size = w[pos], w[pos + 1], w[pos + 2]
            t.info = info
            t.kind = k = (info >> 24) & 0x1f
            t.vlen = vlen = info & 0xffff
            t.kflag = info >> 31
            t.members = t.params = ()
            t.linkage = vlen if k == 12 else 0
            p = pos + 3
            fixed, per = EXTRA.get(k, (0, 0))
            if k == 1:
                t.int_data = w[p]
            elif k == 3:
                t.array = w[p:p + 3]
            elif k in (4, 5, 15):
                t.members = [w[p + 3 * i:p + 3 * i + 3] for i in range(vlen)]
            elif k == 19:
                t.members = [w[p + 3 * i:p + 3 * i + 3] for i in range(vlen)]
            elif k in (6, 13):
                t.params = [w[p + 2 * i:p + 2 * i + 2] for i in range(vlen)]
            elif k == 14:
                t.linkage = w[p]
            elif k == 17:
                t.component_idx = struct.unpack("<i", struct.pack("<I", w[p]))[0]
            pos = p + (fixed >> 2) + (per >> 2) * vlen
            self.types.append(t)

    def __len__(self):
        return len(self.types)

    def nr_types_total(self):
        return len(self.types)

    def type_by_id(self, tid):
        return self.types[tid] if 0 <= tid < len(self.types) else None

    def ids(self):
        return range(1, len(self.types))

    def str_by_offset(self, off):
        if off >= len(self.strs):
            return None
        return self.strs[off:self.strs.index(b"\0", off)]

    def name(self, t):
        if isinstance(t, int):
            t = self.type_by_id(t)
        if t is None or t is VOID:
            return ""
        return (self.str_by_offset(t.name_off) or b"").decode("latin-1")

    def find_by_name_kind(self, name, kind):
        if isinstance(name, str):
            name = name.encode("latin-1")
        if self._by_name is None:
            d = {}
            for i, t in enumerate(self.types):
                if i:
                    d.setdefault((self.str_by_offset(t.name_off), t.kind), i)
            self._by_name = d
        return self._by_name.get((name, kind), -errno.ENOENT)

    def skip_modifiers(self, tid):
        t = self.type_by_id(tid)
        while t is not None and t.kind in MODIFIERS:
            tid = t.type
            t = self.type_by_id(tid)
        return t, tid

    def resolve_ptr(self, tid):
        t, _ = self.skip_modifiers(tid)
        if t is None or t.kind != 2:
            return None, 0
        return self.skip_modifiers(t.type)

    def resolve_size(self, tid):
        t = self.type_by_id(tid)
        array_type, elem_id, nelems = None, 0, 1
        for _ in range(32):
            if t is None:
                return None
            k = t.kind
            if k in (1, 4, 5, 6, 16, 19):
                size = t.size
                break
            if k == 2:
                size = 8
                break
            if k in MODIFIERS:
                t = self.type_by_id(t.type)
                continue
            if k == 3:
                if array_type is None:
                    array_type = t
                et, _ix, n = t.array
                nelems *= n
                elem_id = et
                t = self.type_by_id(et)
                continue
            return None
        else:
            return None
        return (array_type or t), nelems * size, t, elem_id, nelems

    def type_id_size(self, tid):
        t = self.type_by_id(tid)
        for _ in range(32):
            if t is None or t is VOID or t.kind in (7, 12, 13, 17):
                return None
            if t.kind in (1, 4, 5, 6, 15, 16, 19):
                return t, tid, t.size
            if t.kind == 3:
                r = self.resolve_size(tid)
                return (t, tid, r[1]) if r else None
            if t.kind == 2:
                return t, tid, 8
            if t.kind in MODIFIERS or t.kind == 14:
                tid = t.type
                t = self.type_by_id(tid)
                continue
            return None
        return None

    def size_of(self, tid):
        r = self.type_id_size(tid)
        return r[2] if r else None

    @staticmethod
    def member_bit_offset(struct_t, m):
        return (m[2] & 0xffffff) if struct_t.kflag else m[2]

    @staticmethod
    def member_bitfield_size(struct_t, m):
        return (m[2] >> 24) if struct_t.kflag else 0


def load(data, kernel_btf=False):
    """A Btf of ``data``: bpfemu.btf's when available, else the shim."""
    try:
        from bpfemu.btf.btf import lazy_btf
        from bpfemu.btf import btf_parse  # noqa: F401
    except ImportError:
        return ShimBtf(data, kernel_btf)
    if kernel_btf:
        return lazy_btf(data)
    import bpfemu.btf as B
    b, err, _log, _ts = B.load(data)
    return b if b is not None else ShimBtf(data, kernel_btf)


_VMLINUX = None


def vmlinux(path="/sys/kernel/btf/vmlinux"):
    global _VMLINUX
    if _VMLINUX is None:
        with open(path, "rb") as f:
            _VMLINUX = load(f.read(), kernel_btf=True)
    return _VMLINUX
