"""The side-by-side operations: the same code on the emulator and on the host.

Every operation is a small class: ``setup(sys, n)`` builds what it needs once
per backend (untimed), ``prepare()`` resets state before each repetition
(untimed), ``run()`` performs ``n`` operations (timed), ``teardown()`` closes
what it opened. ``sys`` is anything with the raw ``bpf(cmd, attr)`` entry:
a :class:`bpfemu.Task` or :class:`bpfemu.Host`.
"""
import ctypes
import errno
import os

import bpfemu
from bpfemu import uapi
from bpfemu.host.sysinfo import host_possible_cpus
from bpfemu.maps.bpf_types import MAP_TYPES

U = uapi
CREATE, LOOKUP, UPDATE, DELETE = U.BPF_MAP_CREATE, U.BPF_MAP_LOOKUP_ELEM, U.BPF_MAP_UPDATE_ELEM, U.BPF_MAP_DELETE_ELEM
NEXT_KEY, LOOKUP_AND_DELETE = U.BPF_MAP_GET_NEXT_KEY, U.BPF_MAP_LOOKUP_AND_DELETE_ELEM


def addr(c):
    return ctypes.addressof(c)


def create_map(sys, map_type, key_size, value_size, max_entries, flags=0):
    a = U.make_attr(map_type=map_type, key_size=key_size, value_size=value_size, max_entries=max_entries,
                    map_flags=flags)
    return sys.bpf(CREATE, a)


def ncpus(sys):
    if isinstance(sys, bpfemu.Task):
        return sys.kernel.ncpus
    return host_possible_cpus() or 1


def fill(sys, fd, keys, values, n, ks, vs):
    """Store n elements (keys/values are ctypes arrays) with UPDATE_BATCH in chunks of 64k."""
    chunk = 1 << 16
    done = 0
    while done < n:
        c = min(chunk, n - done)
        a = U.make_attr(**{"batch.map_fd": fd, "batch.keys": addr(keys) + done * ks,
                           "batch.values": addr(values) + done * vs, "batch.count": c})
        sys.bpf(U.BPF_MAP_UPDATE_BATCH, a)
        done += c


def u32_array(n, start=0):
    return (ctypes.c_uint32 * n)(*range(start, start + n))


class Op:
    """One benchmarked operation; ``n`` operations per repetition."""

    name = "?"
    unit = "op"
    needs = ()  # map types that must exist in the emulator

    def __init__(self, n):
        self.n = n
        self.fds = []

    @classmethod
    def available(cls):
        return all(t in MAP_TYPES for t in cls.needs)

    def setup(self, sys):
        self.sys = sys

    def prepare(self):
        pass

    def run(self):
        raise NotImplementedError

    def count(self):
        """How many operations the last run() did (the divisor of its time)."""
        return self.n

    def teardown(self):
        for fd in self.fds:
            try:
                self.sys.close(fd)
            except OSError:
                pass
        self.fds = []

    def map(self, *args, **kw):
        fd = create_map(self.sys, *args, **kw)
        self.fds.append(fd)
        return fd


class _Elem(Op):
    """Element ops on a map holding n u32 keys 0..n-1 with u64 values."""

    map_type = U.BPF_MAP_TYPE_HASH
    vs = 8

    def setup(self, sys):
        super().setup(sys)
        n = self.n
        self.vs_user = self.vs * (ncpus(sys) if self.map_type in (U.BPF_MAP_TYPE_PERCPU_HASH,
                                                                   U.BPF_MAP_TYPE_PERCPU_ARRAY) else 1)
        self.fd = self.map(self.map_type, 4, self.vs, n)
        self.keys = u32_array(n)
        self.values = (ctypes.c_char * (self.vs_user * n))()
        self.attr = U.make_attr(map_fd=self.fd, value=addr(self.values))
        self.filled = False

    def fill(self):
        fill(self.sys, self.fd, self.keys, self.values, self.n, 4, self.vs_user)

    def prepare(self):
        if not self.filled:
            self.fill()
            self.filled = True

    def loop(self, cmd):
        bpf, a, base = self.sys.bpf, self.attr, addr(self.keys)
        for i in range(self.n):
            a.key = base + 4 * i
            bpf(cmd, a)


class HashUpdate(_Elem):
    name = "hash update (existing key)"

    def run(self):
        self.loop(UPDATE)


class HashLookup(_Elem):
    name = "hash lookup"

    def run(self):
        self.loop(LOOKUP)


class HashDelete(_Elem):
    name = "hash delete"

    def prepare(self):
        self.fill()  # every repetition deletes everything
        self.attr = U.make_attr(map_fd=self.fd)  # DELETE_ELEM reads no value: the field must be zero

    def run(self):
        self.loop(DELETE)


class ArrayUpdate(_Elem):
    name = "array update"
    map_type = U.BPF_MAP_TYPE_ARRAY

    def run(self):
        self.loop(UPDATE)


class ArrayLookup(_Elem):
    name = "array lookup"
    map_type = U.BPF_MAP_TYPE_ARRAY

    def run(self):
        self.loop(LOOKUP)


class PercpuHashLookup(_Elem):
    name = "percpu_hash lookup"
    map_type = U.BPF_MAP_TYPE_PERCPU_HASH

    def run(self):
        self.loop(LOOKUP)


class PercpuArrayLookup(_Elem):
    name = "percpu_array lookup"
    map_type = U.BPF_MAP_TYPE_PERCPU_ARRAY

    def run(self):
        self.loop(LOOKUP)


class NextKeyWalk(_Elem):
    name = "hash GET_NEXT_KEY walk (per step)"

    def run(self):
        key = ctypes.c_uint32()
        a = U.make_attr(map_fd=self.fd, key=0, next_key=addr(key))
        bpf = self.sys.bpf
        bpf(NEXT_KEY, a)
        a.key = addr(key)
        steps = 1
        try:
            while True:
                bpf(NEXT_KEY, a)
                steps += 1
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
        assert steps == self.n, (steps, self.n)


class _Queue(Op):
    needs = (U.BPF_MAP_TYPE_QUEUE,)

    def setup(self, sys):
        super().setup(sys)
        self.fd = self.map(U.BPF_MAP_TYPE_QUEUE, 0, 8, self.n)
        self.v = ctypes.c_uint64(7)
        self.attr = U.make_attr(map_fd=self.fd, value=addr(self.v))

    def push_all(self):
        bpf, a = self.sys.bpf, self.attr
        for _ in range(self.n):
            bpf(UPDATE, a)

    def pop_all(self):
        bpf, a = self.sys.bpf, self.attr
        for _ in range(self.n):
            bpf(LOOKUP_AND_DELETE, a)


class QueuePush(_Queue):
    name = "queue push"

    def prepare(self):
        try:
            self.pop_all()
        except OSError:
            pass

    def run(self):
        self.push_all()


class QueuePop(_Queue):
    name = "queue pop"

    def prepare(self):
        self.push_all()

    def run(self):
        self.pop_all()


class LpmLookup(Op):
    """LPM trie with n /24 and /32 prefixes of 10.x.y.z; lookups of addresses inside them."""

    name = "lpm_trie lookup"
    needs = (U.BPF_MAP_TYPE_LPM_TRIE,)

    def setup(self, sys):
        super().setup(sys)
        n = self.n
        self.fd = self.map(U.BPF_MAP_TYPE_LPM_TRIE, 8, 8, n, flags=U.BPF_F_NO_PREALLOC)
        keys = (ctypes.c_uint8 * (8 * n))()
        self.lookups = (ctypes.c_uint8 * (8 * n))()
        for i in range(n):
            ip = (10 << 24) | (i << 4)
            plen = 28 if i % 2 else 32
            keys[8 * i:8 * i + 8] = list(plen.to_bytes(4, "little") + ip.to_bytes(4, "big"))
            self.lookups[8 * i:8 * i + 8] = list((32).to_bytes(4, "little") + (ip | (i % 2)).to_bytes(4, "big"))
        v = ctypes.c_uint64(1)
        a = U.make_attr(map_fd=self.fd, value=addr(v))
        for i in range(n):
            a.key = addr(keys) + 8 * i
            sys.bpf(UPDATE, a)
        self.v = ctypes.c_uint64()
        self.attr = U.make_attr(map_fd=self.fd, value=addr(self.v))

    def run(self):
        bpf, a, base = self.sys.bpf, self.attr, addr(self.lookups)
        for i in range(self.n):
            a.key = base + 8 * i
            bpf(LOOKUP, a)


class _Batch(Op):
    """One batch command over n elements of a hash map (u32 keys, u64 values); ns per element."""

    unit = "elem"
    cmd = None
    filled = True  # whether the map must hold the n elements before the command

    def setup(self, sys):
        super().setup(sys)
        n = self.n
        self.fd = self.map(U.BPF_MAP_TYPE_HASH, 4, 8, n)
        self.keys = u32_array(n)
        self.values = (ctypes.c_uint64 * n)(*range(n))
        self.okeys = (ctypes.c_uint32 * n)()
        self.ovalues = (ctypes.c_uint64 * n)()
        self.out_batch = ctypes.c_uint32()

    def prepare(self):
        if self.filled:
            fill(self.sys, self.fd, self.keys, self.values, self.n, 4, 8)
        else:
            self.clear()

    def clear(self):
        a = U.make_attr(**{"batch.map_fd": self.fd, "batch.keys": addr(self.keys), "batch.count": self.n})
        try:
            self.sys.bpf(U.BPF_MAP_DELETE_BATCH, a)
        except OSError:
            pass

    def run(self):
        a = U.make_attr(**{"batch.map_fd": self.fd, "batch.count": self.n, "batch.out_batch": addr(self.out_batch)})
        if self.cmd in (U.BPF_MAP_LOOKUP_BATCH, U.BPF_MAP_LOOKUP_AND_DELETE_BATCH):
            a.batch.keys, a.batch.values = addr(self.okeys), addr(self.ovalues)
        else:
            a.batch.keys, a.batch.values = addr(self.keys), addr(self.values)
        try:
            self.sys.bpf(self.cmd, a)
        except OSError as e:
            # a lookup batch that reaches the end of the table says ENOENT with the count written
            if e.errno != errno.ENOENT:
                raise
        assert a.batch.count == self.n, (self.name, a.batch.count, self.n)


class BatchUpdate(_Batch):
    name = "UPDATE_BATCH (new keys)"
    cmd = U.BPF_MAP_UPDATE_BATCH
    filled = False


class BatchLookup(_Batch):
    name = "LOOKUP_BATCH"
    cmd = U.BPF_MAP_LOOKUP_BATCH


class BatchLookupAndDelete(_Batch):
    name = "LOOKUP_AND_DELETE_BATCH"
    cmd = U.BPF_MAP_LOOKUP_AND_DELETE_BATCH


class BatchDelete(_Batch):
    name = "DELETE_BATCH"
    cmd = U.BPF_MAP_DELETE_BATCH


class _ChunkedDump(_Batch):
    """A dump of the whole map in chunks of ``chunk`` elements, out_batch passed back as in_batch, as
    libbpf's bpf_map_lookup_batch loop and cilium/ebpf's BatchLookup do (ENOSPC, a bucket larger than the
    chunk's room, never comes here: chunks are >= 1000 and buckets hold a few elements)."""

    chunk = 1000

    def run(self):
        a = U.make_attr(**{"batch.map_fd": self.fd, "batch.keys": addr(self.okeys),
                           "batch.values": addr(self.ovalues), "batch.out_batch": addr(self.out_batch)})
        bpf, cmd, chunk, n = self.sys.bpf, self.cmd, self.chunk, self.n
        done = 0
        ks, vs = 4, 8
        kbase, vbase = addr(self.okeys), addr(self.ovalues)
        while True:
            a.batch.count = chunk
            a.batch.keys, a.batch.values = kbase + done * ks, vbase + done * vs
            try:
                bpf(cmd, a)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
                done += a.batch.count
                break
            done += a.batch.count
            a.batch.in_batch = addr(self.out_batch)
        assert done == n, (self.name, done, n)


class ChunkedLookup1000(_ChunkedDump):
    name = "LOOKUP_BATCH in chunks of 1000"
    cmd = U.BPF_MAP_LOOKUP_BATCH


class ChunkedLookup4096(_ChunkedDump):
    name = "LOOKUP_BATCH in chunks of 4096"
    cmd = U.BPF_MAP_LOOKUP_BATCH
    chunk = 4096


class ChunkedLookupAndDelete1000(_ChunkedDump):
    name = "LOOKUP_AND_DELETE_BATCH in chunks of 1000"
    cmd = U.BPF_MAP_LOOKUP_AND_DELETE_BATCH


class ChunkedLookupAndDelete4096(_ChunkedDump):
    name = "LOOKUP_AND_DELETE_BATCH in chunks of 4096"
    cmd = U.BPF_MAP_LOOKUP_AND_DELETE_BATCH
    chunk = 4096


class MapCreate(Op):
    """MAP_CREATE + close of a small hash map (64 entries)."""

    name = "MAP_CREATE+close (hash, 64 entries)"

    def run(self):
        bpf, close = self.sys.bpf, self.sys.close
        a = U.make_attr(map_type=U.BPF_MAP_TYPE_HASH, key_size=4, value_size=8, max_entries=64)
        for _ in range(self.n):
            close(bpf(CREATE, a))


class _Pin(Op):
    def setup(self, sys):
        super().setup(sys)
        self.dir = getattr(sys, "bpffs", None) or "/sys/fs/bpf"
        self.fd = self.map(U.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
        self.paths = [ctypes.create_string_buffer(os.path.join(self.dir, "bench%d" % i).encode())
                      for i in range(self.n)]
        self.pinned = set()

    def unpin(self):
        for i in sorted(self.pinned):
            self.sys.unlink(self.paths[i].value.decode())
        self.pinned.clear()

    def pin_all(self):
        a = U.make_attr(bpf_fd=self.fd)
        for i, p in enumerate(self.paths):
            a.pathname = addr(p)
            self.sys.bpf(U.BPF_OBJ_PIN, a)
            self.pinned.add(i)

    def teardown(self):
        self.unpin()
        super().teardown()


class ObjPin(_Pin):
    name = "OBJ_PIN (map)"

    def prepare(self):
        self.unpin()

    def run(self):
        self.pin_all()


class ObjGet(_Pin):
    name = "OBJ_GET+close"

    def prepare(self):
        if not self.pinned:
            self.pin_all()

    def run(self):
        bpf, close = self.sys.bpf, self.sys.close
        a = U.make_attr()
        for p in self.paths:
            a.pathname = addr(p)
            close(bpf(U.BPF_OBJ_GET, a))


class NextIdWalk(Op):
    """MAP_GET_NEXT_ID from 0 to the end with n maps of ours alive (the host may hold more)."""

    name = "MAP_GET_NEXT_ID walk (per step)"

    def setup(self, sys):
        super().setup(sys)
        for _ in range(self.n):
            self.map(U.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
        self.steps = 0

    def run(self):
        a = U.make_attr(start_id=0)
        bpf = self.sys.bpf
        steps = 0
        try:
            while True:
                bpf(U.BPF_MAP_GET_NEXT_ID, a)
                a.start_id = a.next_id
                steps += 1
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
        assert steps >= self.n
        self.steps = steps

    def count(self):
        return self.steps or self.n


# -- the high-level API (bpfemu.Map) -------------------------------------------------

def api_available():
    return hasattr(bpfemu, "Map")


class _Api(Op):
    map_kind = "hash"

    @classmethod
    def available(cls):
        return api_available()

    def setup(self, sys):
        super().setup(sys)
        self.m = bpfemu.Map.create(sys, self.map_kind, key="I", value="Q", max_entries=self.n)
        m = self.m
        for i in range(self.n):
            m[i] = i

    def teardown(self):
        self.m.close()


class ApiHashUpdate(_Api):
    name = "api: Map hash m[k] = v"

    def run(self):
        m = self.m
        for i in range(self.n):
            m[i] = i


class ApiHashLookup(_Api):
    name = "api: Map hash m[k]"

    def run(self):
        m = self.m
        for i in range(self.n):
            m[i]


class ApiArrayLookup(_Api):
    name = "api: Map array m[k]"
    map_kind = "array"

    def run(self):
        m = self.m
        for i in range(self.n):
            m[i]


class ApiArrayUpdate(_Api):
    name = "api: Map array m[k] = v"
    map_kind = "array"

    def run(self):
        m = self.m
        for i in range(self.n):
            m[i] = i


# (class, n for a full run, n for --smoke)
OPS = [
    (HashUpdate, 10000, 100), (HashLookup, 10000, 100), (HashDelete, 10000, 100),
    (ArrayUpdate, 10000, 100), (ArrayLookup, 10000, 100),
    (NextKeyWalk, 10000, 100), (PercpuHashLookup, 10000, 100), (PercpuArrayLookup, 10000, 100),
    (QueuePush, 10000, 100), (QueuePop, 10000, 100), (LpmLookup, 10000, 100),
    (BatchUpdate, 100000, 500), (BatchLookup, 100000, 500), (BatchLookupAndDelete, 100000, 500),
    (BatchDelete, 100000, 500), (ChunkedLookup1000, 100000, 5000), (ChunkedLookup4096, 100000, 10000),
    (ChunkedLookupAndDelete1000, 100000, 5000), (ChunkedLookupAndDelete4096, 100000, 10000),
    (MapCreate, 1000, 20), (ObjPin, 1000, 20), (ObjGet, 1000, 20), (NextIdWalk, 1000, 20),
    (ApiHashUpdate, 10000, 100), (ApiHashLookup, 10000, 100), (ApiArrayUpdate, 10000, 100),
    (ApiArrayLookup, 10000, 100),
]
