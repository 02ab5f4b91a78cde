"""Array maps (the kernel's arraymap.c): ARRAY and PERCPU_ARRAY.

Every index below max_entries always exists and starts zeroed. Storage is
sparse (a dict of the indices ever written), so a huge max_entries costs
nothing until it is used.
"""
import errno
import struct

from . import uapi
from .bpf_map import BpfMap, map_type, round_up
from .errors import bpf_error

INT_MAX = 2**31 - 1
PCPU_MIN_UNIT_SIZE = 32768
BPF_F_ACCESS_MASK = uapi.BPF_F_RDONLY | uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY | uapi.BPF_F_WRONLY_PROG
ARRAY_CREATE_FLAG_MASK = (uapi.BPF_F_NUMA_NODE | uapi.BPF_F_MMAPABLE | BPF_F_ACCESS_MASK
                          | uapi.BPF_F_PRESERVE_ELEMS | uapi.BPF_F_INNER_MAP)


def array_map_alloc_check(attr):
    percpu = attr.map_type == uapi.BPF_MAP_TYPE_PERCPU_ARRAY
    flags = attr.map_flags
    numa = flags & uapi.BPF_F_NUMA_NODE and attr.numa_node != 0xFFFFFFFF
    if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size == 0
            or flags & ~ARRAY_CREATE_FLAG_MASK
            or (flags & uapi.BPF_F_RDONLY_PROG and flags & uapi.BPF_F_WRONLY_PROG)
            or (percpu and numa)):
        raise bpf_error(errno.EINVAL, "invalid array map attributes")
    if attr.map_type != uapi.BPF_MAP_TYPE_ARRAY and flags & (uapi.BPF_F_MMAPABLE | uapi.BPF_F_INNER_MAP):
        raise bpf_error(errno.EINVAL, "BPF_F_MMAPABLE/BPF_F_INNER_MAP are for plain arrays")
    if attr.map_type != uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY and flags & uapi.BPF_F_PRESERVE_ELEMS:
        raise bpf_error(errno.EINVAL, "BPF_F_PRESERVE_ELEMS is for perf event arrays")
    if attr.value_size > INT_MAX:
        raise bpf_error(errno.E2BIG, "value_size too large")
    if percpu and round_up(attr.value_size, 8) > PCPU_MIN_UNIT_SIZE:
        raise bpf_error(errno.E2BIG, "per-CPU value larger than a percpu unit")


@map_type(uapi.BPF_MAP_TYPE_ARRAY, uapi.BPF_MAP_TYPE_PERCPU_ARRAY)
class ArrayMap(BpfMap):
    delete_batch = None

    @classmethod
    def alloc_check(cls, attr, task):
        array_map_alloc_check(attr)

    def __init__(self, kernel, attr):
        super().__init__(kernel, attr)
        self.percpu = attr.map_type == uapi.BPF_MAP_TYPE_PERCPU_ARRAY
        self.values = {}  # index -> user-layout value bytes

    def count(self):
        return self.max_entries

    def mem_usage(self):
        return len(self.values) * round_up(self.value_size, 8) * (self.kernel.ncpus if self.percpu else 1)

    def _index(self, key):
        return struct.unpack("<I", key)[0]

    def zero_value(self):
        return bytes(self.user_value_size)

    def lookup(self, key, flags=0):
        i = self._index(key)
        if i >= self.max_entries:
            raise bpf_error(errno.ENOENT)
        return self.values.get(i) or self.zero_value()

    def update(self, key, value, flags):
        if (flags & ~uapi.BPF_F_LOCK) > uapi.BPF_EXIST or (self.percpu and flags > uapi.BPF_EXIST):
            raise bpf_error(errno.EINVAL, "bad update flags")
        i = self._index(key)
        if i >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index %d out of range" % i)
        if flags & uapi.BPF_NOEXIST:
            raise bpf_error(errno.EEXIST, "array elements always exist")
        if flags & uapi.BPF_F_LOCK and not self.has_spin_lock():
            raise bpf_error(errno.EINVAL)
        if self.percpu:
            step = round_up(self.value_size, 8)
            pad = bytes(step - self.value_size)
            value = b"".join(bytes(value[c * step:c * step + self.value_size]) + pad
                             for c in range(self.kernel.ncpus))
        self.values[i] = bytes(value)

    def delete(self, key):
        raise bpf_error(errno.EINVAL, "array elements cannot be deleted")

    def get_next_key(self, key):
        i = self._index(key) if key is not None else None
        if i is None or i >= self.max_entries:
            return struct.pack("<I", 0)
        if i == self.max_entries - 1:
            raise bpf_error(errno.ENOENT)
        return struct.pack("<I", i + 1)
