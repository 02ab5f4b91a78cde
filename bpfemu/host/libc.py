"""The C library and raw system calls the host backend needs, with the syscall numbers of each architecture.

``bpf(2)`` and ``capset(2)`` have no libc wrapper, so they go through ``syscall(2)`` with the number of the
running architecture (:data:`SYSCALLS`, from the kernel's syscall tables); the rest (mount, umount2, statfs,
mmap, munmap, mprotect, process_vm_readv) are libc functions.
"""
import ctypes
import errno
import os
import platform
import threading

from ..errors import strerror
from ..limits import NULL_PAGE
from ..surface import Mapping, StatfsResult

# arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h (arm64, riscv64),
# arch/powerpc/kernel/syscalls/syscall.tbl, arch/s390/kernel/syscalls/syscall.tbl
SYSCALLS = {
    "x86_64": {"bpf": 321, "capset": 126},
    "aarch64": {"bpf": 280, "capset": 91},
    "riscv64": {"bpf": 280, "capset": 91},
    "ppc64le": {"bpf": 361, "capset": 184},
    "s390x": {"bpf": 351, "capset": 185},
}
MACHINE = platform.machine()  # read once: a child that dropped to another uid may not be able to later
PROT_READ, PROT_WRITE, PROT_NONE = 1, 2, 0
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 0x01, 0x02, 0x20
MNT_DETACH = 2
MADV_NOHUGEPAGE = 15
HUGE_PAGE = 2 << 20
CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE, MS_SLAVE = 0x4000, 1 << 18, 1 << 19

_libc = None


class iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def libc():
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.syscall.restype = ctypes.c_long
        lib.mmap.restype = ctypes.c_void_p
        lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                             ctypes.c_long]
        lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        lib.process_vm_readv.restype = ctypes.c_ssize_t
        lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.unshare.argtypes = [ctypes.c_int]
        lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        lib.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _libc = lib
    return _libc


def errno_error(path=None):
    """The OSError for the errno the last libc call left."""
    e = ctypes.get_errno()
    return OSError(e, strerror(e), path) if path is not None else OSError(e, strerror(e))


def syscall_nr(name):
    """The number of system call ``name`` on this architecture (KeyError when unknown)."""
    return SYSCALLS[MACHINE][name]


def raw_bpf(cmd, addr, size):
    """bpf(cmd, addr, size) on the real kernel: the result, or OSError(errno)."""
    r = libc().syscall(ctypes.c_long(syscall_nr("bpf")), ctypes.c_int(cmd), ctypes.c_void_p(addr),
                       ctypes.c_uint(size))
    if r < 0:
        raise errno_error()
    return r


def capset(bits):
    """capset(2) of this process: effective and permitted sets ``bits`` (a bit per capability number)."""
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    hdr = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    for i in range(2):
        word = (bits >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = word
    if libc().syscall(ctypes.c_long(syscall_nr("capset")), ctypes.byref(hdr), ctypes.byref(data)) != 0:
        raise errno_error()


def read_partial(addr, n):
    """Up to n bytes of our memory at addr, stopping where it stops being readable."""
    if n <= 0 or addr < NULL_PAGE:
        return b""
    buf = ctypes.create_string_buffer(n)
    got = libc().process_vm_readv(os.getpid(), ctypes.byref(iovec(ctypes.addressof(buf), n)), 1,
                                  ctypes.byref(iovec(addr, n)), 1, 0)
    if got <= 0:
        return b""
    return buf.raw[:got]


def _c(s):
    return s.encode() if isinstance(s, str) else s


def mount(src, target, fstype, flags=0):
    """mount(2); ``src`` and ``fstype`` may be None (a propagation change: ``flags`` MS_SLAVE|MS_REC)."""
    if libc().mount(_c(src), _c(target), _c(fstype), flags, None) != 0:
        raise errno_error(target)


def unshare(flags):
    if libc().unshare(flags) != 0:
        raise errno_error()


def setns(fd, nstype):
    if libc().setns(fd, nstype) != 0:
        raise errno_error()


def private_bpffs(path="/sys/fs/bpf"):
    """In a fresh process: a mount namespace of its own in which a new bpffs is mounted at ``path``.

    The namespace starts as a copy of the caller's, with every mount made a slave (MS_REC|MS_SLAVE): mounts
    made on the machine later still show in it, nothing mounted in it shows on the machine. Where ``path``
    does not exist (a /sys without the bpf directory), a tmpfs over its parent provides it, in the namespace
    only. Needs CAP_SYS_ADMIN; raises OSError."""
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_SLAVE)
    if not os.path.isdir(path):
        parent = os.path.dirname(path)
        mount("tmpfs", parent, "tmpfs")
        os.mkdir(path)
    mount("bpf", path, "bpf")


def umount(target):
    if libc().umount2(target.encode(), MNT_DETACH) != 0:
        raise errno_error(target)


AT_FDCWD = -100


def renameat2(old, new, flags):
    """renameat2(AT_FDCWD, old, AT_FDCWD, new, flags) (glibc 2.28+); paths as str."""
    if libc().renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), ctypes.c_uint(flags)) != 0:
        raise errno_error(new)


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_long * 15)]


def statfs(path):
    buf = _Statfs()
    if libc().statfs(path.encode(), ctypes.byref(buf)) != 0:
        raise errno_error(path)
    return StatfsResult(buf.f_type & 0xFFFFFFFF)


def mmap_fd(fd, length, offset, writable):
    """mmap(MAP_SHARED) of fd in this process, as a :class:`bpfemu.surface.Mapping`."""
    lib = libc()
    prot = PROT_READ | PROT_WRITE if writable else PROT_READ
    if not isinstance(length, int) or not isinstance(offset, int):
        raise OSError(errno.EINVAL, strerror(errno.EINVAL))
    length &= (1 << 64) - 1  # size_t and off_t, as a C caller's values arrive
    offset = (offset + (1 << 63)) % (1 << 64) - (1 << 63)
    p = lib.mmap(None, length, prot, MAP_SHARED, fd, offset)
    if p in (None, ctypes.c_void_p(-1).value):
        raise errno_error()
    view = memoryview((ctypes.c_char * length).from_address(p)).cast("B")
    return Mapping(view, writable, lambda: lib.munmap(p, length))


def resident_runs(addr, n):
    """[(offset, length)] of the page runs of [addr, addr + n) that are in memory (mincore(2)); addr is
    page-aligned. A fresh anonymous mapping has none until something touches it: what a call wrote into a
    large zeroed buffer is found without reading (and faulting in) the rest. None when mincore fails."""
    page = Guarded.PAGE
    pages = (n + page - 1) // page
    vec = (ctypes.c_ubyte * pages)()
    if libc().mincore(addr, pages * page, vec) != 0:
        return None
    out = []
    for i, v in enumerate(bytes(vec)):
        if v & 1:
            if out and out[-1][0] + out[-1][1] == i * page:
                out[-1] = (out[-1][0], out[-1][1] + page)
            else:
                out.append((i * page, page))
    return [(off, min(length, n - off)) for off, length in out]


class Guarded:
    """Anonymous memory with an unmapped (PROT_NONE) page right after ``n`` usable bytes.

    ``Guarded.get(n)`` reuses a freed region of the same size, zeroed as fresh memory is: a host child's call
    needs up to three, and mmap + mprotect + munmap of each cost most of a call in a VM guest (under TCG each
    of them flushes the soft TLB). ``free()`` keeps up to POOLED regions per size up to POOL_MAX."""

    PAGE = 4096
    POOLED = 4
    POOL_MAX = 16 * PAGE
    _pool = {}  # usable size -> [free regions]
    _pool_lock = threading.Lock()

    def __init__(self, n):
        lib = libc()
        self.usable = (n + self.PAGE - 1) // self.PAGE * self.PAGE
        self.base = lib.mmap(None, self.usable + self.PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                             -1, 0)
        if self.base in (None, ctypes.c_void_p(-1).value):
            raise MemoryError("mmap failed")
        lib.mprotect(self.base + self.usable, self.PAGE, PROT_NONE)
        if self.usable >= HUGE_PAGE:  # pages as the kernel touches them, not 2 MiB at a time (resident_runs)
            lib.madvise(self.base, self.usable, MADV_NOHUGEPAGE)
        self.guard = self.base + self.usable
        self.size = self.usable + self.PAGE

    @classmethod
    def get(cls, n):
        """A region of at least ``n`` usable bytes, all zero: a pooled one when there is one of that size."""
        usable = (max(n, 1) + cls.PAGE - 1) // cls.PAGE * cls.PAGE
        with cls._pool_lock:
            free = cls._pool.get(usable)
            g = free.pop() if free else None
        if g is None:
            return cls(n)
        ctypes.memset(g.base, 0, g.usable)
        return g

    def free(self):
        if self.usable <= self.POOL_MAX:
            with self._pool_lock:
                free = self._pool.setdefault(self.usable, [])
                if len(free) < self.POOLED:
                    free.append(self)
                    return
        libc().munmap(self.base, self.size)
