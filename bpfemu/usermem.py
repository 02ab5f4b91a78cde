"""User memory: the one seam through which the kernel model touches the caller.

The syscall layer never dereferences a Python object. It gets an address and a
:class:`UserMemory` and reads or writes bytes through it, as the kernel does
with copy_from_user/copy_to_user. A bad address gives EFAULT, never a crash.
One syscall copies through a :class:`UserCopy`, which adds the per-call page
cache that batches need.

:class:`LocalMemory` serves the calling process. On Linux the kernel makes
the copies, checking every page as bpf(2)'s own copy_from_user/copy_to_user
do: a write(2) from the caller's address into a per-thread memfd that is also
mapped in this process (the bytes are then read through the mapping) and a
pread(2) from that memfd into it (process_vm_readv/process_vm_writev on our own
pid for copies over a page), so NULL, unmapped, PROT_NONE and read-only (for
writes) addresses fail with EFAULT. Elsewhere, or where those calls are blocked (a seccomp profile), it can
only refuse the NULL page (addresses below 4096) and then trusts the pointer
(``LocalMemory.checked`` and ``Kernel.checked_user_memory`` say which; the
README says what is lost).
"""
import ctypes
import errno
import mmap
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

    def read2(self, a1, n1, a2, n2):
        """(bytes at a1, bytes at a2), read in this order; EFAULT if either is bad (reads have no side
        effects, so which one faulted does not show)."""
        return self.read(a1, n1), self.read(a2, n2)

    def read_apply_write(self, addr, n, fn, arg, out):
        """An element lookup's copies around its operation: ``write(out, fn(read(addr, n), arg))``. An
        error of the read (EFAULT) comes before ``fn`` runs, one of ``fn`` before the write."""
        self.write(out, fn(self.read(addr, n), arg))


_iovec = hostenv.iovec  # the one iovec type the prototypes of hostenv.process_vm_functions() take


SCRATCH = 1 << 12  # reads and writes up to this size go through a per-thread buffer (or pipe)


def _user_view():
    """(memoryview, end): a writable view of addresses [0, end) that hands a slice ``[addr:addr + n]`` to a
    system call as its buffer (cheaper than a ctypes object per copy). Python itself never touches the
    bytes behind it: only the kernel does, through copy_from_user/copy_to_user, which check every page.
    (None, 0) where no such view can be made (a 32-bit Python)."""
    end = 1 << 62
    try:
        return memoryview((ctypes.c_char * end).from_address(0)).cast("B"), end
    except (OverflowError, ValueError, TypeError, MemoryError):
        return None, 0


_USER, _USER_END = _user_view()
_pwrite, _pwritev, _preadv = getattr(os, "pwrite", None), getattr(os, "pwritev", None), getattr(os, "preadv", None)

_chars_types = {}


def _chars(n):
    """c_char * n (cached): an object over n bytes at an address that never touches them itself."""
    t = _chars_types.get(n)
    if t is None:
        t = _chars_types[n] = ctypes.c_char * n
    return t


def _open_pipe():
    """A non-blocking pipe (read fd, write fd), or None where none can be made (EMFILE...)."""
    try:
        r, w = os.pipe()
    except OSError:
        return None
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


# The memfd's mapping is much bigger than what is used (2 MiB of a sparse memfd: only the first page is
# ever touched, so only it takes memory) so that it does not fill a hole a caller made in its address
# space by unmapping memory (to have a pointer fault there) before a thread's first copy: mmap() puts a
# mapping in the highest gap that fits it, and a just unmapped range smaller than 2 MiB is passed over.
# (At 4 pages, a 4-page hole took it whole and the "bad" pointer read the scratch.) And a mapping is never
# unmapped when its thread ends: it goes to _POOL for the next thread's first copy (an unmapped one would
# leave a 2 MiB hole that a caller's next mmap goes into and the next thread's scratch then fills). So a
# new mapping is made only when more threads copy at once than ever before in this process.
# tests/test_usermem_checked.py
_MAPPED = 1 << 21
_POOL = []  # (fd, mmap, memoryview, pid) of threads that ended
_POOL_MAX = 16  # each holds two fds (ours and the mmap object's dup of it)


def _open_memfd():
    """(fd, mmap, memoryview, pid) of a memfd mapped shared (SCRATCH bytes used), from the pool or new, or
    None where there is none."""
    pid = os.getpid()
    while _POOL:
        try:
            m = _POOL.pop()
        except IndexError:  # another thread took the last one
            break
        if m[3] == pid:
            return m
        _close_memfd(m)  # a fork()ed child's copy of its parent's (shared with it): never used
    try:
        fd = os.memfd_create("bpfemu-copy", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        return None
    try:
        os.ftruncate(fd, _MAPPED)
        mm = mmap.mmap(fd, _MAPPED)
    except (OSError, ValueError):
        os.close(fd)
        return None
    return fd, mm, memoryview(mm), pid


def _close_memfd(m, _close=os.close):  # bound now: __del__ may run when the os module is gone
    m[2].release()
    m[1].close()
    try:
        _close(m[0])
    except OSError:
        pass


def _drain(r):
    try:
        while os.read(r, 1 << 16):
            pass
    except OSError:  # BlockingIOError: empty
        pass


class _Scratch:
    """One thread's fixed buffer and iovecs: a copy sets two fields and makes one call.

    The local iovec always covers the whole buffer; the kernel copies as many bytes as the
    shorter side holds, i.e. the remote length, so only the remote iovec changes per call."""

    __slots__ = ("buf", "view", "local", "remote", "lref", "rref", "pipe", "memfd", "mfd", "mview", "mm")

    def __init__(self, pipe=False):
        self.buf = ctypes.create_string_buffer(SCRATCH)
        self.view = memoryview(self.buf).cast("B")
        self.local = _iovec(ctypes.addressof(self.buf), SCRATCH)
        self.remote = _iovec(0, 0)
        self.lref = ctypes.byref(self.local)
        self.rref = ctypes.byref(self.remote)
        self.pipe = _open_pipe() if pipe else None
        self.memfd = _open_memfd() if pipe else None
        self.mfd, self.mm, self.mview = self.memfd[:3] if self.memfd else (-1, None, None)

    def close(self, _close=os.close):  # bound now: __del__ may run when the os module is gone
        p, self.pipe = self.pipe, None
        if p is not None:
            for fd in p:
                try:
                    _close(fd)
                except OSError:
                    pass
        self.close_memfd(_close)

    def close_memfd(self, _close=os.close, _close_memfd=_close_memfd):
        m, self.memfd, self.mview, self.mm, self.mfd = self.memfd, None, None, None, -1
        if m is not None:
            _close_memfd(m, _close)

    def __del__(self, _getpid=os.getpid, _pool=_POOL, _max=_POOL_MAX):
        # the thread ended (or its LocalMemory is gone): the memfd and its mapping go to the next thread
        # (names bound now: at interpreter exit the module's globals may already be None)
        m = self.memfd
        if m is not None and len(_pool) < _max and m[3] == _getpid():
            self.memfd, self.mview, self.mm, self.mfd = None, None, None, -1
            _pool.append(m)
        self.close()


_instances = weakref.WeakSet()


def _after_fork():
    # a fork()ed child must name itself, not its parent, and must not share the parent's pipes
    pid = os.getpid()
    for m in list(_instances):
        m._pid = pid
        old = getattr(m._tls, "s", None)
        m._tls = threading.local()
        if old is not None:
            old.close()
    while _POOL:  # the parent's, shared with it
        _close_memfd(_POOL.pop())


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
            s = self._tls.s = _Scratch(pipe=self._pipes)
            return s

    # Checked copies of up to SCRATCH bytes go through a per-thread memfd that is also mapped shared in
    # this process. A read is one pwrite(2) from the caller's address into the memfd: the kernel copies
    # with copy_from_user (EFAULT for an unmapped, PROT_NONE or kernel address, exactly what bpf(2)
    # gives; a short count when the range runs into such a page part way) and the bytes are then in the
    # mapping, read with no second system call. A write puts the bytes in the mapping and pread(2)s them
    # into the caller's address, which copies out with copy_to_user (EFAULT for a read-only page too).
    # One system call per copy costs less than process_vm_readv/writev, which pin the pages of a
    # "remote" process. Where no memfd could be made, a read goes through a per-thread non-blocking
    # pipe (write(2) from the caller's address, read(2) back; a fault leaves bytes in the pipe, drained
    # before the error is raised); without either (or another process's memory)
    # process_vm_readv/writev do the copies.
    _pipes = True

    def read(self, addr, n):
        if 0 < n <= SCRATCH and NULL_PAGE <= addr and addr + n <= _USER_END and self._readv is not None:
            try:
                s = self._tls.s
            except AttributeError:
                s = self._scratch()
            fd = s.mfd
            if fd >= 0:
                try:
                    got = _pwrite(fd, _USER[addr:addr + n], 0)
                except OSError as e:
                    got = -e.errno
                if got == n:
                    return s.mm[:n]
                if got == -errno.EFAULT or 0 <= got < n:
                    raise bpf_error(errno.EFAULT, "bad user pointer")
                s.close_memfd()  # not usable (ENOMEM, ENOSPC...): the pipe from now on
        return self._read(addr, n)

    def _read(self, addr, n):
        """read() without the user view: the memfd, the pipe, process_vm_readv, in this order of choice."""
        if 0 < n <= SCRATCH and addr >= NULL_PAGE and addr + n <= 1 << 64 and self._readv is not None:
            try:
                s = self._tls.s
            except AttributeError:
                s = self._scratch()
            fd = s.mfd
            if fd >= 0:
                try:
                    got = os.pwrite(fd, (_chars_types.get(n) or _chars(n)).from_address(addr), 0)
                except OSError as e:
                    got = -e.errno
                if got == n:
                    return s.mm[:n]
                if got == -errno.EFAULT or 0 <= got < n:
                    raise bpf_error(errno.EFAULT, "bad user pointer")
                s.close_memfd()  # not usable (ENOMEM, ENOSPC...): the pipe from now on
            p = s.pipe
            if p is not None:
                try:
                    got = os.write(p[1], (_chars_types.get(n) or _chars(n)).from_address(addr))
                except OSError as e:
                    got = -e.errno
                if got == n:
                    return os.read(p[0], n)
                return self._pipe_failed(s, got, addr, n)
            r = s.remote
            r.iov_base = addr
            r.iov_len = n
            if self._readv(self._pid, s.lref, 1, s.rref, 1, 0) == n:
                return bytes(s.view[:n])
            return self._read_slow(addr, n)
        if n == 0:
            return b""
        if addr < NULL_PAGE or addr + n > 1 << 64:
            raise bpf_error(errno.EFAULT, "bad user pointer")
        return self._read_slow(addr, n)

    def _pipe_failed(self, s, got, addr, n):
        """A pipe copy did not complete: EFAULT for a fault (after draining the pipe), else give up
        the pipe and read with process_vm_readv."""
        _drain(s.pipe[0])
        if got == -errno.EFAULT or 0 <= got < n:
            raise bpf_error(errno.EFAULT, "bad user pointer")
        s.close()
        return self._read_slow(addr, n)

    def read2(self, a1, n1, a2, n2):
        if (0 < n1 and 0 < n2 and n1 + n2 <= SCRATCH and NULL_PAGE <= a1 and a1 + n1 <= _USER_END
                and NULL_PAGE <= a2 and a2 + n2 <= _USER_END and self._readv is not None):
            try:
                s = self._tls.s
            except AttributeError:
                s = self._scratch()
            fd = s.mfd
            if fd >= 0:
                # both ranges in one pwritev(2), one after the other in the memfd
                try:
                    got = _pwritev(fd, (_USER[a1:a1 + n1], _USER[a2:a2 + n2]), 0)
                except OSError as e:
                    got = -e.errno
                if got == n1 + n2:
                    mm = s.mm
                    return mm[:n1], mm[n1:got]
                if got == -errno.EFAULT or 0 <= got < n1 + n2:
                    raise bpf_error(errno.EFAULT, "bad user pointer")
                s.close_memfd()
        return self._read2(a1, n1, a2, n2)

    def _read2(self, a1, n1, a2, n2):
        if (self._readv is not None and 0 < n1 and 0 < n2 and n1 + n2 <= SCRATCH and a1 >= NULL_PAGE
                and a2 >= NULL_PAGE and a1 + n1 <= 1 << 64 and a2 + n2 <= 1 << 64):
            try:
                s = self._tls.s
            except AttributeError:
                s = self._scratch()
            get = _chars_types.get
            fd = s.mfd
            if fd >= 0:
                # both ranges in one pwritev(2), one after the other in the memfd
                try:
                    got = os.pwritev(fd, ((get(n1) or _chars(n1)).from_address(a1),
                                          (get(n2) or _chars(n2)).from_address(a2)), 0)
                except OSError as e:
                    got = -e.errno
                if got == n1 + n2:
                    mm = s.mm
                    return mm[:n1], mm[n1:got]
                if got == -errno.EFAULT or 0 <= got < n1 + n2:
                    raise bpf_error(errno.EFAULT, "bad user pointer")
                s.close_memfd()
            p = s.pipe
            if p is not None:
                try:
                    got = os.writev(p[1], ((get(n1) or _chars(n1)).from_address(a1),
                                           (get(n2) or _chars(n2)).from_address(a2)))
                except OSError as e:
                    got = -e.errno
                if got == n1 + n2:
                    data = os.read(p[0], got)
                    return data[:n1], data[n1:]
                _drain(p[0])
                if got == -errno.EFAULT or 0 <= got < n1 + n2:
                    raise bpf_error(errno.EFAULT, "bad user pointer")
                s.close()
        return self.read(a1, n1), self.read(a2, n2)

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
        if (0 < n <= SCRATCH and NULL_PAGE <= addr and addr + n <= _USER_END and self._writev is not None
                and (type(data) is bytes or type(data) is bytearray)):
            try:
                s = self._tls.s
            except AttributeError:
                s = self._scratch()
            mv = s.mview
            if mv is not None:
                # copy_to_user by pread(2) of the memfd into the caller's address
                mv[:n] = data
                try:
                    got = _preadv(s.mfd, (_USER[addr:addr + n],), 0)
                except OSError as e:
                    got = -e.errno
                if got == n:
                    return
                if got == -errno.EFAULT or 0 <= got < n:
                    raise bpf_error(errno.EFAULT, "bad user pointer")
                s.close_memfd()
        self._write(addr, data)

    def read_apply_write(self, addr, n, fn, arg, out):
        # read() and write() above in one, with one look at the thread's scratch
        if (0 < n <= SCRATCH and NULL_PAGE <= addr and addr + n <= _USER_END and NULL_PAGE <= out
                and self._readv is not None and self._writev is not None):
            try:
                s = self._tls.s
            except AttributeError:
                s = self._scratch()
            fd = s.mfd
            if fd >= 0:
                try:
                    got = _pwrite(fd, _USER[addr:addr + n], 0)
                except OSError as e:
                    got = -e.errno
                if got == n:
                    data = fn(s.mm[:n], arg)
                    m = len(data)
                    if (0 < m <= SCRATCH and out + m <= _USER_END and s.mfd == fd
                            and (type(data) is bytes or type(data) is bytearray)):
                        s.mview[:m] = data
                        try:
                            got = _preadv(fd, (_USER[out:out + m],), 0)
                        except OSError as e:
                            got = -e.errno
                        if got == m:
                            return
                        if got == -errno.EFAULT or 0 <= got < m:
                            raise bpf_error(errno.EFAULT, "bad user pointer")
                        s.close_memfd()
                    self._write(out, data)
                    return
                if got == -errno.EFAULT or 0 <= got < n:
                    raise bpf_error(errno.EFAULT, "bad user pointer")
                s.close_memfd()
        self.write(out, fn(self.read(addr, n), arg))

    def _write(self, addr, data):
        """write() without the user view: the memfd, the pipe, process_vm_writev, in this order of choice."""
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
            mv = s.mview
            if mv is not None and (type(data) is bytes or type(data) is bytearray):
                # copy_to_user by pread(2) of the memfd into the caller's address
                mv[:n] = data
                try:
                    got = os.preadv(s.mfd, ((_chars_types.get(n) or _chars(n)).from_address(addr),), 0)
                except OSError as e:
                    got = -e.errno
                if got == n:
                    return
                if got == -errno.EFAULT or 0 <= got < n:
                    raise bpf_error(errno.EFAULT, "bad user pointer")
                s.close_memfd()
                return self._write_slow(addr, data, n)
            p = s.pipe
            if p is not None and (type(data) is bytes or type(data) is bytearray):
                try:
                    os.write(p[1], data)
                except OSError:  # the pipe is not usable: process_vm_writev below
                    _drain(p[0])
                    s.close()
                    return self._write_slow(addr, data, n)
                try:
                    got = os.readv(p[0], ((_chars_types.get(n) or _chars(n)).from_address(addr),))
                except OSError as e:
                    got = -e.errno
                if got == n:
                    return
                _drain(p[0])
                if got == -errno.EFAULT or 0 <= got < n:
                    raise bpf_error(errno.EFAULT, "bad user pointer")
                s.close()
                return self._write_slow(addr, data, n)
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
    """Another process's address space (``pid``), through process_vm_readv/writev on that pid, or, where
    those are blocked (a container's seccomp profile), through ``/proc/PID/mem``.

    What ``bpfemu exec`` serves a traced process with. The kernel checks every page either way (both need
    the same ptrace access to ``pid``), so a bad pointer is EFAULT; so is a process that is gone or that we
    may not read (ESRCH, EPERM, EIO): there is no fallback to our own memory. ENOSYS when neither way is
    open (not Linux)."""

    _pipes = False  # a pipe copies our own memory only

    def __init__(self, pid):
        super().__init__()
        _instances.discard(self)  # a fork of ours does not change whose memory this is
        self._pid = pid
        self._mem = None  # fd of /proc/PID/mem where process_vm_readv is blocked
        if self._readv is None:
            why = self._why
            try:
                self._mem = os.open("/proc/%d/mem" % pid, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
            except OSError as e:
                raise OSError(errno.ENOSYS, "cannot read the memory of process %d: %s, and /proc/%d/mem: %s"
                              % (pid, why, pid, e.strerror)) from None

    def _setup(self):
        LocalMemory._setup(self)
        if self._readv is None or self._writev is None:
            self._readv = self._writev = None

    @property
    def checked(self):
        return True  # every copy is the kernel's, one way or the other

    def close(self):
        """Let go of /proc/PID/mem (when it is the way in); the process is gone or no longer served."""
        fd, self._mem = self._mem, None
        if fd is not None:
            os.close(fd)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _read_slow(self, addr, n):
        if self._mem is not None:
            try:
                data = os.pread(self._mem, n, addr)
            except (OSError, OverflowError):
                data = b""
            if len(data) != n:
                raise bpf_error(errno.EFAULT, "bad user pointer (pid %d, /proc/%d/mem)" % (self._pid, self._pid))
            return data
        buf = ctypes.create_string_buffer(n)
        local = _iovec(ctypes.addressof(buf), n)
        remote = _iovec(addr, n)
        if self._readv(self._pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) != n:
            raise bpf_error(errno.EFAULT, "bad user pointer (pid %d)" % self._pid)
        return buf.raw

    def _write_slow(self, addr, data, n):
        if self._mem is not None:
            try:
                done = os.pwrite(self._mem, bytes(data), addr)
            except (OSError, OverflowError):
                done = -1
            if done != n:
                raise bpf_error(errno.EFAULT, "bad user pointer (pid %d, /proc/%d/mem)" % (self._pid, self._pid))
            return
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

    def read2(self, a1, n1, a2, n2):
        """(bytes at a1, bytes at a2): two reads (a key and a value), in one copy where the memory can
        (``UserMemory.read2``); EFAULT if either is bad."""
        self._reads += 2
        if self._pending:
            self.flush()
        mem = self.mem
        rm = getattr(mem, "read2", None)
        if rm is None:
            return mem.read(a1, n1), mem.read(a2, n2)
        return rm(a1, n1, a2, n2)

    def write(self, addr, data):
        if not self._writes and self._pages is None and data:
            # the call's first write with no page read yet (an element command's one result): nothing
            # to queue behind or to keep in step
            self._writes = 1
            self.mem.write(addr, data)
            return
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

    def put_user(self, addr, data):
        """put_user: a store of a small scalar (an attr field) that lands whole or not at all.

        The host's store of a u32/u64 attr field that straddles a page it cannot write faults as a
        whole (EFAULT, the field untouched), unlike copy_to_user of a buffer, which writes the bytes
        before the fault. A write within one page is whole anyway; across two, the part in the second
        page goes first and is put back if the first part then faults."""
        n = len(data)
        if n == 0 or (addr & PAGE_MASK) == ((addr + n - 1) & PAGE_MASK) or addr < NULL_PAGE:
            self.write(addr, data)
            return
        if self._pending:
            self.flush()
        data = bytes(data)
        cut = ((addr + n - 1) & PAGE_MASK) - addr
        old = self.mem.read(addr + cut, n - cut)  # unreadable: not writable either, nothing written
        self.mem.write(addr + cut, data[cut:])
        try:
            self.mem.write(addr, data[:cut])
        except OSError:
            self.mem.write(addr + cut, old)
            raise
        pages = self._pages
        if pages:
            for page in (addr & PAGE_MASK, (addr + cut) & PAGE_MASK):
                cached = pages.get(page)
                if cached is not None:
                    lo, hi = max(addr, page), min(addr + n, page + PAGE_SIZE)
                    cached[lo - page:hi - page] = data[lo - addr:hi - addr]

    def flush(self):
        """Land the queued writes: runs of adjacent writes, which never overlap one another."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        for a, run in pending:
            self.mem.write(a, run)
