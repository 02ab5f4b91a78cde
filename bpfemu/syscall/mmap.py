"""mmap(2) of a map fd (the kernel's syscall.c ``bpf_map_mmap``, the mmap of bpf_map_fops).

Only a type with a ``map_mmap`` op can be mapped (the plain ARRAY created with BPF_F_MMAPABLE today);
the checks before it are the VFS's and bpf_map_mmap's, in their order.
"""
import errno

from .. import uapi
from ..errors import ENOTSUPP, bpf_error
from ..limits import PAGE_SIZE, round_up
from ..maps.bpf_map import implements
from ..objects import FMODE_READ, FMODE_WRITE
from ..surface import Mapping


def bpf_map_mmap(task, fd, length, offset=0, writable=True):
    """mmap(NULL, length, PROT_READ[|PROT_WRITE], MAP_SHARED, fd, offset) of a map fd in the emulator."""
    kernel = task.kernel
    with kernel.lock:
        task._check_alive()
        if length <= 0 or offset % PAGE_SIZE or offset < 0:
            raise bpf_error(errno.EINVAL, "bad mmap length or offset")
        f = task.fdget(fd)
        # do_mmap: any mapping needs a readable file, a shared writable one a writable file
        if not f.mode & FMODE_READ or (writable and not f.mode & FMODE_WRITE):
            raise bpf_error(errno.EACCES, "the fd's access mode does not allow this mapping")
        m = f.obj
        if f.kind != "map" or m is None:
            raise bpf_error(errno.ENODEV, "fd %d cannot be mapped" % fd)
        if not implements(m, "map_mmap") or m.record:
            raise bpf_error(ENOTSUPP, "%s maps cannot be mapped" % m.type_name())
        if not f.mode & FMODE_WRITE:
            # do_mmap drops VM_SHARED from a shared mapping of a file not open for writing
            raise bpf_error(errno.EINVAL, "a read-only map fd gives no shared mapping")
        if writable:
            if m.frozen:
                raise bpf_error(errno.EPERM, "the map is frozen")
            if m.map_flags & uapi.BPF_F_RDONLY_PROG:
                raise bpf_error(errno.EACCES, "BPF_F_RDONLY_PROG map")
        view = m.map_mmap(round_up(length, PAGE_SIZE), offset // PAGE_SIZE)[:length]
        f.get()  # the mapping keeps the open file (and so the map) alive
        if writable:
            m.writecnt += 1

        def unmap():
            with kernel.lock:
                if writable:
                    m.writecnt -= 1
                f.put()

        return Mapping(view, writable, unmap)
