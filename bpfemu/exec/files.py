"""Emulated open files as real fds of the supervised processes.

Every fd the emulated kernel hands out (a map from MAP_CREATE, OBJ_GET, GET_FD_BY_ID, a bpffs
directory from open()) becomes a real fd in the caller through SECCOMP_IOCTL_NOTIF_ADDFD, holding
a *placeholder*: a real open file made for that one emulated file. The real kernel then does what
it does with any fd: close, dup, dup2, fcntl(F_DUPFD_CLOEXEC), fork, exec with O_CLOEXEC, passing
over unix sockets, lowest-free numbering. The supervisor finds the emulated file behind a real fd
by the placeholder's identity (device and inode, from stat of /proc/PID/fd/N), and learns when the
last reference to a placeholder is gone, which is when the emulated file is released (fput):

- most files: one end of a unix socket pair; the supervisor keeps the other end and sees it hang
  up (EPOLLHUP) when the placeholder's last reference goes, wherever it went.
- a read-write file of an mmapable array: a file of the memfd that holds the array's values, so
  that mmap(2) on it maps the very bytes the emulator reads and writes. Every such file of one map
  shares the memfd's inode, and they are interchangeable (same map, same mode); inotify's
  IN_CLOSE_WRITE on the memfd says one of them was released (its fds closed and its mappings
  unmapped: a mapping keeps the map alive as in the kernel).
- a bpffs directory: an empty real directory made for that emulated directory (so that fstat,
  opendir and fchdir see a directory); its position for getdents64 lives in the real file.

Events are collected before each emulated call (:meth:`FileBridge.reap`): a process that closed an
fd and then calls bpf() sees the object gone, as with the kernel's synchronous fput.
"""
import ctypes
import errno
import mmap as _mmap
import os
import select
import socket
import stat as _stat
import struct
import weakref

from ..errors import bpf_error
from ..inode import Inode
from ..objects import FMODE_READ, FMODE_WRITE, File

IN_CLOSE_WRITE = 0x8
IN_IGNORED = 0x8000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_INOTIFY_EVENT = struct.Struct("<iIII")


class SharedMemory(_mmap.mmap):
    """The values of an mmapable map: a shared mapping of a memfd (``.memfd``, ``.ident``)."""


class _MemfdClass:
    """The read-write files of one mmapable map: they share the memfd inode."""

    __slots__ = ("mem", "wd", "files", "ignore")

    def __init__(self, mem, wd):
        self.mem = mem
        self.wd = wd
        self.files = []  # live emulated Files, one per placeholder file
        self.ignore = 0  # IN_CLOSE_WRITE events of placeholders that never reached a process


class _DirEntry:
    __slots__ = ("inode", "path")

    def __init__(self, inode, path):
        self.inode = inode
        self.path = path


class FileBridge:
    """Placeholders, identities and lifetimes of the emulated files of one supervised tree."""

    def __init__(self, listener, state_dir):
        self.listener = listener
        self.state_dir = state_dir
        self.by_ident = {}  # (st_dev, st_ino) -> File | _MemfdClass | _DirEntry
        self.by_peer = {}  # our end of a socket pair -> (ident, File)
        self.epoll = select.epoll()
        self.memfds = {}  # inotify wd -> _MemfdClass
        self.dirs = {}  # id(emulated inode) -> _DirEntry
        self._c = ctypes.CDLL(None, use_errno=True)
        self.inotify = self._c.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.inotify < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.epoll.register(self.inotify, select.EPOLLIN)
        self._dir_seq = 0

    def fileno(self):
        """An fd that is readable when some placeholder was released (for the main loop)."""
        return self.epoll.fileno()

    # -- mmapable memory ---------------------------------------------------------
    def map_memory(self, size):
        """Kernel.map_memory: a memfd of size bytes, mapped shared here, watched for closes."""
        fd = os.memfd_create("bpfemu-map", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, size)
            mem = SharedMemory(fd, size)
            st = os.fstat(fd)
            wd = self._c.inotify_add_watch(self.inotify, b"/proc/self/fd/%d" % fd, IN_CLOSE_WRITE)
            if wd < 0:
                raise OSError(ctypes.get_errno(), "inotify_add_watch")
        except BaseException:
            os.close(fd)
            raise
        mem.memfd = fd
        mem.ident = (st.st_dev, st.st_ino)
        cls = _MemfdClass(mem, wd)
        self.memfds[wd] = cls
        self.by_ident[mem.ident] = cls
        weakref.finalize(mem, self._drop_memfd, wd, mem.ident, fd)
        return mem

    def _drop_memfd(self, wd, ident, fd):
        self.memfds.pop(wd, None)
        self.by_ident.pop(ident, None)
        if self.inotify >= 0:
            self._c.inotify_rm_watch(self.inotify, wd)
        os.close(fd)

    # -- placeholders --------------------------------------------------------------
    def install(self, nid, f, cloexec):
        """Put the emulated open file f into the caller of notification nid; returns the real fd.

        f holds one reference (its count) for as long as its placeholder lives."""
        if f.kind == "dir":
            return self._install_dir(nid, f, cloexec)
        mem = getattr(f.obj, "data", None)
        if isinstance(mem, SharedMemory) and f.mode == FMODE_READ | FMODE_WRITE:
            return self._install_memfd(nid, f, cloexec, mem)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            st = os.fstat(theirs.fileno())
            try:
                fd = self.listener.addfd(nid, theirs.fileno(), cloexec=cloexec)
            except OSError as e:
                raise bpf_error(e.errno, "installing the fd in the caller")
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        ident = (st.st_dev, st.st_ino)
        f.get()
        self.by_ident[ident] = f
        self.by_peer[mine.fileno()] = (ident, f, mine)
        self.epoll.register(mine.fileno(), select.EPOLLHUP | select.EPOLLRDHUP)
        return fd

    def _install_memfd(self, nid, f, cloexec, mem):
        cls = self.by_ident[mem.ident]
        pfd = os.open("/proc/self/fd/%d" % mem.memfd, os.O_RDWR | os.O_CLOEXEC)
        try:
            fd = self.listener.addfd(nid, pfd, cloexec=cloexec)
        except OSError as e:
            cls.ignore += 1  # our close below releases that file: its event is not a process's
            raise bpf_error(e.errno, "installing the fd in the caller")
        finally:
            os.close(pfd)
        f.get()
        cls.files.append(f)
        return fd

    def _install_dir(self, nid, f, cloexec, send=False):
        entry = self.dir_entry(f.inode)
        dfd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return self.listener.addfd(nid, dfd, cloexec=cloexec, send=send)
        except OSError as e:
            raise bpf_error(e.errno, "installing the fd in the caller")
        finally:
            os.close(dfd)

    def install_dir(self, nid, inode, cloexec):
        """open() of an emulated directory: answer the call with a new directory fd."""
        return self._install_dir(nid, _dir_file(inode), cloexec, send=True)

    def dir_entry(self, inode):
        entry = self.dirs.get(id(inode))
        if entry is None:
            self._dir_seq += 1
            path = os.path.join(self.state_dir, "dir%d" % self._dir_seq)
            os.mkdir(path, 0o755)
            st = os.stat(path)
            entry = _DirEntry(inode, path)
            self.dirs[id(inode)] = entry
            self.by_ident[(st.st_dev, st.st_ino)] = entry
        return entry

    def send_content(self, nid, content, cloexec, name="bpfemu"):
        """Answer an open() with a new fd of a memfd holding content (bytes), at offset 0."""
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        try:
            os.write(fd, content)
            os.lseek(fd, 0, os.SEEK_SET)
            return self.listener.addfd(nid, fd, cloexec=cloexec, send=True)
        finally:
            os.close(fd)

    # -- lookups ------------------------------------------------------------------------
    def lookup(self, pid, fd):
        """What the real fd of process pid is: (kind, thing, ident) with kind one of 'file' (thing
        is an emulated File), 'dir' (an emulated bpffs directory inode), 'real' (an os.stat_result
        of any other open file); ident is the real file's (st_dev, st_ino). OSError EBADF when fd
        is not open there."""
        if not 0 <= fd < 1 << 31:
            raise bpf_error(errno.EBADF, "fd %d" % fd)
        try:
            st = os.stat("/proc/%d/fd/%d" % (pid, fd))
        except OSError:
            raise bpf_error(errno.EBADF, "fd %d is not open in %d" % (fd, pid)) from None
        ident = (st.st_dev, st.st_ino)
        e = self.by_ident.get(ident)
        if e is None:
            return "real", st, ident
        if isinstance(e, File):
            return "file", e, ident
        if isinstance(e, _MemfdClass):
            if e.files:
                return "file", e.files[0], ident
            return "real", st, ident  # a memfd file we did not make (e.g. reopened through /proc)
        return "dir", e.inode, ident

    def file_of(self, pid, fd):
        """fdget for the emulated kernel: the File behind a real fd (EBADF if not open).

        A real fd that is not an emulated file gives a File of kind 'host' (not a map, a program,
        ...: commands answer EINVAL, as the kernel does for a file of the wrong kind), or of kind
        'dir' for a real directory (outside bpffs)."""
        kind, thing, _ident = self.lookup(pid, fd)
        if kind == "file":
            return thing
        if kind == "dir":
            return _dir_file(thing)
        if _stat.S_ISDIR(thing.st_mode):
            return _dir_file(Inode("tmpfs", thing.st_mode))
        return File(None, kind="host")

    # -- directory positions ------------------------------------------------------------------
    def dir_pos(self, pid, fd):
        """The position of the directory fd (getdents64 entries already returned): the real file's."""
        try:
            with open("/proc/%d/fdinfo/%d" % (pid, fd), "rb") as f:
                for line in f:
                    if line.startswith(b"pos:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def set_dir_pos(self, pid, fd, pos):
        """Move the real directory file of fd in pid to pos (pidfd_getfd, then lseek)."""
        pidfd = os.pidfd_open(pid)
        try:
            mine = self._c.syscall(438, pidfd, fd, 0)  # pidfd_getfd
            if mine < 0:
                return
            try:
                os.lseek(mine, pos, os.SEEK_SET)
            except OSError:
                pass
            finally:
                os.close(mine)
        finally:
            os.close(pidfd)

    # -- lifetimes ----------------------------------------------------------------------------
    def reap(self):
        """Release the emulated files whose placeholders were released; True if any was."""
        any_ = False
        for fd, _ev in self.epoll.poll(0):
            if fd == self.inotify:
                any_ |= self._read_inotify()
                continue
            entry = self.by_peer.pop(fd, None)
            if entry is None:
                continue
            ident, f, sock = entry
            self.epoll.unregister(fd)
            sock.close()
            if self.by_ident.get(ident) is f:
                del self.by_ident[ident]
            f.put()
            any_ = True
        return any_

    def _read_inotify(self):
        any_ = False
        while True:
            try:
                data = os.read(self.inotify, 65536)
            except BlockingIOError:
                return any_
            off = 0
            while off + _INOTIFY_EVENT.size <= len(data):
                wd, mask, _cookie, n = _INOTIFY_EVENT.unpack_from(data, off)
                off += _INOTIFY_EVENT.size + n
                cls = self.memfds.get(wd)
                if cls is None or not mask & IN_CLOSE_WRITE:
                    continue
                if cls.ignore:
                    cls.ignore -= 1
                elif cls.files:
                    cls.files.pop().put()
                    any_ = True

    def writable_mappings(self, mem, pids):
        """Shared writable mappings of mem in the given processes (FREEZE's EBUSY check)."""
        dev, ino = mem.ident
        n = 0
        for pid in pids:
            try:
                with open("/proc/%d/maps" % pid, "rb") as fh:
                    text = fh.read()
            except OSError:
                continue
            for line in text.splitlines():
                parts = line.split(None, 5)
                if len(parts) >= 5 and parts[4] == b"%d" % ino and parts[1][1:2] == b"w" and parts[1][3:4] == b"s":
                    n += 1
        return n

    def map_inodes(self):
        """{memfd inode number: SharedMemory} of the live mmapable maps."""
        return {c.mem.ident[1]: c.mem for c in self.memfds.values()}

    def close(self):
        for fd, (ident, f, sock) in list(self.by_peer.items()):
            sock.close()
        self.by_peer.clear()
        self.epoll.close()
        if self.inotify >= 0:
            os.close(self.inotify)
            self.inotify = -1


def _dir_file(inode):
    f = File(None, mode=FMODE_READ, kind="dir")
    f.inode = inode
    return f
