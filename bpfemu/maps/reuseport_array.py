"""REUSEPORT_SOCKARRAY maps (the kernel's reuseport_array.c): SO_REUSEPORT sockets by index. No sockets
are modeled, so the map stays empty."""
import errno
import struct

from .. import uapi as F
from ..errors import bpf_error
from ..limits import S32_MAX
from .arraymap import array_map_alloc_check
from .bpf_map import ObjMap, index_next_key, socket_fd, s32, u32


class ReuseportArray(ObjMap):
    @classmethod
    def alloc_check(cls, attr, task):
        if attr.value_size not in (4, 8):
            raise bpf_error(errno.EINVAL, "value is a 4- or 8-byte socket fd")
        array_map_alloc_check(attr)

    def mem_usage(self, count=None):
        return self.kernel.profile.size("reuseport_array") + self.max_entries * 8

    def lookup_sys(self, key, flags):
        if self.value_size != 8:
            raise bpf_error(errno.ENOSPC, "socket cookies need an 8-byte value")
        raise bpf_error(errno.ENOENT)

    def update_sys(self, task, key, value, flags):
        if flags > F.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad flags")
        if u32(key) >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        fd = struct.unpack("<Q", value)[0] if self.value_size == 8 else s32(value)
        if fd > S32_MAX:
            raise bpf_error(errno.EINVAL, "fd out of range")
        socket_fd(task, fd & 0xFFFFFFFF if fd >= 0 else -1)

    def delete(self, key):
        if u32(key) >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        raise bpf_error(errno.ENOENT)

    def get_next_key(self, key):
        return index_next_key(key, self.max_entries)
