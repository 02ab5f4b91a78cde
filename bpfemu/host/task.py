"""bpfemu.Host and HostTask: the task surface of bpfemu over the real bpf(2) syscall.

``Host()`` is the calling process itself: ``bpf()`` is the raw syscall, fds
are real fds. ``Host().spawn()`` and ``.fork()`` give a :class:`HostTask`, a
real child process that performs each call for us (optionally after dropping
uid and capabilities), so fork, fd passing and privilege tests run on the
real kernel with the same code as on the emulator. How a child gets the
memory a call points to is :mod:`bpfemu.host.rpc`'s business.

The tasks of one ``Host()`` live in a mount namespace of their own with a
fresh bpffs at /sys/fs/bpf (:func:`bpfemu.host.libc.private_bpffs`), as the
tasks of one emulated ``Kernel`` share its /sys/fs/bpf: the same paths work
on both backends, and nothing they pin reaches the machine's bpffs; the
namespace and its pins go away with the Host's last task. Any number of
threads may call one HostTask: each call is one whole conversation with the
child, under the task's lock; a child that went away is ESRCH.

This package imports no emulator internals: only the uapi, the errno helper,
the capability names, the platform probes (:mod:`bpfemu.hostenv`), the shared
return shapes (:mod:`bpfemu.surface`) and the command table's declarations.
"""
import ctypes
import errno
import gc
import os
import pickle
import select
import signal
import socket
import struct
import tempfile
import threading
import weakref

from .. import hostenv, uapi
from ..errors import strerror
from ..limits import PAGE_SIZE
from ..surface import attr_args, c_fd, c_id, c_int, c_mode, c_owner, c_path
from ..syscall.table import COMMANDS
from .libc import (CLONE_NEWNS, MACHINE, SYSCALLS, libc, mmap_fd, mount, private_bpffs, raw_bpf, read_partial,
                   renameat2, setns, statfs, umount)
from .rpc import RPC_FD, open_fds, pack_region, recv, send, start_serving

FD_RETURNING = frozenset(c.cmd for c in COMMANDS.values() if c.returns_fd)
BPFFS = "/sys/fs/bpf"  # where a HostTask finds its private bpffs
# what a broken conversation with a child raises, besides OSError (a closed socket, a truncated message)
_TRANSPORT = (OSError, EOFError, pickle.UnpicklingError, struct.error, ValueError, IndexError, TypeError)


def available():
    """(True, '') when the real bpf() syscall is usable here, else (False, reason)."""
    if not hostenv.is_linux():
        return False, hostenv.not_linux_reason()
    if MACHINE not in SYSCALLS:
        return False, "unknown bpf syscall number for %s" % MACHINE
    ok, why = hostenv.process_vm_status(refresh=True)
    if not ok:
        return False, "host tasks cannot read this process's memory: %s" % why
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


def _pidfd(pid):
    """A pidfd of process ``pid`` (to wait for a child that is not ours), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _make_namespace():
    """(fd of a new mount namespace with a fresh bpffs at /sys/fs/bpf, '') or (None, why not).

    A short-lived child makes it (the caller may be multithreaded, and unshare() would move the whole
    process); the fd we keep holds the namespace alive after that child is gone."""
    libc()  # loaded before fork: the child must not need the dynamic loader
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            gc.disable()
            os.close(r)
            os.close(w2)
            code = 0
            try:
                private_bpffs(BPFFS)
            except OSError as e:
                code = e.errno or errno.EPERM
            os.write(w, struct.pack("<i", code))
            os.read(r2, 1)  # until the parent holds the namespace
        finally:
            os._exit(0)
    os.close(w)
    os.close(r2)
    try:
        data = os.read(r, 4)
        code = struct.unpack("<i", data)[0] if len(data) == 4 else errno.ECHILD
        if code:
            return None, "cannot make a private mount namespace with a bpffs at %s: %s" % (BPFFS, strerror(code))
        return os.open("/proc/%d/ns/mnt" % pid, os.O_RDONLY | os.O_CLOEXEC), ""
    finally:
        os.close(w2)
        os.close(r)
        os.waitpid(pid, 0)


class _Surface:
    """What Host and HostTask share."""

    bpffs = None


class Host(_Surface):
    """The calling process over the real syscall.

    ``bpffs`` is where this process itself pins (None until :meth:`mount_bpffs` or given). Its tasks
    (:meth:`spawn`, :meth:`fork`) share a private bpffs at /sys/fs/bpf, made on first use
    (:attr:`private_bpffs`); :meth:`close_namespace` lets it go."""

    def __init__(self, bpffs=None):
        self._opened = set()
        self.bpffs = bpffs
        self._mounted = None
        self._ns_lock = threading.Lock()
        self._ns = None  # (fd of the tasks' mount namespace or None, why not)

    def _namespace(self):
        with self._ns_lock:
            if self._ns is None:
                fd, why = _make_namespace()
                self._ns = (fd, why)
                if fd is not None:
                    self._ns_finalizer = weakref.finalize(self, os.close, fd)
            return self._ns[0]

    @property
    def private_bpffs(self):
        """(True, '') when this Host's tasks have their own bpffs at /sys/fs/bpf, else (False, why): then
        they see the machine's (without CAP_SYS_ADMIN no mount namespace can be made)."""
        fd = self._namespace()
        return (True, "") if fd is not None else (False, self._ns[1])

    def close_namespace(self):
        """Let go of the tasks' namespace: it, its bpffs and their pins end with the last task in it."""
        with self._ns_lock:
            fin = getattr(self, "_ns_finalizer", None)
            if fin is not None:
                fin()
            self._ns = None

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
        """A child process with our fds, in the tasks' namespace (its bpffs at /sys/fs/bpf)."""
        return HostTask._start(uid=_uid(uid), caps=caps, clean=False, bpffs=self.bpffs, ns=self._namespace())

    def spawn(self, uid=None, caps=None):
        """A fresh child process: fds 0-2 only, like Kernel.spawn(); its bpffs is the tasks' private one at
        /sys/fs/bpf (the machine's where :attr:`private_bpffs` says it cannot be made)."""
        return HostTask._start(uid=_uid(uid), caps=caps, clean=True, bpffs=self.bpffs, ns=self._namespace())

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
    """A real child process doing bpf() and fd work on our behalf.

    Thread-safe: each call holds the task's lock for its whole conversation with the child (a bpf() may
    take several rounds when the child asks for the memory the attr points to). When the child is gone
    or the conversation breaks, the call raises OSError(ESRCH) and so does every later one."""

    def __init__(self, sock, pid, bpffs, direct_child, pidfd=None):
        self.sock = sock
        self.pid = pid
        self.bpffs = bpffs
        self.alive = True
        self._direct = direct_child
        self._pidfd = pidfd
        self._lock = threading.RLock()  # reentrant only so that a finalizer can see it is held (api.handle)
        self._why_gone = None

    @classmethod
    def _start(cls, uid, caps, clean, bpffs, ns=None):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cwd = os.getcwd()
        libc()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                gc.disable()  # no finalizer of the parent's objects may run here
                signal.signal(signal.SIGCHLD, signal.SIG_IGN)
                a.close()
                if ns is not None:
                    setns(ns, CLONE_NEWNS)
                    try:
                        os.chdir(cwd)
                    except OSError:
                        pass
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
        t = cls(a, pid, BPFFS if ns is not None else bpffs, True)
        try:
            status, val = recv(a)
        except _TRANSPORT as e:
            t._break(e)
            raise t._gone() from None
        if status != "ok":
            t.alive = False
            a.close()
            t._reap()
            raise OSError(val, strerror(val))
        return t

    # -- the conversation ---------------------------------------------------------
    def _gone(self):
        why = self._why_gone or "it exited"
        return OSError(errno.ESRCH, "%s (bpfemu: host task %d is gone: %s)" % (strerror(errno.ESRCH), self.pid, why))

    def _break(self, exc):
        """The conversation broke (the child died, or a message was cut): the task is gone for good."""
        self.alive = False
        self._why_gone = "the conversation with it broke (%s: %s)" % (type(exc).__name__, exc) if exc else \
            "a call to it was interrupted"
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            if self._direct:
                os.kill(self.pid, signal.SIGKILL)
            elif self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        self._reap()

    def _exchange(self, work):
        """work() (one whole conversation with the child) under the lock; a broken one is OSError(ESRCH)."""
        with self._lock:
            if not self.alive:
                raise self._gone()
            try:
                return work()
            except _TRANSPORT as e:
                self._break(e)
                raise self._gone() from None
            except BaseException:  # e.g. KeyboardInterrupt in the middle: the conversation is out of step
                self._break(None)
                raise

    def _call(self, *req):
        def work():
            send(self.sock, req)
            return recv(self.sock)

        status, val = self._exchange(work)
        if status == "err":
            raise OSError(val, strerror(val))
        return val

    def bpf(self, cmd, attr, size=None):
        addr, size = attr_args(attr, size)
        size &= 0xFFFFFFFF
        want = min(size, PAGE_SIZE + 1)
        cmd = c_int(cmd)

        def work():
            data = read_partial(addr, want)
            send(self.sock, ("bpf", cmd, data, size, len(data) < want))
            msg = recv(self.sock)
            while msg[0] == "need":  # the child asks for our memory, possibly in rounds (nested pointers)
                send(self.sock, [pack_region(read_partial(ptr, n)) for ptr, n in msg[1]])
                msg = recv(self.sock)
            return msg

        status, val, changes = self._exchange(work)
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

        def work():
            send(self.sock, ("fork", uid, caps))
            (_status, _pid), fds = recv(self.sock, want_fds=1)
            return fds

        fds = self._exchange(work)
        sock = socket.socket(fileno=fds[0])
        try:
            status, val = recv(sock)
        except _TRANSPORT as e:
            sock.close()
            raise OSError(errno.ESRCH, "%s (bpfemu: the forked task did not start: %s)"
                          % (strerror(errno.ESRCH), e)) from None
        if status != "ok":
            sock.close()
            raise OSError(val, strerror(val))
        return HostTask(sock, val, self.bpffs, False, _pidfd(val))

    def _take_fds(self, fds):
        """Our fds ``fds`` as fds of this process (SCM_RIGHTS): a list of new fds here."""
        def work():
            send(self.sock, ("send_fds", list(fds)))
            return recv(self.sock, want_fds=max(len(fds), 1))

        (status, val), got = self._exchange(work)
        if status == "err":  # sendmsg refused one of the fds (EBADF)
            raise OSError(val, strerror(val))
        return got

    def send_fds(self, other, fds):
        """SCM_RIGHTS through us: our fds travel to ``other`` over real unix sockets."""
        fds = [c_fd(fd) for fd in fds]
        got = self._take_fds(fds)
        try:
            if isinstance(other, HostTask):
                return other._recv_fds(got)
            return got  # the calling process itself
        finally:
            if isinstance(other, HostTask):
                for fd in got:
                    os.close(fd)

    def _recv_fds(self, fds):
        def work():
            send(self.sock, ("recv_fds", len(fds)))
            recv(self.sock)
            send(self.sock, ("fds",), fds=fds)
            return recv(self.sock)

        status, val = self._exchange(work)
        if status == "err":
            raise OSError(val, strerror(val))
        return val

    def exit(self):
        """End the child and wait until it is gone (its fds closed, the objects they held released)."""
        with self._lock:
            if not self.alive:
                return
            try:
                send(self.sock, ("exit",))
                recv(self.sock)
            except _TRANSPORT:
                pass
            self.alive = False
            try:
                self.sock.close()
            except OSError:
                pass
        self._reap()

    def _reap(self):
        if self._direct:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:  # not our child: its pidfd turns readable once it has exited
            try:
                select.select([pidfd], [], [], 10)
            finally:
                os.close(pidfd)

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

    def mount_bpffs(self, path):
        """Mount another bpffs at ``path``, in the child's mount namespace (what kernel.mount_bpffs is to an
        emulated task)."""
        self._call("call", "mount", ("bpf", path, "bpf"))

    def umount(self, path):
        self._call("call", "umount", (path,))

    @property
    def comm(self):
        """The child's task->comm (what bpf_get_current_comm gives its programs)."""
        with open("/proc/%d/comm" % self.pid, "rb") as f:
            return f.read().rstrip(b"\n")

    @property
    def gid(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("Gid:"):
                    return int(line.split()[1])
        raise OSError(3, "no such task")

    @property
    def uid(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
        raise OSError(3, "no such task")

    def mmap(self, fd, length, offset=0, writable=True):
        """mmap of the child's map fd, made in *our* address space so the caller can touch it.

        The child passes the fd (the same open file, so the same mode) over SCM_RIGHTS and we map
        that; the mapping pins the map and counts as its writer exactly as the child's would.
        """
        fd = c_fd(fd)
        got = self._take_fds([fd])
        try:
            return mmap_fd(got[0], length, offset, writable)
        finally:
            os.close(got[0])

