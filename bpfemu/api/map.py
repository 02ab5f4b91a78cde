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

Each Map keeps its buffers and attrs preallocated, so an element operation
costs the syscall plus packing the key and value in place.
"""
import ctypes
import errno as _errno

from .. import uapi
from ..host.sysinfo import host_possible_cpus
from .codecs import codec
from .errors import _DELETE, _ENOENT, _LOOKUP, _LOOKUP_AND_DELETE, _NEXT, _UPDATE, BpfError, detail_for, make_error
from .errors import reraise as _reraise

__all__ = ["Map", "MapInfo", "Batch", "map_type_number", "issues"]

U = uapi

PERCPU_TYPES = U.PERCPU_MAP_TYPES
FD_TYPES = U.FD_MAP_TYPES
# every index below max_entries always exists: len() is max_entries
ARRAY_TYPES = frozenset((U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_PERCPU_ARRAY, U.BPF_MAP_TYPE_PROG_ARRAY,
                         U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, U.BPF_MAP_TYPE_CGROUP_ARRAY,
                         U.BPF_MAP_TYPE_ARRAY_OF_MAPS))
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


class Batch(tuple):
    """Result of a lookup batch: ``keys``, ``values`` and ``next`` (the token to continue, None at the end)."""

    __slots__ = ()

    def __new__(cls, keys, values, next):
        return tuple.__new__(cls, (keys, values, next))

    keys = property(lambda self: self[0])
    values = property(lambda self: self[1])
    next = property(lambda self: self[2])

    def items(self):
        return list(zip(self[0], self[1]))


# -- the map -----------------------------------------------------------------------------

class Map:
    """An open map fd on a backend task ``sys`` (anything with ``bpf()`` and ``close()``).

    Build one with :meth:`create`, :meth:`from_fd`, :meth:`from_id` or
    :meth:`from_pin`; the Map owns its fd (:meth:`close`, or use ``with``).
    ``key``/``value`` choose the Python types of keys and values.
    """

    def __init__(self, sys, fd, key=None, value=None, info=None):
        self.sys = sys
        self.fd = fd
        if info is None:
            info = _get_info(sys, fd, "map fd %d" % fd)
        self.type = info.type
        self.id = info.id
        self.key_size = info.key_size
        self.value_size = info.value_size
        self.max_entries = info.max_entries
        self.flags = info.map_flags
        self.name = info.name
        self.type_name = uapi.map_type_name(self.type)
        self.percpu = self.type in PERCPU_TYPES
        self.ncpus = _ncpus(sys) if self.percpu else 1
        if value is None and self.type in FD_TYPES:
            value = "I"  # an fd in, an id out
        self._fd_values = self.type in FD_TYPES
        self.key_codec = kc = codec(key, self.key_size)
        self.value_codec = vc = codec(value, self.value_size)
        if self.key_size and kc.size != self.key_size:
            raise ValueError("key type %r is %d bytes, the map's keys are %d" % (key, kc.size, self.key_size))
        if vc.size != self.value_size and self.value_size:
            raise ValueError("value type %r is %d bytes, the map's values are %d"
                             % (value, vc.size, self.value_size))
        self._stride = (self.value_size + 7) // 8 * 8 if self.percpu else self.value_size
        self.user_value_size = self._stride * self.ncpus
        # preallocated buffers and attrs: the element operations only pack and call
        self._k, self._kmv = _buffer(self.key_size)
        self._v, self._vmv = _buffer(self.user_value_size)
        kaddr = _addr(self._k) if self.key_size else 0
        self._a_kv = uapi.make_attr(map_fd=fd, key=kaddr, value=_addr(self._v))
        self._a_k = uapi.make_attr(map_fd=fd, key=kaddr)
        self._bpf = sys.bpf
        self._kpack = kc.pack
        self._kunpack = kc.unpack
        self._vpack1 = vc.pack
        self._vunpack1 = vc.unpack
        self._target = "%s map %s(id %d)" % (self.type_name, "'%s' " % self.name if self.name else "", self.id)
        self.closed = False

    # -- constructors ----------------------------------------------------------
    @classmethod
    @issues(U.BPF_MAP_CREATE, U.BPF_OBJ_GET_INFO_BY_FD)
    def create(cls, sys, type, key_size=None, value_size=None, max_entries=0, flags=0, name=None,
               inner_map=None, numa_node=None, map_extra=0, key=None, value=None, **attr_fields):
        """BPF_MAP_CREATE. ``type`` is a uapi number or a name ('hash'); sizes default to the
        sizes of the ``key``/``value`` types; ``inner_map`` is a Map or an fd (map-in-map);
        ``numa_node`` sets BPF_F_NUMA_NODE too; other attr fields pass through."""
        t = map_type_number(type)
        if key_size is None:
            key_size = codec(key).size if key is not None else 0
        if value_size is None:
            value_size = codec(value).size if value is not None else (4 if t in FD_TYPES else 0)
        if numa_node is not None:
            flags |= U.BPF_F_NUMA_NODE
            attr_fields["numa_node"] = numa_node
        if inner_map is not None:
            attr_fields["inner_map_fd"] = inner_map.fd if isinstance(inner_map, Map) else inner_map
        a = uapi.make_attr(map_type=t, key_size=key_size, value_size=value_size, max_entries=max_entries,
                           map_flags=flags, map_extra=map_extra, **attr_fields)
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
        """Wrap an open map fd of ``sys`` (the Map takes it over: close() closes it)."""
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
        """BPF_OBJ_GET: a new fd on the map pinned at ``path``."""
        p = ctypes.create_string_buffer(path.encode() if isinstance(path, str) else path)
        try:
            fd = sys.bpf(U.BPF_OBJ_GET, uapi.make_attr(pathname=_addr(p), file_flags=file_flags))
        except OSError as e:
            raise _reraise(e, U.BPF_OBJ_GET, "pin %r" % (path,)) from None
        return cls._adopt(sys, fd, key, value)

    # -- plumbing ------------------------------------------------------------------
    def _fail(self, e, cmd, count=None):
        return _reraise(e, cmd, self._target, count)

    def _put_key(self, key):
        if self.key_size:
            self._kpack(self._kmv, 0, key)
        elif key is not None:
            raise TypeError("%s maps have no keys" % self.type_name)

    def _put_value(self, value, buf=None, off=0):
        mv = self._vmv if buf is None else buf
        if self._fd_values and isinstance(value, Map):
            value = value.fd
        if not self.percpu:
            self._vpack1(mv, off, value)
            return
        stride, n = self._stride, self.ncpus
        mv[off:off + stride * n] = bytes(stride * n)
        if isinstance(value, list):
            if len(value) != n:
                raise ValueError("a per-CPU value is a list of %d values, got %d" % (n, len(value)))
            for i, v in enumerate(value):
                self._vpack1(mv, off + i * stride, v)
        else:
            for i in range(n):
                self._vpack1(mv, off + i * stride, value)

    def _get_value(self, buf=None, off=0):
        mv = self._vmv if buf is None else buf
        if not self.percpu:
            return self._vunpack1(mv, off)
        stride, unpack = self._stride, self._vunpack1
        return [unpack(mv, off + i * stride) for i in range(self.ncpus)]

    def _lookup(self, key, flags, cmd=_LOOKUP):
        """True and the value in the buffer, or False on ENOENT; other errnos raise."""
        self._put_key(key)
        return self._found(cmd, flags)

    def _found(self, cmd, flags):
        a = self._a_kv
        a.flags = flags
        try:
            self._bpf(cmd, a)
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
        if not self._lookup(key, flags):
            raise self._missing(_LOOKUP)
        return self._get_value()

    @issues(_LOOKUP)
    def get(self, key, default=None):
        return self._get_value() if self._lookup(key, 0) else default

    @issues(_UPDATE)
    def update(self, key, value, flags=0):
        """BPF_MAP_UPDATE_ELEM with BPF_ANY (0), BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK."""
        self._put_key(key)
        self._put_value(value)
        a = self._a_kv
        a.flags = flags
        try:
            self._bpf(_UPDATE, a)
        except OSError as e:
            raise self._fail(e, _UPDATE) from None

    @issues(_DELETE)
    def delete(self, key):
        """BPF_MAP_DELETE_ELEM."""
        self._put_key(key)
        try:
            self._bpf(_DELETE, self._a_k)
        except OSError as e:
            raise self._fail(e, _DELETE) from None

    @issues(_LOOKUP_AND_DELETE)
    def lookup_and_delete(self, key=None, flags=0):
        """BPF_MAP_LOOKUP_AND_DELETE_ELEM: the value, and the element is gone."""
        if not self._lookup(key, flags, _LOOKUP_AND_DELETE):
            raise self._missing(_LOOKUP_AND_DELETE)
        return self._get_value()

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

    # -- mapping protocol ----------------------------------------------------------------
    @issues(_LOOKUP)
    def __getitem__(self, key):
        if not self._lookup(key, 0):
            raise KeyError(key)
        return self._get_value()

    @issues(_UPDATE)
    def __setitem__(self, key, value):
        self.update(key, value)

    @issues(_DELETE)
    def __delitem__(self, key):
        self._put_key(key)
        try:
            self._bpf(_DELETE, self._a_k)
        except OSError as e:
            if e.errno == _ENOENT:
                raise KeyError(key) from None
            raise self._fail(e, _DELETE) from None

    @issues(_LOOKUP)
    def __contains__(self, key):
        return self._lookup(key, 0)

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
        """(key, value) pairs; keys deleted meanwhile are skipped."""
        for kb in self._walk(False):
            if self._lookup_raw(kb):
                yield self._kunpack(kb, 0), self._get_value()

    @issues(_NEXT, _LOOKUP)
    def values(self):
        for _k, v in self.items():
            yield v

    def _lookup_raw(self, kb):
        self._kmv[:self.key_size] = kb
        return self._found(_LOOKUP, 0)

    def _walk(self, decode):
        ks = self.key_size
        cur = ctypes.create_string_buffer(max(ks, 1))
        nxt = ctypes.create_string_buffer(max(ks, 1))
        a = uapi.make_attr(map_fd=self.fd, key=0, next_key=ctypes.addressof(nxt))
        bpf, unpack = self._bpf, self._kunpack

        def step():
            try:
                bpf(_NEXT, a)
            except OSError as e:
                if e.errno == _ENOENT:
                    return False
                raise self._fail(e, _NEXT) from None
            return True

        more = step()
        a.key = ctypes.addressof(cur)
        while more:
            kb = nxt.raw[:ks]
            ctypes.memmove(cur, nxt, ks)
            more = step()  # before the caller sees (and maybe deletes) kb
            yield unpack(kb, 0) if decode else kb

    # -- batch operations ------------------------------------------------------------------
    def _batch_attr(self, count, keys=None, values=None, in_batch=None, out_batch=None, elem_flags=0, flags=0):
        return uapi.make_attr(**{"batch.map_fd": self.fd, "batch.count": count, "batch.keys": _addr(keys),
                                 "batch.values": _addr(values), "batch.in_batch": _addr(in_batch),
                                 "batch.out_batch": _addr(out_batch), "batch.elem_flags": elem_flags,
                                 "batch.flags": flags})

    @issues(U.BPF_MAP_LOOKUP_BATCH)
    def lookup_batch(self, count=None, in_batch=None, elem_flags=0, flags=0, delete=False):
        """BPF_MAP_LOOKUP_BATCH (or LOOKUP_AND_DELETE_BATCH with delete=True): up to ``count``
        elements after the token ``in_batch``. Returns Batch(keys, values, next); ``next`` is
        None once the kernel said ENOENT (the end). Other errnos raise, with ``.count`` set."""
        cmd = U.BPF_MAP_LOOKUP_AND_DELETE_BATCH if delete else U.BPF_MAP_LOOKUP_BATCH
        count = self.max_entries if count is None else count
        ks, vs = self.key_size, self.user_value_size
        kbuf, kmv = _buffer(ks * count)
        vbuf, vmv = _buffer(vs * count)
        tok = max(ks, 4)
        inb = ctypes.create_string_buffer(bytes(in_batch), max(tok, len(in_batch))) if in_batch else None
        outb = ctypes.create_string_buffer(tok)
        a = self._batch_attr(count, kbuf, vbuf, inb, outb, elem_flags, flags)
        done = False
        try:
            self._bpf(cmd, a)
        except OSError as e:
            if e.errno != _ENOENT:
                raise self._fail(e, cmd, a.batch.count) from None
            done = True
        n = a.batch.count
        keys = [self._kunpack(kmv, i * ks) for i in range(n)]
        values = [self._get_value(vmv, i * vs) for i in range(n)]
        return Batch(keys, values, None if done else outb.raw)

    @issues(U.BPF_MAP_LOOKUP_AND_DELETE_BATCH)
    def lookup_and_delete_batch(self, count=None, in_batch=None, elem_flags=0, flags=0):
        return self.lookup_batch(count, in_batch, elem_flags, flags, delete=True)

    def _pack_keys(self, keys):
        ks = self.key_size
        kbuf, kmv = _buffer(ks * len(keys))
        for i, k in enumerate(keys):
            self._kpack(kmv, i * ks, k)
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
        a = self._batch_attr(len(keys), kbuf, vbuf, elem_flags=elem_flags, flags=flags)
        try:
            self._bpf(cmd, a)
        except OSError as e:
            raise self._fail(e, cmd, a.batch.count) from None
        return a.batch.count

    # -- the map as a whole ------------------------------------------------------------------
    @issues(U.BPF_MAP_FREEZE)
    def freeze(self):
        """BPF_MAP_FREEZE: no more writes from syscalls."""
        try:
            self._bpf(U.BPF_MAP_FREEZE, uapi.make_attr(map_fd=self.fd))
        except OSError as e:
            raise self._fail(e, U.BPF_MAP_FREEZE) from None

    @issues(U.BPF_OBJ_PIN)
    def pin(self, path, file_flags=0):
        """BPF_OBJ_PIN at ``path`` (a bpffs path)."""
        p = ctypes.create_string_buffer(path.encode() if isinstance(path, str) else path)
        try:
            self._bpf(U.BPF_OBJ_PIN, uapi.make_attr(pathname=_addr(p), bpf_fd=self.fd, file_flags=file_flags))
        except OSError as e:
            raise self._fail(e, U.BPF_OBJ_PIN) from None

    @issues(U.BPF_OBJ_GET_INFO_BY_FD)
    def info(self):
        """BPF_OBJ_GET_INFO_BY_FD as a MapInfo."""
        return _get_info(self.sys, self.fd, self._target)

    def close(self):
        """Close the fd (again is a no-op)."""
        if not self.closed:
            self.closed = True
            self.sys.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<Map %s fd %d key %dB value %dB max_entries %d%s>" % (
            self._target, self.fd, self.key_size, self.value_size, self.max_entries,
            " closed" if self.closed else "")
