"""Maps whose values are kernel objects, or that userspace barely touches.

One class per kernel file, each named after it:

- fd arrays (kernel/bpf/arraymap.c): PROG_ARRAY, PERF_EVENT_ARRAY, CGROUP_ARRAY;
- stackmap.c: STACK_TRACE;
- ringbuf.c: RINGBUF, USER_RINGBUF;
- local_storage.c: CGROUP_STORAGE, PERCPU_CGROUP_STORAGE;
- bpf_local_storage.c: SK/INODE/TASK/CGRP_STORAGE (they need BTF, which the
  emulator does not load, so their creation stops at the btf_fd lookup);
- devmap.c: DEVMAP, DEVMAP_HASH; cpumap.c: CPUMAP; xskmap.c: XSKMAP;
- sock_map.c: SOCKMAP, SOCKHASH; reuseport_array.c: REUSEPORT_SOCKARRAY;
- bpf_struct_ops.c: STRUCT_OPS; arena.c: ARENA.

Creation checks what the kernel checks, in its order. Checks that the kernel
makes in ``map_alloc`` (not ``map_alloc_check``) run after map_create's
privilege checks, so they live in the constructor here too.

The emulator has no programs, sockets, perf events, cgroups, pidfds or XDP
sockets. An update that must turn a user fd into one of those fails the way
the kernel fails for an fd of the wrong kind (EBADF when it is not open; for
an open fd: EINVAL for a prog, ENOTSOCK for a socket, EBADF for a perf event
or a cgroup). The only network device is the loopback, ifindex 1.
"""
import errno
import struct

from . import uapi
from .arraymap import array_map_alloc_check
from .bpf_map import BPF_F_ACCESS_MASK, PCPU_MIN_UNIT_SIZE, BpfMap, map_flags_access_ok, map_type, roundup_pow_of_two
from .errors import ENOTSUPP, bpf_error

PAGE_SIZE = 4096
NR_CPUS = 8192  # CONFIG_NR_CPUS of the host kernel (cpumap's limit)
PERF_EVENT_MAX_STACK = 127  # kernel.perf_event_max_stack default
U16_MAX = 0xFFFF
# BPF_LOCAL_STORAGE_MAX_VALUE_SIZE: U16_MAX less the rounded-up local storage element header
LOCAL_STORAGE_MAX_VALUE_SIZE = U16_MAX - 96
MAX_BPF_STACK = 512
LOOPBACK_IFINDEX = 1
S32_MAX = 2**31 - 1

F = uapi
ACCESS = F.BPF_F_RDONLY | F.BPF_F_WRONLY


def _u32(b):
    return struct.unpack_from("<I", b)[0]


def _i32(b):
    return struct.unpack_from("<i", b)[0]


def fd_of_kind(task, fd, kind, wrong):
    """Resolve a user-supplied fd to an object of ``kind``; none is modeled, so this always fails."""
    f = task.fdget(fd if 0 <= fd <= S32_MAX else -1)
    if f.kind != kind:
        raise bpf_error(wrong, "fd %d is not a %s" % (fd, kind))
    raise bpf_error(wrong, "%s objects are not modeled" % kind)  # pragma: no cover


def prog_fd(task, fd):
    return fd_of_kind(task, fd, "prog", errno.EINVAL)


def socket_fd(task, fd):
    return fd_of_kind(task, fd, "socket", errno.ENOTSOCK)


class ObjMap(BpfMap):
    """An object map: no batch operations, nothing deletable by default."""

    lookup_batch = update_batch = delete_batch = lookup_and_delete_batch = None
    base_size = 0  # the kernel struct behind the map, for mem_usage

    def __init__(self, kernel, attr):
        super().__init__(kernel, attr)
        self.slots = {}  # key bytes (or index) -> stored value

    def count(self):
        return len(self.slots)

    def index_next(self, key):
        """array_map_get_next_key and friends."""
        i = _u32(key) if key is not None else None
        if i is None or i >= self.max_entries:
            return struct.pack("<I", 0)
        if i == self.max_entries - 1:
            raise bpf_error(errno.ENOENT)
        return struct.pack("<I", i + 1)


# -- arraymap.c: fd arrays -------------------------------------------------------

class FdArray(ObjMap):
    wrong_fd = errno.EINVAL
    kind_name = "prog"

    @classmethod
    def alloc_check(cls, attr, task):
        """fd_array_map_alloc_check, then array_map_alloc_check."""
        if attr.value_size != 4 or attr.map_flags & (F.BPF_F_RDONLY_PROG | F.BPF_F_WRONLY_PROG):
            raise bpf_error(errno.EINVAL, "fd arrays hold 4-byte fds and take no program access flags")
        array_map_alloc_check(attr)

    @property
    def user_value_size(self):
        return 4

    def mem_usage(self):
        # struct bpf_array, then one pointer per slot
        return 312 + self.max_entries * 8

    def lookup_sys(self, key, flags):
        raise bpf_error(ENOTSUPP, "%s has no syscall lookup" % self.type_name())

    def lookup(self, key, flags=0):
        raise bpf_error(errno.ENOENT)

    def update_sys(self, task, key, value, flags):
        if flags != F.BPF_ANY:
            raise bpf_error(errno.EINVAL, "fd arrays only take BPF_ANY")
        if _u32(key) >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        fd_of_kind(task, _u32(value), self.kind_name, self.wrong_fd)

    def delete(self, key):
        i = _u32(key)
        if i >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        if self.slots.pop(i, None) is None:
            raise bpf_error(errno.ENOENT)

    def get_next_key(self, key):
        return self.index_next(key)


@map_type(F.BPF_MAP_TYPE_PROG_ARRAY)
class ProgArray(FdArray):
    def lookup_sys(self, key, flags):
        if _u32(key) >= self.max_entries or _u32(key) not in self.slots:
            raise bpf_error(errno.ENOENT)
        return struct.pack("<I", self.slots[_u32(key)])  # pragma: no cover (no progs)


@map_type(F.BPF_MAP_TYPE_PERF_EVENT_ARRAY)
class PerfEventArray(FdArray):
    wrong_fd = errno.EBADF
    kind_name = "perf_event"


@map_type(F.BPF_MAP_TYPE_CGROUP_ARRAY)
class CgroupArray(FdArray):
    wrong_fd = errno.EBADF
    kind_name = "cgroup"


# -- stackmap.c -----------------------------------------------------------------

STACK_CREATE_FLAG_MASK = F.BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK | F.BPF_F_STACK_BUILD_ID
BUILD_ID_SIZE = 32  # sizeof(struct bpf_stack_build_id)


@map_type(F.BPF_MAP_TYPE_STACK_TRACE)
class StackMap(ObjMap):
    """Stacks are only written by programs, so from userspace it stays empty."""

    def __init__(self, kernel, attr):
        vs = attr.value_size
        if attr.map_flags & ~STACK_CREATE_FLAG_MASK:
            raise bpf_error(errno.EINVAL, "unknown stack map flags")
        if attr.max_entries == 0 or attr.key_size != 4 or vs < 8 or vs % 8:
            raise bpf_error(errno.EINVAL, "stack map: key 4, value a nonzero multiple of 8")
        if attr.map_flags & F.BPF_F_STACK_BUILD_ID:
            if vs % BUILD_ID_SIZE or vs // BUILD_ID_SIZE > PERF_EVENT_MAX_STACK:
                raise bpf_error(errno.EINVAL, "build-id stack value size")
        elif vs // 8 > PERF_EVENT_MAX_STACK:
            raise bpf_error(errno.EINVAL, "stack deeper than kernel.perf_event_max_stack")
        if attr.max_entries > 1 << 31:
            raise bpf_error(errno.E2BIG, "too many buckets")
        super().__init__(kernel, attr)
        self.n_buckets = roundup_pow_of_two(attr.max_entries)

    def mem_usage(self):
        elem = 16 + self.value_size  # struct stack_map_bucket header + data
        return 320 + self.n_buckets * 8 + self.max_entries * elem

    def _extract(self, key):
        raise bpf_error(errno.ENOENT)

    def lookup_sys(self, key, flags):
        return self._extract(key)

    def lookup_and_delete(self, key, flags):
        return self._extract(key)

    def update(self, key, value, flags):
        raise bpf_error(errno.EINVAL, "stack maps are filled by programs")

    def delete(self, key):
        if _u32(key) >= self.n_buckets:
            raise bpf_error(errno.E2BIG, "stack id out of range")
        raise bpf_error(errno.ENOENT)

    def get_next_key(self, key):
        raise bpf_error(errno.ENOENT)


# -- ringbuf.c ------------------------------------------------------------------

@map_type(F.BPF_MAP_TYPE_RINGBUF, F.BPF_MAP_TYPE_USER_RINGBUF)
class RingBuf(ObjMap):
    """A ring buffer: records go through mmap and programs; no syscall element op works."""

    def __init__(self, kernel, attr):
        me = attr.max_entries
        if attr.map_flags & ~F.BPF_F_NUMA_NODE:
            raise bpf_error(errno.EINVAL, "ring buffers take only BPF_F_NUMA_NODE")
        if attr.key_size or attr.value_size or me == 0 or me & (me - 1) or me % PAGE_SIZE:
            raise bpf_error(errno.EINVAL, "ring buffer: no key/value, a power-of-2 multiple of the page size")
        super().__init__(kernel, attr)

    def mem_usage(self):
        data_pages = self.max_entries // PAGE_SIZE
        meta_pages = 3
        # the pages themselves, and a page pointer for each mapping (data pages are mapped twice)
        return 304 + PAGE_SIZE * (meta_pages + data_pages) + 8 * (meta_pages + 2 * data_pages)

    def lookup_sys(self, key, flags):
        raise bpf_error(ENOTSUPP)

    def update(self, key, value, flags):
        raise bpf_error(ENOTSUPP)

    def delete(self, key):
        raise bpf_error(ENOTSUPP)

    def get_next_key(self, key):
        raise bpf_error(ENOTSUPP)


# -- local_storage.c: cgroup storage ---------------------------------------------

@map_type(F.BPF_MAP_TYPE_CGROUP_STORAGE, F.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE)
class CgroupStorage(ObjMap):
    """Storage slots appear when a program is attached to a cgroup: from userspace, always empty."""

    def __init__(self, kernel, attr):
        percpu = attr.map_type == F.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
        limit = min(LOCAL_STORAGE_MAX_VALUE_SIZE, PCPU_MIN_UNIT_SIZE) if percpu else LOCAL_STORAGE_MAX_VALUE_SIZE
        if attr.key_size not in (16, 8):
            raise bpf_error(errno.EINVAL, "key is a struct bpf_cgroup_storage_key (16) or a cgroup id (8)")
        if attr.value_size == 0:
            raise bpf_error(errno.EINVAL, "value_size 0")
        if attr.value_size > limit:
            raise bpf_error(errno.E2BIG, "value too large")
        if attr.map_flags & ~(F.BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK) or not map_flags_access_ok(attr.map_flags):
            raise bpf_error(errno.EINVAL, "bad cgroup storage flags")
        if attr.max_entries:
            raise bpf_error(errno.EINVAL, "cgroup storage has no max_entries")
        super().__init__(kernel, attr)
        self.percpu = percpu

    def mem_usage(self):
        return 328  # struct bpf_cgroup_storage_map; storages are charged to their cgroups

    def lookup_sys(self, key, flags):
        raise bpf_error(errno.ENOENT)

    def update(self, key, value, flags):
        if flags & ~(F.BPF_F_LOCK | F.BPF_EXIST):
            raise bpf_error(errno.EINVAL, "bad flags")
        raise bpf_error(errno.ENOENT)

    def delete(self, key):
        raise bpf_error(errno.EINVAL, "cgroup storage cannot be deleted")

    def get_next_key(self, key):
        raise bpf_error(errno.ENOENT)


# -- bpf_local_storage.c: sk/inode/task/cgrp storage ------------------------------

@map_type(F.BPF_MAP_TYPE_SK_STORAGE, F.BPF_MAP_TYPE_INODE_STORAGE, F.BPF_MAP_TYPE_TASK_STORAGE,
          F.BPF_MAP_TYPE_CGRP_STORAGE)
class LocalStorage(ObjMap):
    """Needs BTF ids; the emulator loads no BTF, so creation ends at the btf_fd lookup."""

    @classmethod
    def alloc_check(cls, attr, task):
        """bpf_local_storage_map_alloc_check."""
        flags = attr.map_flags
        if (flags & ~(F.BPF_F_NO_PREALLOC | F.BPF_F_CLONE) or not flags & F.BPF_F_NO_PREALLOC
                or attr.max_entries or attr.key_size != 4 or not attr.value_size
                or not attr.btf_key_type_id or not attr.btf_value_type_id):
            raise bpf_error(errno.EINVAL, "local storage: key 4, no max_entries, NO_PREALLOC and BTF ids")
        if attr.value_size > LOCAL_STORAGE_MAX_VALUE_SIZE:
            raise bpf_error(errno.E2BIG, "value too large")


# -- devmap.c ----------------------------------------------------------------------

DEV_CREATE_FLAG_MASK = F.BPF_F_NUMA_NODE | ACCESS


class DevMapBase(ObjMap):
    @classmethod
    def alloc_check(cls, attr, task):
        """dev_map_alloc_check: before the privilege check."""
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size not in (4, 8)
                or attr.map_flags & ~DEV_CREATE_FLAG_MASK):
            raise bpf_error(errno.EINVAL, "devmap: key 4, value 4 or 8")

    def __init__(self, kernel, attr):
        super().__init__(kernel, attr)
        # lookups hand out the stored value, so programs may only read it
        self.map_flags |= F.BPF_F_RDONLY_PROG

    def _new_entry(self, task, value):
        """__dev_map_alloc_node: the device must exist; a prog fd must be an XDP devmap prog."""
        val = bytes(value) + bytes(8 - len(value))
        ifindex, pfd = struct.unpack("<Ii", val)
        if ifindex != LOOPBACK_IFINDEX:
            raise bpf_error(errno.EINVAL, "no network device with ifindex %d" % ifindex)
        if len(value) == 8 and pfd > 0:
            try:
                prog_fd(task, pfd)
            except OSError:
                raise bpf_error(errno.EINVAL, "fd %d is not an XDP devmap program" % pfd) from None
        return struct.pack("<II", ifindex, 0)[:self.value_size]

    def lookup_sys(self, key, flags):
        v = self.slots.get(bytes(key))
        if v is None:
            raise bpf_error(errno.ENOENT)
        return v


@map_type(F.BPF_MAP_TYPE_DEVMAP)
class DevMap(DevMapBase):
    def mem_usage(self):
        return 344 + self.max_entries * 8 + len(self.slots) * 64

    def update_sys(self, task, key, value, flags):
        if flags > F.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad flags")
        if _u32(key) >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        if flags == F.BPF_NOEXIST:
            raise bpf_error(errno.EEXIST, "devmap slots always exist")
        if _u32(value) == 0:
            if self.value_size == 8 and _i32(value[4:]) > -1:
                raise bpf_error(errno.EINVAL, "a prog fd without an ifindex")
            self.slots.pop(bytes(key), None)
            return
        self.slots[bytes(key)] = self._new_entry(task, value)

    def delete(self, key):
        if _u32(key) >= self.max_entries:
            raise bpf_error(errno.EINVAL, "index out of range")
        self.slots.pop(bytes(key), None)

    def get_next_key(self, key):
        return self.index_next(key)


@map_type(F.BPF_MAP_TYPE_DEVMAP_HASH)
class DevMapHash(DevMapBase):
    def __init__(self, kernel, attr):
        super().__init__(kernel, attr)
        if self.max_entries > 1 << 31:
            raise bpf_error(errno.EINVAL, "too many buckets")
        self.n_buckets = roundup_pow_of_two(self.max_entries)
        self.buckets = {}  # bucket index -> keys, head first (only non-empty buckets)

    def mem_usage(self):
        return 344 + self.n_buckets * 8 + len(self.slots) * 64

    def _bucket(self, key):
        return self.buckets.setdefault(_u32(key) & (self.n_buckets - 1), [])

    def update_sys(self, task, key, value, flags):
        """__dev_map_hash_update_elem: the new entry goes to the head of its bucket, a replaced one too."""
        key = bytes(key)
        if flags > F.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad flags")
        old = self.slots.get(key)
        if old is not None and flags & F.BPF_NOEXIST:
            raise bpf_error(errno.EEXIST)
        entry = self._new_entry(task, value)
        if old is None and len(self.slots) >= self.max_entries:
            raise bpf_error(errno.E2BIG, "devmap hash is full")
        b = self._bucket(key)
        if old is not None:
            b.remove(key)
        b.insert(0, key)
        self.slots[key] = entry

    def delete(self, key):
        key = bytes(key)
        if self.slots.pop(key, None) is None:
            raise bpf_error(errno.ENOENT)
        b = self._bucket(key)
        b.remove(key)
        if not b:
            del self.buckets[_u32(key) & (self.n_buckets - 1)]

    def get_next_key(self, key):
        """dev_map_hash_get_next_key: the rest of the key's bucket, then the next non-empty bucket."""
        start = 0
        if key is not None and bytes(key) in self.slots:
            b = self._bucket(bytes(key))
            i = b.index(bytes(key))
            if i + 1 < len(b):
                return b[i + 1]
            start = (_u32(key) & (self.n_buckets - 1)) + 1
        for idx in sorted(i for i in self.buckets if i >= start):
            return self.buckets[idx][0]
        raise bpf_error(errno.ENOENT)


# -- cpumap.c ------------------------------------------------------------------------

@map_type(F.BPF_MAP_TYPE_CPUMAP)
class CpuMap(ObjMap):
    def __init__(self, kernel, attr):
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size not in (4, 8)
                or attr.map_flags & ~F.BPF_F_NUMA_NODE):
            raise bpf_error(errno.EINVAL, "cpumap: key 4, value 4 or 8, only BPF_F_NUMA_NODE")
        if attr.max_entries > NR_CPUS:
            raise bpf_error(errno.E2BIG, "more entries than NR_CPUS")
        super().__init__(kernel, attr)

    def mem_usage(self):
        return 304 + self.max_entries * 8  # the entries' queues and threads are not counted

    def lookup_sys(self, key, flags):
        v = self.slots.get(_u32(key))
        if v is None:
            raise bpf_error(errno.ENOENT)
        return v

    def update_sys(self, task, key, value, flags):
        val = bytes(value) + bytes(8 - len(value))
        qsize, pfd = struct.unpack("<Ii", val)
        cpu = _u32(key)
        if flags > F.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad flags")
        if cpu >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        if flags == F.BPF_NOEXIST:
            raise bpf_error(errno.EEXIST)
        if qsize > 16384:
            raise bpf_error(errno.EOVERFLOW, "qsize above 16384")
        if cpu >= self.kernel.ncpus:
            raise bpf_error(errno.ENODEV, "cpu %d is not possible" % cpu)
        if qsize == 0:
            self.slots.pop(cpu, None)
            return
        if self.value_size == 8 and pfd > 0:
            try:
                prog_fd(task, pfd)
            except OSError:  # __cpu_map_entry_alloc fails as a whole: ENOMEM whatever went wrong
                raise bpf_error(errno.ENOMEM, "fd %d is not a cpumap program" % pfd) from None
        self.slots[cpu] = struct.pack("<II", qsize, 0)[:self.value_size]

    def delete(self, key):
        if _u32(key) >= self.max_entries:
            raise bpf_error(errno.EINVAL, "index out of range")
        self.slots.pop(_u32(key), None)

    def get_next_key(self, key):
        return self.index_next(key)


# -- xskmap.c --------------------------------------------------------------------------

@map_type(F.BPF_MAP_TYPE_XSKMAP)
class XskMap(ObjMap):
    def __init__(self, kernel, attr):
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size != 4
                or attr.map_flags & ~(F.BPF_F_NUMA_NODE | ACCESS)):
            raise bpf_error(errno.EINVAL, "xskmap: key 4, value 4")
        super().__init__(kernel, attr)

    def mem_usage(self):
        return 304 + self.max_entries * 8

    def lookup_sys(self, key, flags):
        raise bpf_error(errno.EOPNOTSUPP, "xskmap has no syscall lookup")

    def update_sys(self, task, key, value, flags):
        if flags > F.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad flags")
        if _u32(key) >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        socket_fd(task, _u32(value))

    def delete(self, key):
        if _u32(key) >= self.max_entries:
            raise bpf_error(errno.EINVAL, "index out of range")

    def get_next_key(self, key):
        return self.index_next(key)


# -- sock_map.c ----------------------------------------------------------------------------

SOCK_CREATE_FLAG_MASK = F.BPF_F_NUMA_NODE | ACCESS


class SockMapBase(ObjMap):
    def lookup_sys(self, key, flags):
        if self.value_size != 8:
            raise bpf_error(errno.ENOSPC, "socket cookies need an 8-byte value")
        raise bpf_error(errno.ENOENT)

    def update_sys(self, task, key, value, flags):
        ufd = struct.unpack("<Q", value)[0] if self.value_size == 8 else _u32(value)
        if ufd > S32_MAX:
            raise bpf_error(errno.EINVAL, "fd out of range")
        socket_fd(task, ufd)


@map_type(F.BPF_MAP_TYPE_SOCKMAP)
class SockMap(SockMapBase):
    def __init__(self, kernel, attr):
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size not in (4, 8)
                or attr.map_flags & ~SOCK_CREATE_FLAG_MASK):
            raise bpf_error(errno.EINVAL, "sockmap: key 4, value 4 or 8")
        super().__init__(kernel, attr)

    def mem_usage(self):
        return 376 + self.max_entries * 8

    def delete(self, key):
        if _u32(key) >= self.max_entries:
            raise bpf_error(errno.EINVAL, "index out of range")
        raise bpf_error(errno.EINVAL, "no socket in this slot")

    def get_next_key(self, key):
        return self.index_next(key)


@map_type(F.BPF_MAP_TYPE_SOCKHASH)
class SockHash(SockMapBase):
    def __init__(self, kernel, attr):
        if (attr.max_entries == 0 or attr.key_size == 0 or attr.value_size not in (4, 8)
                or attr.map_flags & ~SOCK_CREATE_FLAG_MASK):
            raise bpf_error(errno.EINVAL, "sockhash: a key, value 4 or 8")
        if attr.key_size > MAX_BPF_STACK:
            raise bpf_error(errno.E2BIG, "key larger than the BPF stack")
        if attr.max_entries > 1 << 31:
            raise bpf_error(errno.EINVAL, "too many buckets")
        super().__init__(kernel, attr)
        self.n_buckets = roundup_pow_of_two(self.max_entries)

    def mem_usage(self):
        return 384 + self.n_buckets * 16

    def delete(self, key):
        raise bpf_error(errno.ENOENT)

    def get_next_key(self, key):
        raise bpf_error(errno.ENOENT)


# -- reuseport_array.c -------------------------------------------------------------------------

@map_type(F.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY)
class ReuseportArray(ObjMap):
    @classmethod
    def alloc_check(cls, attr, task):
        if attr.value_size not in (4, 8):
            raise bpf_error(errno.EINVAL, "value is a 4- or 8-byte socket fd")
        array_map_alloc_check(attr)

    def mem_usage(self):
        return 296 + self.max_entries * 8

    def lookup_sys(self, key, flags):
        if self.value_size != 8:
            raise bpf_error(errno.ENOSPC, "socket cookies need an 8-byte value")
        raise bpf_error(errno.ENOENT)

    def update_sys(self, task, key, value, flags):
        if flags > F.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad flags")
        if _u32(key) >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        fd = struct.unpack("<Q", value)[0] if self.value_size == 8 else _i32(value)
        if fd > S32_MAX:
            raise bpf_error(errno.EINVAL, "fd out of range")
        socket_fd(task, fd & 0xFFFFFFFF if fd >= 0 else -1)

    def delete(self, key):
        if _u32(key) >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        raise bpf_error(errno.ENOENT)

    def get_next_key(self, key):
        return self.index_next(key)


# -- bpf_struct_ops.c ---------------------------------------------------------------------------

@map_type(F.BPF_MAP_TYPE_STRUCT_OPS)
class StructOpsMap(ObjMap):
    """The value type must be a kernel struct_ops type from vmlinux BTF, which is not modeled."""

    @classmethod
    def alloc_check(cls, attr, task):
        if (attr.key_size != 4 or attr.max_entries != 1
                or attr.map_flags & ~(F.BPF_F_LINK | F.BPF_F_VTYPE_BTF_OBJ_FD)
                or not attr.btf_vmlinux_value_type_id):
            raise bpf_error(errno.EINVAL, "struct_ops: key 4, one entry, a vmlinux value type id")

    def __init__(self, kernel, attr):
        raise bpf_error(ENOTSUPP, "no struct_ops type with BTF id %d" % attr.btf_vmlinux_value_type_id)


# -- arena.c ------------------------------------------------------------------------------------

ARENA_FLAGS = F.BPF_F_MMAPABLE | F.BPF_F_SEGV_ON_FAULT | F.BPF_F_NO_USER_CONV


@map_type(F.BPF_MAP_TYPE_ARENA)
class Arena(ObjMap):
    def __init__(self, kernel, attr):
        if (attr.key_size or attr.value_size or attr.max_entries == 0
                or not attr.map_flags & F.BPF_F_MMAPABLE or attr.map_flags & ~ARENA_FLAGS):
            raise bpf_error(errno.EINVAL, "arena: no key/value, pages, BPF_F_MMAPABLE")
        if attr.map_extra % PAGE_SIZE:
            raise bpf_error(errno.EINVAL, "map_extra is a page-aligned user address")
        vm_range = attr.max_entries * PAGE_SIZE
        if vm_range > 1 << 32:
            raise bpf_error(errno.E2BIG, "arena larger than 4 GiB")
        if attr.map_extra >> 32 != (attr.map_extra + vm_range - 1) >> 32:
            raise bpf_error(errno.ERANGE, "arena crosses a 4 GiB boundary")
        super().__init__(kernel, attr)

    def mem_usage(self):
        return 0

    def lookup_sys(self, key, flags):
        raise bpf_error(errno.EINVAL, "arena has no elements")

    def update(self, key, value, flags):
        raise bpf_error(errno.EOPNOTSUPP)

    def delete(self, key):
        raise bpf_error(errno.EOPNOTSUPP)

    def get_next_key(self, key):
        raise bpf_error(errno.EOPNOTSUPP)
