"""User memory: the one seam through which the kernel model touches the caller.

The syscall layer never dereferences a Python object. It gets an address and a
:class:`UserMemory` and reads or writes bytes through it, as the kernel does
with copy_from_user/copy_to_user. A bad address gives EFAULT, never a crash.
One syscall copies through a :class:`UserCopy`, which adds the per-call page
cache that batches need.

:class:`LocalMemory` serves the calling process. On Linux it goes through
process_vm_readv/process_vm_writev on our own pid, which the kernel checks
page by page, so NULL, unmapped and read-only (for writes) addresses fail with
EFAULT. Elsewhere, or where those calls are blocked (a seccomp profile), it can
only refuse the NULL page (addresses below 4096) and then trusts the pointer
(``LocalMemory.checked`` and ``Kernel.checked_user_memory`` say which; the
README says what is lost).
"""
import ctypes
import errno
import os
import threading
import weakref

from . import hostenv
from .errors import bpf_error
from .limits import NULL_PAGE, PAGE_SIZE


class UserMemory:
    """Interface: read(addr, n) -> bytes and write(addr, data); EFAULT on a bad address."""

    def read(self, addr, n):  # pragma: no cover - interface
        raise NotImplementedError

    def write(self, addr, data):  # pragma: no cover - interface
        raise NotImplementedError


_iovec = hostenv.iovec  # the one iovec type the prototypes of hostenv.process_vm_functions() take


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

    Copies are checked with process_vm_readv/writev on Linux when this process may use them
    (:func:`bpfemu.hostenv.process_vm_status`): then every bad pointer is EFAULT. Elsewhere, or when they
    are blocked (a seccomp profile), or with ``checked=False`` (what the benchmark uses to show the cost of
    the checks), copies are plain memmoves: only the NULL page gives EFAULT, and another bad pointer
    crashes the process. :attr:`checked` says which, :attr:`unchecked_reason` why."""

    def __init__(self, checked=True):
        self._pid = os.getpid()
        self._want_checks = checked
        self._tls = threading.local()
        self._setup()
        _instances.add(self)

    def _setup(self):
        """Choose checked or unchecked copies (again by :func:`reprobe` after the platform changed)."""
        fns, why = None, "LocalMemory(checked=False) copies without checks"
        if self._want_checks:
            ok, why = hostenv.process_vm_status()
            if ok:
                fns = hostenv.process_vm_functions()
        self._readv, self._writev = fns or (None, None)
        self._why = "" if fns else why

    @property
    def checked(self):
        """True when a bad pointer gives EFAULT (checked copies), False when it may crash the process."""
        return self._readv is not None and self._writev is not None

    @property
    def unchecked_reason(self):
        """Why copies are not checked ('' when they are)."""
        return "" if self.checked else self._why

    def _refused(self, name):
        """process_vm_* failed with another errno than EFAULT at run time: fall back to unchecked copies."""
        code = ctypes.get_errno()
        self._readv = self._writev = None
        self._why = "%s failed with %s at run time (a seccomp profile or the ptrace policy blocks it)" % (
            name, errno.errorcode.get(code, code))

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
                    self._refused("process_vm_readv")
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
                    self._refused("process_vm_writev")
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


def reprobe():
    """Probe the platform again and let every LocalMemory choose its copies anew (after BPFEMU_PLATFORM
    changed, as pytest's --bpf-platform does)."""
    hostenv.process_vm_status(refresh=True)
    for m in list(_instances):
        m._setup()



# Commands that copy many small pieces (a batch: a key and a value per element) must not pay one
# checked copy (a process_vm_readv/writev syscall) per piece:
# - reads: after the first few reads of a call, whole pages of the caller's memory are read once
#   and the pieces served from them for the rest of this one syscall. A page is readable as a
#   whole or not at all, so EFAULT comes exactly where the piecewise read would give it.
# - writes: once a write to a page succeeded in this call, later writes that fall in such pages
#   cannot fault; they are queued and land, merged and in order, before the syscall returns
#   (also when it fails), so the caller sees the same bytes. Reads see the queued writes.
PAGED_AFTER = 4
PAGE_MASK = ~(PAGE_SIZE - 1)


class UserCopy:
    """copy_from_user/copy_to_user for one syscall: ``read(addr, n)``, ``write(addr, data)``, ``flush()``.

    Wraps the caller's :class:`UserMemory` ``mem`` with the page cache described above; the
    caller must ``flush()`` before the syscall returns (the syscall front does)."""

    __slots__ = ("mem", "_reads", "_pages", "_wpages", "_pending", "_writes")

    def __init__(self, mem):
        self.mem = mem
        self._reads = 0
        self._pages = None  # page address -> bytearray of its bytes as this call sees them
        self._wpages = None  # pages written successfully in this call
        self._pending = None  # queued writes: [[addr, bytearray]] runs of adjacent writes
        self._writes = 0

    def _paged(self):
        """The page cache, or None when this memory is not a LocalMemory (it may guard single bytes)."""
        if self._pages is None:
            if not isinstance(self.mem, LocalMemory):
                self._reads = -(1 << 62)
                return None
            self._pages = {}
            self._wpages = set()
        return self._pages

    def read(self, addr, n):
        self._reads += 1
        if self._reads <= PAGED_AFTER or n >= PAGE_SIZE or n <= 0 or addr < NULL_PAGE or addr + n > 1 << 64:
            if self._pending:
                self.flush()
            return self.mem.read(addr, n)
        pages = self._paged()
        if pages is None:
            return self.mem.read(addr, n)
        first = addr & PAGE_MASK
        off = addr - first
        page = pages.get(first)
        if page is None:
            if self._pending:
                self.flush()
            page = pages[first] = bytearray(self.mem.read(first, PAGE_SIZE))
        if off + n <= PAGE_SIZE:
            return bytes(page[off:off + n])
        nxt = first + PAGE_SIZE
        page2 = pages.get(nxt)
        if page2 is None:
            if self._pending:
                self.flush()
            page2 = pages[nxt] = bytearray(self.mem.read(nxt, PAGE_SIZE))
        return bytes(page[off:]) + bytes(page2[:off + n - PAGE_SIZE])

    def write(self, addr, data):
        n = len(data)
        if n <= 0:
            self.mem.write(addr, data)
            return
        wpages = self._wpages
        first, last = addr & PAGE_MASK, (addr + n - 1) & PAGE_MASK
        if wpages is not None and first in wpages and last in wpages and (
                first == last or all(p in wpages for p in range(first, last, PAGE_SIZE))):
            data = bytes(data)
            runs = self._pending
            end = addr + n
            for r in runs:
                if addr < r[0] + len(r[1]) and end > r[0]:  # overlaps a queued write: order matters
                    self.flush()
                    runs = self._pending
                    break
            for r in runs:
                if r[0] + len(r[1]) == addr:
                    r[1] += data
                    break
            else:
                if len(runs) >= 16:
                    self.flush()
                    runs = self._pending
                runs.append([addr, bytearray(data)])
        else:
            if self._pending:
                self.flush()
            try:
                self.mem.write(addr, data)
            except OSError:
                if self._pages:
                    self._pages.clear()  # part of it may have landed: read afresh
                raise
            self._writes += 1
            if self._writes > 1 and n < PAGE_SIZE and self._paged() is not None:
                if self._pending is None:
                    self._pending = []
                wpages = self._wpages
                for p in range(first, last + 1, PAGE_SIZE):
                    wpages.add(p)
        pages = self._pages
        if pages:
            page = first
            while page <= last:
                cached = pages.get(page)
                if cached is not None:
                    lo, hi = max(addr, page), min(addr + n, page + PAGE_SIZE)
                    cached[lo - page:hi - page] = bytes(data[lo - addr:hi - addr])
                page += PAGE_SIZE

    def flush(self):
        """Land the queued writes: runs of adjacent writes, which never overlap one another."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        for a, run in pending:
            self.mem.write(a, run)
