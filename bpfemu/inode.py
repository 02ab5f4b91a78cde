"""The filesystem namespace of an emulated kernel, and bpffs on it (the kernel's inode.c).

The namespace is a tree of inodes. Outside bpffs it behaves like one tmpfs
mount holding ordinary directories (``/``, ``/tmp``, ``/sys/fs``...) and
mount points; a bpffs mount is a tree of directories and pinned objects. A
pin is an inode holding one reference on its object; when its last name goes
(unlink, or a rename over it) that reference is dropped, which frees the
object when nothing else holds it.

Path walking follows the VFS (fs/namei.c): PATH_MAX and NAME_MAX, ``.`` and
``..`` (which climbs out of a mount), trailing slashes (the last component
must then be a directory), search permission on every directory walked, a
bpffs directory refusing to look up a name containing a dot (EPERM) unless the
entry already exists; and each operation makes the kernel's checks in the
kernel's order (which decides the errno): permissions are the owner/group/other
mode bits with CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER as the
overrides, a sticky directory (the bpffs root is 01777) keeps other users'
entries, rename refuses a directory below itself, over a non-empty directory,
across types and across mounts, and moving a directory to another parent needs
write permission on it (its ``..`` changes). Symlinks (bpf_symlink) are
followed in the middle of a path and, where the syscall asks for it or a
trailing slash does, as its last component, at most MAXSYMLINKS per walk.
"""
import errno
import stat as _stat

from . import uapi
from .surface import StatfsResult, StatResult
from .caps import CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID
from .errors import bpf_error
from .limits import PATH_MAX

NAME_MAX = 255
MAXSYMLINKS = 40  # symlinks one walk may follow (ELOOP past them)
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
TMPFS_MAGIC = 0x01021994
MAY_EXEC, MAY_WRITE, MAY_READ = 1, 2, 4


class Inode:
    """A node: a directory (children dict), a pinned object, a symlink (its body in ``target``) or a plain
    file."""

    _ino = 1

    def __init__(self, sb, mode, uid=0, gid=0, obj=None):
        self.sb = sb  # the superblock: 'tmpfs' or a BpfSuper (one per bpffs mount)
        self.mode = mode
        self.uid, self.gid = uid, gid
        self.obj = obj
        self.target = None  # a symlink's body
        self.children = {} if _stat.S_ISDIR(mode) else None
        self.parent = None
        self.name = ""
        self.mounted = None  # root Inode of a filesystem mounted here
        self.is_root = False  # the root of a mount (its parent is the mount point's parent)
        self.preloaded = False  # maps.debug / progs.debug
        self.dead = False  # a directory that was removed (IS_DEADDIR): nothing can be created or found in it
        Inode._ino += 1
        self.ino = Inode._ino

    @property
    def is_dir(self):
        return self.children is not None

    @property
    def is_symlink(self):
        return _stat.S_ISLNK(self.mode)

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


LAST_NORM, LAST_ROOT, LAST_DOT, LAST_DOTDOT = "norm", "root", "dot", "dotdot"


class Last:
    """The last component of a path (nameidata's ``last`` and ``last_type``): its name, its type, and
    whether slashes follow it (``foo/``: the kernel then wants a directory)."""

    __slots__ = ("name", "type", "slash")

    def __init__(self, name, type_, slash):
        self.name, self.type, self.slash = name, type_, slash


def getname(path):
    """getname(): the path the kernel works on: ENOENT for an empty one, ENAMETOOLONG from PATH_MAX bytes
    (with its NUL, the kernel's buffer holds PATH_MAX - 1 characters). Paths reach here as str (see
    :func:`bpfemu.surface.c_path`), bytes decoded with surrogateescape."""
    if not isinstance(path, str):
        raise bpf_error(errno.EFAULT, "a path is a string: %r" % (path,))
    if path == "":
        raise bpf_error(errno.ENOENT, "empty path")
    if len(path.encode("utf-8", "surrogateescape")) >= PATH_MAX:
        raise bpf_error(errno.ENAMETOOLONG, "path of PATH_MAX bytes or more")
    return path


class Nameidata:
    """What one path walk carries across the symlinks it follows: how many it has followed."""

    __slots__ = ("links",)

    def __init__(self):
        self.links = 0


def _name_len(name):
    return len(name.encode("utf-8", "surrogateescape"))


class Namespace:
    """The VFS's path walk over the inode tree (fs/namei.c), and each operation in the kernel's order of
    checks: every operation walks to the parent of its last component (``link_path_walk``: MAY_EXEC on
    each directory, ENOENT, ENOTDIR, and the filesystem's lookup of a name it has no entry for: EPERM for
    a dotted name on bpffs, ENAMETOOLONG past NAME_MAX), then decides on the last component by its type
    (``.``, ``..``, the root), its trailing slashes and what it names, as the syscall does."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.root = Inode("tmpfs", _stat.S_IFDIR | 0o755)
        self.root.is_root = True
        self.bpffs_mounts = []  # mount points of the bpffs mounts, in mount order

    # -- the walk ----------------------------------------------------------
    def _follow_mount(self, node):
        while node.mounted is not None:
            node = node.mounted
        return node

    def _lookup(self, d, name):
        """d's entry ``name`` as it is in d (a mount point is not followed), or None.

        An entry is found in the dcache; a name without one goes to the filesystem's lookup, which on a
        dead directory is ENOENT, on bpffs refuses a dotted name (bpf_lookup: EPERM, unless the directory's
        mode bits are all clear) and everywhere a name of more than NAME_MAX bytes (simple_lookup:
        ENAMETOOLONG)."""
        c = d.children.get(name)
        if c is not None:
            return c
        if d.dead:
            raise bpf_error(errno.ENOENT, "%s: directory was removed" % name)
        if d.on_bpffs and d.mode & 0o7777 and "." in name:  # bpf_lookup skips it for a directory of mode 0
            raise bpf_error(errno.EPERM, "bpffs names may not contain a dot")
        if _name_len(name) > NAME_MAX:
            raise bpf_error(errno.ENAMETOOLONG, "name of more than NAME_MAX bytes")
        return None

    def _dotdot(self, node):
        """follow_dotdot: the parent (from a mount's root, the parent of its mount point), then what is
        mounted there; the global root stays."""
        if node.parent is None:
            return node
        return self._follow_mount(node.parent)

    def _start(self, path, base):
        if path.startswith("/") or base is None:
            return self._follow_mount(self.root)
        return base

    def _walk_parent(self, path, task, base, nd=None):
        """link_path_walk: (the directory holding the last component, :class:`Last`). A symlink met before
        the last component is followed (its body walked from the directory holding it, or from the root)."""
        path = getname(path)
        nd = nd or Nameidata()
        node = self._start(path, base)
        parts = [p for p in path.split("/") if p]
        if not parts:
            return node, Last("", LAST_ROOT, False)
        last = len(parts) - 1
        for i, name in enumerate(parts):
            if task is not None:
                permission(task, node, MAY_EXEC)  # may_lookup
            if i == last:
                t = LAST_DOT if name == "." else LAST_DOTDOT if name == ".." else LAST_NORM
                return node, Last(name, t, path.endswith("/"))
            if name == "..":
                node = self._dotdot(node)
            elif name != ".":
                c = self._lookup(node, name)
                if c is None:
                    raise bpf_error(errno.ENOENT, path)
                c = self._follow_mount(c)
                node = self._follow_link(node, c, task, nd, False) if c.is_symlink else c
            if not node.is_dir:
                raise bpf_error(errno.ENOTDIR, path)

    def _follow_link(self, d, link, task, nd, trailing):
        """pick_link: the inode a symlink in d leads to, its body walked to the end (ELOOP past
        MAXSYMLINKS links in one walk, counting the nested ones). A symlink as the last component
        (``trailing``) is refused (EACCES) under fs.protected_symlinks = 1 when the task does not own it,
        d is sticky and world-writable and d's owner does not own it either (may_follow_link)."""
        if nd.links >= MAXSYMLINKS:
            raise bpf_error(errno.ELOOP, "too many levels of symbolic links")
        nd.links += 1
        if trailing and task is not None and self.kernel.sysctl.get("fs.protected_symlinks") and \
                link.uid != task.uid and d.mode & 0o1002 == 0o1002 and d.uid != link.uid:
            raise bpf_error(errno.EACCES, "fs.protected_symlinks: another user's symlink in a sticky directory")
        pd, last = self._walk_parent(link.target, task, d, nd)
        return self._resolve_last(pd, last, link.target, task, nd, True, trailing)

    def _resolve_last(self, d, last, path, task=None, nd=None, follow=True, trailing=True):
        """What the last component names, mounts followed (ENOENT), a symlink followed when ``follow`` or
        a trailing slash asks for it, and ENOTDIR for ``name/`` on a non-directory (path_lookupat)."""
        if last.type in (LAST_ROOT, LAST_DOT):
            node = d
        elif last.type == LAST_DOTDOT:
            node = self._dotdot(d)
        else:
            c = self._lookup(d, last.name)
            if c is None:
                raise bpf_error(errno.ENOENT, path)
            node = self._follow_mount(c)
            if node.is_symlink and (follow or last.slash):
                node = self._follow_link(d, node, task, nd or Nameidata(), trailing)
        if last.slash and not node.is_dir:
            raise bpf_error(errno.ENOTDIR, path)
        return node

    def walk(self, path, task=None, base=None, follow=True):
        """The inode at path (user_path_at; LOOKUP_FOLLOW when ``follow``: a symlink as the last component
        is followed, as it is anyway with a trailing slash); relative paths start at base."""
        nd = Nameidata()
        d, last = self._walk_parent(path, task, base, nd)
        return self._resolve_last(d, last, path, task, nd, follow)

    def parent_and_name(self, path, task=None, base=None):
        """(directory inode, last component) of path, walked as link_path_walk does (symlinks in the middle
        followed); the last component may be '.' or '..'; (None, None) for the root itself."""
        d, last = self._walk_parent(path, task, base)
        if last.type == LAST_ROOT:
            return None, None
        return d, last.name

    def _lookup_child(self, d, name):
        """d's entry ``name`` with mounts followed ('.' is d, '..' its parent), or None; the filesystem's lookup
        errors for a name it has no entry for (EPERM for a dotted name on bpffs, ENAMETOOLONG)."""
        if name == ".":
            return d
        if name == "..":
            return self._dotdot(d)
        c = self._lookup(d, name)
        return self._follow_mount(c) if c is not None else None

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
        for name in [p for p in path.split("/") if p and p != "."]:
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
        d, name = self._new_entry(path, task, None)
        if d.on_bpffs:
            raise bpf_error(errno.EPERM, "bpffs holds only directories and pins")
        self._link(d, name, Inode(d.sb, _stat.S_IFREG | mode, getattr(task, "uid", 0)))

    # -- permission helpers -----------------------------------------------
    def _may_create(self, d, task):
        """may_create: the directory must still exist (ENOENT) and be writable and searchable (EACCES)."""
        if d.dead:
            raise bpf_error(errno.ENOENT, "directory was removed")
        if task is not None:
            permission(task, d, MAY_WRITE | MAY_EXEC)

    def _may_delete(self, d, node, task, isdir):
        """may_delete: write and search on the directory (EACCES), the sticky bit (EPERM), then the type the
        call wants: ENOTDIR when it removes a directory and node is none, EISDIR the other way round."""
        if task is not None:
            permission(task, d, MAY_WRITE | MAY_EXEC)
            if d.mode & _stat.S_ISVTX and task.uid not in (node.uid, d.uid) and CAP_FOWNER not in _caps(task):
                raise bpf_error(errno.EPERM, "sticky directory: not the owner")
        if isdir and not node.is_dir:
            raise bpf_error(errno.ENOTDIR, "not a directory")
        if not isdir and node.is_dir:
            raise bpf_error(errno.EISDIR, "is a directory")

    def _new_entry(self, path, task, base, want_dir=False):
        """filename_create: the parent and a name that does not exist yet. EEXIST for ``.``, ``..``, ``/``
        and a name that exists (even with a trailing slash); a trailing slash on a new name that is not
        to be a directory: ENOENT."""
        d, last = self._walk_parent(path, task, base)
        if last.type != LAST_NORM:
            raise bpf_error(errno.EEXIST, path)
        if self._lookup(d, last.name) is not None:
            raise bpf_error(errno.EEXIST, path)
        if last.slash and not want_dir:
            raise bpf_error(errno.ENOENT, "%s: a trailing slash asks for a directory" % path)
        return d, last.name

    def _new_inode(self, d, mode, task):
        """inode_init_owner: owned by the task; in a set-group-ID directory the group is the directory's and
        a new directory is set-group-ID too."""
        uid, gid = (task.uid, _gid(task)) if task is not None else (0, 0)
        if d.mode & _stat.S_ISGID:
            gid = d.gid
            if _stat.S_ISDIR(mode):
                mode |= _stat.S_ISGID
        return Inode(d.sb, mode, uid, gid)

    # -- attributes (chmod_common, chown_common, setattr_prepare) ------------
    def chmod(self, path, mode, task):
        """chmod(2): the walk (following symlinks), then only the owner or CAP_FOWNER (EPERM); the
        set-group-ID bit is dropped unless the task is in the file's group or has CAP_FSETID."""
        node = self.walk(path, task)
        if task is not None and task.uid != node.uid and CAP_FOWNER not in _caps(task):
            raise bpf_error(errno.EPERM, "chmod: not the owner")
        mode &= 0o7777
        if task is not None and not _in_group_or_capable(task, node.gid):
            mode &= ~_stat.S_ISGID
        node.mode = _stat.S_IFMT(node.mode) | mode

    def chown(self, path, uid, gid, task):
        """chown(2) (-1 keeps an id): the walk (following symlinks); a new owner needs CAP_CHOWN, a new group
        the owner being in it, or CAP_CHOWN (EPERM); on anything but a directory the set-user-ID bit goes, and
        the set-group-ID bit with group execute (or when the task is not in the group and lacks CAP_FSETID),
        which is a mode change only the owner or CAP_FOWNER may make (EPERM)."""
        node = self.walk(path, task)
        caps = _caps(task) if task is not None else (CAP_CHOWN, CAP_FOWNER, CAP_FSETID)
        new_uid = node.uid if uid == -1 else uid
        new_gid = node.gid if gid == -1 else gid
        fsuid = task.uid if task is not None else 0
        if uid != -1 and not (fsuid == node.uid and uid == node.uid) and CAP_CHOWN not in caps:
            raise bpf_error(errno.EPERM, "chown: changing the owner needs CAP_CHOWN")
        if gid != -1 and CAP_CHOWN not in caps and not (
                fsuid == node.uid and (gid == node.gid or (task is not None and gid == _gid(task)))):
            raise bpf_error(errno.EPERM, "chown: changing the group needs ownership and membership, or CAP_CHOWN")
        mode = node.mode
        if not node.is_dir:
            if mode & _stat.S_ISUID:
                mode &= ~_stat.S_ISUID
            if mode & _stat.S_ISGID and (mode & _stat.S_IXGRP or (
                    task is not None and not _in_group_or_capable(task, node.gid))):
                mode &= ~_stat.S_ISGID
        if mode != node.mode and fsuid != node.uid and CAP_FOWNER not in caps:
            raise bpf_error(errno.EPERM, "chown: the mode change it implies needs ownership or CAP_FOWNER")
        node.uid, node.gid, node.mode = new_uid, new_gid, mode

    # -- directory operations ---------------------------------------------
    def mkdir(self, path, mode, task, base=None):
        """do_mkdirat: filename_create (a trailing slash allowed), then may_create."""
        d, name = self._new_entry(path, task, base, want_dir=True)
        self._may_create(d, task)
        node = self._new_inode(d, _stat.S_IFDIR | (mode & 0o1777 & ~task_umask(task)), task)
        self._link(d, name, node)

    def rmdir(self, path, task, base=None):
        """do_rmdir: ``..`` ENOTEMPTY, ``.`` EINVAL, ``/`` EBUSY; ENOENT; may_delete; a mount point EBUSY;
        ENOTEMPTY."""
        d, last = self._walk_parent(path, task, base)
        if last.type != LAST_NORM:
            raise bpf_error({LAST_DOTDOT: errno.ENOTEMPTY, LAST_DOT: errno.EINVAL, LAST_ROOT: errno.EBUSY}[last.type],
                            path)
        node = self._lookup(d, last.name)
        if node is None:
            raise bpf_error(errno.ENOENT, path)
        self._may_delete(d, node, task, True)
        if node.mounted is not None:
            raise bpf_error(errno.EBUSY, "%s is a mount point" % path)
        if node.children:
            raise bpf_error(errno.ENOTEMPTY, path)
        del d.children[last.name]
        node.dead = True

    def unlink(self, path, task, base=None):
        """do_unlinkat: anything but a plain last component EISDIR; ENOENT, or with a trailing slash EISDIR/
        ENOTDIR; may_delete; the preloaded links EPERM."""
        d, last = self._walk_parent(path, task, base)
        if last.type != LAST_NORM:
            raise bpf_error(errno.EISDIR, path)
        node = self._lookup(d, last.name)
        if node is None:
            raise bpf_error(errno.ENOENT, path)
        if last.slash:
            raise bpf_error(errno.EISDIR if node.is_dir else errno.ENOTDIR, path)
        self._may_delete(d, node, task, False)
        if node.preloaded:
            raise bpf_error(errno.EPERM, "the preloaded iterator links cannot be removed")
        del d.children[last.name]
        self._drop(node)

    def _drop(self, node):
        obj, node.obj = node.obj, None
        if obj is not None and not isinstance(obj, PreloadLink):
            obj.release(node)

    def _mount_of(self, node):
        return node.sb

    def _dparent(self, node):
        """d_parent: a filesystem's root is its own parent."""
        return node if node.is_root or node.parent is None else node.parent

    def _trap(self, p1, p2):
        """lock_rename(p1 = new parent, p2 = old parent)'s trap: the child of p2 on the way up from p1 (p2 is
        an ancestor of p1), else the child of p1 on the way up from p2, else None."""
        if p1 is p2:
            return None
        for a, b in ((p1, p2), (p2, p1)):
            p = a
            while True:
                r = self._dparent(p)
                if r is b:
                    return p
                if r is p:
                    break
                p = r
        return None

    def rename(self, old, new, task, flags=0):
        """do_renameat2 and vfs_rename, in their order (see docs/kernel-notes.md); flags are renameat2's:
        RENAME_NOREPLACE (EEXIST for an existing target), RENAME_EXCHANGE (both must exist; they swap), and
        RENAME_WHITEOUT, which bpffs (simple_rename) refuses with EINVAL after every other check."""
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) or (
                flags & (RENAME_NOREPLACE | RENAME_WHITEOUT) and flags & RENAME_EXCHANGE):
            raise bpf_error(errno.EINVAL, "renameat2: bad flags %#x" % flags)
        exchange = bool(flags & RENAME_EXCHANGE)
        od, olast = self._walk_parent(old, task, None)
        nd, nlast = self._walk_parent(new, task, None)
        if self._mount_of(od) is not self._mount_of(nd):
            raise bpf_error(errno.EXDEV, new)
        if olast.type != LAST_NORM:
            raise bpf_error(errno.EBUSY, old)
        if nlast.type != LAST_NORM:
            raise bpf_error(errno.EEXIST if flags & RENAME_NOREPLACE else errno.EBUSY, new)
        trap = self._trap(nd, od)
        node = self._lookup(od, olast.name)
        if node is None:
            raise bpf_error(errno.ENOENT, old)
        target = self._lookup(nd, nlast.name)
        if flags & RENAME_NOREPLACE and target is not None:
            raise bpf_error(errno.EEXIST, new)
        if exchange:
            if target is None:
                raise bpf_error(errno.ENOENT, new)
            if not target.is_dir and nlast.slash:
                raise bpf_error(errno.ENOTDIR, "a trailing slash on a non-directory")
        if not node.is_dir and (olast.slash or (nlast.slash and not exchange)):
            raise bpf_error(errno.ENOTDIR, "a trailing slash on a non-directory")
        if node is trap:
            raise bpf_error(errno.EINVAL, "a directory cannot move below itself")
        if target is not None and target is trap:
            raise bpf_error(errno.EINVAL if exchange else errno.ENOTEMPTY, "the target is an ancestor of the source")
        if target is node:
            return
        self._may_delete(od, node, task, node.is_dir)
        if target is None:
            self._may_create(nd, task)
        else:
            self._may_delete(nd, target, task, target.is_dir if exchange else node.is_dir)
        if nd is not od and task is not None:
            if node.is_dir:
                permission(task, node, MAY_WRITE)  # its '..' changes
            if exchange and target.is_dir:
                permission(task, target, MAY_WRITE)
        if node.preloaded or (target is not None and target.preloaded):
            raise bpf_error(errno.EPERM, "the preloaded iterator links cannot be renamed or replaced")
        if node.mounted is not None or (target is not None and target.mounted is not None):
            raise bpf_error(errno.EBUSY, "a mount point cannot be renamed or replaced")
        if flags & RENAME_WHITEOUT:
            raise bpf_error(errno.EINVAL, "no whiteouts here (simple_rename)")
        if exchange:
            del od.children[olast.name]
            del nd.children[nlast.name]
            self._link(nd, nlast.name, node)
            self._link(od, olast.name, target)
            return
        if target is not None and target.children:
            raise bpf_error(errno.ENOTEMPTY, new)
        del od.children[olast.name]
        if target is not None:
            del nd.children[nlast.name]
            if target.is_dir:
                target.dead = True
            else:
                self._drop(target)
        self._link(nd, nlast.name, node)

    def listdir(self, path, task):
        return sorted(self.open_dir(path, task).children)

    def stat(self, path, task, follow=True):
        """stat(2) (``follow``) or lstat(2): a symlink's size is its body's length, 0 on bpffs (bpf_symlink
        sets none)."""
        node = self.walk(path, task, follow=follow)
        nlink = 2 + sum(1 for c in node.children.values() if c.is_dir) if node.is_dir else 1
        if node.dead:
            nlink = 0
        size = _name_len(node.target) if node.is_symlink and not node.on_bpffs else 0
        return StatResult(node.mode, node.ino, nlink, node.uid, node.gid, size)

    def symlink(self, target, path, task, base=None):
        """do_symlinkat: getname of the body (ENOENT when empty, ENAMETOOLONG from PATH_MAX bytes; the body
        is not walked), filename_create (EEXIST, a trailing slash ENOENT), may_create. bpffs makes it
        (bpf_symlink) as everywhere: mode 0777, owned by the task, no umask."""
        target = getname(target)
        d, name = self._new_entry(path, task, base)
        self._may_create(d, task)
        node = self._new_inode(d, _stat.S_IFLNK | 0o777, task)
        node.target = target
        self._link(d, name, node)

    def readlink(self, path, task):
        """readlinkat: the body of the symlink path names (not followed, unless a trailing slash asks);
        EINVAL for anything else."""
        node = self.walk(path, task, follow=False)
        if not node.is_symlink:
            raise bpf_error(errno.EINVAL, "%s is not a symbolic link" % path)
        return node.target

    def statfs(self, path, task):
        node = self.walk(path, task)
        return StatfsResult(uapi.BPF_FS_MAGIC if node.on_bpffs else TMPFS_MAGIC)

    def open_dir(self, path, task):
        """open(O_RDONLY|O_DIRECTORY): the directory (ENOTDIR before the MAY_READ check, EACCES)."""
        node = self.walk(path, task)
        if not node.is_dir:
            raise bpf_error(errno.ENOTDIR, path)
        permission(task, node, MAY_READ)
        return node

    # -- pins ----------------------------------------------------------------
    def pin(self, path, obj, task, base=None):
        """bpf_obj_do_pin: filename_create, the parent must be a bpffs directory (EPERM), may_create; the
        new pin takes a reference on obj."""
        d, name = self._new_entry(path, task, base)
        if not d.on_bpffs:
            raise bpf_error(errno.EPERM, "%s is not on a bpffs" % path)
        self._may_create(d, task)
        node = self._new_inode(d, _stat.S_IFREG | (0o600 & ~task_umask(task)), task)
        node.obj = obj
        obj.hold(node)
        self._link(d, name, node)
        return node

    def get(self, path, task, mask, base=None):
        """bpf_obj_do_get: the walk, the file's permission for the access asked (EACCES), then it must be a
        pin (EACCES for anything else)."""
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


def _in_group_or_capable(task, gid):
    """in_group_or_capable: the task's group (the model has no supplementary groups) or CAP_FSETID."""
    return gid == _gid(task) or CAP_FSETID in _caps(task)
