"""The filesystem namespace of an emulated kernel, and bpffs on it (the kernel's inode.c).

Ordinary directories (tmpfs-like) hold mount points; a bpffs mount is a tree
of directories and pinned objects. A pin is an inode that holds a reference on
its object; the last link to it going away drops that reference.
"""
import errno
import stat as _stat
from collections import namedtuple

from . import uapi
from .errors import bpf_error

TMPFS_MAGIC = 0x01021994

StatResult = namedtuple("StatResult", "st_mode st_ino st_nlink st_uid st_gid st_size")
StatfsResult = namedtuple("StatfsResult", "f_type")


class Inode:
    """A node: a directory (children dict) or a pinned object."""

    _ino = 1

    def __init__(self, sb, mode, uid=0, gid=0, obj=None):
        self.sb = sb  # 'bpf' or 'tmpfs'
        self.mode = mode
        self.uid, self.gid = uid, gid
        self.obj = obj
        self.children = {} if _stat.S_ISDIR(mode) else None
        self.parent = None
        self.name = ""
        self.mounted = None  # root Inode of a filesystem mounted here
        self.is_root = False  # the root of a bpffs mount
        Inode._ino += 1
        self.ino = Inode._ino

    @property
    def is_dir(self):
        return self.children is not None

    def __repr__(self):
        return "<inode %s %s>" % (self.name or "/", oct(self.mode))


def _split(path):
    if not isinstance(path, str) or not path.startswith("/"):
        raise bpf_error(errno.ENOENT if path == "" else errno.EINVAL, "paths must be absolute: %r" % (path,))
    return [p for p in path.split("/") if p and p != "."]


class Namespace:
    def __init__(self, kernel):
        self.kernel = kernel
        self.root = Inode("tmpfs", _stat.S_IFDIR | 0o755)

    # -- lookup ----------------------------------------------------------
    def _follow_mount(self, node):
        while node.mounted is not None:
            node = node.mounted
        return node

    def _lookup_child(self, d, name):
        if d.sb == "bpf" and "." in name:
            # bpffs refuses dotted names at lookup time
            raise bpf_error(errno.EPERM, "bpffs names may not contain a dot")
        if name == "..":
            return d.parent or d
        c = d.children.get(name)
        return self._follow_mount(c) if c is not None else None

    def walk(self, path):
        """The inode at path (ENOENT, ENOTDIR on the way)."""
        node = self._follow_mount(self.root)
        for name in _split(path):
            if not node.is_dir:
                raise bpf_error(errno.ENOTDIR, path)
            nxt = self._lookup_child(node, name)
            if nxt is None:
                raise bpf_error(errno.ENOENT, path)
            node = nxt
        return node

    def parent_and_name(self, path):
        parts = _split(path)
        if not parts:
            raise bpf_error(errno.EEXIST, path)
        d = self.walk("/" + "/".join(parts[:-1]))
        if not d.is_dir:
            raise bpf_error(errno.ENOTDIR, path)
        return d, parts[-1]

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
    def makedirs(self, path):
        node = self._follow_mount(self.root)
        for name in _split(path):
            nxt = node.children.get(name)
            if nxt is None:
                nxt = Inode(node.sb, _stat.S_IFDIR | 0o755)
                self._link(node, name, nxt)
            node = self._follow_mount(nxt)
        return node

    def mount_bpffs(self, path):
        where = self.makedirs(path)
        root = Inode("bpf", _stat.S_IFDIR | 0o1777)
        root.parent, root.name = where.parent, where.name
        root.is_root = True
        where.mounted = root
        # a fresh bpffs shows the preloaded iterator links, as the host's does
        for name in ("maps.debug", "progs.debug"):
            self._link(root, name, Inode("bpf", _stat.S_IFREG | 0o400, obj=PreloadLink(name)))
        return root

    # -- directory operations ---------------------------------------------
    def mkdir(self, path, mode, task):
        d, name = self.parent_and_name(path)
        if self._lookup_child(d, name) is not None:
            raise bpf_error(errno.EEXIST, path)
        self._check_write(d, task)
        node = Inode(d.sb, _stat.S_IFDIR | (mode & 0o7777 & ~task_umask(task)), task.uid, 0)
        self._link(d, name, node)

    def rmdir(self, path, task):
        d, name = self.parent_and_name(path)
        node = self._lookup_child(d, name)
        if node is None:
            raise bpf_error(errno.ENOENT, path)
        if not node.is_dir:
            raise bpf_error(errno.ENOTDIR, path)
        if node.children:
            raise bpf_error(errno.ENOTEMPTY, path)
        self._check_write(d, task)
        del d.children[name]

    def unlink(self, path, task):
        d, name = self.parent_and_name(path)
        node = self._lookup_child(d, name)
        if node is None:
            raise bpf_error(errno.ENOENT, path)
        if node.is_dir:
            raise bpf_error(errno.EISDIR, path)
        self._check_write(d, task)
        del d.children[name]
        self._drop(node)

    def _drop(self, node):
        obj, node.obj = node.obj, None
        if obj is not None and not isinstance(obj, PreloadLink):
            obj.release(node)

    def rename(self, old, new, task):
        od, oname = self.parent_and_name(old)
        node = self._lookup_child(od, oname)
        if node is None:
            raise bpf_error(errno.ENOENT, old)
        nd, nname = self.parent_and_name(new)
        if nd.sb != od.sb or (nd.sb == "bpf" and self._root_of(nd) is not self._root_of(od)):
            raise bpf_error(errno.EXDEV, new)
        target = self._lookup_child(nd, nname)
        if target is node:
            return
        # moving a directory below itself
        p = nd
        while p is not None:
            if p is node:
                raise bpf_error(errno.EINVAL, new)
            p = p.parent
        if target is not None:
            if node.is_dir and not target.is_dir:
                raise bpf_error(errno.ENOTDIR, new)
            if not node.is_dir and target.is_dir:
                raise bpf_error(errno.EISDIR, new)
            if target.is_dir and target.children:
                raise bpf_error(errno.ENOTEMPTY, new)
        self._check_write(od, task)
        self._check_write(nd, task)
        del od.children[oname]
        if target is not None:
            del nd.children[nname]
            if not target.is_dir:
                self._drop(target)
        self._link(nd, nname, node)

    def _root_of(self, node):
        while not node.is_root and node.parent is not None:
            node = node.parent
        return node

    def listdir(self, path, task):
        node = self.walk(path)
        if not node.is_dir:
            raise bpf_error(errno.ENOTDIR, path)
        return sorted(node.children)

    def stat(self, path, task):
        node = self.walk(path)
        nlink = 2 + sum(1 for c in node.children.values() if c.is_dir) if node.is_dir else 1
        return StatResult(node.mode, node.ino, nlink, node.uid, node.gid, 0)

    def statfs(self, path, task):
        node = self.walk(path)
        return StatfsResult(uapi.BPF_FS_MAGIC if node.sb == "bpf" else TMPFS_MAGIC)

    def _check_write(self, d, task):
        if task.uid == 0 or task.uid == d.uid:
            return
        if d.mode & 0o002:
            return
        raise bpf_error(errno.EACCES, "no write permission")

    # -- pins ----------------------------------------------------------------
    def pin(self, path, obj, task):
        """bpf_obj_pin_user: create a pin of obj at path (it takes a reference)."""
        d, name = self.parent_and_name(path)
        if d.sb != "bpf":
            raise bpf_error(errno.EPERM, "%s is not on a bpffs" % path)
        if self._lookup_child(d, name) is not None:
            raise bpf_error(errno.EEXIST, path)
        self._check_write(d, task)
        node = Inode("bpf", _stat.S_IFREG | (0o600 & ~task_umask(task)), task.uid, 0, obj=obj)
        obj.hold(node)
        self._link(d, name, node)
        return node

    def get(self, path, task):
        """bpf_obj_get_user's lookup: the pinned inode at path."""
        node = self.walk(path)
        if node.obj is None or node.sb != "bpf":
            raise bpf_error(errno.EINVAL if node.is_dir or node.sb == "bpf" else errno.EINVAL, path)
        return node


class PreloadLink:
    """Stands for the kernel's preloaded iterator links (maps.debug, progs.debug)."""

    kind = "link"

    def __init__(self, name):
        self.name = name
        self.id = 0


def task_umask(task):
    return getattr(task, "umask", 0o022)
