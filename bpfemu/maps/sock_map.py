"""SOCKMAP and SOCKHASH maps (the kernel's sock_map.c): sockets by index or key. No sockets are
modeled, so the maps stay empty and an update fails as for an fd of the wrong kind."""
import errno
import struct

from .. import uapi as F
from ..errors import bpf_error
from ..limits import MAX_BPF_STACK, S32_MAX, roundup_pow_of_two
from .bpf_map import ObjMap, map_check_no_btf, index_next_key, socket_fd, u32

ACCESS = F.BPF_F_RDONLY | F.BPF_F_WRONLY


SOCK_CREATE_FLAG_MASK = F.BPF_F_NUMA_NODE | ACCESS


class SockMapBase(ObjMap):
    map_check_btf = map_check_no_btf

    def lookup_sys(self, key, flags):
        if self.value_size != 8:
            raise bpf_error(errno.ENOSPC, "socket cookies need an 8-byte value")
        raise bpf_error(errno.ENOENT)

    def update_sys(self, task, key, value, flags):
        ufd = struct.unpack("<Q", value)[0] if self.value_size == 8 else u32(value)
        if ufd > S32_MAX:
            raise bpf_error(errno.EINVAL, "fd out of range")
        socket_fd(task, ufd)


class SockMap(SockMapBase):
    def __init__(self, kernel, attr):
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size not in (4, 8)
                or attr.map_flags & ~SOCK_CREATE_FLAG_MASK):
            raise bpf_error(errno.EINVAL, "sockmap: key 4, value 4 or 8")
        super().__init__(kernel, attr)

    def mem_usage(self, count=None):
        return self.kernel.profile.size("bpf_stab") + self.max_entries * 8

    def delete(self, key):
        if u32(key) >= self.max_entries:
            raise bpf_error(errno.EINVAL, "index out of range")
        raise bpf_error(errno.EINVAL, "no socket in this slot")

    def get_next_key(self, key):
        return index_next_key(key, self.max_entries)


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

    def mem_usage(self, count=None):
        return self.kernel.profile.size("bpf_shtab") + self.n_buckets * 16

    def delete(self, key):
        raise bpf_error(errno.ENOENT)

    def get_next_key(self, key):
        raise bpf_error(errno.ENOENT)
