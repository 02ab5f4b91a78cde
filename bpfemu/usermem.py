"""User memory: the one seam through which the kernel model touches the caller.

The syscall layer never dereferences a Python object. It gets an address and a
:class:`UserMemory` and reads or writes bytes through it, as the kernel does
with copy_from_user/copy_to_user. A bad address gives EFAULT, never a crash.

:class:`LocalMemory` serves the calling process. On Linux it goes through
process_vm_readv/process_vm_writev on our own pid, which the kernel checks
page by page, so NULL, unmapped and read-only (for writes) addresses fail with
EFAULT. Elsewhere it can only refuse the NULL page (addresses below 4096) and
then trusts the pointer (documented in the README).
"""
import ctypes
import errno
import os
import sys

from .errors import bpf_error

NULL_PAGE = 4096


class UserMemory:
    """Interface: read(addr, n) -> bytes and write(addr, data); EFAULT on a bad address."""

    def read(self, addr, n):  # pragma: no cover - interface
        raise NotImplementedError

    def write(self, addr, data):  # pragma: no cover - interface
        raise NotImplementedError


class _iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class LocalMemory(UserMemory):
    """The current process's address space."""

    def __init__(self):
        self._pid = os.getpid()
        self._readv = self._writev = None
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                self._readv = libc.process_vm_readv
                self._writev = libc.process_vm_writev
                for f in (self._readv, self._writev):
                    f.restype = ctypes.c_ssize_t
                    f.argtypes = [ctypes.c_int, ctypes.POINTER(_iovec), ctypes.c_ulong,
                                  ctypes.POINTER(_iovec), ctypes.c_ulong, ctypes.c_ulong]
            except (OSError, AttributeError):
                self._readv = self._writev = None
        self._checked = False

    def _pid_now(self):
        # a fork()ed child must name itself, not its parent
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
        return pid

    def read(self, addr, n):
        if n == 0:
            return b""
        if addr < NULL_PAGE or addr + n > 1 << 64:
            raise bpf_error(errno.EFAULT, "bad user pointer")
        buf = ctypes.create_string_buffer(n)
        if self._readv is not None:
            local = _iovec(ctypes.addressof(buf), n)
            remote = _iovec(addr, n)
            got = self._readv(self._pid_now(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
            if got != n:
                if got < 0 and ctypes.get_errno() not in (errno.EFAULT, errno.ENOMEM):
                    self._readv = None  # process_vm_* refused (seccomp, ptrace policy): fall back
                    return self.read(addr, n)
                raise bpf_error(errno.EFAULT, "bad user pointer")
            return buf.raw
        ctypes.memmove(buf, addr, n)
        return buf.raw

    def write(self, addr, data):
        n = len(data)
        if n == 0:
            return
        if addr < NULL_PAGE or addr + n > 1 << 64:
            raise bpf_error(errno.EFAULT, "bad user pointer")
        if self._writev is not None:
            src = ctypes.create_string_buffer(bytes(data), n)
            local = _iovec(ctypes.addressof(src), n)
            remote = _iovec(addr, n)
            got = self._writev(self._pid_now(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
            if got != n:
                if got < 0 and ctypes.get_errno() not in (errno.EFAULT, errno.ENOMEM):
                    self._writev = None
                    return self.write(addr, data)
                raise bpf_error(errno.EFAULT, "bad user pointer")
            return
        ctypes.memmove(addr, bytes(data), n)


LOCAL = LocalMemory()


def address_of(buf):
    """Address and length of a writable buffer (ctypes object or bytearray), or (int, None)."""
    if isinstance(buf, int):
        return buf, None
    if isinstance(buf, ctypes._SimpleCData) or isinstance(buf, (ctypes.Structure, ctypes.Union, ctypes.Array)):
        return ctypes.addressof(buf), ctypes.sizeof(buf)
    if isinstance(buf, (bytearray, memoryview)):
        n = len(buf) if isinstance(buf, bytearray) else buf.nbytes
        if n == 0:
            return 0, 0
        c = (ctypes.c_char * n).from_buffer(buf)
        return ctypes.addressof(c), n
    raise TypeError("attr must be a ctypes object, a bytearray or a writable memoryview, not %s"
                    % type(buf).__name__)
