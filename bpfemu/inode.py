"""The filesystem namespace of an emulated kernel, and bpffs on it (the kernel's inode.c).

The namespace is a tree of inodes. Outside bpffs it behaves like one tmpfs
mount holding ordinary directories (``/``, ``/tmp``, ``/sys/fs``...) and
mount points; a bpffs mount is a tree of directories and pinned objects. A
pin is an inode holding one reference on its object; when its last name goes
(unlink, or a rename over it) that reference is dropped, which frees the
object when nothing else holds it.

Path walking follows the VFS: ``..`` climbs out of a mount, a bpffs
directory refuses to look up a name containing a dot (EPERM) unless the entry
already exists, permissions are the owner/other mode bits with
CAP_DAC_OVERRIDE and CAP_FOWNER as the overrides, and a sticky directory
(the bpffs root is 01777) keeps other users' entries.
"""
import errno
import stat as _stat

from . import uapi
from .surface import StatfsResult, StatResult
from .caps import CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
from .errors import bpf_error

TMPFS_MAGIC = 0x01021994
MAY_EXEC, MAY_WRITE, MAY_READ = 1, 2, 4


class Inode:
    """A node: a directory (children dict), a pinned object, or a plain file."""

    _ino = 1

    def __init__(self, sb, mode, uid=0, gid=0, obj=None):
        self.sb = sb  # the superblock: 'tmpfs' or a BpfSuper (one per bpffs mount)
        self.mode = mode
        self.uid, self.gid = uid, gid
        self.obj = obj
        self.children = {} if _stat.S_ISDIR(mode) else None
        self.parent = None
        self.name = ""
        self.mounted = None  # root Inode of a filesystem mounted here
        self.is_root = False  # the root of a mount (its parent is the mount point's parent)
        self.preloaded = False  # maps.debug / progs.debug
        Inode._ino += 1
        self.ino = Inode._ino

    @property
    def is_dir(self):
        return self.children is not None

    @property
    def on_bpffs(self):
        return isinstance(self.sb, BpfSuper)

    def __repr__(self):
        return "<inode %s %s>" % (self.name or "/", oct(self.mode))


class BpfSuper:
    """One bpffs mount (rename across two of them is EXDEV)."""

    def __init__(self, path):
        self.path = path

    def __repr__(self):
        return "<bpffs %s>" % self.path


def _caps(task):
    return getattr(task, "caps", ())


def permission(task, node, mask):
    """generic_permission: owner, group or other bits, then the DAC capabilities (EACCES)."""
    if task.uid == node.uid:
        bits = (node.mode >> 6) & 7
    elif getattr(task, "gid", task.uid) == node.gid:
        bits = (node.mode >> 3) & 7
    else:
        bits = node.mode & 7
    if mask & ~bits == 0:
        return
    caps = _caps(task)
    if node.is_dir:
        if CAP_DAC_OVERRIDE in caps:
            return
        if CAP_DAC_READ_SEARCH in caps and not mask & MAY_WRITE:
            return
    else:
        if CAP_DAC_OVERRIDE in caps and (not mask & MAY_EXEC or node.mode & 0o111):
            return
        if CAP_DAC_READ_SEARCH in caps and mask == MAY_READ:
            return
    raise bpf_error(errno.EACCES, "permission denied")


def _split(path):
    if not isinstance(path, str):
        raise bpf_error(errno.EINVAL, "paths are strings: %r" % (path,))
    if path == "":
        raise bpf_error(errno.ENOENT, "empty path")
    return [p for p in path.split("/") if p and p != "."]


class Namespace:
    def __init__(self, kernel):
        self.kernel = kernel
        self.root = Inode("tmpfs", _stat.S_IFDIR | 0o755)
        self.root.is_root = True
        self.bpffs_mounts = []  # mount points of the bpffs mounts, in mount order

    # -- lookup ----------------------------------------------------------
    def _follow_mount(self, node):
        while node.mounted is not None:
            node = node.mounted
        return node

    def _lookup_child(self, d, name):
        """d's entry name (mounts followed), or None. bpffs refuses new dotted names."""
        if name == "..":
            return self._follow_mount(d.parent) if d.parent is not None else d
        c = d.children.get(name)
        if c is None and d.on_bpffs and "." in name:
            raise bpf_error(errno.EPERM, "bpffs names may not contain a dot")
        return self._follow_mount(c) if c is not None else None

    def _start(self, path, base):
        if path.startswith("/") or base is None:
            return self._follow_mount(self.root)
        return base

    def walk(self, path, task=None, base=None):
        """The inode at path (ENOENT, ENOTDIR, EACCES on the way); relative paths start at base."""
        parts = _split(path)
        node = self._start(path, base)
        for name in parts:
            node = self._step(node, name, path, task)
        return node

    def _step(self, node, name, path, task):
        if not node.is_dir:
            raise bpf_error(errno.ENOTDIR, path)
        if task is not None:
            permission(task, node, MAY_EXEC)
        nxt = self._lookup_child(node, name)
        if nxt is None:
            raise bpf_error(errno.ENOENT, path)
        return nxt

    def parent_and_name(self, path, task=None, base=None):
        """(directory inode, last component) of path; the last component may be '.' or '..'."""
        raw = [p for p in path.split("/") if p] if isinstance(path, str) else None
        parts = _split(path)
        if not raw:
            return None, None  # the root itself
        node = self._start(path, base)
        for name in parts[:-1] if raw[-1] != "." else parts:
            node = self._step(node, name, path, task)
        if not node.is_dir:
            raise bpf_error(errno.ENOTDIR, path)
        return node, raw[-1]

    def path_of(self, node):
        parts = []
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(parts))

    def _link(self, d, name, node):
        node.parent, node.name = d, name
        d.children[name] = node

    # -- building --------------------------------------------------------
    def makedirs(self, path, mode=0o755):
        node = self._follow_mount(self.root)
        for name in _split(path):
            nxt = node.children.get(name)
            if nxt is None:
                nxt = Inode(node.sb, _stat.S_IFDIR | mode)
                self._link(node, name, nxt)
            node = self._follow_mount(nxt)
        return node

    def mount_bpffs(self, path):
        """Mount a fresh bpffs on the directory at path (created if missing); returns its root."""
        where = self.makedirs(path)
        root = Inode(BpfSuper(path), _stat.S_IFDIR | 0o1777)
        root.parent, root.name = where.parent, where.name
        root.is_root = True
        where.mounted = root
        self.bpffs_mounts.append(self.path_of(where))
        # a fresh bpffs shows the preloaded iterator links, as the host's does (CONFIG_BPF_PRELOAD)
        for name in ("maps.debug", "progs.debug") if self.kernel.bpf_preload else ():
            node = Inode(root.sb, _stat.S_IFREG | 0o400, obj=PreloadLink(name))
            node.preloaded = True
            self._link(root, name, node)
        return root

    def create_file(self, path, mode=0o644, task=None):
        """A plain (non-bpf) file outside bpffs, for tests that need one."""
        d, name = self.parent_and_name(path, task)
        if d is None or name in (".", "..") or self._lookup_child(d, name) is not None:
            raise bpf_error(errno.EEXIST, path)
        if d.on_bpffs:
            raise bpf_error(errno.EPERM, "bpffs holds only directories and pins")
        self._link(d, name, Inode(d.sb, _stat.S_IFREG | mode, getattr(task, "uid", 0)))

    # -- permission helpers -----------------------------------------------
    def _may_create(self, d, task):
        permission(task, d, MAY_WRITE | MAY_EXEC)

    def _may_delete(self, d, node, task):
        permission(task, d, MAY_WRITE | MAY_EXEC)
        if node.preloaded:
            raise bpf_error(errno.EPERM, "the preloaded iterator links cannot be removed")
        if d.mode & _stat.S_ISVTX and task.uid not in (node.uid, d.uid) and CAP_FOWNER not in _caps(task):
            raise bpf_error(errno.EPERM, "sticky directory: not the owner")

    def _new_entry(self, path, task, base):
        """filename_create: the parent and a name that must not exist yet."""
        d, name = self.parent_and_name(path, task, base)
        if d is None or name in (".", ".."):
            raise bpf_error(errno.EEXIST, path)
        if self._lookup_child(d, name) is not None:
            raise bpf_error(errno.EEXIST, path)
        return d, name

    def _existing_entry(self, path, task, base=None):
        d, name = self.parent_and_name(path, task, base)
        if d is None:
            raise bpf_error(errno.EBUSY, path)
        if name == ".":
            raise bpf_error(errno.EINVAL, path)
        if name == "..":
            raise bpf_error(errno.ENOTEMPTY, path)
        node = self._lookup_child(d, name)
        if node is None:
            raise bpf_error(errno.ENOENT, path)
        return d, name, node

    # -- directory operations ---------------------------------------------
    def mkdir(self, path, mode, task):
        d, name = self._new_entry(path, task, None)
        self._may_create(d, task)
        node = Inode(d.sb, _stat.S_IFDIR | (mode & 0o1777 & ~task_umask(task)), task.uid, _gid(task))
        self._link(d, name, node)

    def rmdir(self, path, task):
        d, name, node = self._existing_entry(path, task)
        if not node.is_dir:
            raise bpf_error(errno.ENOTDIR, path)
        self._may_delete(d, node, task)
        if node.is_root:
            raise bpf_error(errno.EBUSY, path)
        if node.children:
            raise bpf_error(errno.ENOTEMPTY, path)
        del d.children[name]

    def unlink(self, path, task):
        d, name, node = self._existing_entry(path, task)
        self._may_delete(d, node, task)
        if node.is_dir:
            raise bpf_error(errno.EISDIR, path)
        del d.children[name]
        self._drop(node)

    def _drop(self, node):
        obj, node.obj = node.obj, None
        if obj is not None and not isinstance(obj, PreloadLink):
            obj.release(node)

    def _mount_of(self, node):
        return node.sb if node.on_bpffs else "tmpfs"

    def rename(self, old, new, task):
        od, oname = self.parent_and_name(old, task)
        nd, nname = self.parent_and_name(new, task)
        if od is None or nd is None:
            raise bpf_error(errno.EBUSY, old if od is None else new)
        if self._mount_of(od) != self._mount_of(nd):
            raise bpf_error(errno.EXDEV, new)
        if oname in (".", "..") or nname in (".", ".."):
            raise bpf_error(errno.EBUSY if oname == ".." or nname == ".." else errno.EINVAL, old)
        node = self._lookup_child(od, oname)
        if node is None:
            raise bpf_error(errno.ENOENT, old)
        target = self._lookup_child(nd, nname)
        if target is node:
            return
        # a directory cannot move below itself
        p = nd
        while p is not None:
            if p is node:
                raise bpf_error(errno.EINVAL, new)
            p = p.parent
        self._may_delete(od, node, task)
        if target is not None:
            self._may_delete(nd, target, task)
            if node.is_dir and not target.is_dir:
                raise bpf_error(errno.ENOTDIR, new)
            if not node.is_dir and target.is_dir:
                raise bpf_error(errno.EISDIR, new)
        else:
            self._may_create(nd, task)
        if node.is_root or (target is not None and target.is_root):
            raise bpf_error(errno.EBUSY, old)
        if target is not None and target.is_dir and target.children:
            raise bpf_error(errno.ENOTEMPTY, new)
        del od.children[oname]
        if target is not None:
            del nd.children[nname]
            if not target.is_dir:
                self._drop(target)
        self._link(nd, nname, node)

    def listdir(self, path, task):
        node = self.walk(path, task)
        if not node.is_dir:
            raise bpf_error(errno.ENOTDIR, path)
        permission(task, node, MAY_READ)
        return sorted(node.children)

    def stat(self, path, task):
        node = self.walk(path, task)
        nlink = 2 + sum(1 for c in node.children.values() if c.is_dir) if node.is_dir else 1
        return StatResult(node.mode, node.ino, nlink, node.uid, node.gid, 0)

    def statfs(self, path, task):
        node = self.walk(path, task)
        return StatfsResult(uapi.BPF_FS_MAGIC if node.on_bpffs else TMPFS_MAGIC)

    def open_dir(self, path, task):
        node = self.walk(path, task)
        if not node.is_dir:
            raise bpf_error(errno.ENOTDIR, path)
        permission(task, node, MAY_READ)
        return node

    # -- pins ----------------------------------------------------------------
    def pin(self, path, obj, task, base=None):
        """bpf_obj_pin_user: create a pin of obj at path (it takes a reference)."""
        d, name = self._new_entry(path, task, base)
        if not d.on_bpffs:
            raise bpf_error(errno.EPERM, "%s is not on a bpffs" % path)
        self._may_create(d, task)
        node = Inode(d.sb, _stat.S_IFREG | (0o600 & ~task_umask(task)), task.uid, _gid(task), obj=obj)
        obj.hold(node)
        self._link(d, name, node)
        return node

    def get(self, path, task, mask, base=None):
        """bpf_obj_get_user's lookup: the pinned object at path (EACCES for anything else)."""
        node = self.walk(path, task, base)
        permission(task, node, mask)
        if node.obj is None or not node.on_bpffs:
            raise bpf_error(errno.EACCES, "%s is not a pinned bpf object" % path)
        if isinstance(node.obj, PreloadLink):
            raise bpf_error(errno.ENOENT, "the preloaded iterator links cannot be opened here")
        return node.obj

    def pins(self):
        """Every (path, inode) holding an object, in path order."""
        out = []

        def visit(node, path):
            node = self._follow_mount(node)
            for name, c in sorted(node.children.items()):
                p = path.rstrip("/") + "/" + name
                if c.is_dir or c.mounted is not None:
                    visit(c, p)
                elif c.obj is not None and not isinstance(c.obj, PreloadLink):
                    out.append((p, c))

        visit(self.root, "/")
        return out


class PreloadLink:
    """Stands for the kernel's preloaded iterator links (maps.debug, progs.debug)."""

    kind = "link"

    def __init__(self, name):
        self.name = name
        self.id = 0


def task_umask(task):
    return getattr(task, "umask", 0o022)


def _gid(task):
    return getattr(task, "gid", task.uid)
