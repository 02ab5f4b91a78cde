"""ARENA maps (the kernel's arena.c): a range of user/kernel shared pages; the pages are not modeled,
only the creation checks and the element ops' answers."""
import errno

from .. import uapi as F
from ..errors import bpf_error
from ..limits import PAGE_SIZE
from .bpf_map import ObjMap


ARENA_FLAGS = F.BPF_F_MMAPABLE | F.BPF_F_SEGV_ON_FAULT | F.BPF_F_NO_USER_CONV


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

    def mem_usage(self, count=None):
        return 0

    def map_check_btf(self, btf, key_type, value_type):
        """arena_map_check_btf: any types."""

    def lookup_sys(self, key, flags):
        raise bpf_error(errno.EINVAL, "arena has no elements")

    def update(self, key, value, flags):
        raise bpf_error(errno.EOPNOTSUPP)

    def delete(self, key):
        raise bpf_error(errno.EOPNOTSUPP)

    def get_next_key(self, key):
        raise bpf_error(errno.EOPNOTSUPP)
