"""DEVMAP and DEVMAP_HASH maps (the kernel's devmap.c): network devices by index or key, for XDP
redirects. The only device is the loopback (ifindex 1); a program fd is never valid (no programs)."""
import errno
import struct

from .. import uapi as F
from ..errors import bpf_error
from ..limits import LOOPBACK_IFINDEX, roundup_pow_of_two
from .bpf_map import ObjMap, map_check_no_btf, index_next_key, prog_fd, s32, u32

ACCESS = F.BPF_F_RDONLY | F.BPF_F_WRONLY
DEV_CREATE_FLAG_MASK = F.BPF_F_NUMA_NODE | ACCESS


class DevMapBase(ObjMap):
    """What DEVMAP and DEVMAP_HASH share (dev_map_ops, dev_map_hash_ops)."""

    map_check_btf = map_check_no_btf

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


class DevMap(DevMapBase):
    def mem_usage(self, count=None):
        """dev_map_mem_usage: the map, a pointer per slot, a device entry per slot in use."""
        sizes = self.kernel.profile.sizeof
        return sizes["bpf_dtab"] + self.max_entries * 8 + sizes["bpf_dtab_netdev"] * (self.count() if count is None else count)

    def update_sys(self, task, key, value, flags):
        if flags > F.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad flags")
        if u32(key) >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        if flags == F.BPF_NOEXIST:
            raise bpf_error(errno.EEXIST, "devmap slots always exist")
        if u32(value) == 0:
            if self.value_size == 8 and s32(value[4:]) > -1:
                raise bpf_error(errno.EINVAL, "a prog fd without an ifindex")
            self.slots.pop(bytes(key), None)
            return
        entry = self._new_entry(task, value)
        if bytes(key) not in self.slots:
            self.kernel.memcg.grow(self)  # ENOMEM past the memory limit
        self.slots[bytes(key)] = entry

    def delete(self, key):
        if u32(key) >= self.max_entries:
            raise bpf_error(errno.EINVAL, "index out of range")
        self.slots.pop(bytes(key), None)

    def get_next_key(self, key):
        return index_next_key(key, self.max_entries)


class DevMapHash(DevMapBase):
    def __init__(self, kernel, attr):
        super().__init__(kernel, attr)
        if self.max_entries > 1 << 31:
            raise bpf_error(errno.EINVAL, "too many buckets")
        self.n_buckets = roundup_pow_of_two(self.max_entries)
        self.buckets = {}  # bucket index -> keys, head first (only non-empty buckets)

    def mem_usage(self, count=None):
        """dev_map_mem_usage: the map, a pointer per bucket, a device entry per key stored."""
        sizes = self.kernel.profile.sizeof
        return sizes["bpf_dtab"] + self.n_buckets * 8 + sizes["bpf_dtab_netdev"] * (self.count() if count is None else count)

    def _bucket(self, key):
        return self.buckets.setdefault(u32(key) & (self.n_buckets - 1), [])

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
        if old is None:
            self.kernel.memcg.grow(self)  # ENOMEM past the memory limit
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
            del self.buckets[u32(key) & (self.n_buckets - 1)]

    def get_next_key(self, key):
        """dev_map_hash_get_next_key: the rest of the key's bucket, then the next non-empty bucket."""
        start = 0
        if key is not None and bytes(key) in self.slots:
            b = self._bucket(bytes(key))
            i = b.index(bytes(key))
            if i + 1 < len(b):
                return b[i + 1]
            start = (u32(key) & (self.n_buckets - 1)) + 1
        for idx in sorted(i for i in self.buckets if i >= start):
            return self.buckets[idx][0]
        raise bpf_error(errno.ENOENT)
