"""mmap(2) of a map fd (the kernel's syscall.c ``bpf_map_mmap``, the mmap of bpf_map_fops).

Only a type with a ``map_mmap`` op can be mapped (the plain ARRAY created with BPF_F_MMAPABLE, ring buffers);
the checks before it are the VFS's and bpf_map_mmap's, in their order.
"""
import errno

from .. import uapi
from ..errors import ENOTSUPP, bpf_error
from ..limits import PAGE_SIZE, round_up
from ..maps.bpf_map import implements
from ..objects import FMODE_READ, FMODE_WRITE
from ..surface import Mapping

TASK_SIZE = (1 << 47) - PAGE_SIZE  # x86_64 user address space (4-level page tables)


def bpf_map_mmap(task, fd, length, offset=0, writable=True):
    """mmap(NULL, length, PROT_READ[|PROT_WRITE], MAP_SHARED, fd, offset) of a map fd in the emulator."""
    kernel = task.kernel
    if not isinstance(length, int) or not isinstance(offset, int):
        raise bpf_error(errno.EINVAL, "length and offset are integers")
    length &= (1 << 64) - 1  # size_t and off_t, as a C caller's values arrive
    offset = (offset + (1 << 63)) % (1 << 64) - (1 << 63)
    with kernel.lock:
        task._check_alive()
        # sys_mmap, ksys_mmap_pgoff, do_mmap, in their order
        if offset % PAGE_SIZE:
            raise bpf_error(errno.EINVAL, "offset not page aligned")
        f = task.fdget(fd)
        if length == 0:
            raise bpf_error(errno.EINVAL, "length 0")
        if round_up(length, PAGE_SIZE) >= 1 << 64 or length > TASK_SIZE:
            raise bpf_error(errno.ENOMEM, "no room for %d bytes in the address space" % length)
        if offset < 0:  # file_mmap_ok: pgoff past MAX_LFS_FILESIZE - len
            raise bpf_error(errno.EOVERFLOW, "offset past the largest file size")
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
        view = m.map_mmap(round_up(length, PAGE_SIZE), offset // PAGE_SIZE, writable)[:length]
        f.get()  # the mapping keeps the open file (and so the map) alive
        f.mappings += 1
        if writable:
            m.writecnt += 1

        def unmap():
            with kernel.lock:
                if writable:
                    m.writecnt -= 1
                f.mappings -= 1
                f.put()

        return Mapping(view, writable, unmap)
