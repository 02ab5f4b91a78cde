"""ARRAY and PERCPU_ARRAY: creation checks, element errnos, per-CPU layout, batches, freeze, fd modes."""
import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import unprivileged
from bpfemu.testing.support import (array_map, batch, create_map, delete, err, freeze, lookup, lookup_and_delete, next_key,
                                    possible_cpus, u32, u64, update)

A, PA = u.BPF_MAP_TYPE_ARRAY, u.BPF_MAP_TYPE_PERCPU_ARRAY
EXIST, NOEXIST, LOCK = u.BPF_EXIST, u.BPF_NOEXIST, u.BPF_F_LOCK


@pytest.mark.parametrize("map_type,ks,vs,me,flags,expected", [
    (A, 4, 8, 0, 0, 22),                      # max_entries 0
    (A, 8, 8, 4, 0, 22),                      # key_size must be 4
    (A, 4, 0, 4, 0, 22),                      # value_size 0
    (A, 4, 8, 4, u.BPF_F_NO_PREALLOC, 22),     # flag outside the array mask
    (A, 4, 8, 4, u.BPF_F_RDONLY_PROG | u.BPF_F_WRONLY_PROG, 22),
    (PA, 4, 8, 4, u.BPF_F_MMAPABLE, 22),       # MMAPABLE only on plain arrays
    (PA, 4, 8, 4, u.BPF_F_INNER_MAP, 22),
    (A, 4, 8, 4, u.BPF_F_PRESERVE_ELEMS, 22),  # PRESERVE_ELEMS only on perf event arrays
    (A, 4, 2**31, 1, 0, 7),                   # value_size > INT_MAX: E2BIG
    (PA, 4, 32769, 1, 0, 7),                  # per-CPU value above a percpu unit
    (PA, 4, 32768, 1, 0, 0),
    (A, 4, 8, 4, u.BPF_F_MMAPABLE | u.BPF_F_INNER_MAP | u.BPF_F_RDONLY_PROG, 0),
    (A, 4, 8, 1 << 24, 0, 0),                 # big arrays are cheap to ask for
])
def test_array_alloc_check(proc, map_type, ks, vs, me, flags, expected):
    assert err(create_map, proc, map_type, key_size=ks, value_size=vs, max_entries=me, flags=flags) == expected


def test_alloc_check_comes_before_the_capability_check(backend, profile):
    # unprivileged bpf is disabled on the host (sysctl 2): a valid array is EPERM, a bad one EINVAL
    t = backend.spawn(uid=1000, caps=())
    assert err(array_map, t, key_size=8) == unprivileged(profile, 22)
    assert err(array_map, t) == 1


def test_element_errnos(proc):
    fd = array_map(proc, value_size=8, max_entries=4)
    assert lookup(proc, fd, u32(3), 8) == bytes(8)          # every element exists, zeroed
    assert err(lookup, proc, fd, u32(4), 8) == 2            # out of range: ENOENT on lookup
    assert err(update, proc, fd, u32(4), u64(1)) == 7       # ... E2BIG on update
    assert err(update, proc, fd, u32(1), u64(1), NOEXIST) == 17
    assert err(update, proc, fd, u32(1), u64(1), 3) == 22   # flags > BPF_EXIST
    assert err(update, proc, fd, u32(9), u64(1), 3) == 22   # flags checked before the index
    assert err(update, proc, fd, u32(9), u64(1), NOEXIST) == 7  # index before NOEXIST
    assert err(update, proc, fd, u32(1), u64(1), LOCK) == 22  # no spin lock in the value
    update(proc, fd, u32(1), u64(5), EXIST)
    update(proc, fd, u32(2), u64(6))
    assert lookup(proc, fd, u32(1), 8) == u64(5)
    assert err(delete, proc, fd, u32(1)) == 22              # arrays refuse deletes
    assert err(delete, proc, fd, u32(99)) == 22
    assert lookup(proc, fd, u32(1), 8) == u64(5)
    assert err(lookup_and_delete, proc, fd, u32(1), 8) == 524
    assert err(lookup, proc, fd, u32(1), 8, LOCK) == 22
    assert err(lookup, proc, fd, u32(1), 8, 8) == 22


def test_value_size_not_a_multiple_of_8(proc):
    fd = array_map(proc, value_size=3, max_entries=2)
    update(proc, fd, u32(0), b"abc")
    assert lookup(proc, fd, u32(0), 3) == b"abc"
    assert lookup(proc, fd, u32(1), 3) == bytes(3)


def test_get_next_key_out_of_range_restarts(proc):
    # (the plain walk is in test_map_basics.py::test_array_get_next_key)
    fd = array_map(proc, max_entries=3)
    assert next_key(proc, fd, u32(3), 4) == u32(0)
    assert next_key(proc, fd, u32(0xFFFFFFFF), 4) == u32(0)
    one = array_map(proc, max_entries=1)
    assert err(next_key, proc, one, u32(0), 4) == 2


def test_percpu_layout(proc):
    n = possible_cpus(proc)
    fd = create_map(proc, PA, value_size=4, max_entries=2)
    stride = 8
    vals = b"".join(u32(0x11111111 * (c + 1)) + b"\xff\xff\xff\xff" for c in range(n))
    update(proc, fd, u32(1), vals)
    got = lookup(proc, fd, u32(1), stride * n)
    # each CPU's slot is copied whole, padding included: it reads back as written
    assert got == vals
    assert lookup(proc, fd, u32(0), stride * n) == bytes(stride * n)
    assert err(lookup, proc, fd, u32(2), stride * n) == 2
    assert err(update, proc, fd, u32(0), vals, LOCK) == 22
    assert err(update, proc, fd, u32(0), vals, NOEXIST) == 17
    assert err(update, proc, fd, u32(2), vals) == 7
    assert err(lookup_and_delete, proc, fd, u32(1), stride * n) == 524


def test_lookup_batch_is_key_based(proc):
    fd = array_map(proc, value_size=4, max_entries=5)
    for i in range(5):
        update(proc, fd, u32(i), u32(100 + i))
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 2, 4, 4)
    assert (r.errno, r.count, r.out_batch) == (0, 2, u32(1))
    assert r.keys == u32(0) + u32(1) and r.values == u32(100) + u32(101)
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 2, 4, 4, in_batch=u32(1))
    assert (r.errno, r.count, r.out_batch) == (0, 2, u32(3))
    assert r.keys == u32(2) + u32(3)
    # the end: ENOENT together with the last elements
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 2, 4, 4, in_batch=u32(3))
    assert (r.errno, r.count, r.out_batch) == (2, 1, u32(4))
    assert r.keys[:4] == u32(4) and r.values[:4] == u32(104)
    # starting at the last key: nothing, ENOENT, out_batch untouched
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 2, 4, 4, in_batch=u32(4))
    assert (r.errno, r.count, r.out_batch) == (2, 0, b"\xee" * 4)
    # an out-of-range in_batch starts over (get_next_key rule)
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 10, 4, 4, in_batch=u32(77))
    assert (r.errno, r.count, r.out_batch) == (2, 5, u32(4))
    # count 0: nothing happens, not even ENOENT
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 0, 4, 4, in_batch=u32(4))
    assert (r.errno, r.count) == (0, 0)
    assert batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 2, 4, 4, elem_flags=1).errno == 22
    assert batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 2, 4, 4, elem_flags=LOCK).errno == 22
    # batch.flags is not looked at by the generic helpers
    assert batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 2, 4, 4, flags=1).errno == 0


def test_percpu_lookup_batch(proc):
    n = possible_cpus(proc)
    fd = create_map(proc, PA, value_size=8, max_entries=2)
    v = b"".join(u64(c + 1) for c in range(n))
    update(proc, fd, u32(1), v)
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 4, 4, 8 * n)
    assert (r.errno, r.count) == (2, 2)
    assert r.values[:16 * n] == bytes(8 * n) + v


def test_update_batch_counts_what_was_applied(proc):
    fd = array_map(proc, value_size=4, max_entries=3)
    keys = u32(0) + u32(2) + u32(7) + u32(1)
    vals = u32(10) + u32(12) + u32(17) + u32(11)
    r = batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 4, 4, 4, keys=keys, values=vals)
    assert (r.errno, r.count) == (7, 2)                      # index 7: E2BIG, stops there
    assert [lookup(proc, fd, u32(i), 4) for i in range(3)] == [u32(10), bytes(4), u32(12)]
    r = batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 2, 4, 4, keys=keys, values=vals, elem_flags=NOEXIST)
    assert (r.errno, r.count) == (22, 2)                     # elem_flags may only be F_LOCK; count untouched
    r = batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 0, 4, 4, keys=keys, values=vals)
    assert (r.errno, r.count) == (0, 0)


def test_delete_and_lookup_and_delete_batches_are_ENOTSUPP(proc):
    fd = array_map(proc, value_size=4, max_entries=3)
    assert batch(proc, u.BPF_MAP_DELETE_BATCH, fd, 1, 4, 4, keys=u32(0)).errno == 524
    assert batch(proc, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH, fd, 1, 4, 4).errno == 524
    pfd = create_map(proc, PA, value_size=4, max_entries=3)
    assert batch(proc, u.BPF_MAP_DELETE_BATCH, pfd, 1, 4, 4, keys=u32(0)).errno == 524


def test_freeze(proc, profile):
    fd = array_map(proc, value_size=4, max_entries=2)
    update(proc, fd, u32(0), u32(1))
    freeze(proc, fd)
    assert err(update, proc, fd, u32(0), u32(2)) == 1
    assert err(delete, proc, fd, u32(0)) == 1
    assert lookup(proc, fd, u32(0), 4) == u32(1)
    assert next_key(proc, fd, None, 4) == u32(0)
    # frozen means no write permission (6.1 asks no write permission: the map is already frozen)
    assert err(freeze, proc, fd) == (1 if "write_perm" in profile.freeze_checks else 16)
    assert batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 1, 4, 4, keys=u32(0), values=u32(3)).errno == 1
    assert batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 2, 4, 4).errno == 0
    assert err(lookup_and_delete, proc, fd, u32(0), 4) == 1  # needs write too: EPERM before 524


def test_rdonly_and_wronly_fds(proc, profile):
    ro = array_map(proc, value_size=4, max_entries=2, flags=u.BPF_F_RDONLY)
    assert err(update, proc, ro, u32(0), u32(1)) == 1
    assert lookup(proc, ro, u32(0), 4) == bytes(4)
    assert next_key(proc, ro, None, 4) == u32(0)
    assert err(freeze, proc, ro) == (1 if "write_perm" in profile.freeze_checks else 0)
    assert batch(proc, u.BPF_MAP_LOOKUP_BATCH, ro, 1, 4, 4).errno == 0
    assert batch(proc, u.BPF_MAP_UPDATE_BATCH, ro, 1, 4, 4, keys=u32(0), values=u32(3)).errno == 1
    wo = array_map(proc, value_size=4, max_entries=2, flags=u.BPF_F_WRONLY)
    update(proc, wo, u32(0), u32(1))
    assert err(lookup, proc, wo, u32(0), 4) == 1
    assert err(next_key, proc, wo, None, 4) == 1
    assert batch(proc, u.BPF_MAP_LOOKUP_BATCH, wo, 1, 4, 4).errno == 1
    assert batch(proc, u.BPF_MAP_DELETE_BATCH, wo, 1, 4, 4, keys=u32(0)).errno == 524
    assert err(lookup_and_delete, proc, wo, u32(0), 4) == 1
    assert err(freeze, proc, wo) == 0
    assert err(update, proc, wo, u32(0), u32(1)) == 1


def test_huge_array_is_usable(proc):
    fd = array_map(proc, value_size=8, max_entries=1 << 24)
    update(proc, fd, u32((1 << 24) - 1), u64(7))
    assert lookup(proc, fd, u32((1 << 24) - 1), 8) == u64(7)
    assert err(next_key, proc, fd, u32((1 << 24) - 1), 4) == 2
    assert err(update, proc, fd, u32(1 << 24), u64(7)) == 7
