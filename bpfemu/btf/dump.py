"""Values shown by their BTF type: ``bpftool map dump``'s text, and Python values.

:func:`map_dump` writes what ``bpftool map dump`` prints for a map (bpftool v7.1, the one Debian
installs): with BTF, a pretty-printed JSON-like array of ``{"key": ..., "value": ...}`` objects
(``"values": [{"cpu": 0, "value": ...}, ...]`` for per-CPU maps), each value laid out by its type as
bpftool's BTF dumper lays it out; without BTF, the hex lines and ``Found N elements``. The formats,
from bpftool's behaviour:

- integers in decimal by their encoding and width (signed, unsigned, ``true``/``false`` for bool, a
  quoted printable char or ``0x..``); bitfields and 128-bit integers in hex (``0x1f``);
- pointers as ``%p`` prints them (``0xffff8880...``, ``(nil)``), unquoted;
- char arrays holding a NUL-terminated printable string as a quoted string, other arrays as lists;
- structs and unions as objects of their members, enums by the name of their value (else the number),
  modifiers followed, a VAR as ``{"name": value}``, a DATASEC as ``{"section": [vars]}``.

:func:`to_python` decodes a value into Python (dicts, lists, ints, strs, bools, None for a NULL
pointer), and :func:`compact` writes it on one line, for ``kernel.describe()``.
"""
import struct

from . import uapi as U

INDENT = "    "


class JsonWriter:
    """bpftool's json_writer in pretty mode: four spaces an indent, ``"name": value``, ``},{``."""

    def __init__(self):
        self.out = []
        self.depth = 0
        self.sep = ""

    def _eor(self):
        if self.sep:
            self.out.append(self.sep)
        self.sep = ","

    def _eol(self):
        self.out.append("\n" + INDENT * self.depth)

    def _begin(self, c):
        self._eor()
        self.out.append(c)
        self.depth += 1
        self.sep = ""

    def _end(self, c):
        self.depth -= 1
        if self.sep:
            self._eol()
        self.out.append(c)
        self.sep = ","

    def start_object(self):
        self._begin("{")

    def end_object(self):
        self._end("}")

    def start_array(self):
        self._begin("[")

    def end_array(self):
        self._end("]")

    def name(self, name):
        self._eor()
        self._eol()
        self.sep = ""
        self.out.append(quote(name) + ": ")

    def raw(self, text):
        self._eor()
        self.out.append(text)

    def string(self, s):
        self.raw(quote(s))

    def text(self):
        return "".join(self.out)


_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f", "\b": "\\b", "\\": "\\\\", '"': '\\"'}


def quote(s):
    if isinstance(s, bytes):
        s = s.decode("latin-1")
    return '"' + "".join(_ESCAPES.get(c, c) for c in s) + '"'


def _isprint(c):
    return 0x20 <= c < 0x7F


def _hex(n):
    return "0x%x" % n


def _bitfield(data, bit_offset, nr_bits):
    """The unsigned value of ``nr_bits`` bits at ``bit_offset`` of little-endian ``data``."""
    nbytes = (bit_offset + nr_bits + 7) // 8
    v = int.from_bytes(bytes(data[:nbytes]).ljust(nbytes, b"\0"), "little")
    return (v >> bit_offset) & ((1 << nr_bits) - 1)


# -- decoding: each leaf as (python value, bpftool text) ----------------------------------------------

class Leaf:
    """A scalar: its Python value and the text bpftool prints for it."""

    __slots__ = ("value", "text")

    def __init__(self, value, text):
        self.value, self.text = value, text


def _int(t, data, bit_offset):
    d = t.int_data
    enc, off, bits = (d >> 24) & 0xF, (d >> 16) & 0xFF, d & 0xFF
    if bit_offset or off or bits % 8:
        v = _bitfield(data[(bit_offset + off) // 8:], (bit_offset + off) % 8, bits)
        return Leaf(v, _hex(v))
    if bits == 128:
        v = int.from_bytes(bytes(data[:16]), "little")
        return Leaf(v, _hex(v))
    n = bits // 8
    raw = bytes(data[:n])
    if enc == U.BTF_INT_SIGNED and n in (1, 2, 4, 8):
        v = int.from_bytes(raw, "little", signed=True)
        return Leaf(v, str(v))
    if enc == U.BTF_INT_CHAR:
        c = raw[0]
        return Leaf(chr(c), quote(chr(c)) if _isprint(c) else _hex(c))
    if enc == U.BTF_INT_BOOL:
        v = raw[0] != 0
        return Leaf(v, "true" if v else "false")
    if n in (1, 2, 4, 8):
        v = int.from_bytes(raw, "little")
        return Leaf(v, str(v))
    v = _bitfield(data, 0, bits)
    return Leaf(v, _hex(v))


def _is_str_array(btf, elem_id, nelems, data):
    if not nelems:
        return False
    et = btf.type_by_id(elem_id)
    while et is not None and et.kind in (U.BTF_KIND_TYPEDEF, U.BTF_KIND_VOLATILE, U.BTF_KIND_CONST,
                                         U.BTF_KIND_RESTRICT, U.BTF_KIND_TYPE_TAG):
        et = btf.type_by_id(et.type)
    if et is None or et.kind != U.BTF_KIND_INT or et.size != 1:
        return False
    if (et.int_data >> 24) & 0xF != U.BTF_INT_CHAR and btf.name(et) != "char":
        return False
    for c in bytes(data[:nelems]):
        if not c:
            return True
        if c <= 0x1F or c >= 0x7F:
            return False
    return False


def decode(btf, type_id, data, bit_offset=0):
    """The value of ``type_id`` at the start of ``data``: a Leaf, a list (arrays) or a list of
    (name, node) pairs in a dict-like :class:`Obj` (structs, unions, VARs, DATASECs)."""
    t = btf.type_by_id(type_id)
    k = t.kind if t is not None else 0
    if k == U.BTF_KIND_INT:
        return _int(t, data, bit_offset)
    if k in (U.BTF_KIND_STRUCT, U.BTF_KIND_UNION):
        out = Obj()
        for name_off, mtype, off in t.members:
            bitfield = off >> 24 if t.kflag else 0
            boff = off & 0xFFFFFF if t.kflag else off
            part = data[boff // 8:]
            name = (btf.str_by_offset(name_off) or b"").decode("latin-1")
            if bitfield:
                v = _bitfield(part, boff % 8, bitfield)
                out.append((name, Leaf(v, _hex(v))))
            else:
                out.append((name, decode(btf, mtype, part, boff % 8)))
        return out
    if k == U.BTF_KIND_ARRAY:
        elem, _index, nelems = t.array
        if _is_str_array(btf, elem, nelems, data):
            s = bytes(data[:nelems]).split(b"\0", 1)[0].decode("latin-1")
            return Leaf(s, quote(s))
        size = btf.size_of(elem) or 0
        return [decode(btf, elem, data[i * size:]) for i in range(nelems)]
    if k == U.BTF_KIND_ENUM:
        fmt = {8: "<q", 4: "<i", 2: "<h", 1: "<b"}.get(t.size)
        if fmt is None:
            return Leaf(None, "(bad-enum-size)")
        v = struct.unpack_from(fmt, bytes(data[:t.size]))[0]
        for name_off, val in t.enums:
            if v == (val if val < 1 << 31 else val - (1 << 32)):
                s = btf.str_by_offset(name_off).decode("latin-1")
                return Leaf(s, quote(s))
        return Leaf(v, str(v))
    if k == U.BTF_KIND_ENUM64:
        v = int.from_bytes(bytes(data[:8]), "little")
        for name_off, lo, hi in t.enum64s:
            if v == lo | hi << 32:
                s = btf.str_by_offset(name_off).decode("latin-1")
                return Leaf(s, quote(s))
        sv = v - (1 << 64) if v >> 63 else v
        return Leaf(sv, str(sv))
    if k == U.BTF_KIND_PTR:
        v = int.from_bytes(bytes(data[:8]), "little")
        return Leaf(v or None, _hex(v) if v else "(nil)")
    if k in (U.BTF_KIND_TYPEDEF, U.BTF_KIND_VOLATILE, U.BTF_KIND_CONST, U.BTF_KIND_RESTRICT):
        _t, rid = btf.skip_modifiers(type_id)
        return decode(btf, rid, data, bit_offset)
    if k == U.BTF_KIND_VAR:
        out = Obj()
        out.append((btf.name(t), decode(btf, t.type, data, bit_offset)))
        return out
    if k == U.BTF_KIND_DATASEC:
        out = Obj()
        out.append((btf.name(t), [decode(btf, vt, data[off:]) for vt, off, _size in t.vsis]))
        return out
    if t is None or t.kind == 0:
        return Leaf(None, "(unknown)")
    if k == U.BTF_KIND_FWD:
        return Leaf(None, "(fwd-kind-invalid)")
    return Leaf(None, "(unsupported-kind")


class Obj(list):
    """Members in order: [(name, node)]."""


def _write(w, node):
    if isinstance(node, Leaf):
        w.raw(node.text)
    elif isinstance(node, Obj):
        w.start_object()
        for name, sub in node:
            w.name(name)
            _write(w, sub)
        w.end_object()
    else:
        w.start_array()
        for sub in node:
            _write(w, sub)
        w.end_array()


def to_python(btf, type_id, data):
    """The value of ``type_id`` in ``data`` as Python: a dict per struct/union (member name -> value),
    a list per array, str for char strings and enum names, bool, int, None for a NULL pointer."""
    return _py(decode(btf, type_id, data))


def _py(node):
    if isinstance(node, Leaf):
        return node.value
    if isinstance(node, Obj):
        return {name: _py(sub) for name, sub in node}
    return [_py(sub) for sub in node]


def compact(btf, type_id, data):
    """One line: ``{cnt=5, lock={val=0}, name="hi"}``, for kernel.describe()."""
    return _compact(decode(btf, type_id, data))


def _compact(node):
    if isinstance(node, Leaf):
        return node.text
    if isinstance(node, Obj):
        return "{" + ", ".join("%s=%s" % (name or "(anon)", _compact(sub)) for name, sub in node) + "}"
    return "[" + ", ".join(_compact(sub) for sub in node) + "]"


# -- the map dump -------------------------------------------------------------------------------------

def hex_bytes(data):
    """bpftool's fprint_hex: bytes as ``01 02``, two spaces after each 8, a new line after each 16."""
    out = []
    for i, b in enumerate(bytes(data)):
        if i:
            out.append("\n" if i % 16 == 0 else "  " if i % 8 == 0 else " ")
        out.append("%02x" % b)
    return "".join(out)


def map_dump(elements, key_size, value_size, percpu=False, ncpus=1, btf=None, key_type_id=0, value_type_id=0,
             of_maps=False):
    """What ``bpftool map dump`` prints for these elements, ``[(key bytes, value bytes)]`` in the order of
    GET_NEXT_KEY (per-CPU values: every CPU's copy, each padded to 8 bytes).

    With ``btf`` and ``value_type_id``, the BTF form (``key`` only when ``key_type_id``); otherwise the
    hex form (``of_maps``: values are inner map ids)."""
    step = (value_size + 7) // 8 * 8
    if btf is not None and value_type_id:
        w = JsonWriter()
        w.start_array()
        for key, value in elements:
            w.start_object()
            if key_type_id:
                w.name("key")
                _write(w, decode(btf, key_type_id, key))
            if not percpu:
                w.name("value")
                _write(w, decode(btf, value_type_id, value))
            else:
                w.name("values")
                w.start_array()
                for cpu in range(ncpus):
                    w.start_object()
                    w.name("cpu")
                    w.raw(str(cpu))
                    w.name("value")
                    _write(w, decode(btf, value_type_id, value[cpu * step:]))
                    w.end_object()
                w.end_array()
            w.end_object()
        w.end_array()
        return w.text() + "\n"
    lines = []
    for key, value in elements:
        if not percpu:
            break_names = key_size > 16 or value_size > 16
            single = key_size + value_size <= 24 and not break_names
            s = ""
            if key_size:
                s += "key:" + ("\n" if break_names else " ") + hex_bytes(key) + ("  " if single else "\n")
            if value_size:
                if of_maps:
                    s += "inner_map_id:" + ("\n" if break_names else " ") + "%u " % int.from_bytes(value[:4], "little")
                else:
                    s += "value:" + ("\n" if break_names else " ") + hex_bytes(value[:value_size])
            lines.append(s + "\n")
        else:
            s = ""
            if key_size:
                s += "key:\n" + hex_bytes(key) + "\n"
            for cpu in range(ncpus):
                s += "value (CPU %02d):%s%s\n" % (cpu, "\n" if value_size > 16 else " ",
                                                 hex_bytes(value[cpu * step:cpu * step + value_size]))
            lines.append(s)
    n = len(elements)
    return "".join(lines) + "Found %u element%s\n" % (n, "" if n == 1 else "s")
