"""QUEUE and STACK maps (the kernel's queue_stack_maps.c).

Key-less maps: userspace pushes with UPDATE_ELEM, peeks with LOOKUP_ELEM and
pops with LOOKUP_AND_DELETE_ELEM, always with a NULL key. The kernel keeps a
ring of max_entries + 1 slots; a deque of the stored values is the same thing
without preallocating the ring.
"""
import collections
import errno

from .. import uapi
from ..limits import KMALLOC_MAX_SIZE
from ..errors import bpf_error
from .bpf_map import BpfMap, map_flags_access_ok

QUEUE_STACK_CREATE_FLAG_MASK = (uapi.BPF_F_NUMA_NODE | uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY
                                | uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY_PROG)


class QueueStackMap(BpfMap):
    """QUEUE and STACK (queue_map_ops, stack_map_ops)."""

    @classmethod
    def alloc_check(cls, attr, task):
        flags = attr.map_flags
        if (attr.max_entries == 0 or attr.key_size != 0 or attr.value_size == 0
                or flags & ~QUEUE_STACK_CREATE_FLAG_MASK
                or not map_flags_access_ok(flags)):
            raise bpf_error(errno.EINVAL, "invalid queue/stack attributes")
        if attr.value_size > KMALLOC_MAX_SIZE:
            raise bpf_error(errno.E2BIG, "value_size above KMALLOC_MAX_SIZE")

    def __init__(self, kernel, attr):
        super().__init__(kernel, attr)
        self.is_stack = attr.map_type == uapi.BPF_MAP_TYPE_STACK
        self.items = collections.deque()  # oldest first

    def count(self):
        return len(self.items)

    def mem_usage(self, count=None):
        """queue_stack_map_mem_usage: the header and a preallocated ring of max_entries + 1 values."""
        return self.kernel.profile.size("bpf_queue_stack") + (self.max_entries + 1) * self.value_size

    # -- the syscall's key-less element ops -----------------------------------
    def lookup_sys(self, key, flags):
        return self.peek()

    def update_sys(self, task, key, value, flags):
        self.push(value, flags)

    def lookup_and_delete_sys(self, key, flags):
        """Pop; the syscall takes no flags for it."""
        if flags:
            raise bpf_error(errno.EINVAL, "queue/stack pop takes no flags")
        return self.pop()

    def push(self, value, flags):
        if flags & uapi.BPF_NOEXIST or flags > uapi.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "push takes BPF_ANY or BPF_EXIST")
        if len(self.items) >= self.max_entries:
            if not flags & uapi.BPF_EXIST:
                raise bpf_error(errno.E2BIG, "the %s is full" % ("stack" if self.is_stack else "queue"))
            self.items.popleft()  # BPF_EXIST: the oldest element makes room
        self.items.append(bytes(value))

    def peek(self):
        if not self.items:
            raise bpf_error(errno.ENOENT, "empty")
        return self.items[-1] if self.is_stack else self.items[0]

    def pop(self):
        value = self.peek()
        if self.is_stack:
            self.items.pop()
        else:
            self.items.popleft()
        return value

    def lookup(self, key, flags=0):
        raise bpf_error(errno.ENOENT)  # programs' generic lookup finds nothing

    def delete(self, key):
        raise bpf_error(errno.EINVAL, "queue/stack elements are popped, not deleted")

    def get_next_key(self, key):
        raise bpf_error(errno.EINVAL, "queue/stack maps have no keys")
