"""XSKMAP maps (the kernel's xskmap.c): AF_XDP sockets by index. No sockets are modeled, so an update
fails as for an fd of the wrong kind (ENOTSOCK, or EBADF when it is not open)."""
import errno

from .. import uapi as F
from ..errors import bpf_error
from .bpf_map import ObjMap, map_check_no_btf, index_next_key, socket_fd, u32

ACCESS = F.BPF_F_RDONLY | F.BPF_F_WRONLY


class XskMap(ObjMap):
    map_check_btf = map_check_no_btf

    def __init__(self, kernel, attr):
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size != 4
                or attr.map_flags & ~(F.BPF_F_NUMA_NODE | ACCESS)):
            raise bpf_error(errno.EINVAL, "xskmap: key 4, value 4")
        super().__init__(kernel, attr)

    def mem_usage(self, count=None):
        return self.kernel.profile.size("xsk_map") + self.max_entries * 8

    def lookup_sys(self, key, flags):
        raise bpf_error(errno.EOPNOTSUPP, "xskmap has no syscall lookup")

    def update_sys(self, task, key, value, flags):
        if flags > F.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad flags")
        if u32(key) >= self.max_entries:
            raise bpf_error(errno.E2BIG, "index out of range")
        socket_fd(task, u32(value))

    def delete(self, key):
        if u32(key) >= self.max_entries:
            raise bpf_error(errno.EINVAL, "index out of range")

    def get_next_key(self, key):
        return index_next_key(key, self.max_entries)
