"""The file operations of a supervised process that reach emulated objects.

One handler per intercepted syscall (:data:`HANDLERS`, syscall number -> handler). A handler
returns ``('cont',)`` to let the real kernel run the call (anything that does not touch an
emulated object), ``('val', v)``, ``('err', errno)``, or ``('sent',)`` when it already answered
(a new fd through SECCOMP_ADDFD_FLAG_SEND).

What is emulated:

- paths inside the emulated kernel's bpffs mounts (``/sys/fs/bpf``): open (directories give a
  real directory fd; a pin gives EIO; O_CREAT gives EACCES: bpffs has no regular files), stat,
  lstat, newfstatat, statx, statfs (BPF_FS_MAGIC), access, mkdir, rmdir, unlink, rename,
  readlink (EINVAL), and getdents64 on a directory fd (newest entry first, as bpffs lists);
  relative paths through a directory fd, through the working directory, with the *at() calls;
- fds of emulated files: fstat (the shared anonymous inode), fstatfs, fcntl(F_GETFL),
  ``readlink /proc/self/fd/N`` (``anon_inode:bpf-map``), ``/proc/self/fdinfo/N`` (served as a
  memfd with the emulated text), mmap of mmapable arrays (the checks of do_mmap and bpf_map_mmap,
  then the real mmap of the file holding the values) and mprotect of such mappings (EACCES);
- ``/proc/mounts``, ``/proc/PID/mounts``, ``/proc/PID/mountinfo`` (the real ones with the
  emulated bpffs mounts instead of real ones) and ``/sys/devices/system/cpu/possible`` (the
  emulated CPU count).
"""
import errno
import os
import posixpath
import stat as _stat

from .. import uapi
from ..errors import ENOTSUPP, bpf_error
from ..fdinfo import fdinfo as emulated_fdinfo
from ..inode import MAY_EXEC, MAY_READ, MAY_WRITE, permission
from ..limits import round_up
from ..maps.bpf_map import implements
from ..objects import FMODE_READ, FMODE_WRITE
from . import abi
from .abi import AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, NR
from .files import SharedMemory, _dir_file

PATH_MAX = 4096
PAGE = 4096
ANON_NAMES = {"map": "anon_inode:bpf-map", "prog": "anon_inode:bpf-prog", "link": "anon_inode:bpf_link",
              "btf": "anon_inode:btf"}
BPFFS_DEV = os.makedev(0, 0x27)  # a device number for the emulated bpffs (the kernel gives an anonymous one)
CPU_POSSIBLE = "/sys/devices/system/cpu/possible"


def _s32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


CONT = ("cont",)


# -- reading the caller's arguments ---------------------------------------------------------------
def read_path(task, addr):
    """The NUL-terminated path at addr in the caller, or None when unreadable or too long (the
    real kernel will say EFAULT/ENAMETOOLONG when the call continues)."""
    if addr < PAGE:
        return None
    out = b""
    while len(out) < PATH_MAX:
        n = PAGE - (addr + len(out)) % PAGE
        try:
            chunk = task.mem.read(addr + len(out), n)
        except OSError:
            return None
        end = chunk.find(b"\0")
        if end >= 0:
            out += chunk[:end]
            return out.decode("utf-8", "surrogateescape")
        out += chunk
    return None


def bpffs_mounts(kernel):
    """Mount points of the emulated kernel's bpffs mounts, e.g. ['/sys/fs/bpf']."""
    return kernel.fs.bpffs_mounts


def in_mounts(path, mounts):
    for m in mounts:
        if path == m or path.startswith(m + "/"):
            return True
    return False


def placeholder_dir_path(s, real):
    """The emulated path of a directory placeholder (a real cwd inside one), else None."""
    if not real.startswith(s.state_dir + "/"):
        return None
    for entry in s.files.dirs.values():
        if real == entry.path or real.startswith(entry.path + "/"):
            return s.kernel.fs.path_of(entry.inode)
    return None


class Where:
    """A classified path: kind is 'bpffs', 'proc', 'possible'; path is absolute and normalized."""

    __slots__ = ("kind", "path")

    def __init__(self, kind, path):
        self.kind, self.path = kind, path


def classify(s, n, dirfd, path):
    """Where the path the caller named goes, or None (not ours: let the call continue)."""
    if not path:
        return None
    if path[0] != "/":
        tgid = s.task_for(n.pid).pid
        if dirfd == AT_FDCWD:
            base = s.cwd_of(tgid)
        else:
            try:
                kind, thing, _ident = s.files.lookup(tgid, dirfd)
            except OSError:
                return None
            if kind == "dir":
                base = s.kernel.fs.path_of(thing)
            elif kind == "real" and _stat.S_ISDIR(thing.st_mode):
                try:
                    base = os.readlink("/proc/%d/fd/%d" % (tgid, dirfd))
                except OSError:
                    return None
                d = placeholder_dir_path(s, base)
                base = d if d is not None else base
            else:
                return None
            if not base.startswith("/"):
                return None
        path = base.rstrip("/") + "/" + path
    if path.startswith("/proc/"):
        return Where("proc", posixpath.normpath(path))
    p = posixpath.normpath(path)
    if p.startswith("//"):
        p = "/" + p.lstrip("/")
    if p == CPU_POSSIBLE:
        return Where("possible", p)
    if in_mounts(p, bpffs_mounts(s.kernel)):
        return Where("bpffs", p)
    return None


def _proc_target(s, n, path):
    """/proc/<self|thread-self|N>[/task/M]/rest -> (pid whose fd table it is, rest) or (None, path)."""
    parts = path.split("/")[2:]
    if not parts:
        return None, path
    head = parts[0]
    if head == "self":
        pid = s.task_for(n.pid).pid
    elif head == "thread-self":
        pid = n.pid
    elif head.isdigit():
        pid = int(head)
    elif head == "mounts":
        return s.task_for(n.pid).pid, "mounts"
    else:
        return None, path
    rest = parts[1:]
    if len(rest) >= 3 and rest[0] == "task" and rest[1].isdigit():
        pid = int(rest[1])
        rest = rest[2:]
    return pid, "/".join(rest)


def _proc_fd(s, n, path, sub):
    """(pid, fd, kind, thing) when path is /proc/.../<sub>/N of an emulated fd, else None."""
    pid, rest = _proc_target(s, n, path)
    if pid is None:
        return None
    parts = rest.split("/")
    if len(parts) != 2 or parts[0] != sub or not parts[1].isdigit():
        return None
    fd = int(parts[1])
    try:
        kind, thing, _ident = s.files.lookup(pid, fd)
    except OSError:
        return None
    if kind not in ("file", "dir"):
        return None
    return pid, fd, kind, thing


# -- emulated stat results ---------------------------------------------------------------------
_anon = None


def anon_inode():
    """(stat_result, fdinfo head lines) of the kernel's one anonymous inode (an eventfd's)."""
    global _anon
    if _anon is None:
        fd = os.eventfd(0, os.EFD_CLOEXEC)
        try:
            st = os.fstat(fd)
            info = {}
            with open("/proc/self/fdinfo/%d" % fd) as f:
                for line in f:
                    k, _, v = line.partition(":")
                    info[k] = v.strip()
        finally:
            os.close(fd)
        _anon = (st, info)
    return _anon


def stat_of_node(node):
    """(dev, ino, mode, nlink, uid, gid) of an emulated inode."""
    nlink = 2 + sum(1 for c in node.children.values() if c.is_dir) if node.is_dir else 1
    return BPFFS_DEV, node.ino, node.mode, nlink, node.uid, node.gid


def _stat_bytes(fields, as_statx, time):
    dev, ino, mode, nlink, uid, gid = fields
    if as_statx:
        return abi.pack_statx(dev, ino, mode, nlink, uid, gid, time=time)
    return abi.pack_stat(dev, ino, mode, nlink, uid, gid, time=time)


def _file_stat(f):
    if f.kind == "dir":
        return stat_of_node(f.inode)
    st, _info = anon_inode()
    return st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid


def _real_fdinfo(pid, fd):
    out = {}
    try:
        with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def file_flags(f, pid, fd):
    """f_flags of the emulated file at fd as F_GETFL and fdinfo give them (cloexec from the real fd)."""
    real = int(_real_fdinfo(pid, fd).get("flags", "0"), 8)
    acc = {FMODE_READ: 0, FMODE_WRITE: abi.O_WRONLY, FMODE_READ | FMODE_WRITE: abi.O_RDWR}[
        f.mode & (FMODE_READ | FMODE_WRITE)] if f.kind != "dir" else 0
    keep = real & ~(abi.O_ACCMODE | abi.O_LARGEFILE | abi.O_CLOEXEC | abi.O_DIRECTORY)
    return acc | keep, bool(real & abi.O_CLOEXEC)


def fdinfo_text(s, pid, fd, f):
    with s.kernel.lock:
        text = emulated_fdinfo(f)
    flags, cloexec = file_flags(f, pid, fd)
    _st, anon = anon_inode()
    head = {"pos": "0", "flags": "0%o" % (flags | (abi.O_CLOEXEC if cloexec else 0)),
            "mnt_id": anon.get("mnt_id", "0"), "ino": anon.get("ino", "0")}
    lines = []
    for line in text.splitlines():
        k, _, v = line.partition(":")
        lines.append("%s:\t%s" % (k, head[k]) if k in head else line)
    return ("\n".join(lines) + "\n").encode()


# -- helpers ------------------------------------------------------------------------------------------
def _write(task, addr, data):
    task.mem.write(addr, data)


def _classified(s, n, dirfd, addr, kind=None):
    """(task, path, where) of the path argument at addr (relative to dirfd) when it names something
    emulated (of ``kind`` if given, e.g. "bpffs"), else None: the call then runs for real."""
    task = s.task_for(n.pid)
    path = read_path(task, addr)
    if path is None:
        return None
    w = classify(s, n, dirfd, path)
    if w is None or (kind is not None and w.kind != kind):
        return None
    return task, path, w


def _emulated_fd(s, n, fd, kinds):
    """(task, kind, emulated file or directory inode, ident) of the caller's fd when it is an emulated one
    of ``kinds`` ("file", "dir"), else None: the call then runs for real."""
    if not s.files.by_ident:  # nothing emulated is open anywhere: no need to look at the fd
        return None
    task = s.task_for(n.pid)
    try:
        kind, thing, ident = s.files.lookup(task.pid, fd)
    except OSError:
        return None
    if kind not in kinds:
        return None
    return task, kind, thing, ident


def _emulated(s, n):
    """The caller's task, with released files collected first."""
    task = s.task_for(n.pid)
    s.reap()
    return task


# -- open ------------------------------------------------------------------------------------------------
def do_open(s, n, dirfd, addr, flags, mode):
    got = _classified(s, n, dirfd, addr)
    if got is None:
        return CONT
    task, path, w = got
    acc = flags & abi.O_ACCMODE
    cloexec = bool(flags & abi.O_CLOEXEC)
    if w.kind == "possible":
        if acc != 0 or flags & abi.O_CREAT:
            return CONT
        ncpus = s.kernel.ncpus
        text = "0\n" if ncpus == 1 else "0-%d\n" % (ncpus - 1)
        s.files.send_content(n, text.encode(), cloexec, "possible")
        return ("sent",)
    if w.kind == "proc":
        if acc != 0 or flags & abi.O_CREAT:
            return CONT
        got = _proc_fd(s, n, w.path, "fdinfo")
        if got is not None:
            pid, fd, kind, thing = got
            if kind != "file":
                return CONT
            s.files.send_content(n, fdinfo_text(s, pid, fd, thing), cloexec, "fdinfo")
            return ("sent",)
        pid, rest = _proc_target(s, n, w.path)
        if pid is not None and rest in ("mounts", "mountinfo"):
            text = mounts_text(s, pid, rest == "mountinfo")
            if text is None:
                return CONT
            s.files.send_content(n, text, cloexec, rest)
            return ("sent",)
        return CONT
    # bpffs
    task = _emulated(s, n)
    fs = s.kernel.fs
    with s.kernel.lock:
        if flags & abi.O_TMPFILE == abi.O_TMPFILE:
            raise bpf_error(errno.EOPNOTSUPP, "bpffs has no tmpfile")
        try:
            node = fs.walk(w.path, task)
        except OSError as e:
            if e.errno != errno.ENOENT or not flags & abi.O_CREAT:
                raise
            d, name = fs.parent_and_name(w.path, task)
            fs._lookup_child(d, name)  # EPERM for a new name with a dot
            permission(task, d, MAY_WRITE | MAY_EXEC)
            raise bpf_error(errno.EACCES, "bpffs cannot create regular files") from None
        if flags & abi.O_CREAT and flags & abi.O_EXCL:
            raise bpf_error(errno.EEXIST, w.path)
        if node.is_dir:
            if flags & abi.O_CREAT or acc != 0:
                raise bpf_error(errno.EISDIR, w.path)
            if not flags & abi.O_PATH:
                permission(task, node, MAY_READ)
            s.files.install_dir(n, node, cloexec)
            return ("sent",)
        if flags & abi.O_DIRECTORY:
            raise bpf_error(errno.ENOTDIR, w.path)
        mask = {0: MAY_READ, 1: MAY_WRITE, 2: MAY_READ | MAY_WRITE, 3: MAY_READ | MAY_WRITE}[acc]
        if not flags & abi.O_PATH:
            permission(task, node, mask)
        raise bpf_error(errno.EIO, "a pinned object cannot be opened")


def h_open(s, n):
    return do_open(s, n, AT_FDCWD, n.args[0], n.args[1], n.args[2])


def h_openat(s, n):
    return do_open(s, n, _s32(n.args[0]), n.args[1], n.args[2], n.args[3])


def h_creat(s, n):
    return do_open(s, n, AT_FDCWD, n.args[0], abi.O_CREAT | abi.O_WRONLY | abi.O_TRUNC, n.args[1])


def h_openat2(s, n):
    task = s.task_for(n.pid)
    if n.args[3] < 24:
        return CONT
    try:
        how = task.mem.read(n.args[2], 24)
    except OSError:
        return CONT
    flags = int.from_bytes(how[:8], "little")
    mode = int.from_bytes(how[8:16], "little")
    if flags >> 32:
        return CONT
    return do_open(s, n, _s32(n.args[0]), n.args[1], flags, mode)


# -- stat family -----------------------------------------------------------------------------------------
def do_stat(s, n, dirfd, addr, flags, buf, as_statx=False, follow=True):
    task = s.task_for(n.pid)
    path = read_path(task, addr) if addr else ""
    if path is None:
        return CONT
    if path == "":
        if not flags & AT_EMPTY_PATH:
            return CONT
        return do_fstat(s, n, dirfd, buf, as_statx)
    w = classify(s, n, dirfd, path)
    if w is None:
        return CONT
    if w.kind == "proc":
        got = _proc_fd(s, n, w.path, "fd")
        if got is None or not follow:
            return CONT
        fields = _file_stat(got[3] if got[2] == "file" else _dir_file(got[3]))
    elif w.kind == "bpffs":
        task = _emulated(s, n)
        with s.kernel.lock:
            node = s.kernel.fs.walk(w.path, task)
            fields = stat_of_node(node)
    else:
        return CONT
    _write(task, buf, _stat_bytes(fields, as_statx, s.start_time))
    return ("val", 0)




def do_fstat(s, n, fd, buf, as_statx=False):
    got = _emulated_fd(s, n, fd, ("file", "dir"))
    if got is None:
        return CONT
    task, kind, thing, _ident = got
    fields = _file_stat(thing) if kind == "file" else stat_of_node(thing)
    _write(task, buf, _stat_bytes(fields, as_statx, s.start_time))
    return ("val", 0)


def h_stat(s, n):
    return do_stat(s, n, AT_FDCWD, n.args[0], 0, n.args[1])


def h_lstat(s, n):
    return do_stat(s, n, AT_FDCWD, n.args[0], AT_SYMLINK_NOFOLLOW, n.args[1], follow=False)


def h_newfstatat(s, n):
    flags = n.args[3]
    return do_stat(s, n, _s32(n.args[0]), n.args[1], flags, n.args[2], follow=not flags & AT_SYMLINK_NOFOLLOW)


def h_statx(s, n):
    flags = n.args[2]
    return do_stat(s, n, _s32(n.args[0]), n.args[1], flags, n.args[4], as_statx=True,
                   follow=not flags & AT_SYMLINK_NOFOLLOW)


def h_fstat(s, n):
    return do_fstat(s, n, _s32(n.args[0]), n.args[1])


def _statfs_bytes(kind):
    if kind == "bpffs":
        return abi.pack_statfs(uapi.BPF_FS_MAGIC, fsid=(os.minor(BPFFS_DEV), 0))
    return abi.pack_statfs(ANON_INODE_FS_MAGIC, namelen=255)


ANON_INODE_FS_MAGIC = 0x09041934


def h_statfs(s, n):
    got = _classified(s, n, AT_FDCWD, n.args[0], "bpffs")
    if got is None:
        return CONT
    _task, _path, w = got
    task = _emulated(s, n)
    with s.kernel.lock:
        s.kernel.fs.walk(w.path, task)
    _write(task, n.args[1], _statfs_bytes("bpffs"))
    return ("val", 0)


def h_fstatfs(s, n):
    got = _emulated_fd(s, n, _s32(n.args[0]), ("file", "dir"))
    if got is None:
        return CONT
    task, kind, _thing, _ident = got
    _write(task, n.args[1], _statfs_bytes("bpffs" if kind == "dir" else "anon"))
    return ("val", 0)


# -- access ------------------------------------------------------------------------------------------------
def do_access(s, n, dirfd, addr, mode, flags):
    got = _classified(s, n, dirfd, addr, "bpffs")
    if got is None:
        return CONT
    _task, _path, w = got
    if mode & ~7:
        raise bpf_error(errno.EINVAL, "bad access mode")
    task = _emulated(s, n)
    with s.kernel.lock:
        node = s.kernel.fs.walk(w.path, task)
        if mode:
            permission(task, node, mode)
    return ("val", 0)


def h_access(s, n):
    return do_access(s, n, AT_FDCWD, n.args[0], n.args[1], 0)


def h_faccessat(s, n):
    return do_access(s, n, _s32(n.args[0]), n.args[1], n.args[2], 0)


def h_faccessat2(s, n):
    return do_access(s, n, _s32(n.args[0]), n.args[1], n.args[2], n.args[3])


# -- directory operations ----------------------------------------------------------------------------------
def _bpffs_path(s, n, dirfd, addr):
    got = _classified(s, n, dirfd, addr, "bpffs")
    if got is None:
        return None
    _task, path, w = got
    if path.endswith("/") and not w.path.endswith("/"):
        return w.path + "/"
    return w.path


def do_mkdir(s, n, dirfd, addr, mode):
    path = _bpffs_path(s, n, dirfd, addr)
    if path is None:
        return CONT
    task = _emulated(s, n)
    with s.kernel.lock:
        s.kernel.fs.mkdir(path.rstrip("/") or "/", mode & 0o7777, task)
    return ("val", 0)


def h_mkdir(s, n):
    return do_mkdir(s, n, AT_FDCWD, n.args[0], n.args[1])


def h_mkdirat(s, n):
    return do_mkdir(s, n, _s32(n.args[0]), n.args[1], n.args[2])


def do_unlink(s, n, dirfd, addr, flags):
    if flags & ~abi.AT_REMOVEDIR:
        return CONT
    path = _bpffs_path(s, n, dirfd, addr)
    if path is None:
        return CONT
    task = _emulated(s, n)
    with s.kernel.lock:
        if flags & abi.AT_REMOVEDIR:
            s.kernel.fs.rmdir(path, task)
        else:
            s.kernel.fs.unlink(path, task)
    return ("val", 0)


def h_unlink(s, n):
    return do_unlink(s, n, AT_FDCWD, n.args[0], 0)


def h_rmdir(s, n):
    return do_unlink(s, n, AT_FDCWD, n.args[0], abi.AT_REMOVEDIR)


def h_unlinkat(s, n):
    return do_unlink(s, n, _s32(n.args[0]), n.args[1], n.args[2])


def do_rename(s, n, olddirfd, oldaddr, newdirfd, newaddr, flags):
    task = s.task_for(n.pid)
    old, new = read_path(task, oldaddr), read_path(task, newaddr)
    if old is None or new is None:
        return CONT
    wo, wn = classify(s, n, olddirfd, old), classify(s, n, newdirfd, new)
    ob = wo is not None and wo.kind == "bpffs"
    nb = wn is not None and wn.kind == "bpffs"
    if not ob and not nb:
        return CONT
    if ob != nb:
        raise bpf_error(errno.EXDEV, "rename across filesystems")
    if flags & ~(abi.RENAME_NOREPLACE | abi.RENAME_EXCHANGE) or flags == abi.RENAME_NOREPLACE | abi.RENAME_EXCHANGE:
        raise bpf_error(errno.EINVAL, "bad rename flags")
    task = _emulated(s, n)
    fs = s.kernel.fs
    with s.kernel.lock:
        if flags & abi.RENAME_NOREPLACE:
            try:
                fs.walk(wn.path, task)
            except OSError:
                pass
            else:
                raise bpf_error(errno.EEXIST, wn.path)
        elif flags & abi.RENAME_EXCHANGE:
            raise bpf_error(errno.EINVAL, "RENAME_EXCHANGE is not emulated on bpffs")
        fs.rename(wo.path, wn.path, task)
    return ("val", 0)


def h_rename(s, n):
    return do_rename(s, n, AT_FDCWD, n.args[0], AT_FDCWD, n.args[1], 0)


def h_renameat(s, n):
    return do_rename(s, n, _s32(n.args[0]), n.args[1], _s32(n.args[2]), n.args[3], 0)


def h_renameat2(s, n):
    return do_rename(s, n, _s32(n.args[0]), n.args[1], _s32(n.args[2]), n.args[3], n.args[4] & 0xFFFFFFFF)


# -- readlink -------------------------------------------------------------------------------------------------
def do_readlink(s, n, dirfd, addr, buf, size):
    got = _classified(s, n, dirfd, addr)
    if got is None:
        return CONT
    task, path, w = got
    size = _s32(size)
    if w.kind == "proc":
        got = _proc_fd(s, n, w.path, "fd")
        if got is None:
            return CONT
        _pid, _fd, kind, thing = got
        if kind == "file":
            target = ANON_NAMES.get(thing.kind, "anon_inode:[%s]" % thing.kind)
        else:
            target = s.kernel.fs.path_of(thing)
        if size <= 0:
            raise bpf_error(errno.EINVAL, "bufsiz <= 0")
        data = target.encode()[:size]
        _write(task, buf, data)
        return ("val", len(data))
    if w.kind == "bpffs":
        task = _emulated(s, n)
        with s.kernel.lock:
            s.kernel.fs.walk(w.path, task)
        raise bpf_error(errno.EINVAL, "not a symlink")
    return CONT


def h_readlink(s, n):
    return do_readlink(s, n, AT_FDCWD, n.args[0], n.args[1], n.args[2])


def h_readlinkat(s, n):
    return do_readlink(s, n, _s32(n.args[0]), n.args[1], n.args[2], n.args[3])


# -- getdents64 ----------------------------------------------------------------------------------------------------
def h_getdents64(s, n):
    fd = _s32(n.args[0])
    got = _emulated_fd(s, n, fd, ("dir",))
    if got is None:
        return CONT
    task, _kind, node, _ident = got
    s.reap()
    buf, count = n.args[1], n.args[2] & 0xFFFFFFFF
    with s.kernel.lock:
        parent = node.parent if node.parent is not None else node
        parent = s.kernel.fs._follow_mount(parent) if not node.is_root else parent
        entries = [(node.ino, abi.DT_DIR, "."), (parent.ino, abi.DT_DIR, "..")]
        for name, c in reversed(list(node.children.items())):  # bpffs lists the newest first
            entries.append((c.ino, abi.DT_DIR if c.is_dir else abi.DT_REG, name))
    pos = s.files.dir_pos(task.pid, fd)
    out = bytearray()
    while pos < len(entries):
        ino, dtype, name = entries[pos]
        rec = abi.dirent64(ino, pos + 1, dtype, name)
        if len(out) + len(rec) > count:
            if not out:
                raise bpf_error(errno.EINVAL, "buffer too small")
            break
        out += rec
        pos += 1
    if out:
        _write(task, buf, bytes(out))
        s.files.set_dir_pos(task.pid, fd, pos)
    return ("val", len(out))


# -- fcntl(F_GETFL) -----------------------------------------------------------------------------------------------
def h_fcntl(s, n):
    fd = _s32(n.args[0])
    got = _emulated_fd(s, n, fd, ("file",))
    if got is None:
        return CONT
    task, _kind, f, _ident = got
    flags, _cloexec = file_flags(f, task.pid, fd)
    return ("val", flags)


# -- mmap / mprotect -------------------------------------------------------------------------------------------------
def h_mmap(s, n):
    addr, length, prot, flags, fd, off = n.args
    got = _emulated_fd(s, n, _s32(fd), ("file",))
    if got is None:
        return CONT
    task, _kind, f, ident = got
    s.reap()
    with s.kernel.lock:
        if off & (PAGE - 1) or length == 0:
            raise bpf_error(errno.EINVAL, "bad offset or length")
        maptype = flags & 0xF
        mode = f.mode
        if maptype in (abi.MAP_SHARED, abi.MAP_SHARED_VALIDATE):
            if prot & abi.PROT_WRITE and not mode & FMODE_WRITE:
                raise bpf_error(errno.EACCES, "writable shared mapping of a file not open for writing")
            shared = bool(mode & FMODE_WRITE)
        elif maptype == abi.MAP_PRIVATE:
            shared = False
        else:
            raise bpf_error(errno.EINVAL, "bad mapping type")
        if not mode & FMODE_READ:
            raise bpf_error(errno.EACCES, "mapping of a file not open for reading")
        if prot & abi.PROT_EXEC:
            raise bpf_error(errno.EPERM, "the anonymous inode's mount is noexec")
        m = f.obj
        if f.kind != "map" or m is None:
            raise bpf_error(errno.ENODEV, "no mmap for this file")
        if not implements(m, "map_mmap") or m.record:
            raise bpf_error(ENOTSUPP, "%s maps cannot be mapped" % m.type_name())
        if not shared:
            raise bpf_error(errno.EINVAL, "bpf maps are mapped shared only")
        if prot & abi.PROT_WRITE:
            if m.frozen:
                raise bpf_error(errno.EPERM, "the map is frozen")
            if m.map_flags & uapi.BPF_F_RDONLY_PROG:
                raise bpf_error(errno.EACCES, "BPF_F_RDONLY_PROG map")
        m.map_mmap(round_up(length, PAGE), off // PAGE, bool(prot & abi.PROT_WRITE))  # EINVAL past the values
        mem = m.mmap_area
        if not isinstance(mem, SharedMemory) or mem.ident != ident:
            raise bpf_error(errno.ENODEV, "this map's memory was not made shareable (created outside the session)")
    return CONT


def h_mprotect(s, n):
    addr, length, prot = n.args[0], n.args[1], n.args[2]
    if addr & (PAGE - 1) or not length:
        return CONT
    inos = s.files.map_inodes()
    if not inos:
        return CONT
    task = s.task_for(n.pid)
    end = addr + round_up(length, PAGE)
    try:
        with open("/proc/%d/maps" % task.pid, "rb") as fh:
            text = fh.read()
    except OSError:
        return CONT
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        lo, hi = (int(x, 16) for x in parts[0].split(b"-"))
        if hi <= addr or lo >= end:
            continue
        if int(parts[4]) not in inos or not parts[5].startswith(s.files.store_dir.encode()):
            continue
        if prot & abi.PROT_EXEC or (prot & abi.PROT_WRITE and parts[1][1:2] != b"w"):
            raise bpf_error(errno.EACCES, "a read-only mapping of a bpf map stays read-only")
    return CONT


# -- /proc/mounts ---------------------------------------------------------------------------------------------------
def mounts_text(s, pid, mountinfo):
    name = "mountinfo" if mountinfo else "mounts"
    try:
        with open("/proc/%d/%s" % (pid, name), "rb") as f:
            real = f.read().decode("utf-8", "surrogateescape")
    except OSError:
        return None
    lines = []
    max_id = 0
    parent_of = {}
    for line in real.splitlines():
        fields = line.split()
        if mountinfo:
            sep = fields.index("-") if "-" in fields else -1
            fstype = fields[sep + 1] if sep >= 0 else ""
            max_id = max(max_id, int(fields[0]))
            parent_of[fields[4]] = fields[0]
        else:
            fstype = fields[2] if len(fields) > 2 else ""
        if fstype == "bpf":
            continue
        lines.append(line)
    for i, mnt in enumerate(bpffs_mounts(s.kernel)):
        if mountinfo:
            parent = "1"
            best = ""
            for point, mid in parent_of.items():
                if (mnt == point or mnt.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                    best, parent = point, mid
            lines.append("%d %s 0:%d / %s rw,relatime shared:%d - bpf bpf rw" % (
                max_id + 1 + i, parent, os.minor(BPFFS_DEV) + i, mnt, 9000 + i))
        else:
            lines.append("bpf %s bpf rw,relatime 0 0" % mnt)
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


# -- xattrs ---------------------------------------------------------------------------------------------------------
def do_xattr(s, n, listing):
    """bpffs has no xattr handlers: getxattr is EOPNOTSUPP, listxattr lists nothing."""
    path = _bpffs_path(s, n, AT_FDCWD, n.args[0])
    if path is None:
        return CONT
    task = _emulated(s, n)
    with s.kernel.lock:
        s.kernel.fs.walk(path, task)
    if listing:
        return ("val", 0)
    raise bpf_error(errno.EOPNOTSUPP, "bpffs has no extended attributes")


def h_getxattr(s, n):
    return do_xattr(s, n, False)


def h_listxattr(s, n):
    return do_xattr(s, n, True)


def h_bpf(s, n):
    return s.sys_bpf(n)


HANDLERS = {
    NR["bpf"]: h_bpf,
    NR["open"]: h_open, NR["openat"]: h_openat, NR["openat2"]: h_openat2, NR["creat"]: h_creat,
    NR["stat"]: h_stat, NR["lstat"]: h_lstat, NR["newfstatat"]: h_newfstatat, NR["statx"]: h_statx,
    NR["fstat"]: h_fstat, NR["statfs"]: h_statfs, NR["fstatfs"]: h_fstatfs,
    NR["access"]: h_access, NR["faccessat"]: h_faccessat, NR["faccessat2"]: h_faccessat2,
    NR["mkdir"]: h_mkdir, NR["mkdirat"]: h_mkdirat, NR["rmdir"]: h_rmdir, NR["unlink"]: h_unlink,
    NR["unlinkat"]: h_unlinkat, NR["rename"]: h_rename, NR["renameat"]: h_renameat, NR["renameat2"]: h_renameat2,
    NR["readlink"]: h_readlink, NR["readlinkat"]: h_readlinkat, NR["getdents64"]: h_getdents64,
    NR["getxattr"]: h_getxattr, NR["lgetxattr"]: h_getxattr, NR["listxattr"]: h_listxattr,
    NR["llistxattr"]: h_listxattr, NR["fcntl"]: h_fcntl, NR["mmap"]: h_mmap, NR["mprotect"]: h_mprotect,
}
