"""What several commands of kernel/bpf/syscall.c share: flags to fd modes, object names, new fds, tail checks."""
import errno
import string

from .. import uapi
from ..errors import bpf_error
from ..limits import PAGE_SIZE
from ..objects import FMODE_READ, FMODE_WRITE, File

# bpf_obj_name_cpy: isalnum() in the kernel's Latin-1 ctype table, '_' and '.'
_NAME_OK = frozenset(string.ascii_letters.encode() + string.digits.encode() + b"_.") | (
    frozenset(range(0xC0, 0x100)) - {0xD7, 0xF7})


def get_file_flag(flags):
    """bpf_get_file_flag: the fd's access mode from BPF_F_RDONLY/BPF_F_WRONLY."""
    if flags & uapi.BPF_F_RDONLY and flags & uapi.BPF_F_WRONLY:
        raise bpf_error(errno.EINVAL, "BPF_F_RDONLY and BPF_F_WRONLY together")
    if flags & uapi.BPF_F_RDONLY:
        return FMODE_READ
    if flags & uapi.BPF_F_WRONLY:
        return FMODE_WRITE
    return FMODE_READ | FMODE_WRITE


def obj_name_cpy(raw):
    """bpf_obj_name_cpy: validated name bytes up to the first NUL (EINVAL)."""
    raw = bytes(raw)
    end = raw.find(b"\0")
    if end < 0:
        raise bpf_error(errno.EINVAL, "object name not NUL-terminated within 16 bytes")
    name = raw[:end]
    if any(c not in _NAME_OK for c in name):
        raise bpf_error(errno.EINVAL, "object name has characters other than [A-Za-z0-9_.]")
    return name


def new_fd(task, obj, mode):
    """anon_inode_getfd: a new close-on-exec fd of obj opened with mode (EMFILE drops the file again)."""
    f = File(obj, mode)
    try:
        return task.fd_install(f, cloexec=True)
    except OSError:
        f.count = 1
        f.put()
        raise


def check_uarg_tail_zero(read, uaddr, expected, actual):
    """bpf_check_uarg_tail_zero: a larger struct than we know is fine if the excess is zero (E2BIG).

    ``read(addr, n)`` reads the caller's memory."""
    if actual > PAGE_SIZE:
        raise bpf_error(errno.E2BIG, "struct size %d larger than a page" % actual)
    if actual <= expected:
        return
    # check_zeroed_user reads word by word and stops at the first nonzero one: a nonzero byte
    # before an unreadable page is E2BIG, not EFAULT (so read a page at a time, in order)
    addr, end = uaddr + expected, uaddr + actual
    while addr < end:
        n = min(end, (addr // PAGE_SIZE + 1) * PAGE_SIZE) - addr
        if any(read(addr, n)):
            raise bpf_error(errno.E2BIG, "nonzero bytes past the kernel's struct")
        addr += n
