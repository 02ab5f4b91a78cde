"""bpfemu.Host and HostTask: the task surface of bpfemu over the real bpf(2) syscall.

``Host()`` is the calling process itself: ``bpf()`` is the raw syscall, fds
are real fds. ``Host().spawn()`` and ``.fork()`` give a :class:`HostTask`, a
real child process that performs each call for us (optionally after dropping
uid and capabilities), so fork, fd passing and privilege tests run on the
real kernel with the same code as on the emulator. How a child gets the
memory a call points to is :mod:`bpfemu.host.rpc`'s business.

This package imports no emulator internals: only the uapi, the errno helper,
the capability names, the shared return shapes (:mod:`bpfemu.surface`) and the
command table's declarations.
"""
import ctypes
import errno
import os
import signal
import socket
import sys
import tempfile

from .. import uapi
from ..errors import strerror
from ..limits import PAGE_SIZE
from ..surface import attr_args, c_fd, c_id, c_int, c_mode, c_owner, c_path
from ..syscall.table import COMMANDS
from .libc import MACHINE, SYSCALLS, mmap_fd, mount, raw_bpf, read_partial, renameat2, statfs, umount
from .rpc import RPC_FD, open_fds, recv, send, start_serving

FD_RETURNING = frozenset(c.cmd for c in COMMANDS.values() if c.returns_fd)


def available():
    """(True, '') when the real bpf() syscall is usable here, else (False, reason)."""
    if not sys.platform.startswith("linux"):
        return False, "not Linux"
    if MACHINE not in SYSCALLS:
        return False, "unknown bpf syscall number for %s" % MACHINE
    try:
        h = Host()
        a = uapi.make_attr(map_type=uapi.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=4, max_entries=1)
        fd = h.bpf(uapi.BPF_MAP_CREATE, a)
        os.close(fd)
    except OSError as e:
        return False, "bpf(BPF_MAP_CREATE) failed: %s" % e
    return True, ""


def _cpus(cpus):
    """A CPU set argument: integers, else EINVAL (EFAULT for something that is no set)."""
    try:
        cpus = set(cpus)
    except TypeError:
        raise OSError(errno.EFAULT, strerror(errno.EFAULT)) from None
    if not all(isinstance(c, int) and 0 <= c < 1 << 20 for c in cpus):
        raise OSError(errno.EINVAL, strerror(errno.EINVAL))
    return cpus


def _uid(uid):
    return None if uid is None else c_id(uid)


class _Surface:
    """What Host and HostTask share."""

    bpffs = None


class Host(_Surface):
    """The calling process over the real syscall."""

    def __init__(self, bpffs=None):
        self._opened = set()
        self.bpffs = bpffs
        self._mounted = None

    # -- the syscall ------------------------------------------------------------
    def bpf(self, cmd, attr, size=None):
        addr, size = attr_args(attr, size)
        r = raw_bpf(c_int(cmd), addr, size)
        if cmd in FD_RETURNING:
            self._opened.add(r)
        return r

    # -- processes and fds -------------------------------------------------------
    def close(self, fd):
        os.close(c_fd(fd))
        self._opened.discard(fd)

    def dup(self, fd, cloexec=False):
        """dup(2): close-on-exec clear (Python's os.dup sets it), or set with ``cloexec``."""
        r = os.dup(c_fd(fd))
        if not cloexec:
            os.set_inheritable(r, True)
        self._opened.add(r)
        return r

    def exit(self):
        """Close every fd this Host opened (the process itself lives on)."""
        for fd in sorted(self._opened):
            try:
                os.close(fd)
            except OSError:
                pass
        self._opened.clear()

    def fork(self, uid=None, caps=None):
        return HostTask._start(uid=_uid(uid), caps=caps, clean=False, bpffs=self.bpffs)

    def spawn(self, uid=None, caps=None):
        """A fresh child process: fds 0-2 only, like Kernel.spawn()."""
        return HostTask._start(uid=_uid(uid), caps=caps, clean=True, bpffs=self.bpffs)

    def send_fds(self, other, fds):
        return other._recv_fds([c_fd(fd) for fd in fds])

    def fds(self):
        return open_fds(skip=None)

    def sched_setaffinity(self, cpus):
        """sched_setaffinity(0, cpus) of this process (all its later syscalls run on those CPUs)."""
        os.sched_setaffinity(0, _cpus(cpus))

    def sched_getaffinity(self):
        return os.sched_getaffinity(0)

    # -- filesystem ----------------------------------------------------------------
    def mkdir(self, path, mode=0o777):
        os.mkdir(c_path(path), c_mode(mode))

    def rmdir(self, path):
        os.rmdir(c_path(path))

    def unlink(self, path):
        os.unlink(c_path(path))

    def rename(self, old, new, flags=0):
        """rename(2); with flags, renameat2(2) (RENAME_NOREPLACE 1, RENAME_EXCHANGE 2, RENAME_WHITEOUT 4)."""
        flags = c_int(flags)
        if flags:
            renameat2(c_path(old), c_path(new), flags & 0xFFFFFFFF)
        else:
            os.rename(c_path(old), c_path(new))

    def listdir(self, path):
        return sorted(os.listdir(c_path(path)))

    def stat(self, path):
        return os.stat(c_path(path))

    def lstat(self, path):
        return os.lstat(c_path(path))

    def symlink(self, target, path):
        os.symlink(c_path(target), c_path(path))

    def chmod(self, path, mode):
        os.chmod(c_path(path), c_mode(mode))

    def chown(self, path, uid, gid):
        os.chown(c_path(path), c_owner(uid), c_owner(gid))

    def readlink(self, path):
        return os.readlink(c_path(path))

    def open_dir(self, path):
        """An fd of the directory at path (O_RDONLY|O_DIRECTORY), e.g. for BPF_F_PATH_FD."""
        r = os.open(c_path(path), os.O_RDONLY | os.O_DIRECTORY)
        self._opened.add(r)
        return r

    def statfs(self, path):
        return statfs(c_path(path))

    def fdinfo(self, fd):
        """The text of /proc/self/fdinfo/<fd> (ENOENT when fd is not open)."""
        with open("/proc/self/fdinfo/%d" % c_int(fd, errno.ENOENT)) as f:
            return f.read()

    def mmap(self, fd, length, offset=0, writable=True):
        """mmap(MAP_SHARED) of a map fd: a :class:`bpfemu.surface.Mapping` over the real mapping."""
        return mmap_fd(c_fd(fd), length, offset, writable)

    def mount_bpffs(self, path=None):
        """Mount a private bpffs (a temp dir by default) and make it self.bpffs."""
        if path is None:
            path = tempfile.mkdtemp(prefix="bpfemu-bpffs-")
        mount("bpf", path, "bpf")
        self._mounted = path
        self.bpffs = path
        return path

    def unmount_bpffs(self):
        if self._mounted:
            umount(self._mounted)
            try:
                os.rmdir(self._mounted)
            except OSError:
                pass
            self._mounted = None


class HostTask(_Surface):
    """A real child process doing bpf() and fd work on our behalf."""

    def __init__(self, sock, pid, bpffs, direct_child):
        self.sock = sock
        self.pid = pid
        self.bpffs = bpffs
        self.alive = True
        self._direct = direct_child

    @classmethod
    def _start(cls, uid, caps, clean, bpffs):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_IGN)
                a.close()
                os.dup2(b.fileno(), RPC_FD)
                if b.fileno() != RPC_FD:
                    b.close()
                if clean:
                    os.closerange(3, RPC_FD)
                    os.closerange(RPC_FD + 1, 65536)
                sock = socket.socket(fileno=RPC_FD)
                start_serving(sock, uid, caps)
            finally:
                os._exit(1)
        b.close()
        t = cls(a, pid, bpffs, True)
        status, val = recv(a)
        if status != "ok":
            t._reap()
            raise OSError(val, strerror(val))
        return t

    def _call(self, *req):
        if not self.alive:
            raise OSError(errno.ESRCH, strerror(errno.ESRCH))
        send(self.sock, req)
        status, val = recv(self.sock)
        if status == "err":
            raise OSError(val, strerror(val))
        return val

    def bpf(self, cmd, attr, size=None):
        addr, size = attr_args(attr, size)
        size &= 0xFFFFFFFF
        want = min(size, PAGE_SIZE + 1)
        data = read_partial(addr, want)
        if not self.alive:
            raise OSError(errno.ESRCH, strerror(errno.ESRCH))
        send(self.sock, ("bpf", c_int(cmd), data, size, len(data) < want))
        msg = recv(self.sock)
        while msg[0] == "need":  # the child asks for our memory, possibly in rounds (nested pointers)
            send(self.sock, [read_partial(ptr, n) for ptr, n in msg[1]])
            msg = recv(self.sock)
        status, val, changes = msg
        for where, diffs in changes:
            base = addr if where == "attr" else where
            for off, chunk in diffs:
                ctypes.memmove(base + off, chunk, len(chunk))
        if status == "err":
            raise OSError(val, strerror(val))
        return val

    def close(self, fd):
        self._call("close", c_fd(fd))

    def dup(self, fd, cloexec=False):
        return self._call("dup", c_fd(fd), bool(cloexec))

    def fds(self):
        return self._call("fds")

    def sched_setaffinity(self, cpus):
        """sched_setaffinity(0, cpus) in the child: its syscalls then run on those CPUs."""
        self._call("call", "sched_setaffinity", (0, _cpus(cpus)))

    def sched_getaffinity(self):
        return set(self._call("call", "sched_getaffinity", (0,)))

    def fork(self, uid=None, caps=None):
        uid = _uid(uid)
        if not self.alive:
            raise OSError(errno.ESRCH, strerror(errno.ESRCH))
        send(self.sock, ("fork", uid, caps))
        (status, pid), fds = recv(self.sock, want_fds=1)
        sock = socket.socket(fileno=fds[0])
        status, val = recv(sock)
        if status != "ok":
            raise OSError(val, strerror(val))
        return HostTask(sock, val, self.bpffs, False)

    def send_fds(self, other, fds):
        """SCM_RIGHTS through us: our fds travel to ``other`` over real unix sockets."""
        fds = [c_fd(fd) for fd in fds]
        if not self.alive:
            raise OSError(errno.ESRCH, strerror(errno.ESRCH))
        send(self.sock, ("send_fds", fds))
        (status, val), got = recv(self.sock, want_fds=max(len(fds), 1))
        if status == "err":  # sendmsg refused one of the fds (EBADF)
            raise OSError(val, strerror(val))
        try:
            if isinstance(other, HostTask):
                return other._recv_fds(got)
            return got  # the calling process itself
        finally:
            if isinstance(other, HostTask):
                for fd in got:
                    os.close(fd)

    def _recv_fds(self, fds):
        send(self.sock, ("recv_fds", len(fds)))
        recv(self.sock)
        send(self.sock, ("fds",), fds=fds)
        status, val = recv(self.sock)
        if status == "err":
            raise OSError(val, strerror(val))
        return val

    def exit(self):
        if not self.alive:
            return
        try:
            self._call("exit")
        except (OSError, EOFError):
            pass
        self.alive = False
        self.sock.close()
        self._reap()

    def _reap(self):
        if self._direct:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass

    def __del__(self):
        try:
            if self.alive:
                self.exit()
        except Exception:
            pass

    # -- filesystem (done in the child, with its credentials) ------------------
    def mkdir(self, path, mode=0o777):
        self._call("call", "mkdir", (c_path(path), c_mode(mode)))

    def rmdir(self, path):
        self._call("call", "rmdir", (c_path(path),))

    def unlink(self, path):
        self._call("call", "unlink", (c_path(path),))

    def rename(self, old, new, flags=0):
        flags = c_int(flags)
        if flags:
            self._call("call", "renameat2", (c_path(old), c_path(new), flags & 0xFFFFFFFF))
        else:
            self._call("call", "rename", (c_path(old), c_path(new)))

    def listdir(self, path):
        return sorted(self._call("call", "listdir", (c_path(path),)))

    def open_dir(self, path):
        """An fd of the directory at path in the child (O_RDONLY|O_DIRECTORY)."""
        return self._call("call", "open", (c_path(path), os.O_RDONLY | os.O_DIRECTORY))

    def stat(self, path):
        return os.stat_result(self._call("call", "stat", (c_path(path),)))

    def lstat(self, path):
        return os.stat_result(self._call("call", "lstat", (c_path(path),)))

    def symlink(self, target, path):
        self._call("call", "symlink", (c_path(target), c_path(path)))

    def chmod(self, path, mode):
        self._call("call", "chmod", (c_path(path), c_mode(mode)))

    def chown(self, path, uid, gid):
        self._call("call", "chown", (c_path(path), c_owner(uid), c_owner(gid)))

    def readlink(self, path):
        return self._call("call", "readlink", (c_path(path),))

    def statfs(self, path):
        return self._call("call", "statfs", (c_path(path),))

    def fdinfo(self, fd):
        return self._call("fdinfo", c_int(fd, errno.ENOENT))

    def mmap(self, fd, length, offset=0, writable=True):
        """mmap of the child's map fd, made in *our* address space so the caller can touch it.

        The child passes the fd (the same open file, so the same mode) over SCM_RIGHTS and we map
        that; the mapping pins the map and counts as its writer exactly as the child's would.
        """
        fd = c_fd(fd)
        if not self.alive:
            raise OSError(errno.ESRCH, strerror(errno.ESRCH))
        send(self.sock, ("send_fds", [fd]))
        (status, val), got = recv(self.sock, want_fds=1)
        if status == "err":
            raise OSError(val, strerror(val))
        try:
            return mmap_fd(got[0], length, offset, writable)
        finally:
            os.close(got[0])

