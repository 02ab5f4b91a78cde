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
import threading
import weakref

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


SCRATCH = 1 << 12  # reads and writes up to this size go through a per-thread buffer


class _Scratch:
    """One thread's fixed buffer and iovecs: a copy sets two fields and makes one call.

    The local iovec always covers the whole buffer; the kernel copies as many bytes as the
    shorter side holds, i.e. the remote length, so only the remote iovec changes per call."""

    __slots__ = ("buf", "view", "local", "remote", "lref", "rref")

    def __init__(self):
        self.buf = ctypes.create_string_buffer(SCRATCH)
        self.view = memoryview(self.buf).cast("B")
        self.local = _iovec(ctypes.addressof(self.buf), SCRATCH)
        self.remote = _iovec(0, 0)
        self.lref = ctypes.byref(self.local)
        self.rref = ctypes.byref(self.remote)


_instances = weakref.WeakSet()


def _after_fork():
    # a fork()ed child must name itself, not its parent
    pid = os.getpid()
    for m in list(_instances):
        m._pid = pid


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class LocalMemory(UserMemory):
    """The current process's address space.

    ``checked=False`` skips process_vm_readv/writev and copies with memmove: much
    faster, but a bad pointer past the NULL page crashes the process instead of
    giving EFAULT (what the benchmark uses to show the cost of the checks)."""

    def __init__(self, checked=True):
        self._pid = os.getpid()
        self._readv = self._writev = None
        self._tls = threading.local()
        if checked and sys.platform.startswith("linux"):
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
        _instances.add(self)

    def _pid_now(self):
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
        return pid

    def _scratch(self):
        try:
            return self._tls.s
        except AttributeError:
            s = self._tls.s = _Scratch()
            return s

    def read(self, addr, n):
        if n == 0:
            return b""
        if addr < NULL_PAGE or addr + n > 1 << 64:
            raise bpf_error(errno.EFAULT, "bad user pointer")
        readv = self._readv
        if readv is not None and n <= SCRATCH:
            try:
                s = self._tls.s
            except AttributeError:
                s = self._scratch()
            r = s.remote
            r.iov_base = addr
            r.iov_len = n
            if readv(self._pid, s.lref, 1, s.rref, 1, 0) == n:
                return bytes(s.view[:n])
            return self._read_slow(addr, n)
        return self._read_slow(addr, n)

    def _read_slow(self, addr, n):
        if self._readv is not None:
            buf = ctypes.create_string_buffer(n)
            local = _iovec(ctypes.addressof(buf), n)
            remote = _iovec(addr, n)
            got = self._readv(self._pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
            if got != n:
                if got < 0 and ctypes.get_errno() not in (errno.EFAULT, errno.ENOMEM):
                    self._readv = None  # process_vm_* refused (seccomp, ptrace policy): fall back
                    return self.read(addr, n)
                raise bpf_error(errno.EFAULT, "bad user pointer")
            return buf.raw
        return ctypes.string_at(addr, n)

    def write(self, addr, data):
        n = len(data)
        if n == 0:
            return
        if addr < NULL_PAGE or addr + n > 1 << 64:
            raise bpf_error(errno.EFAULT, "bad user pointer")
        writev = self._writev
        if writev is not None and n <= SCRATCH:
            try:
                s = self._tls.s
            except AttributeError:
                s = self._scratch()
            try:
                s.view[:n] = data
            except (TypeError, ValueError):  # not a flat byte buffer: the general path copes
                return self._write_slow(addr, data, n)
            r = s.remote
            r.iov_base = addr
            r.iov_len = n
            if writev(self._pid, s.lref, 1, s.rref, 1, 0) == n:
                return
        self._write_slow(addr, data, n)

    def _write_slow(self, addr, data, n):
        if self._writev is not None:
            src = ctypes.create_string_buffer(bytes(data), n)
            local = _iovec(ctypes.addressof(src), n)
            remote = _iovec(addr, n)
            got = self._writev(self._pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
            if got != n:
                if got < 0 and ctypes.get_errno() not in (errno.EFAULT, errno.ENOMEM):
                    self._writev = None
                    return self.write(addr, data)
                raise bpf_error(errno.EFAULT, "bad user pointer")
            return
        ctypes.memmove(addr, bytes(data), n)


class ProcessMemory(LocalMemory):
    """Another process's address space (``pid``), through process_vm_readv/writev on that pid.

    What ``bpfemu exec`` serves a traced process with. The kernel checks every page as it does for
    our own pid, so a bad pointer is EFAULT; so is a process that is gone or that we may not
    read (ESRCH, EPERM): there is no fallback to our own memory."""

    def __init__(self, pid):
        super().__init__()
        _instances.discard(self)  # a fork of ours does not change whose memory this is
        self._pid = pid
        if self._readv is None:
            raise OSError(errno.ENOSYS, "process_vm_readv is not available")

    def _read_slow(self, addr, n):
        buf = ctypes.create_string_buffer(n)
        local = _iovec(ctypes.addressof(buf), n)
        remote = _iovec(addr, n)
        if self._readv(self._pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) != n:
            raise bpf_error(errno.EFAULT, "bad user pointer (pid %d)" % self._pid)
        return buf.raw

    def _write_slow(self, addr, data, n):
        src = ctypes.create_string_buffer(bytes(data), n)
        local = _iovec(ctypes.addressof(src), n)
        remote = _iovec(addr, n)
        if self._writev(self._pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) != n:
            raise bpf_error(errno.EFAULT, "bad user pointer (pid %d)" % self._pid)


LOCAL = LocalMemory()


_CTYPES = (ctypes.Union, ctypes.Structure, ctypes.Array, ctypes._SimpleCData)


def address_of(buf):
    """Address and length of a writable buffer (ctypes object or bytearray), or (int, None)."""
    if isinstance(buf, _CTYPES):
        return ctypes.addressof(buf), ctypes.sizeof(buf)
    if isinstance(buf, int):
        return buf, None
    if isinstance(buf, (bytearray, memoryview)):
        n = len(buf) if isinstance(buf, bytearray) else buf.nbytes
        if n == 0:
            return 0, 0
        c = (ctypes.c_char * n).from_buffer(buf)
        return ctypes.addressof(c), n
    raise TypeError("attr must be a ctypes object, a bytearray or a writable memoryview, not %s"
                    % type(buf).__name__)
