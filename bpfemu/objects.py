"""Kernel objects (maps, programs, links, BTF) and the open files that point at them.

An object counts its holders: open files, bpffs pins, and other objects (an
outer map holds its inner maps). Each holder is recorded, so ``refcnt`` is
always the number of references someone can point to, and
``Kernel.objects()`` can say who keeps an object alive. The last release frees
the object: its id leaves the allocator and it drops what it held itself.
"""
import itertools

FMODE_READ = 1
FMODE_WRITE = 2


class BpfObject:
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
        """Drop the references this object holds on others."""

    def describe_holders(self):
        return [(h, n) for h, n in self.holders.items()]


class File:
    """An open file description: one object, an access mode, counted by fd table slots."""

    _seq = itertools.count(1)

    def __init__(self, obj, mode=FMODE_READ | FMODE_WRITE, kind=None):
        self.obj = obj
        self.mode = mode
        self.kind = kind or (obj.kind if obj is not None else "tty")
        self.count = 0
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
