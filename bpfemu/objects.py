"""Kernel objects (maps, programs, links, BTF), the open files that point at them, and the one fd resolver.

An object counts its holders: open files, bpffs pins, and other objects (an
outer map holds its inner maps). Each holder is recorded, so ``refcnt`` is
always the number of references someone can point to, and
``Kernel.objects()`` can say who keeps an object alive. The last release frees
the object: its id leaves the allocator and it drops what it held itself.

:func:`fdget` is how every command turns a user fd into an object: the
kernel's ``fdget`` followed by the kind check of ``__bpf_map_get``,
``bpf_prog_get``, ``btf_get_by_fd``... with the errno each command gives for
a closed fd and for an fd of another kind.
"""
import errno
import itertools

from .errors import bpf_error

FMODE_READ = 1
FMODE_WRITE = 2

# the kinds of bpf object, each with its own id allocator (the kernel's map/prog/link/btf idrs)
KINDS = ("map", "prog", "link", "btf")


class _BuiltIn:
    """The holder of an object the kernel keeps for as long as it runs (its own vmlinux BTF): such an
    object is never freed, and :meth:`Kernel.objects` leaves it out while nothing else holds it."""

    kind = "kernel"

    def __repr__(self):
        return "built in"


BUILT_IN = _BuiltIn()


class BpfObject:
    """What every bpf object shares: an id, its holders, and the operations every kind declares.

    A kind (BpfMap, later programs, links and BTF) overrides ``on_free``, ``held_objects`` and
    ``show_fdinfo``; the defaults here are the answers of an object that holds nothing and
    prints no fdinfo lines of its own."""

    kind = "object"  # 'map', 'prog', 'link', 'btf'

    def __init__(self, kernel):
        self.kernel = kernel
        self.id = 0
        self.holders = {}  # holder -> count
        self.freed = False

    @property
    def refcnt(self):
        return sum(self.holders.values())

    def hold(self, holder):
        self.holders[holder] = self.holders.get(holder, 0) + 1

    def release(self, holder):
        n = self.holders[holder] - 1
        if n:
            self.holders[holder] = n
        else:
            del self.holders[holder]
        if not self.holders:
            self.kernel._free(self)

    def on_free(self):
        """Drop the references this object holds on others (the kind's own: an outer map's inner maps)."""

    def held_objects(self):
        """The objects this one holds a reference on, once per reference (an outer map's inner maps)."""
        return []

    def common_refs(self):
        """References every object of the kind holds, whatever its type (a map's BTF): dropped by
        :meth:`free` after ``on_free``."""
        return []

    def all_held(self):
        """Every reference this object holds: ``held_objects()`` and ``common_refs()``."""
        return self.held_objects() + self.common_refs()

    def free(self):
        """The last release: the kind's teardown (``on_free``), then the common references."""
        self.on_free()
        for o in self.common_refs():
            o.release(self)

    def show_fdinfo(self):
        """[(name, value)]: the lines /proc/<pid>/fdinfo/<fd> adds for this object after the VFS ones."""
        return []

    def describe_holders(self):
        return [(h, n) for h, n in self.holders.items()]


class File:
    """An open file description: one object, an access mode, counted by fd table slots."""

    _seq = itertools.count(1)

    def __init__(self, obj, mode=FMODE_READ | FMODE_WRITE, kind=None):
        self.obj = obj
        self.mode = mode
        self.kind = kind or (obj.kind if obj is not None else "tty")
        self.count = 0  # fd table slots and memory mappings holding the file
        self.mappings = 0  # memory mappings (mmap) among them
        self.serial = next(File._seq)
        self.inode = None  # bpffs inode for a directory opened with O_PATH-like use
        if obj is not None:
            obj.hold(self)

    def get(self):
        self.count += 1

    def put(self):
        self.count -= 1
        if self.count == 0 and self.obj is not None:
            obj, self.obj = self.obj, None
            self._last_obj = obj
            obj.release(self)

    def __repr__(self):
        return "<file #%d %s>" % (self.serial, self.kind)


def fdget(task, fd, kinds, wrong=errno.EINVAL, closed=errno.EBADF):
    """The open file behind ``task``'s ``fd``, which must be of ``kinds`` (one kind or a tuple).

    ``closed``: the errno when fd is not open (EBADF for most commands); ``wrong``: the errno when
    it is open but of another kind (EINVAL for a map fd expected, ENOTSOCK for a socket, ...).
    Files of a bpf kind whose object is gone count as the wrong kind."""
    slot = task.fdtable.get(fd) if isinstance(fd, int) else None
    if slot is None:
        raise bpf_error(closed, "fd %r is not open" % (fd,))
    f = slot[0]
    if isinstance(kinds, str):
        kinds = (kinds,)
    if f.kind not in kinds or (f.kind in KINDS and f.obj is None):
        raise bpf_error(wrong, "fd %d is not a %s" % (fd, "/".join(kinds)))
    return f
