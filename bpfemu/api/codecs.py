"""Codecs: how a Map packs a Python key or value into its buffer and back.

A codec comes from None/``bytes`` (raw bytes; an int is stored little/native-endian in the field's size), a
``struct`` format (``"I"``, ``"<QQ"``) or a ``ctypes`` type (``ctypes.c_uint64``, a ``Structure``).
"""
import ctypes
import struct
import sys as _sys


class Codec:
    """How keys or values of one Map are encoded: ``pack(buf, off, v)``, ``unpack(buf, off)``."""

    __slots__ = ("size", "pack", "unpack", "spec")

    def __init__(self, size, pack, unpack, spec):
        self.size, self.pack, self.unpack, self.spec = size, pack, unpack, spec


def _raw_codec(size):
    def pack(buf, off, v):
        if isinstance(v, int):
            v = v.to_bytes(size, _sys.byteorder)
        elif len(v) != size:
            raise ValueError("expected %d bytes, got %d" % (size, len(v)))
        buf[off:off + size] = v

    def unpack(buf, off):
        return bytes(buf[off:off + size])

    return Codec(size, pack, unpack, None)


def _struct_codec(s, spec):
    nfields = len(s.unpack(bytes(s.size)))
    pack_into, unpack_from = s.pack_into, s.unpack_from
    if nfields == 1:
        def unpack(buf, off):
            return unpack_from(buf, off)[0]

        return Codec(s.size, pack_into, unpack, spec)

    def pack(buf, off, v):
        pack_into(buf, off, *v)

    return Codec(s.size, pack, unpack_from, spec)


_HASHABLE = {}


def _eq(self, other):
    if isinstance(other, self._bpfemu_base):
        return bytes(self) == bytes(other)
    return NotImplemented


def _repr(self):
    fields = getattr(self, "_fields_", None)
    if fields is not None:
        return "%s(%s)" % (self._bpfemu_base.__name__,
                           ", ".join("%s=%r" % (f[0], getattr(self, f[0])) for f in fields))
    return "%s(%r)" % (self._bpfemu_base.__name__, bytes(self))


def hashable_type(t):
    """A subclass of the ctypes Structure/Union/Array type ``t`` whose instances are hashable and compare by
    their bytes (the kernel's notion of key equality): what a Map hands out as keys, so that
    ``dict(m.items())`` works. Instances are still ``t`` instances."""
    h = _HASHABLE.get(t)
    if h is None:
        h = type(t.__name__, (t,), {"__hash__": lambda self: hash(bytes(self)), "__eq__": _eq,
                                    "__ne__": lambda self, o: not (_eq(self, o) is True),
                                    "__repr__": _repr, "_bpfemu_base": t, "__module__": t.__module__,
                                    "__qualname__": getattr(t, "__qualname__", t.__name__)})
        _HASHABLE[t] = h
    return h


def _ctypes_codec(t, hashable=False):
    size = ctypes.sizeof(t)
    code = getattr(t, "_type_", None)
    if issubclass(t, ctypes._SimpleCData) and isinstance(code, str) and code in "bBhHiIlLqQfd?":
        return _struct_codec(struct.Struct("@" + code), t)

    def pack(buf, off, v):
        if not isinstance(v, t):
            v = t(*v) if isinstance(v, tuple) else t(v)
        buf[off:off + size] = bytes(v)

    simple = issubclass(t, ctypes._SimpleCData)
    made = hashable_type(t) if hashable and not simple else t

    def unpack(buf, off):
        obj = made.from_buffer_copy(buf[off:off + size])
        return obj.value if simple else obj

    return Codec(size, pack, unpack, t)


def codec(spec, size=None, hashable=False):
    """A Codec from None/bytes (raw), a struct format or a ctypes type; ``size`` is the field's size.
    ``hashable``: values it unpacks can be dict keys (ctypes Structures, Unions and arrays are not, by
    themselves: see :func:`hashable_type`)."""
    if isinstance(spec, Codec):
        return spec
    if spec is None or spec is bytes:
        return _raw_codec(size or 0)
    if isinstance(spec, (str, bytes)):
        fmt = spec.decode() if isinstance(spec, bytes) else spec
        return _struct_codec(struct.Struct(fmt), spec)
    if isinstance(spec, struct.Struct):
        return _struct_codec(spec, spec.format)
    if isinstance(spec, type) and issubclass(spec, (ctypes._SimpleCData, ctypes.Structure, ctypes.Union,
                                                    ctypes.Array)):
        return _ctypes_codec(spec, hashable)
    raise TypeError("a key or value type is bytes, a struct format or a ctypes type, not %r" % (spec,))
