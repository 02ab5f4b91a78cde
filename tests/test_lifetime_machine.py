"""Lifetimes on the emulator: a hypothesis state machine, the ids allocator, and kernel.objects().

After every step of fork/dup/close/pin/unlink/rename/send_fds/exit the machine recounts, from
what is visible (the fd tables of live tasks and the pins in the filesystem), every reference,
and checks that:
- each open file is counted once per fd slot that points at it;
- each object's holders are exactly the open files and pins that point at it;
- an object is alive (in its id allocator, not freed) exactly when something holds it;
- kernel.objects() lists exactly the live objects, one holder string per fd and per pin.
"""
import errno
import re
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import bpfemu
from bpfemu import uapi as u
from bpfemu.idr import IDR
from bpfemu.inode import Inode
from bpfemu.objects import File

from bpfemu.testing.support import err, hash_map, obj_get, pin

BPFFS = "/sys/fs/bpf"
NAMES = ["a", "b", "c", "d/e"]


class Lifetimes(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.kernel = bpfemu.Kernel(ncpus=2)
        self.tasks = [self.kernel.spawn()]
        self.tasks[0].mkdir(BPFFS + "/d")
        self.ever = []  # every object ever created, to check the freed ones too

    # -- helpers ----------------------------------------------------------
    def task(self, i):
        return self.tasks[i % len(self.tasks)]

    def map_fds(self, t):
        return [fd for fd in t.fds() if t.fdtable[fd][0].kind == "map"]

    def pick_fd(self, t, i):
        fds = self.map_fds(t)
        return fds[i % len(fds)] if fds else None

    # -- rules ------------------------------------------------------------
    @precondition(lambda self: len(self.tasks) < 5)
    @rule(uid=st.sampled_from([0, 1000]))
    def spawn(self, uid):
        self.tasks.append(self.kernel.spawn(uid=uid))

    @precondition(lambda self: len(self.tasks) > 0)
    @rule(i=st.integers(0, 9))
    def create(self, i):
        t = self.task(i)
        if t.uid:
            assert err(hash_map, t, flags=0) == errno.EPERM
            return
        fd = hash_map(t, flags=0)
        self.ever.append(t.fdtable[fd][0].obj)

    @precondition(lambda self: 0 < len(self.tasks) < 6)
    @rule(i=st.integers(0, 9), drop=st.booleans())
    def fork(self, i, drop):
        self.tasks.append(self.task(i).fork(uid=1000, caps=()) if drop else self.task(i).fork())

    @precondition(lambda self: len(self.tasks) > 0)
    @rule(i=st.integers(0, 9), j=st.integers(0, 9))
    def dup(self, i, j):
        t = self.task(i)
        fd = self.pick_fd(t, j)
        if fd is not None:
            assert t.dup(fd) not in (fd,)

    @precondition(lambda self: len(self.tasks) > 0)
    @rule(i=st.integers(0, 9), j=st.integers(0, 9))
    def close(self, i, j):
        t = self.task(i)
        fd = self.pick_fd(t, j)
        if fd is None:
            assert err(t.close, 200 + j) == errno.EBADF
            return
        t.close(fd)
        assert err(t.close, fd) == errno.EBADF

    @precondition(lambda self: len(self.tasks) > 0)
    @rule(i=st.integers(0, 9), j=st.integers(0, 9), name=st.sampled_from(NAMES))
    def pin(self, i, j, name):
        t = self.task(i)
        fd = self.pick_fd(t, j)
        if fd is None:
            return
        path = BPFFS + "/" + name
        exists = name.split("/")[-1] in t.listdir(path.rsplit("/", 1)[0])
        e = err(pin, t, fd, path)
        if exists:
            assert e == errno.EEXIST  # the name is looked up before write permission is checked
        elif t.uid and "/" in name:
            assert e == errno.EACCES  # d/ is root's 0755 directory
        else:
            assert e == 0  # the bpffs root is 01777: anyone may pin there

    @precondition(lambda self: len(self.tasks) > 0)
    @rule(i=st.integers(0, 9), name=st.sampled_from(NAMES))
    def get(self, i, name):
        t = self.task(i)
        e = err(obj_get, t, BPFFS + "/" + name)
        assert e in (0, errno.ENOENT, errno.EACCES)

    @precondition(lambda self: len(self.tasks) > 0)
    @rule(name=st.sampled_from(NAMES))
    def unlink(self, name):
        t = self.tasks[0]
        e = err(t.unlink, BPFFS + "/" + name)
        # a task that is not root may not remove root's pins (sticky root, 0755 d/)
        assert e in ((0, errno.ENOENT) if t.uid == 0 else (0, errno.ENOENT, errno.EPERM, errno.EACCES))

    @precondition(lambda self: len(self.tasks) > 0)
    @rule(a=st.sampled_from(NAMES), b=st.sampled_from(NAMES))
    def rename(self, a, b):
        t = self.tasks[0]
        e = err(t.rename, BPFFS + "/" + a, BPFFS + "/" + b)
        assert e in ((0, errno.ENOENT) if t.uid == 0 else (0, errno.ENOENT, errno.EPERM, errno.EACCES))

    @precondition(lambda self: len(self.tasks) > 1)
    @rule(i=st.integers(0, 9), k=st.integers(0, 9), j=st.integers(0, 9))
    def send_fds(self, i, k, j):
        a, b = self.task(i), self.task(k)
        fd = self.pick_fd(a, j)
        if fd is None:
            assert err(a.send_fds, b, [250]) == errno.EBADF
            return
        [new] = a.send_fds(b, [fd])
        assert b.fdtable[new][0] is a.fdtable[fd][0]

    @precondition(lambda self: len(self.tasks) > 0)
    @rule(i=st.integers(0, 9))
    def exit(self, i):
        t = self.task(i)
        t.exit()
        self.tasks.remove(t)
        assert err(t.dup, 0) == errno.ESRCH

    # -- the invariants ---------------------------------------------------------
    @invariant()
    def references_match_holders(self):
        k = self.kernel
        slots = {}
        for t in k.tasks:
            for fd, (f, _cloexec) in t.fdtable.items():
                slots.setdefault(f, []).append((t.pid, fd))
        for f, where in slots.items():
            assert f.count == len(where), (f, where)
        pins = {}
        for path, node in k.fs.pins():
            pins.setdefault(node.obj, []).append(node)
        expect = {}
        for f in slots:
            if f.obj is not None:
                expect.setdefault(f.obj, set()).add(f)
        for obj, nodes in pins.items():
            expect.setdefault(obj, set()).update(nodes)
        live = {s.obj for s in k.objects()}
        assert live == set(expect)
        for obj in self.ever:
            held = expect.get(obj, set())
            assert obj.freed == (not held)
            assert set(obj.holders) == held
            assert all(n == 1 for n in obj.holders.values())
            assert obj.refcnt == len(held)
            assert (k.idr["map"].find(obj.id) is obj) == bool(held)
        for s in k.objects():
            n_fds = sum(len(slots[f]) for f in s.obj.holders if isinstance(f, File))
            n_pins = sum(1 for h in s.obj.holders if isinstance(h, Inode))
            assert len(s.holders) == n_fds + n_pins
            assert s.refcnt == s.obj.refcnt


Lifetimes.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestLifetimes = Lifetimes.TestCase


# -- ids --------------------------------------------------------------------------

def test_ids_are_cyclic_and_not_reused_before_the_wrap():
    idr = IDR(start=1, end=5)
    a, b, c = (idr.alloc_cyclic(x) for x in "abc")
    assert (a, b, c) == (1, 2, 3)
    idr.remove(2)
    assert idr.alloc_cyclic("d") == 4  # 2 is free but the cursor has passed it
    assert idr.alloc_cyclic("e") == 5
    assert idr.alloc_cyclic("f") == 2  # wrapped: the lowest free id from the start
    with pytest.raises(MemoryError):
        idr.alloc_cyclic("g")
    assert [idr.get_next(i) for i in (0, 2, 5)] == [1, 3, None]


def test_freed_map_ids_are_not_reused():
    k = bpfemu.Kernel()
    t = k.spawn()
    fd = hash_map(t, flags=0)
    first = k.objects()[0].id
    t.close(fd)
    assert k.objects() == []
    hash_map(t, flags=0)
    assert k.objects()[0].id == first + 1


# -- kernel.objects() -------------------------------------------------------------------

def test_objects_names_every_holder():
    k = bpfemu.Kernel()
    t = k.spawn()
    fd = hash_map(t, flags=0)
    t.dup(fd)
    child = t.fork()
    pin(t, fd, BPFFS + "/m")
    [s] = k.objects()
    assert s.kind == "map" and s.refcnt == 2  # one open file, one pin
    assert sorted(s.holders) == sorted(["fd 3 of task %d" % t.pid, "fd 4 of task %d" % t.pid,
                                        "fd 3 of task %d" % child.pid, "fd 4 of task %d" % child.pid,
                                        "pin " + BPFFS + "/m"])
    assert "held by" in repr(s)
    assert k.objects(kind="prog") == []


def test_objects_shows_an_outer_object_holding_an_inner_one():
    """What an outer map does with its inner maps: hold(outer) / release(outer)."""
    k = bpfemu.Kernel()
    t = k.spawn()
    inner_fd, outer_fd = hash_map(t, flags=0), hash_map(t, flags=0)
    inner, outer = (t.fdtable[fd][0].obj for fd in (inner_fd, outer_fd))
    inner.hold(outer)
    t.close(inner_fd)
    [s] = [s for s in k.objects() if s.obj is inner]
    assert s.holders == ["map %d" % outer.id]
    inner.release(outer)
    assert inner.freed and [s.obj for s in k.objects()] == [outer]


def test_objects_shows_a_file_without_fd():
    k = bpfemu.Kernel()
    t = k.spawn()
    fd = hash_map(t, flags=0)
    f = t.fdtable[fd][0]
    f.get()  # e.g. a memory mapping keeps the open file
    t.close(fd)
    [s] = k.objects()
    assert s.holders == ["file #%d (no fd)" % f.serial]
    f.put()
    assert k.objects() == []


def test_object_model_doc_example():
    text = (Path(__file__).resolve().parent.parent / "docs" / "object-model.md").read_text()
    blocks = [(m.start(1), m.group(1)) for m in re.finditer(r"```python\n(.*?)```", text, re.S)]
    assert blocks
    for start, code in blocks:
        line = text.count("\n", 0, start)  # so a failure points at the right line of the doc
        exec(compile("\n" * line + code, "docs/object-model.md", "exec"), {})


def test_open_dir_gives_a_directory_fd_for_path_fd():
    k = bpfemu.Kernel()
    t = k.spawn()
    d = t.open_dir(BPFFS)
    fd = hash_map(t, flags=0)
    pin(t, fd, "x", file_flags=u.BPF_F_PATH_FD, path_fd=d)
    assert "x" in t.listdir(BPFFS)
    t.close(d)
    assert err(pin, t, fd, "y", file_flags=u.BPF_F_PATH_FD, path_fd=d) == errno.EBADF
