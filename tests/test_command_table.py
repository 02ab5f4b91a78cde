"""The command table (bpfemu/syscall/table.py) is true: every field it names exists in the uapi layouts, and
the emulator reads and writes user memory only where a command's declaration says it may.

The second property is what the host backend relies on: a HostTask's child gets exactly the declared
memory, so a declaration that missed a buffer would make the child fault where this process does not.
"""
import copy
import ctypes
import errno

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpfemu
from bpfemu import uapi as u
from bpfemu.syscall import sys_bpf
from bpfemu.syscall.table import COMMANDS, IN, INOUT, OUT, ByKind, Length, PtrArray, Struct
from bpfemu.testing.fuzz import Arena, Call, Ptr, examples, map_calls, map_creates, obj_calls, setup_calls
from bpfemu.usermem import LocalMemory

READ_OK, WRITE_OK = (IN, INOUT), (OUT, INOUT)


@pytest.mark.parametrize("entry", list(COMMANDS.values()), ids=lambda e: e.name)
def test_every_declared_field_is_in_the_layouts(entry):
    assert entry.attr_end == sum(u.attr_field(entry.last_field))
    for p in entry.user_ptrs:
        assert u.attr_field(p.field)[1] == 8, p.field
        assert isinstance(p.length, Length) and p.direction in (IN, OUT, INOUT)
        spec = p.points_to
        for s in (spec.by_kind.values() if isinstance(spec, ByKind) else [spec] if spec else []):
            if isinstance(s, Struct):
                for q in s.ptrs:
                    assert u.field_layout(s.ctype, q.field)[1] == 8, q.field
            else:
                assert isinstance(s, PtrArray)
    for name, fd in entry.fds.items():
        assert u.attr_field(name)[1] == 4, name
        assert fd.kinds and fd.wrong and fd.closed
    for name in entry.attr_out:
        assert u.attr_field(name)[1] in (4, 8) and sum(u.attr_field(name)) <= entry.attr_end, name


class EmuEnv:
    """The table's length rules evaluated against an emulated task, before the call."""

    def __init__(self, task, raw, ctype=u.bpf_attr):
        self.task, self.raw, self.ctype = task, raw, ctype

    def field(self, name):
        off, size = u.field_layout(self.ctype, name)
        return int.from_bytes(self.raw[off:off + size].ljust(size, b"\0"), "little")

    def map_sizes(self, fd):
        slot = self.task.fdtable.get(fd)
        m = slot[0].obj if slot else None
        return (m.key_size, m.user_value_size) if m is not None and m.kind == "map" else None

    def kind(self, fd):
        slot = self.task.fdtable.get(fd)
        return slot[0].obj.kind if slot and slot[0].obj is not None else None


def declared_regions(task, cmd, raw):
    """[(start, end, direction)] of the user memory the table lets cmd touch (nested pointers too)."""
    entry = COMMANDS[cmd]
    env = EmuEnv(task, raw)
    out = []
    for p in entry.user_ptrs:
        if p.when is not None and not p.when(env):
            continue
        ptr, n = env.field(p.field), p.length.eval(env)
        if not n:
            continue
        out.append((ptr, ptr + n, p.direction))  # a NULL pointer too: reading it is the EFAULT
        spec = p.points_to.choose(env) if isinstance(p.points_to, ByKind) else p.points_to
        if isinstance(spec, Struct):
            try:
                inner = LocalMemory().read(ptr, min(n, ctypes.sizeof(spec.ctype)))
            except OSError:
                continue
            ienv = EmuEnv(task, inner, spec.ctype)
            for q in spec.ptrs:
                if u.field_layout(spec.ctype, q.field)[0] + 8 <= len(inner):
                    qp, qn = ienv.field(q.field), q.length.eval(ienv)
                    if qp and qn:
                        out.append((qp, qp + qn, q.direction))
    return out


class Recorder:
    """Every ctx.read/ctx.write of the syscalls made while it is installed: (addr, n, 'r' or 'w')."""

    def __init__(self, monkeypatch):
        self.accesses = []
        read, write, read2, put_user = sys_bpf.Ctx.read, sys_bpf.Ctx.write, sys_bpf.Ctx.read2, sys_bpf.Ctx.put_user
        rec = self.accesses

        def rread(ctx, addr, n):
            rec.append((addr, n, "r"))
            return read(ctx, addr, n)

        def rwrite(ctx, addr, data):
            rec.append((addr, len(data), "w"))
            return write(ctx, addr, data)

        def rread2(ctx, a1, n1, a2, n2):
            rec.extend(((a1, n1, "r"), (a2, n2, "r")))
            return read2(ctx, a1, n1, a2, n2)

        def rput_user(ctx, addr, data):
            rec.append((addr, len(data), "w"))
            return put_user(ctx, addr, data)

        monkeypatch.setattr(sys_bpf.Ctx, "read", rread)
        monkeypatch.setattr(sys_bpf.Ctx, "read2", rread2)
        monkeypatch.setattr(sys_bpf.Ctx, "write", rwrite)
        monkeypatch.setattr(sys_bpf.Ctx, "put_user", rput_user)


def check_call(task, arena, call, accesses):
    at, size = arena.build(call)
    raw = bytes(ctypes.string_at(at, min(size, u.ATTR_SIZE))).ljust(u.ATTR_SIZE, b"\0") if size > 0 else bytes(
        u.ATTR_SIZE)
    regions = declared_regions(task, call.cmd, raw) if call.cmd in COMMANDS else []
    del accesses[:]
    try:
        task.bpf(call.cmd, at, size)
    except OSError as e:
        assert e.errno != 0
    out = COMMANDS[call.cmd].attr_out_at.values() if call.cmd in COMMANDS else ()
    for addr, n, how in accesses:
        if n == 0:
            continue
        if at <= addr and addr + n <= at + u.ATTR_SIZE:
            # the attr itself: copied in, and only its declared scalar results put back, each whole
            assert how == "r" or (addr - at, n) in out, "%r writes %d bytes at attr+%d, not an attr_out field" % (
                call, n, addr - at)
            continue
        ok = READ_OK if how == "r" else WRITE_OK
        assert any(s <= addr and addr + n <= e and d in ok for s, e, d in regions), (
            "%r %s %d bytes at %#x outside the declared %r" % (call, how, n, addr, regions))


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), ops=st.lists(st.one_of(map_calls(), map_calls(), obj_calls(), map_creates()),
                                                min_size=1, max_size=20))
@pytest.mark.bpf_bad_pointers  # the fuzz arena's guard pages
def test_the_emulator_touches_only_declared_memory(monkeypatch, seed, ops):
    rec = Recorder(monkeypatch)
    task = bpfemu.Kernel().spawn()
    arena = Arena(seed)
    try:
        for c in setup_calls():
            check_call(task, arena, c, rec.accesses)
        for c in ops:
            check_call(task, arena, c, rec.accesses)
    finally:
        arena.close()


def test_a_lookup_batch_is_checked_against_its_declaration(monkeypatch):
    """The checker itself: a write outside the declared keys buffer is caught."""
    rec = Recorder(monkeypatch)
    task = bpfemu.Kernel().spawn()
    arena = Arena(3)
    try:
        for c in setup_calls():
            check_call(task, arena, c, rec.accesses)
        good = Call(u.BPF_MAP_LOOKUP_BATCH, {"batch.map_fd": 4, "batch.count": 2, "batch.keys": Ptr("buf", 1, 0),
                                            "batch.values": Ptr("buf", 2, 0), "batch.out_batch": Ptr("buf", 3, 0)})
        check_call(task, arena, good, rec.accesses)
        assert any(how == "w" for _a, _n, how in rec.accesses)
        monkeypatch.setitem(COMMANDS, u.BPF_MAP_LOOKUP_BATCH, _without(COMMANDS[u.BPF_MAP_LOOKUP_BATCH], "batch.keys"))
        with pytest.raises(AssertionError):
            check_call(task, arena, good, rec.accesses)
    finally:
        arena.close()


def _without(entry, field):
    e = copy.copy(entry)
    e.user_ptrs = [p for p in entry.user_ptrs if p.field != field]
    return e


def test_an_undeclared_command_is_einval_as_before():
    t = bpfemu.Kernel().spawn()
    for cmd in (u.BPF_PROG_LOAD, u.BPF_PROG_TEST_RUN, u.BPF_LINK_CREATE, u.BPF_PROG_ATTACH):
        if COMMANDS.get(cmd) is not None and COMMANDS[cmd].handler is not None:
            continue  # implemented since
        with pytest.raises(OSError) as e:
            t.bpf(cmd, u.make_attr())
        assert e.value.errno == errno.EINVAL and "not implemented" in str(e.value)


def test_union_members_are_declared_by_attach_type():
    """LINK_CREATE's pointers depend on the attach type: kprobe_multi's symbol array (of string pointers),
    addresses and cookies, or uprobe_multi's path and offsets, or an iterator's info."""
    a = u.make_attr(**{"link_create.attach_type": u.BPF_TRACE_KPROBE_MULTI, "link_create.kprobe_multi.cnt": 2,
                       "link_create.kprobe_multi.syms": 0x10000, "link_create.kprobe_multi.cookies": 0x20000})
    entry = COMMANDS[u.BPF_LINK_CREATE]
    env = EmuEnv(None, bytes(a))
    used = {p.field: (env.field(p.field), p.length.eval(env)) for p in entry.user_ptrs if p.when(env)}
    assert used == {"link_create.kprobe_multi.syms": (0x10000, 16), "link_create.kprobe_multi.addrs": (0, 16),
                    "link_create.kprobe_multi.cookies": (0x20000, 16)}
    syms = entry.ptr("link_create.kprobe_multi.syms").points_to
    assert isinstance(syms, PtrArray) and syms.count.eval(env) == 2 and syms.each.cstring
    a.link_create.attach_type = u.BPF_TRACE_ITER
    a.link_create.iter_info_len = 8
    env = EmuEnv(None, bytes(a))
    assert [p.field for p in entry.user_ptrs if p.when(env)] == ["link_create.iter_info"]
