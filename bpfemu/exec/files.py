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
- a read-write file of an mmapable array: the array's values live in a file of a tmpfs directory
  the supervisor watches with inotify, mapped shared by the emulator; each such placeholder is
  opened through a hard link of its own (``map3.2``), so that mmap(2) on it maps the very bytes
  the emulator reads and writes, and IN_CLOSE_WRITE names the link of the placeholder that was
  released (its fds closed and its mappings unmapped: a mapping keeps the map alive, as in the
  kernel). Distinct names also keep inotify from merging two releases into one event.
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
import shutil
import socket
import stat as _stat
import struct
import tempfile
import weakref

from ..errors import bpf_error
from ..inode import Inode
from ..objects import FMODE_READ, FMODE_WRITE, File

IN_CLOSE_WRITE = 0x8
IN_IGNORED = 0x8000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_INOTIFY_EVENT = struct.Struct("<iIII")
SYS_pidfd_getfd = 438  # the same number on every architecture


class SharedMemory(_mmap.mmap):
    """The values of an mmapable map: a shared mapping of a file (``.fd``, ``.path``, ``.ident``)."""


class _MapStore:
    """The read-write placeholders of one mmapable map: hard links of its values file."""

    __slots__ = ("mem", "files", "seq")

    def __init__(self, mem):
        self.mem = mem
        self.files = {}  # link name -> live emulated File
        self.seq = 0


class _DirEntry:
    __slots__ = ("inode", "path")

    def __init__(self, inode, path):
        self.inode = inode
        self.path = path


class FileBridge:
    """Placeholders, identities and lifetimes of the emulated files of a session (every tree attached to it).

    The methods that answer a call take its notification ``n`` (:class:`bpfemu.exec.seccomp.Notification`):
    the fd goes into the caller through the listener the call came from."""

    def __init__(self, state_dir, pidfd_of=None):
        self.state_dir = state_dir
        self.pidfd_of = pidfd_of if pidfd_of is not None else {}  # tgid -> pidfd, the session's
        self.by_ident = {}  # (st_dev, st_ino) -> File | _MapStore | _DirEntry
        self.by_peer = {}  # our end of a socket pair -> (ident, File)
        self.epoll = select.epoll()
        self.stores = {}  # link name -> _MapStore
        self.store_dir = _tmpfs_dir()
        self.dirs = {}  # id(emulated inode) -> _DirEntry
        self._c = ctypes.CDLL(None, use_errno=True)
        self.inotify = self._c.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.inotify < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.epoll.register(self.inotify, select.EPOLLIN)
        if self._c.inotify_add_watch(self.inotify, self.store_dir.encode(), IN_CLOSE_WRITE) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")
        self._dir_seq = 0
        self._map_seq = 0

    def fileno(self):
        """An fd that is readable when some placeholder was released (for the main loop)."""
        return self.epoll.fileno()

    # -- mmapable memory ---------------------------------------------------------
    def mmapable_alloc(self, size):
        """Kernel.mmapable_alloc: a file of size bytes in the watched tmpfs directory, mapped shared here."""
        self._map_seq += 1
        path = os.path.join(self.store_dir, "map%d" % self._map_seq)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size)
            mem = SharedMemory(fd, size)
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        mem.fd = fd
        mem.path = path
        mem.ident = (st.st_dev, st.st_ino)
        store = _MapStore(mem)
        self.by_ident[mem.ident] = store
        weakref.finalize(mem, self._drop_store, mem.ident, fd, path)
        return mem

    def _drop_store(self, ident, fd, path):
        self.by_ident.pop(ident, None)
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass

    # -- placeholders --------------------------------------------------------------
    def install(self, n, f, cloexec):
        """Put the emulated open file f into the caller of notification n; returns the real fd.

        f holds one reference (its count) for as long as its placeholder lives."""
        if f.kind == "dir":
            return self._install_dir(n, f, cloexec)
        mem = f.obj.mmap_area if f.kind == "map" and f.obj is not None else None
        if isinstance(mem, SharedMemory) and f.mode == FMODE_READ | FMODE_WRITE:
            return self._install_mapped(n, f, cloexec, mem)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # read(2) on the placeholder must not block (the kernel answers EINVAL): it reads EOF
        mine.shutdown(socket.SHUT_WR)
        try:
            st = os.fstat(theirs.fileno())
            try:
                fd = n.listener.addfd(n.id, theirs.fileno(), cloexec=cloexec)
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

    def _install_mapped(self, n, f, cloexec, mem):
        store = self.by_ident[mem.ident]
        store.seq += 1
        name = "%s.%d" % (os.path.basename(mem.path), store.seq)
        link = os.path.join(self.store_dir, name)
        os.link(mem.path, link)
        try:
            pfd = os.open(link, os.O_RDWR | os.O_CLOEXEC)
        except BaseException:
            os.unlink(link)
            raise
        try:
            fd = n.listener.addfd(n.id, pfd, cloexec=cloexec)
        except OSError as e:
            os.unlink(link)  # the release event of our close below names nobody
            raise bpf_error(e.errno, "installing the fd in the caller")
        finally:
            os.close(pfd)
        f.get()
        store.files[name] = f
        self.stores[name] = store
        return fd

    def _install_dir(self, n, f, cloexec, send=False):
        entry = self.dir_entry(f.inode)
        dfd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return n.listener.addfd(n.id, dfd, cloexec=cloexec, send=send)
        except OSError as e:
            raise bpf_error(e.errno, "installing the fd in the caller")
        finally:
            os.close(dfd)

    def install_dir(self, n, inode, cloexec):
        """open() of an emulated directory: answer the call with a new directory fd."""
        return self._install_dir(n, _dir_file(inode), cloexec, send=True)

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

    def send_content(self, n, content, cloexec, name="bpfemu"):
        """Answer an open() with a new fd of a memfd holding content (bytes), at offset 0."""
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        try:
            os.write(fd, content)
            os.lseek(fd, 0, os.SEEK_SET)
            return n.listener.addfd(n.id, fd, cloexec=cloexec, send=True)
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
        mine = self._getfd(pid, fd)
        try:
            try:
                st = os.fstat(mine) if mine >= 0 else os.stat("/proc/%d/fd/%d" % (pid, fd))
            except OSError:
                raise bpf_error(errno.EBADF, "fd %d is not open in %d" % (fd, pid)) from None
            ident = (st.st_dev, st.st_ino)
            e = self.by_ident.get(ident)
            if e is None:
                return "real", st, ident
            if isinstance(e, File):
                return "file", e, ident
            if isinstance(e, _MapStore):
                try:
                    link = "/proc/self/fd/%d" % mine if mine >= 0 else "/proc/%d/fd/%d" % (pid, fd)
                    name = os.path.basename(os.readlink(link))
                except OSError:
                    raise bpf_error(errno.EBADF, "fd %d is not open in %d" % (fd, pid)) from None
                f = e.files.get(name)
                if f is not None:
                    return "file", f, ident
                return "real", st, ident  # a file of the store we did not hand out
            return "dir", e.inode, ident
        finally:
            if mine >= 0:
                os.close(mine)

    def _getfd(self, pid, fd):
        """Our own fd of the file at fd in process pid (pidfd_getfd: one call, no path walk in /proc), or -1
        when there is no pidfd for pid (a thread id, say) or the call is refused: then /proc answers. Raises
        EBADF when fd is not open there."""
        pidfd = self.pidfd_of.get(pid)
        if pidfd is None:
            return -1
        mine = self._c.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
        if mine < 0:
            if ctypes.get_errno() == errno.EBADF:
                raise bpf_error(errno.EBADF, "fd %d is not open in %d" % (fd, pid))
            return -1
        return mine

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
            mine = self._c.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
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
                _wd, mask, _cookie, n = _INOTIFY_EVENT.unpack_from(data, off)
                name = data[off + _INOTIFY_EVENT.size:off + _INOTIFY_EVENT.size + n].rstrip(b"\0").decode()
                off += _INOTIFY_EVENT.size + n
                store = self.stores.pop(name, None)
                if store is None or not mask & IN_CLOSE_WRITE:
                    continue
                f = store.files.pop(name, None)
                try:
                    os.unlink(os.path.join(self.store_dir, name))
                except OSError:
                    pass
                if f is not None:
                    f.put()
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
        """{inode number: SharedMemory} of the live mmapable maps."""
        return {e.mem.ident[1]: e.mem for e in self.by_ident.values() if isinstance(e, _MapStore)}

    def close(self):
        for fd, (ident, f, sock) in list(self.by_peer.items()):
            sock.close()
        self.by_peer.clear()
        self.epoll.close()
        if self.inotify >= 0:
            os.close(self.inotify)
            self.inotify = -1
        shutil.rmtree(self.store_dir, ignore_errors=True)


def _tmpfs_dir():
    """A private directory for map values: on /dev/shm (tmpfs) when there is one."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None
    return tempfile.mkdtemp(prefix="bpfemu-maps-", dir=base)


def _dir_file(inode):
    f = File(None, mode=FMODE_READ, kind="dir")
    f.inode = inode
    return f
