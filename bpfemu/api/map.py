"""bpfemu.Map: a typed, Pythonic map API over any bpf(2) backend.

Everything here is built on the raw ``sys.bpf(cmd, attr)`` entry only, so the
same code drives an emulated :class:`bpfemu.Task`, :func:`bpfemu.Host` (the
real syscall in this process) and a ``HostTask`` (a real child process)::

    m = Map.create(sys, "hash", key="I", value="Q", max_entries=64, name="counts")
    m[1] = 42
    m[1]            # -> 42
    m.lookup(2)     # FileNotFoundError (ENOENT), a BpfError
    m[2]            # KeyError

Keys and values are raw ``bytes`` by default (an ``int`` is accepted too and
stored little/native-endian in the field's size), or typed by a ``struct``
format (``"I"``, ``"<QQ"``) or a ``ctypes`` type (``ctypes.c_uint64``, a
``Structure``). Per-CPU maps answer a list with one value per possible CPU and
take such a list (or one value for every CPU).

Errors are :class:`BpfError`, an ``OSError`` whose class follows the errno as
the builtin one does (``except FileNotFoundError`` catches ENOENT) and whose
message names the command and the map::

    E2BIG: BPF_MAP_UPDATE_ELEM on hash map 'counts' (id 7): map is full

A key or value the map's types cannot encode is a TypeError or ValueError
naming the map and the key, before any call.

A Map is a :class:`~bpfemu.api.handle.Handle`: any number of threads may use
one Map (each thread packs into buffers of its own, kept preallocated so an
element operation costs the syscall plus packing in place); a closed Map
raises EBADF on every use; an unreferenced, unclosed Map closes its fd with a
ResourceWarning. docs/api.md is the reference.
"""
import ctypes
import errno as _errno
import struct
import threading

from .. import uapi
from ..btf import dump as btf_dump
from ..btf import uapi as btf_uapi
from ..btf.parse import btf_parse
from ..host.sysinfo import host_possible_cpus
from .codecs import codec
from .errors import _DELETE, _ENOENT, _LOOKUP, _LOOKUP_AND_DELETE, _NEXT, _UPDATE, BpfError, detail_for, make_error
from .errors import reraise as _reraise
from .handle import Handle

__all__ = ["Map", "MapInfo", "Batch", "map_type_number", "issues", "btf_load"]

U = uapi

PERCPU_TYPES = U.PERCPU_MAP_TYPES
FD_TYPES = U.FD_MAP_TYPES
# every index below max_entries always exists: len() is max_entries
ARRAY_TYPES = frozenset((U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_PERCPU_ARRAY, U.BPF_MAP_TYPE_PROG_ARRAY,
                         U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, U.BPF_MAP_TYPE_CGROUP_ARRAY,
                         U.BPF_MAP_TYPE_ARRAY_OF_MAPS))
# arrays whose elements hold an fd (in) / an id (out): their slots can be deleted
FD_ARRAY_TYPES = frozenset((U.BPF_MAP_TYPE_PROG_ARRAY, U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, U.BPF_MAP_TYPE_CGROUP_ARRAY,
                            U.BPF_MAP_TYPE_ARRAY_OF_MAPS))
QUEUE_TYPES = frozenset((U.BPF_MAP_TYPE_QUEUE, U.BPF_MAP_TYPE_STACK))
# walked with GET_NEXT_KEY: len() counts the walk
WALKABLE_TYPES = frozenset((U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_MAP_TYPE_LRU_HASH,
                            U.BPF_MAP_TYPE_LRU_PERCPU_HASH, U.BPF_MAP_TYPE_LPM_TRIE,
                            U.BPF_MAP_TYPE_HASH_OF_MAPS, U.BPF_MAP_TYPE_SOCKHASH, U.BPF_MAP_TYPE_DEVMAP_HASH))


def issues(*cmds):
    """Declare the bpf(2) commands a Map method issues (``method.bpf_commands``, names); tools/gen_docs.py
    reads them, and tests/test_api.py checks each method issues exactly those."""

    def deco(fn):
        fn.bpf_commands = tuple(uapi.cmd_name(c) for c in cmds)
        return fn

    return deco


# -- map types ---------------------------------------------------------------------

def map_type_number(t):
    """A map type from its uapi number or its name: 'hash', 'percpu_array', 'BPF_MAP_TYPE_LRU_HASH'."""
    if isinstance(t, int):
        return t
    name = str(t).upper()
    if not name.startswith("BPF_MAP_TYPE_"):
        name = "BPF_MAP_TYPE_" + name
    value = getattr(uapi, name, None)
    if not isinstance(value, int):
        raise ValueError("unknown map type %r" % (t,))
    return value


def _ncpus(sys):
    kernel = getattr(sys, "kernel", None)
    if kernel is not None and hasattr(kernel, "ncpus"):
        return kernel.ncpus
    return host_possible_cpus() or 1


def _buffer(n):
    b = ctypes.create_string_buffer(max(n, 1))
    return b, memoryview(b).cast("B")


def _addr(b):
    return ctypes.addressof(b) if b is not None else 0


# -- info ----------------------------------------------------------------------------

class MapInfo:
    """struct bpf_map_info as attributes (``name`` is a str; ``type_name`` e.g. 'hash')."""

    FIELDS = [f[0] for f in uapi.bpf_map_info._fields_]

    def __init__(self, raw):
        for f in self.FIELDS:
            v = getattr(raw, f)
            if isinstance(v, bytes):
                v = v.split(b"\0", 1)[0]
                if f == "name":
                    v = v.decode("latin-1")
            elif not isinstance(v, int):
                v = bytes(v)
            setattr(self, f, v)

    @property
    def type_name(self):
        return uapi.map_type_name(self.type)

    def as_dict(self):
        return {f: getattr(self, f) for f in self.FIELDS}

    def __repr__(self):
        return "<MapInfo %s>" % " ".join("%s=%r" % (f, getattr(self, f)) for f in self.FIELDS)


def _get_info(sys, fd, target):
    raw = uapi.bpf_map_info()
    a = uapi.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(raw),
                          "info.info": ctypes.addressof(raw)})
    try:
        sys.bpf(U.BPF_OBJ_GET_INFO_BY_FD, a)
    except OSError as e:
        raise _reraise(e, U.BPF_OBJ_GET_INFO_BY_FD, target) from None
    return MapInfo(raw)


# -- BTF -------------------------------------------------------------------------------------

_NAMED_KINDS = (btf_uapi.BTF_KIND_STRUCT, btf_uapi.BTF_KIND_UNION, btf_uapi.BTF_KIND_TYPEDEF, btf_uapi.BTF_KIND_INT,
                btf_uapi.BTF_KIND_ENUM, btf_uapi.BTF_KIND_ENUM64, btf_uapi.BTF_KIND_FLOAT, btf_uapi.BTF_KIND_DATASEC)


def btf_load(sys, blob, log_size=1 << 16):
    """BPF_BTF_LOAD of ``blob`` (bytes, e.g. ``bpfemu.btf.Builder()...blob()``): the new BTF fd. A refused
    blob raises BpfError whose message ends with the kernel's verifier log line (its cause)."""
    data = ctypes.create_string_buffer(bytes(blob), max(len(blob), 1))
    log = ctypes.create_string_buffer(log_size) if log_size else None
    a = uapi.make_attr(btf=ctypes.addressof(data), btf_size=len(blob), btf_log_level=1 if log else 0,
                       btf_log_size=log_size, btf_log_buf=_addr(log))
    target = "BTF of %d bytes" % len(blob)
    try:
        return sys.bpf(U.BPF_BTF_LOAD, a)
    except OSError as e:
        if e.errno != _errno.ENOSPC:
            lines = (log.value.decode("latin-1").strip().splitlines() if log else []) or [""]
            raise make_error(e.errno, "BPF_BTF_LOAD", target, lines[-1] or None) from None
    try:  # the log did not fit (ENOSPC replaces the verdict): the verdict without a log
        return sys.bpf(U.BPF_BTF_LOAD, uapi.make_attr(btf=ctypes.addressof(data), btf_size=len(blob)))
    except OSError as e:
        raise _reraise(e, U.BPF_BTF_LOAD, target) from None


def _type_id(btf, t):
    """A BTF type id from an id or a name (the first struct, union, typedef, int, enum... of that name)."""
    if t is None or isinstance(t, int):
        return t or 0
    for kind in _NAMED_KINDS:
        i = btf.find_by_name_kind(t, kind)
        if i > 0:
            return i
    raise ValueError("no type named %r in the BTF" % (t,))


def _fetch_btf(sys, btf_id, target):
    """The BTF object with this id, read back through BTF_GET_FD_BY_ID and its info (the blob), parsed."""
    try:
        fd = sys.bpf(U.BPF_BTF_GET_FD_BY_ID, uapi.make_attr(btf_id=btf_id))
    except OSError as e:
        raise _reraise(e, U.BPF_BTF_GET_FD_BY_ID, target) from None
    try:
        size = 0
        blob = b""
        for _ in range(3):  # the size first, then the bytes
            info = uapi.bpf_btf_info()
            buf = ctypes.create_string_buffer(max(size, 1))
            info.btf, info.btf_size = (ctypes.addressof(buf), size) if size else (0, 0)
            a = uapi.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(info),
                                  "info.info": ctypes.addressof(info)})
            try:
                sys.bpf(U.BPF_OBJ_GET_INFO_BY_FD, a)
            except OSError as e:
                raise _reraise(e, U.BPF_OBJ_GET_INFO_BY_FD, target) from None
            if size and info.btf_size == size:
                blob = buf.raw[:size]
                break
            size = info.btf_size
    finally:
        sys.close(fd)
    return btf_parse(blob, vmlinux=None)


class Batch(tuple):
    """Result of a lookup batch: ``keys``, ``values`` and ``next`` (the token to continue, None at the end).

    A tuple ``(keys, values, next)``; ``items()`` pairs keys with values."""

    __slots__ = ()

    def __new__(cls, keys, values, next):
        return tuple.__new__(cls, (keys, values, next))

    keys = property(lambda self: self[0])
    values = property(lambda self: self[1])
    next = property(lambda self: self[2])

    def items(self):
        return list(zip(self[0], self[1]))


# -- the map -----------------------------------------------------------------------------

class _Scratch:
    """One thread's buffers and attrs for the element operations of one Map."""

    __slots__ = ("k", "kmv", "v", "vmv", "a_kv", "a_k")

    def __init__(self, fd, key_size, value_size):
        self.k, self.kmv = _buffer(key_size)
        self.v, self.vmv = _buffer(value_size)
        kaddr = _addr(self.k) if key_size else 0
        self.a_kv = uapi.make_attr(map_fd=fd, key=kaddr, value=_addr(self.v))
        self.a_k = uapi.make_attr(map_fd=fd, key=kaddr)


def _bad_type(e):
    """A codec's complaint as TypeError (the wrong kind of object) or ValueError (the right kind, wrong size
    or range)."""
    if isinstance(e, (TypeError, AttributeError)):
        return TypeError
    text = str(e)
    if isinstance(e, struct.error) and ("not an integer" in text or "not a float" in text or "must be" in text
                                        or "not a " in text):
        return TypeError
    return ValueError


_SIGNED = (ctypes.c_int8, ctypes.c_int16, ctypes.c_int32, ctypes.c_int64)


def _check_fields(fields):
    """Refuse an int attr field value its bpf_attr field cannot hold (make_attr would truncate it)."""
    for name, v in fields.items():
        if not isinstance(v, int) or isinstance(v, bool):
            continue
        cls, ftype = uapi.bpf_attr, None
        for part in name.split("."):
            _off, ftype = uapi._member(cls, part)
            cls = ftype
        if not issubclass(ftype, ctypes._SimpleCData):
            continue
        bits = 8 * ctypes.sizeof(ftype)
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if ftype in _SIGNED else (0, (1 << bits) - 1)
        if not lo <= v <= hi:
            raise ValueError("%s=%r does not fit bpf_attr's %s%d field %s" % (
                name, v, "s" if ftype in _SIGNED else "u", bits, name))


class Map(Handle):
    """An open map fd on a backend task ``sys`` (anything with ``bpf()`` and ``close()``).

    Build one with :meth:`create`, :meth:`from_fd`, :meth:`from_id` or
    :meth:`from_pin`; the Map owns its fd (:meth:`close`, or use ``with``).
    ``key``/``value`` choose the Python types of keys and values.
    """

    kind = "map"

    def __init__(self, sys, fd, key=None, value=None, info=None):
        Handle.__init__(self, sys, fd, "map fd %d" % fd)
        try:
            self._setup(sys, fd, key, value, info)
        except BaseException:
            self._closed = True  # never built: the fd stays the caller's (create() closes its own)
            raise

    def _setup(self, sys, fd, key, value, info):
        if info is None:
            info = _get_info(sys, fd, self._target)
        self.type = info.type
        self.id = info.id
        self.key_size = info.key_size
        self.value_size = info.value_size
        self.max_entries = info.max_entries
        self.flags = info.map_flags
        self.name = info.name
        self.btf_id = info.btf_id
        self.btf_key_type_id = info.btf_key_type_id
        self.btf_value_type_id = info.btf_value_type_id
        self._btf = None
        self.type_name = uapi.map_type_name(self.type)
        self.percpu = self.type in PERCPU_TYPES
        self.ncpus = _ncpus(sys) if self.percpu else 1
        self._target = "%s map %s(id %d)" % (self.type_name, "'%s' " % self.name if self.name else "", self.id)
        if value is None and self.type in FD_TYPES:
            value = "I"  # an fd in, an id out
        self._fd_values = self.type in FD_TYPES
        self.key_codec = kc = codec(key, self.key_size, hashable=True)
        self.value_codec = vc = codec(value, self.value_size)
        if self.key_size and kc.size != self.key_size:
            raise ValueError("key type %r is %d bytes, the keys of %s are %d" % (key, kc.size, self._target,
                                                                                 self.key_size))
        if vc.size != self.value_size and self.value_size:
            raise ValueError("value type %r is %d bytes, the values of %s are %d"
                             % (value, vc.size, self._target, self.value_size))
        self._stride = (self.value_size + 7) // 8 * 8 if self.percpu else self.value_size
        self.user_value_size = self._stride * self.ncpus
        self._tls = threading.local()  # each thread's _Scratch
        self._bpf = sys.bpf
        self._direct = getattr(sys, "map_elem", None)  # an emulated task: element commands on our own bytes
        self._bloom = self.type == U.BPF_MAP_TYPE_BLOOM_FILTER
        self._kpack = kc.pack
        self._kunpack = kc.unpack
        self._vpack1 = vc.pack
        self._vunpack1 = vc.unpack
        self.pin_path = None  # where pin() pinned it, or from_pin() found it

    # -- constructors ----------------------------------------------------------
    @classmethod
    @issues(U.BPF_MAP_CREATE, U.BPF_OBJ_GET_INFO_BY_FD, U.BPF_BTF_LOAD)
    def create(cls, sys, type, key_size=None, value_size=None, max_entries=0, flags=0, name=None,
               inner_map=None, numa_node=None, map_extra=0, key=None, value=None, btf=None, btf_key_type=None,
               btf_value_type=None, **attr_fields):
        """BPF_MAP_CREATE. ``type`` is a uapi number or a name ('hash'); sizes default to the
        sizes of the ``key``/``value`` types; ``inner_map`` is a Map or an fd (map-in-map);
        ``numa_node`` sets BPF_F_NUMA_NODE too; other attr fields pass through. A size, count or
        flag that does not fit its attr field is a ValueError (never truncated).

        ``btf``: BTF describing keys and values, as a blob (bytes: loaded with BPF_BTF_LOAD, and its fd
        closed again once the map holds it) or the fd of a loaded BTF; ``btf_key_type`` and
        ``btf_value_type`` name the types (ids, or names when ``btf`` is a blob); the sizes default to
        theirs."""
        t = map_type_number(type)
        own_btf = None
        if btf is not None:
            if isinstance(btf, (bytes, bytearray)):
                own_btf = btf_load(sys, btf)  # the kernel judges the blob first
                attr_fields["btf_fd"] = own_btf
                try:
                    parsed = btf_parse(bytes(btf), vmlinux=None)
                    kid, vid = _type_id(parsed, btf_key_type), _type_id(parsed, btf_value_type)
                except BaseException:
                    sys.close(own_btf)
                    raise
                if key_size is None and key is None and kid:
                    key_size = parsed.size_of(kid)
                if value_size is None and value is None and vid:
                    value_size = parsed.size_of(vid)
            else:
                kid, vid = btf_key_type or 0, btf_value_type or 0
                attr_fields["btf_fd"] = btf
            attr_fields["btf_key_type_id"], attr_fields["btf_value_type_id"] = kid, vid
        try:
            return cls._create(sys, t, key_size, value_size, max_entries, flags, name, inner_map, numa_node,
                               map_extra, key, value, attr_fields)
        finally:
            if own_btf is not None:
                sys.close(own_btf)

    @classmethod
    def _create(cls, sys, t, key_size, value_size, max_entries, flags, name, inner_map, numa_node, map_extra, key,
                value, attr_fields):
        if key_size is None:
            key_size = codec(key).size if key is not None else 0
        if value_size is None:
            value_size = codec(value).size if value is not None else (4 if t in FD_TYPES else 0)
        if numa_node is not None:
            flags |= U.BPF_F_NUMA_NODE
            attr_fields["numa_node"] = numa_node
        if inner_map is not None:
            attr_fields["inner_map_fd"] = inner_map.fd if isinstance(inner_map, Map) else inner_map
        fields = dict(map_type=t, key_size=key_size, value_size=value_size, max_entries=max_entries,
                      map_flags=flags, map_extra=map_extra, **attr_fields)
        _check_fields(fields)
        a = uapi.make_attr(**fields)
        label = name.encode() if isinstance(name, str) else (name or b"")
        if label:
            if len(label) > uapi.BPF_OBJ_NAME_LEN:
                raise ValueError("map names are at most %d bytes" % (uapi.BPF_OBJ_NAME_LEN - 1))
            ctypes.memmove(ctypes.addressof(a) + uapi.attr_field("map_name")[0], label, len(label))
        try:
            fd = sys.bpf(U.BPF_MAP_CREATE, a)
        except OSError as e:
            target = "%s map%s" % (uapi.map_type_name(t), " '%s'" % label.decode("latin-1") if label else "")
            raise _reraise(e, U.BPF_MAP_CREATE, target) from None
        return cls._adopt(sys, fd, key, value)

    @classmethod
    def _adopt(cls, sys, fd, key, value):
        try:
            return cls(sys, fd, key, value)
        except BaseException:
            sys.close(fd)
            raise

    @classmethod
    @issues(U.BPF_OBJ_GET_INFO_BY_FD)
    def from_fd(cls, sys, fd, key=None, value=None):
        """Wrap an open map fd of ``sys`` (the Map takes it over: close() closes it, and so does the
        finalizer; :meth:`detach` gives it back)."""
        return cls(sys, fd, key, value)

    @classmethod
    @issues(U.BPF_MAP_GET_FD_BY_ID, U.BPF_OBJ_GET_INFO_BY_FD)
    def from_id(cls, sys, map_id, key=None, value=None, open_flags=0):
        """BPF_MAP_GET_FD_BY_ID: a new fd on the map with this id."""
        try:
            fd = sys.bpf(U.BPF_MAP_GET_FD_BY_ID, uapi.make_attr(map_id=map_id, open_flags=open_flags))
        except OSError as e:
            raise _reraise(e, U.BPF_MAP_GET_FD_BY_ID, "map id %d" % map_id) from None
        return cls._adopt(sys, fd, key, value)

    @classmethod
    @issues(U.BPF_OBJ_GET, U.BPF_OBJ_GET_INFO_BY_FD)
    def from_pin(cls, sys, path, key=None, value=None, file_flags=0):
        """BPF_OBJ_GET: a new fd on the map pinned at ``path`` (which becomes its :attr:`pin_path`)."""
        p = ctypes.create_string_buffer(path.encode() if isinstance(path, str) else path)
        try:
            fd = sys.bpf(U.BPF_OBJ_GET, uapi.make_attr(pathname=_addr(p), file_flags=file_flags))
        except OSError as e:
            raise _reraise(e, U.BPF_OBJ_GET, "pin %r" % (path,)) from None
        m = cls._adopt(sys, fd, key, value)
        m.pin_path = path
        return m

    # -- plumbing ------------------------------------------------------------------
    def _use(self, cmd):
        """Begin an operation (EBADF once closed): this thread's buffers. End it with _leave()."""
        self._enter(cmd)
        try:
            return self._tls.s
        except AttributeError:
            s = self._tls.s = _Scratch(self._fd, self.key_size, self.user_value_size)
            return s

    def _fail(self, e, cmd, count=None, asked=None):
        return _reraise(e, cmd, self._target, count, asked=asked, map_type=self.type)

    def _bad(self, what, obj, e):
        spec = (self.key_codec if what == "key" else self.value_codec).spec
        size = self.key_size if what == "key" else self.value_size
        kind = "raw bytes" if spec is None else repr(spec)
        return _bad_type(e)("%s: %s %r does not fit the %s type %s (%d bytes): %s"
                            % (self._target, what, obj, what, kind, size, e))

    def _put_key(self, s, key, buf=None, off=0):
        if self.key_size:
            try:
                self._kpack(s.kmv if buf is None else buf, off, key)
            except (struct.error, TypeError, ValueError, OverflowError, AttributeError) as e:
                raise self._bad("key", key, e) from None
        elif key is not None:
            raise TypeError("%s: %s maps have no keys, got key %r" % (self._target, self.type_name, key))

    def _pack1(self, mv, off, value):
        try:
            self._vpack1(mv, off, value)
        except (struct.error, TypeError, ValueError, OverflowError, AttributeError) as e:
            raise self._bad("value", value, e) from None

    def _put_value(self, value, mv, off=0):
        if self._fd_values and isinstance(value, Map):
            value = value.fd
        if not self.percpu:
            self._pack1(mv, off, value)
            return
        stride, n = self._stride, self.ncpus
        mv[off:off + stride * n] = bytes(stride * n)
        if isinstance(value, list):
            if len(value) != n:
                raise ValueError("%s: a per-CPU value is a list of %d values, got %d" % (self._target, n, len(value)))
            for i, v in enumerate(value):
                self._pack1(mv, off + i * stride, v)
        else:
            for i in range(n):
                self._pack1(mv, off + i * stride, value)

    def _get_value(self, mv, off=0):
        if not self.percpu:
            return self._vunpack1(mv, off)
        stride, unpack = self._stride, self._vunpack1
        return [unpack(mv, off + i * stride) for i in range(self.ncpus)]

    def _lookup(self, s, key, flags, cmd=_LOOKUP):
        """True and the value in the buffer, or False on ENOENT; other errnos raise."""
        self._put_key(s, key)
        return self._found(s, cmd, flags)

    def _elem(self, s, cmd, flags=0):
        """One element command on this thread's buffers: on an emulated task straight to its kernel
        (``Task.map_elem``: the same checks and errnos, without the attr and the checked copies, which
        the Map's own buffers do not need), elsewhere through bpf(2)."""
        direct = self._direct
        if direct is None:
            if cmd == _DELETE:
                self._bpf(cmd, s.a_k)
            else:
                a = s.a_kv
                a.flags = flags
                self._bpf(cmd, a)
            return
        v = direct(cmd, self._fd, s.k.raw if self.key_size else None,
                   (s.v.raw if self.user_value_size else b"") if cmd == _UPDATE or self._bloom else None, flags)
        if v is not None:
            s.vmv[:len(v)] = v

    def _found(self, s, cmd, flags):
        try:
            self._elem(s, cmd, flags)
        except OSError as e:
            if e.errno == _ENOENT:
                return False
            raise self._fail(e, cmd) from None
        return True

    def _missing(self, cmd):
        return make_error(_ENOENT, uapi.cmd_name(cmd), self._target, detail_for(cmd, _ENOENT))

    # -- element operations -----------------------------------------------------------
    @issues(_LOOKUP)
    def lookup(self, key=None, flags=0):
        """BPF_MAP_LOOKUP_ELEM (ENOENT raises FileNotFoundError)."""
        s = self._use(_LOOKUP)
        try:
            if not self._lookup(s, key, flags):
                raise self._missing(_LOOKUP)
            return self._get_value(s.vmv)
        finally:
            self._leave()

    @issues(_LOOKUP)
    def get(self, key, default=None):
        s = self._use(_LOOKUP)
        try:
            return self._get_value(s.vmv) if self._lookup(s, key, 0) else default
        finally:
            self._leave()

    @issues(_UPDATE)
    def update(self, key, value, flags=0):
        """BPF_MAP_UPDATE_ELEM with BPF_ANY (0), BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK."""
        s = self._use(_UPDATE)
        try:
            self._put_key(s, key)
            self._put_value(value, s.vmv)
            try:
                self._elem(s, _UPDATE, flags)
            except OSError as e:
                raise self._fail(e, _UPDATE) from None
        finally:
            self._leave()

    @issues(_DELETE)
    def delete(self, key):
        """BPF_MAP_DELETE_ELEM."""
        s = self._use(_DELETE)
        try:
            self._put_key(s, key)
            try:
                self._elem(s, _DELETE)
            except OSError as e:
                raise self._fail(e, _DELETE) from None
        finally:
            self._leave()

    @issues(_LOOKUP_AND_DELETE)
    def lookup_and_delete(self, key=None, flags=0):
        """BPF_MAP_LOOKUP_AND_DELETE_ELEM: the value, and the element is gone."""
        s = self._use(_LOOKUP_AND_DELETE)
        try:
            if not self._lookup(s, key, flags, _LOOKUP_AND_DELETE):
                raise self._missing(_LOOKUP_AND_DELETE)
            return self._get_value(s.vmv)
        finally:
            self._leave()

    # queue and stack maps (no keys)
    @issues(_UPDATE)
    def push(self, value, flags=0):
        self.update(None, value, flags)

    @issues(_LOOKUP_AND_DELETE)
    def pop(self):
        return self.lookup_and_delete(None)

    @issues(_LOOKUP)
    def peek(self):
        return self.lookup(None)

    # per-CPU values
    @issues(_LOOKUP)
    def sum(self, key=None):
        """The sum over CPUs of a per-CPU value (bcc's ``table.sum(key)``); ENOENT raises."""
        return sum(self._percpu(key, "sum"))

    @issues(_LOOKUP)
    def max(self, key=None):
        """The largest per-CPU value of ``key`` (bcc's ``table.max(key)``); ENOENT raises."""
        return max(self._percpu(key, "max"))

    def _percpu(self, key, what):
        if not self.percpu:
            raise TypeError("%s() is for per-CPU maps; %s is not one" % (what, self._target))
        return self.lookup(key)

    # -- mapping protocol ----------------------------------------------------------------
    @issues(_LOOKUP)
    def __getitem__(self, key):
        s = self._use(_LOOKUP)
        try:
            if not self._lookup(s, key, 0):
                raise KeyError(key)
            return self._get_value(s.vmv)
        finally:
            self._leave()

    @issues(_UPDATE)
    def __setitem__(self, key, value):
        self.update(key, value)

    @issues(_DELETE)
    def __delitem__(self, key):
        s = self._use(_DELETE)
        try:
            self._put_key(s, key)
            try:
                self._elem(s, _DELETE)
            except OSError as e:
                if e.errno == _ENOENT:
                    raise KeyError(key) from None
                raise self._fail(e, _DELETE) from None
        finally:
            self._leave()

    @issues(_LOOKUP)
    def __contains__(self, key):
        s = self._use(_LOOKUP)
        try:
            return self._lookup(s, key, 0)
        finally:
            self._leave()

    def __len__(self):
        if self.type in ARRAY_TYPES:
            return self.max_entries
        if self.type in WALKABLE_TYPES:
            return sum(1 for _ in self._walk(False))
        raise TypeError("len() is not defined for %s maps" % self.type_name)

    @issues(_NEXT)
    def __iter__(self):
        return self._walk(True)

    @issues(_NEXT)
    def keys(self):
        """Every key by BPF_MAP_GET_NEXT_KEY. The next key is fetched before the current one
        is handed out, so deleting the current key inside the loop is safe."""
        return self._walk(True)

    @issues(_NEXT, _LOOKUP)
    def items(self):
        """(key, value) pairs; keys deleted meanwhile are skipped. Keys are hashable, ctypes
        Structure keys too (``dict(m.items())`` works)."""
        for kb in self._walk(False):
            s = self._use(_LOOKUP)
            try:
                s.kmv[:self.key_size] = kb
                found = self._found(s, _LOOKUP, 0)
                value = self._get_value(s.vmv) if found else None
            finally:
                self._leave()
            if found:
                yield self._kunpack(kb, 0), value

    @issues(_NEXT, _LOOKUP)
    def values(self):
        for _k, v in self.items():
            yield v

    def _walk(self, decode):
        ks = self.key_size
        cur = ctypes.create_string_buffer(max(ks, 1))
        nxt = ctypes.create_string_buffer(max(ks, 1))
        a = uapi.make_attr(map_fd=self._fd, key=0, next_key=ctypes.addressof(nxt))
        bpf, unpack = self._bpf, self._kunpack

        def step():
            self._enter(_NEXT)
            try:
                bpf(_NEXT, a)
            except OSError as e:
                if e.errno == _ENOENT:
                    return False
                raise self._fail(e, _NEXT) from None
            finally:
                self._leave()
            return True

        more = step()
        a.key = ctypes.addressof(cur)
        while more:
            kb = nxt.raw[:ks]
            ctypes.memmove(cur, nxt, ks)
            more = step()  # before the caller sees (and maybe deletes) kb
            yield unpack(kb, 0) if decode else kb

    @issues(_NEXT, _DELETE, _UPDATE, _LOOKUP_AND_DELETE)
    def clear(self):
        """Empty the map, as bcc's ``table.clear()``: a hash-like map deletes every key; an array map
        sets every element to zeros (its elements cannot be deleted) and an fd array empties every
        slot; a queue or stack pops until empty. Returns how many elements were removed or zeroed."""
        n = 0
        if self.type in WALKABLE_TYPES:
            for kb in self._walk(False):
                n += self._delete_raw(kb)
        elif self.type in FD_ARRAY_TYPES:
            for i in range(self.max_entries):
                n += self._delete_raw(i.to_bytes(4, "little"))
        elif self.type in ARRAY_TYPES:
            s = self._use(_UPDATE)
            try:
                for i in range(self.max_entries):
                    s.kmv[:4] = i.to_bytes(4, "little")
                    s.vmv[:self.user_value_size] = bytes(self.user_value_size)
                    try:
                        self._elem(s, _UPDATE, 0)
                    except OSError as e:
                        raise self._fail(e, _UPDATE) from None
                    n += 1
            finally:
                self._leave()
        elif self.type in QUEUE_TYPES:
            s = self._use(_LOOKUP_AND_DELETE)
            try:
                while self._found(s, _LOOKUP_AND_DELETE, 0):
                    n += 1
            finally:
                self._leave()
        else:
            raise TypeError("clear() is not defined for %s maps" % self.type_name)
        return n

    def _delete_raw(self, kb):
        """Delete the key with bytes kb: 1, or 0 when it is gone already."""
        s = self._use(_DELETE)
        try:
            s.kmv[:self.key_size] = kb
            try:
                self._elem(s, _DELETE)
            except OSError as e:
                if e.errno == _ENOENT:
                    return 0
                raise self._fail(e, _DELETE) from None
            return 1
        finally:
            self._leave()

    # -- batch operations ------------------------------------------------------------------
    def _batch_attr(self, count, keys=None, values=None, in_batch=None, out_batch=None, elem_flags=0, flags=0):
        return uapi.make_attr(**{"batch.map_fd": self._fd, "batch.count": count, "batch.keys": _addr(keys),
                                 "batch.values": _addr(values), "batch.in_batch": _addr(in_batch),
                                 "batch.out_batch": _addr(out_batch), "batch.elem_flags": elem_flags,
                                 "batch.flags": flags})

    PAGE = 256  # elements per call of the paged batch walks (batches(), lookup_batch() without a count)

    @issues(U.BPF_MAP_LOOKUP_BATCH)
    def lookup_batch(self, count=None, in_batch=None, elem_flags=0, flags=0, delete=False):
        """BPF_MAP_LOOKUP_BATCH (or LOOKUP_AND_DELETE_BATCH with delete=True): up to ``count``
        elements after the token ``in_batch``. Returns Batch(keys, values, next); ``next`` is
        None once the kernel said ENOENT (the end). Other errnos raise, with ``.count`` set.

        Without ``count``: every element from ``in_batch`` on, fetched in pages of :attr:`PAGE`
        (buffers follow what the map holds, not ``max_entries``); ``next`` is None."""
        if count is None:
            keys, values = [], []
            for page in self._pages(self.PAGE, in_batch, elem_flags, flags, delete):
                keys += page.keys
                values += page.values
            return Batch(keys, values, None)
        cmd = U.BPF_MAP_LOOKUP_AND_DELETE_BATCH if delete else U.BPF_MAP_LOOKUP_BATCH
        return self._batch_once(cmd, count, in_batch, elem_flags, flags)

    def _batch_once(self, cmd, count, in_batch, elem_flags, flags, done_before=0):
        if not (isinstance(count, int) and 0 <= count <= 0xFFFFFFFF):
            raise ValueError("count=%r does not fit bpf_attr's u32 field batch.count" % (count,))
        ks, vs = self.key_size, self.user_value_size
        kbuf, kmv = _buffer(ks * count)
        vbuf, vmv = _buffer(vs * count)
        tok = max(ks, 4)
        inb = ctypes.create_string_buffer(bytes(in_batch), max(tok, len(in_batch))) if in_batch else None
        outb = ctypes.create_string_buffer(tok)
        self._enter(cmd)
        try:
            a = self._batch_attr(count, kbuf, vbuf, inb, outb, elem_flags, flags)
            done = False
            try:
                self._bpf(cmd, a)
            except OSError as e:
                if e.errno != _ENOENT:
                    raise self._fail(e, cmd, done_before + a.batch.count, asked=count) from None
                done = True
        finally:
            self._leave()
        n = a.batch.count
        keys = [self._kunpack(kmv, i * ks) for i in range(n)]
        values = [self._get_value(vmv, i * vs) for i in range(n)]
        return Batch(keys, values, None if done else outb.raw)

    def _pages(self, count, in_batch, elem_flags, flags, delete, done=0):
        cmd = U.BPF_MAP_LOOKUP_AND_DELETE_BATCH if delete else U.BPF_MAP_LOOKUP_BATCH
        if self.max_entries:
            count = max(1, min(count, self.max_entries))
        token = in_batch
        while True:
            try:
                page = self._batch_once(cmd, count, token, elem_flags, flags, done)
            except BpfError as e:
                # ENOSPC: a bucket holds more elements than count; ask again for the same bucket with more
                if e.errno != _errno.ENOSPC or count >= 0xFFFFFFFF // 2:
                    raise
                count *= 2
                continue
            done += len(page.keys)
            yield page
            if page.next is None:
                return
            token = page.next

    @issues(U.BPF_MAP_LOOKUP_BATCH)
    def batches(self, count=PAGE, in_batch=None, elem_flags=0, flags=0, delete=False):
        """Page through the map with batch lookups: yields a Batch per call of up to ``count``
        elements, each continuing where the last stopped, until the end. A bucket larger than
        ``count`` (ENOSPC) is asked for again with a doubled count. ``delete=True`` drains the map
        (LOOKUP_AND_DELETE_BATCH). What cilium/ebpf's BatchLookup cursor and bcc's
        ``items_lookup_batch()`` do."""
        return self._pages(count, in_batch, elem_flags, flags, delete)

    @issues(U.BPF_MAP_LOOKUP_AND_DELETE_BATCH)
    def lookup_and_delete_batch(self, count=None, in_batch=None, elem_flags=0, flags=0):
        return self.lookup_batch(count, in_batch, elem_flags, flags, delete=True)

    def _pack_keys(self, keys):
        ks = self.key_size
        kbuf, kmv = _buffer(ks * len(keys))
        for i, k in enumerate(keys):
            self._put_key(None, k, kmv, i * ks)
        return kbuf

    @issues(U.BPF_MAP_UPDATE_BATCH)
    def update_batch(self, keys, values, elem_flags=0, flags=0):
        """BPF_MAP_UPDATE_BATCH; returns the count done (an error carries it as ``.count``)."""
        keys, values = list(keys), list(values)
        if len(keys) != len(values):
            raise ValueError("%d keys but %d values" % (len(keys), len(values)))
        vs = self.user_value_size
        vbuf, vmv = _buffer(vs * len(values))
        for i, v in enumerate(values):
            self._put_value(v, vmv, i * vs)
        return self._write_batch(U.BPF_MAP_UPDATE_BATCH, keys, vbuf, elem_flags, flags)

    @issues(U.BPF_MAP_DELETE_BATCH)
    def delete_batch(self, keys, elem_flags=0, flags=0):
        """BPF_MAP_DELETE_BATCH; returns the count done (an error carries it as ``.count``)."""
        return self._write_batch(U.BPF_MAP_DELETE_BATCH, list(keys), None, elem_flags, flags)

    def _write_batch(self, cmd, keys, vbuf, elem_flags, flags):
        kbuf = self._pack_keys(keys)
        self._enter(cmd)
        try:
            a = self._batch_attr(len(keys), kbuf, vbuf, elem_flags=elem_flags, flags=flags)
            try:
                self._bpf(cmd, a)
            except OSError as e:
                raise self._fail(e, cmd, a.batch.count, asked=len(keys)) from None
        finally:
            self._leave()
        return a.batch.count

    # -- the map as a whole ------------------------------------------------------------------
    @issues(U.BPF_MAP_FREEZE)
    def freeze(self):
        """BPF_MAP_FREEZE: no more writes from syscalls."""
        self._enter(U.BPF_MAP_FREEZE)
        try:
            self._bpf(U.BPF_MAP_FREEZE, uapi.make_attr(map_fd=self._fd))
        except OSError as e:
            raise self._fail(e, U.BPF_MAP_FREEZE) from None
        finally:
            self._leave()

    @issues(U.BPF_OBJ_PIN)
    def pin(self, path, file_flags=0):
        """BPF_OBJ_PIN at ``path`` (a bpffs path), which becomes :attr:`pin_path`."""
        p = ctypes.create_string_buffer(path.encode() if isinstance(path, str) else path)
        self._enter(U.BPF_OBJ_PIN)
        try:
            self._bpf(U.BPF_OBJ_PIN, uapi.make_attr(pathname=_addr(p), bpf_fd=self._fd, file_flags=file_flags))
        except OSError as e:
            raise self._fail(e, U.BPF_OBJ_PIN) from None
        finally:
            self._leave()
        self.pin_path = path

    def unpin(self):
        """Remove the pin at :attr:`pin_path` (unlink), as cilium/ebpf's ``Map.Unpin``: a pin already gone
        is no error, a Map never pinned does nothing."""
        path = self.pin_path
        if path is None:
            return
        try:
            self.sys.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise make_error(e.errno, "unlink", "pin %r of %s" % (path, self._target), None) from None
        self.pin_path = None

    @property
    def is_pinned(self):
        """True when :attr:`pin_path` (from :meth:`pin` or :meth:`from_pin`) still names this map
        (asked with BPF_OBJ_GET: a pin removed or replaced meanwhile is seen)."""
        path = self.pin_path
        if path is None:
            return False
        p = ctypes.create_string_buffer(path.encode() if isinstance(path, str) else path)
        self._enter(U.BPF_OBJ_GET)
        try:
            try:
                fd = self._bpf(U.BPF_OBJ_GET, uapi.make_attr(pathname=_addr(p)))
            except OSError:
                return False
            try:
                return _get_info(self.sys, fd, self._target).id == self.id
            except OSError:
                return False
            finally:
                self.sys.close(fd)
        finally:
            self._leave()

    # -- BTF ------------------------------------------------------------------------------------
    @property
    def btf(self):
        """The map's BTF as a :class:`bpfemu.btf.Btf` (None when it has none), read back once through
        :meth:`load_btf`."""
        if self._btf is None and self.btf_id:
            self._btf = self.load_btf()
        return self._btf

    @issues(U.BPF_BTF_GET_FD_BY_ID, U.BPF_OBJ_GET_INFO_BY_FD)
    def load_btf(self):
        """The BTF object the map holds (BTF_GET_FD_BY_ID of its btf_id, needs CAP_SYS_ADMIN; the blob
        through OBJ_GET_INFO_BY_FD), parsed; None for a map without BTF."""
        if not self.btf_id:
            return None
        return _fetch_btf(self.sys, self.btf_id, self._target)

    def _raw_elements(self):
        """[(key bytes, value bytes)] in GET_NEXT_KEY order (keys deleted during the walk are left out)."""
        out = []
        for kb in self._walk(False):
            s = self._use(_LOOKUP)
            try:
                s.kmv[:self.key_size] = kb
                if self._found(s, _LOOKUP, 0):
                    out.append((kb, bytes(s.vmv[:self.user_value_size])))
            finally:
                self._leave()
        return out

    @issues(_NEXT, _LOOKUP, U.BPF_BTF_GET_FD_BY_ID, U.BPF_OBJ_GET_INFO_BY_FD)
    def dump(self):
        """What ``bpftool map dump`` prints for this map (bpftool v7.1): each element by its BTF types when
        the map has BTF, else in hex, in GET_NEXT_KEY order (see :mod:`bpfemu.btf.dump`)."""
        btf = self.btf
        return btf_dump.map_dump(self._raw_elements(), self.key_size, self.value_size, self.percpu, self.ncpus,
                                 btf, self.btf_key_type_id, self.btf_value_type_id,
                                 of_maps=self.type in (U.BPF_MAP_TYPE_ARRAY_OF_MAPS, U.BPF_MAP_TYPE_HASH_OF_MAPS))

    @issues(_NEXT, _LOOKUP, U.BPF_BTF_GET_FD_BY_ID, U.BPF_OBJ_GET_INFO_BY_FD)
    def typed_items(self):
        """[(key, value)] decoded by the map's BTF types (dicts for structs, see
        :func:`bpfemu.btf.dump.to_python`); raw bytes for a side without a type."""
        btf = self.btf
        out = []
        for kb, vb in self._raw_elements():
            k = btf_dump.to_python(btf, self.btf_key_type_id, kb) if btf and self.btf_key_type_id else kb
            if btf and self.btf_value_type_id:
                if self.percpu:
                    v = [btf_dump.to_python(btf, self.btf_value_type_id, vb[i * self._stride:])
                         for i in range(self.ncpus)]
                else:
                    v = btf_dump.to_python(btf, self.btf_value_type_id, vb)
            else:
                v = vb
            out.append((k, v))
        return out

    @issues(U.BPF_OBJ_GET_INFO_BY_FD)
    def info(self):
        """BPF_OBJ_GET_INFO_BY_FD as a MapInfo."""
        self._enter(U.BPF_OBJ_GET_INFO_BY_FD)
        try:
            return _get_info(self.sys, self._fd, self._target)
        finally:
            self._leave()

    def __repr__(self):
        return "<Map %s fd %d key %dB value %dB max_entries %d%s>" % (
            self._target, self._fd, self.key_size, self.value_size, self.max_entries,
            " closed" if self._closed else "")
