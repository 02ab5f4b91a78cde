"""RINGBUF and USER_RINGBUF maps (the kernel's ringbuf.c): records go through mmap and programs,
which the emulator does not model; every syscall element op is ENOTSUPP."""
import errno

from .. import uapi as F
from ..errors import ENOTSUPP, bpf_error
from ..limits import PAGE_SIZE
from .bpf_map import ObjMap


class RingBuf(ObjMap):
    """A ring buffer: records go through mmap and programs; no syscall element op works."""

    def __init__(self, kernel, attr):
        me = attr.max_entries
        if attr.map_flags & ~F.BPF_F_NUMA_NODE:
            raise bpf_error(errno.EINVAL, "ring buffers take only BPF_F_NUMA_NODE")
        if attr.key_size or attr.value_size or me == 0 or me & (me - 1) or me % PAGE_SIZE:
            raise bpf_error(errno.EINVAL, "ring buffer: no key/value, a power-of-2 multiple of the page size")
        super().__init__(kernel, attr)

    def mem_usage(self, count=None):
        data_pages = self.max_entries // PAGE_SIZE
        meta_pages = 3
        # the pages themselves, and a page pointer for each mapping (data pages are mapped twice)
        return self.kernel.profile.size("bpf_ringbuf_map") + PAGE_SIZE * (meta_pages + data_pages) + 8 * (meta_pages + 2 * data_pages)

    def lookup_sys(self, key, flags):
        raise bpf_error(ENOTSUPP)

    def update(self, key, value, flags):
        raise bpf_error(ENOTSUPP)

    def delete(self, key):
        raise bpf_error(ENOTSUPP)

    def get_next_key(self, key):
        raise bpf_error(ENOTSUPP)
