"""The running kernel's BTF (``/sys/kernel/btf/vmlinux``), read for the few facts the corpus needs.

- :func:`layout` ``(kind, name)`` -> (size, resolver) of a struct/union for ``offsetof``/``sizeof``;
- :func:`enum_constants` -> {enumerator: value} of every enum (``BPF_FUNC_*`` of ``enum bpf_func_id`` ...);
- :func:`find_id` ``(name, kind)`` -> the type id (0 when absent), as libbpf's ``btf__find_by_name_kind``.

uapi structs only grow at their end, so offsets taken from a newer kernel are the offsets the 6.1 selftests
meant. Parsed once per process (about 0.3 s); ``BPFEMU_VMLINUX_BTF`` points at another file.
"""
import functools
import os
import struct

KINDS = {1: "int", 2: "ptr", 3: "array", 4: "struct", 5: "union", 6: "enum", 7: "fwd", 8: "typedef",
         9: "volatile", 10: "const", 11: "restrict", 12: "func", 13: "func_proto", 14: "var", 15: "datasec",
         16: "float", 17: "decl_tag", 18: "type_tag", 19: "enum64"}
_SKIP = ("typedef", "const", "volatile", "restrict", "type_tag")


class BTFError(Exception):
    pass


def path():
    return os.environ.get("BPFEMU_VMLINUX_BTF", "/sys/kernel/btf/vmlinux")


class _BTF:
    def __init__(self, filename):
        with open(filename, "rb") as f:
            data = f.read()
        magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
        if magic != 0xEB9F:
            raise BTFError("%s is not BTF" % filename)
        self.strs = data[hdr_len + str_off:hdr_len + str_off + str_len]
        types = data[hdr_len + type_off:hdr_len + type_off + type_len]
        self.types = [None]
        self.by_name = {}
        off = 0
        unpack = struct.unpack_from
        while off < len(types):
            name_off, info, st = unpack("<III", types, off)
            off += 12
            kind = KINDS.get((info >> 24) & 0x1f, "?")
            vlen = info & 0xffff
            kflag = info >> 31
            t = {"name": self.str(name_off), "kind": kind, "size": st, "type": st}
            if kind == "int":
                enc = unpack("<I", types, off)[0]
                t["signed"], t["bits"] = bool((enc >> 24) & 1), enc & 0xff
                off += 4
            elif kind == "array":
                t["elem"], _ix, t["nelems"] = unpack("<III", types, off)
                off += 12
            elif kind in ("struct", "union"):
                ms = []
                for _ in range(vlen):
                    mn, mt, mo = unpack("<III", types, off)
                    off += 12
                    ms.append((self.str(mn), mt, (mo & 0xffffff) if kflag else mo))
                t["members"] = ms
            elif kind == "enum":
                signed = bool(kflag)
                vals = []
                for _ in range(vlen):
                    vn, vv = unpack("<Ii" if signed else "<II", types, off)
                    off += 8
                    vals.append((self.str(vn), vv))
                t["values"] = vals
            elif kind == "enum64":
                vals = []
                for _ in range(vlen):
                    vn, lo, hi = unpack("<III", types, off)
                    off += 12
                    vals.append((self.str(vn), lo | hi << 32))
                t["values"] = vals
            elif kind == "func_proto":
                off += 8 * vlen
            elif kind in ("var", "decl_tag"):
                off += 4
            elif kind == "datasec":
                off += 12 * vlen
            self.by_name.setdefault((t["name"], kind), len(self.types))
            self.types.append(t)

    def str(self, off):
        return self.strs[off:self.strs.index(b"\0", off)].decode()

    def resolve(self, tid):
        while self.types[tid] and self.types[tid]["kind"] in _SKIP:
            tid = self.types[tid]["type"]
        return tid

    def sizeof(self, tid):
        tid = self.resolve(tid)
        t = self.types[tid]
        if t is None:
            raise BTFError("sizeof(void)")
        if t["kind"] in ("int", "struct", "union", "enum", "enum64", "float"):
            return t["size"]
        if t["kind"] == "ptr":
            return 8
        if t["kind"] == "array":
            return self.sizeof(t["elem"]) * t["nelems"]
        raise BTFError("sizeof %s" % t["kind"])

    def member(self, tid, name):
        """(byte offset, member type id) of a member, looking into anonymous structs/unions."""
        t = self.types[self.resolve(tid)]
        for mn, mt, bitoff in t.get("members", ()):
            if mn == name:
                return bitoff // 8, mt
        for mn, mt, bitoff in t.get("members", ()):
            if not mn:
                try:
                    o, ty = self.member(mt, name)
                    return bitoff // 8 + o, ty
                except KeyError:
                    pass
        raise KeyError(name)


@functools.lru_cache(maxsize=None)
def _btf(filename):
    return _BTF(filename)


UNREADABLE = "kernel BTF unreadable"  # how the error of a missing file starts (the cases it leaves unported)


def btf():
    """The parsed vmlinux BTF; :class:`BTFError` (an OSError inside) when the file is missing."""
    try:
        return _btf(path())
    except OSError as e:
        raise BTFError("%s (%s): %s" % (UNREADABLE, path(), e))


def layout(kind, name):
    """(size, offsetof(path) -> (offset, size)) of ``struct name`` / ``union name``."""
    b = btf()
    tid = b.by_name.get((name, kind))
    if tid is None:
        raise BTFError("no %s %s in the kernel BTF" % (kind, name))

    def offsetof(path):
        off, cur = 0, tid
        for what, x in path:
            if what == "field":
                o, cur = b.member(cur, x)
                off += o
            else:
                arr = b.types[b.resolve(cur)]
                if arr["kind"] != "array":
                    raise BTFError("index into a non-array")
                cur = arr["elem"]
                off += x * b.sizeof(cur)
        return off, b.sizeof(cur)
    return b.sizeof(tid), offsetof


@functools.lru_cache(maxsize=None)
def _enums(filename):
    out = {}
    for t in _btf(filename).types:
        if t and t["kind"] in ("enum", "enum64"):
            for n, v in t["values"]:
                out.setdefault(n, v)
    return out


def enum_constants():
    try:
        return _enums(path())
    except OSError as e:
        raise BTFError("%s (%s): %s" % (UNREADABLE, path(), e))


def find_id(name, kind):
    """The id of the first type named ``name`` of ``kind`` ('func', 'typedef', ...), or 0."""
    return btf().by_name.get((name, kind), 0)
