"""QUEUE and STACK: creation checks, push/peek/pop order, full maps, refused operations."""
import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import unprivileged
from bpfemu.testing.support import (addr, batch, buf, create_map, delete, err, freeze, lookup, lookup_and_delete, next_key,
                      u32, update)

Q, S = u.BPF_MAP_TYPE_QUEUE, u.BPF_MAP_TYPE_STACK


def qs(proc, map_type, max_entries=3, value_size=4, flags=0):
    return create_map(proc, map_type, key_size=0, value_size=value_size, max_entries=max_entries, flags=flags)


def push(proc, fd, v, flags=0):
    return update(proc, fd, None, v, flags)


def peek(proc, fd, vs=4):
    return lookup(proc, fd, None, vs)


def pop(proc, fd, vs=4, flags=0):
    return lookup_and_delete(proc, fd, None, vs, flags)


@pytest.mark.parametrize("map_type", [Q, S])
@pytest.mark.parametrize("ks,vs,me,flags,expected", [
    (0, 4, 0, 0, 22),
    (4, 4, 1, 0, 22),                          # key_size must be 0
    (0, 0, 1, 0, 22),
    (0, 4, 1, u.BPF_F_NO_PREALLOC, 22),
    (0, 4, 1, u.BPF_F_ZERO_SEED, 22),
    (0, 4, 1, u.BPF_F_RDONLY_PROG | u.BPF_F_WRONLY_PROG, 22),
    (0, (1 << 22) + 1, 1, 0, 7),               # value above KMALLOC_MAX_SIZE
    (0, 4, 1, u.BPF_F_RDONLY_PROG, 0),
])
def test_alloc_check(proc, map_type, ks, vs, me, flags, expected):
    assert err(create_map, proc, map_type, key_size=ks, value_size=vs, max_entries=me, flags=flags) == expected


@pytest.mark.parametrize("map_type", [Q, S])
def test_checks_before_and_after_CAP_BPF(backend, profile, map_type):
    t = backend.spawn(uid=1000, caps=())
    assert err(qs, t, map_type, max_entries=0) == unprivileged(profile, 22)   # alloc_check first
    assert err(qs, t, map_type) == 1                   # then CAP_BPF
    t2 = backend.spawn(uid=1000, caps=("CAP_BPF",))
    assert qs(t2, map_type) >= 0


def test_queue_order_and_full(proc):
    fd = qs(proc, Q)
    assert err(peek, proc, fd) == 2 and err(pop, proc, fd) == 2
    for i in (1, 2, 3):
        push(proc, fd, u32(i))
    assert err(push, proc, fd, u32(4)) == 7            # full: E2BIG
    assert peek(proc, fd) == u32(1)                    # oldest first
    push(proc, fd, u32(4), u.BPF_EXIST)                # BPF_EXIST drops the oldest
    assert [pop(proc, fd) for _ in range(3)] == [u32(2), u32(3), u32(4)]
    assert err(pop, proc, fd) == 2


def test_stack_order_and_full(proc):
    fd = qs(proc, S)
    for i in (1, 2, 3):
        push(proc, fd, u32(i))
    assert err(push, proc, fd, u32(4)) == 7
    assert peek(proc, fd) == u32(3)                    # newest first
    push(proc, fd, u32(4), u.BPF_EXIST)                # overwrite drops the bottom (oldest)
    assert [pop(proc, fd) for _ in range(3)] == [u32(4), u32(3), u32(2)]
    assert err(peek, proc, fd) == 2


@pytest.mark.parametrize("map_type", [Q, S])
def test_refused_operations(proc, map_type):
    fd = qs(proc, map_type)
    push(proc, fd, u32(7))
    assert err(push, proc, fd, u32(1), u.BPF_NOEXIST) == 22
    assert err(push, proc, fd, u32(1), 3) == 22
    assert err(push, proc, fd, u32(1), u.BPF_F_LOCK) == 22
    assert err(update, proc, fd, u32(0), u32(1)) == 22         # a key pointer: EINVAL
    assert err(lookup, proc, fd, u32(0), 4) == 22
    assert err(lookup_and_delete, proc, fd, u32(0), 4) == 22
    assert err(pop, proc, fd, 4, u.BPF_F_LOCK) == 22           # pop takes no flags
    assert err(pop, proc, fd, 4, 8) == 22
    assert err(delete, proc, fd, None) == 22
    assert err(delete, proc, fd, u32(0)) == 22
    assert err(next_key, proc, fd, None, 4) == 22
    assert err(next_key, proc, fd, u32(0), 4) == 22
    for cmd in (u.BPF_MAP_LOOKUP_BATCH, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH, u.BPF_MAP_UPDATE_BATCH,
                u.BPF_MAP_DELETE_BATCH):
        assert batch(proc, cmd, fd, 1, 4, 4, keys=u32(0), values=u32(0)).errno == 524
    assert peek(proc, fd) == u32(7)


def test_null_value_pointers(proc):
    fd = qs(proc, Q)
    a = u.make_attr(map_fd=fd, key=0, value=0)
    assert err(proc.bpf, u.BPF_MAP_LOOKUP_ELEM, a) == 2        # empty: ENOENT before the copy out
    assert err(proc.bpf, u.BPF_MAP_UPDATE_ELEM, a) == 14
    push(proc, fd, u32(5))
    assert err(proc.bpf, u.BPF_MAP_LOOKUP_ELEM, a) == 14
    # a pop that cannot copy out still pops
    assert err(proc.bpf, u.BPF_MAP_LOOKUP_AND_DELETE_ELEM, a) == 14
    assert err(peek, proc, fd) == 2


def test_freeze_and_fd_modes(proc):
    fd = qs(proc, Q)
    push(proc, fd, u32(1))
    freeze(proc, fd)
    assert err(push, proc, fd, u32(2)) == 1
    assert err(pop, proc, fd) == 1
    assert peek(proc, fd) == u32(1)
    ro = qs(proc, S, flags=u.BPF_F_RDONLY)
    assert err(push, proc, ro, u32(1)) == 1
    assert err(peek, proc, ro) == 2
    wo = qs(proc, S, flags=u.BPF_F_WRONLY)
    push(proc, wo, u32(1))
    assert err(peek, proc, wo) == 1
    assert err(pop, proc, wo) == 1


def test_large_values(proc):
    fd = qs(proc, Q, value_size=13, max_entries=2)
    v = bytes(range(13))
    push(proc, fd, v)
    assert peek(proc, fd, 13) == v
    b = buf(13)
    proc.bpf(u.BPF_MAP_LOOKUP_AND_DELETE_ELEM, u.make_attr(map_fd=fd, key=0, value=addr(b)))
    assert b.raw == v
