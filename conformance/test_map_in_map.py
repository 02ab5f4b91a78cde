"""Maps of maps: ARRAY_OF_MAPS and HASH_OF_MAPS.

The inner-map template (inner_map_fd) and its errors and their order relative to the
privilege checks, the shape comparison on update, values written as fds and read as
ids, and the references an outer map holds on its inner maps.
"""
import struct

import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import need_map_type, unprivileged
from bpfemu.testing.support import (batch, create_map, delete, err, id_alive, keys, lookup, lookup_and_delete, map_id,
                      next_key, u32, update, wait_gone)

EPERM, ENOENT, EBADF, E2BIG, EEXIST, EINVAL, ENOTSUPP = 1, 2, 9, 7, 17, 22, 524
AOM, HOM = u.BPF_MAP_TYPE_ARRAY_OF_MAPS, u.BPF_MAP_TYPE_HASH_OF_MAPS
ARRAY, HASH = u.BPF_MAP_TYPE_ARRAY, u.BPF_MAP_TYPE_HASH


def inner_array(proc, max_entries=4, value_size=8, flags=0):
    return create_map(proc, ARRAY, key_size=4, value_size=value_size, max_entries=max_entries, flags=flags)

def fill_with_inner_arrays(proc, fd, n):
    """Store n fresh inner arrays at keys 0..n-1, closing our fds: the outer map is their only holder."""
    ids = []
    for k in range(n):
        m = inner_array(proc)
        ids.append(map_id(proc, m))
        update(proc, fd, u32(k), fdval(m))
        proc.close(m)
    return ids



def outer(proc, t, inner_fd, max_entries=4, key_size=4, value_size=4, flags=0):
    return create_map(proc, t, key_size=key_size, value_size=value_size, max_entries=max_entries, flags=flags,
                      inner_map_fd=inner_fd)


def fdval(fd):
    return struct.pack("<i", fd)


# -- MAP_CREATE ------------------------------------------------------------------------

@pytest.mark.parametrize("t", [AOM, HOM])
def test_create_template_errors(proc, t):
    tmpl = inner_array(proc)
    assert err(outer, proc, t, tmpl) == 0
    assert err(outer, proc, t, tmpl, value_size=8) == EINVAL
    assert err(outer, proc, t, 99, value_size=8) == EINVAL  # value_size before the fd
    assert err(outer, proc, t, 99) == EBADF
    assert err(outer, proc, t, -1) == EBADF
    assert err(outer, proc, t, 0) == EINVAL  # open, but not a map
    for of in (outer(proc, AOM, tmpl), outer(proc, HOM, tmpl)):
        assert err(outer, proc, t, of) == EINVAL  # one level only
    prog_array = create_map(proc, u.BPF_MAP_TYPE_PROG_ARRAY, key_size=4, value_size=4, max_entries=4)
    assert err(outer, proc, t, prog_array) == ENOTSUPP  # no map_meta_equal
    for it, ks, vs, flags in [(HASH, 4, 8, 0), (u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 0),
                              (u.BPF_MAP_TYPE_LRU_HASH, 4, 8, 0), (u.BPF_MAP_TYPE_PERCPU_HASH, 8, 3, 0),
                              (u.BPF_MAP_TYPE_QUEUE, 0, 8, 0), (u.BPF_MAP_TYPE_LPM_TRIE, 8, 8, 1)]:
        assert err(outer, proc, t, create_map(proc, it, key_size=ks, value_size=vs, flags=flags)) == 0


def test_create_flag_errors(proc):
    tmpl = inner_array(proc)
    assert err(outer, proc, AOM, tmpl, flags=u.BPF_F_INNER_MAP) == EINVAL
    assert err(outer, proc, AOM, tmpl, flags=u.BPF_F_RDONLY_PROG) == EINVAL
    assert err(outer, proc, AOM, tmpl, key_size=8) == EINVAL
    assert err(outer, proc, HOM, tmpl, flags=u.BPF_F_NO_COMMON_LRU) == EINVAL
    assert err(outer, proc, HOM, 99, flags=u.BPF_F_NO_COMMON_LRU) == EINVAL  # alloc_check first
    assert err(outer, proc, HOM, 99, key_size=0) == EINVAL
    assert err(outer, proc, HOM, tmpl, flags=u.BPF_F_NO_PREALLOC | u.BPF_F_ZERO_SEED, key_size=3) == 0
    # the template is read in map_alloc: before the table's own E2BIG
    assert err(outer, proc, HOM, 99, max_entries=1 << 28) == EBADF
    assert err(outer, proc, HOM, tmpl, max_entries=1 << 28, flags=u.BPF_F_NO_PREALLOC) == E2BIG


@pytest.mark.parametrize("t", [AOM, HOM])
def test_template_errors_come_after_the_privilege_check(backend, profile, t):
    root = backend.spawn()
    tmpl = inner_array(root)
    nobody = backend.spawn(uid=1000, caps=())
    bpf_only = backend.spawn(uid=1000, caps=("CAP_BPF",))
    assert err(outer, nobody, t, 99, value_size=8) == unprivileged(profile, EINVAL)
    assert err(outer, nobody, t, 99) == EPERM
    assert err(outer, bpf_only, t, 99) == EBADF
    assert err(outer, bpf_only, t, 0) == EINVAL
    t2 = inner_array(bpf_only)
    assert err(outer, bpf_only, t, t2) == 0
    assert tmpl > 0


# -- ARRAY_OF_MAPS ---------------------------------------------------------------------

def test_array_of_maps_elements(proc):
    tmpl = inner_array(proc)
    fd = outer(proc, AOM, tmpl, max_entries=3)
    a, b = inner_array(proc), inner_array(proc)
    assert err(lookup, proc, fd, u32(0), 4) == ENOENT
    update(proc, fd, u32(0), fdval(a))
    assert lookup(proc, fd, u32(0), 4) == u32(map_id(proc, a))
    update(proc, fd, u32(0), fdval(b))
    assert lookup(proc, fd, u32(0), 4) == u32(map_id(proc, b))
    update(proc, fd, u32(2), fdval(a))
    # flags and the index are checked before the fd
    assert err(update, proc, fd, u32(1), fdval(99), u.BPF_NOEXIST) == EINVAL
    assert err(update, proc, fd, u32(1), fdval(a), u.BPF_EXIST) == EINVAL
    assert err(update, proc, fd, u32(3), fdval(99)) == E2BIG
    assert err(update, proc, fd, u32(1), fdval(99)) == EBADF
    assert err(update, proc, fd, u32(1), fdval(0)) == EINVAL
    assert err(update, proc, fd, u32(1), fdval(inner_array(proc, max_entries=5))) == EINVAL
    assert err(update, proc, fd, u32(1), fdval(inner_array(proc, value_size=4))) == EINVAL
    assert err(update, proc, fd, u32(1), fdval(create_map(proc, HASH))) == EINVAL
    # BPF_F_RDONLY/WRONLY are fd modes, not map flags: they do not change the shape
    assert err(update, proc, fd, u32(1), fdval(inner_array(proc, flags=u.BPF_F_RDONLY))) == 0
    assert err(update, proc, fd, u32(1), fdval(inner_array(proc, flags=u.BPF_F_RDONLY_PROG))) == EINVAL
    assert err(lookup, proc, fd, u32(3), 4) == ENOENT
    assert err(delete, proc, fd, u32(3)) == E2BIG
    assert err(delete, proc, fd, u32(1)) == 0
    assert err(delete, proc, fd, u32(1)) == ENOENT
    assert keys(proc, fd, 4) == [u32(0), u32(1), u32(2)]
    assert next_key(proc, fd, u32(7), 4) == u32(0)
    assert err(lookup_and_delete, proc, fd, u32(0), 4) == ENOTSUPP
    # generic lookup batch: empty slots are skipped, values are ids
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 8, 4, 4)
    assert (r.errno, r.count) == (ENOENT, 2)
    assert r.keys[:8] == u32(0) + u32(2)
    assert r.values[:8] == u32(map_id(proc, b)) + u32(map_id(proc, a))
    r = batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 3, 4, 4, keys=u32(1) + u32(2) + u32(5),
              values=fdval(a) + fdval(b) + fdval(a))
    assert (r.errno, r.count) == (E2BIG, 2)
    assert lookup(proc, fd, u32(1), 4) == u32(map_id(proc, a))
    assert batch(proc, u.BPF_MAP_DELETE_BATCH, fd, 1, 4, 4, keys=u32(1)).errno == ENOTSUPP
    assert batch(proc, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH, fd, 1, 4, 4).errno == ENOTSUPP


@pytest.mark.parametrize("t", [AOM, HOM])
def test_inner_map_flag_lets_array_sizes_differ(proc, t):
    fd = outer(proc, t, inner_array(proc, flags=u.BPF_F_INNER_MAP))
    assert err(update, proc, fd, u32(0), fdval(inner_array(proc, max_entries=9, flags=u.BPF_F_INNER_MAP))) == 0
    assert err(update, proc, fd, u32(0), fdval(inner_array(proc, max_entries=9))) == EINVAL  # flags differ
    # other types never compare max_entries
    fd = outer(proc, t, create_map(proc, HASH, max_entries=2))
    assert err(update, proc, fd, u32(0), fdval(create_map(proc, HASH, max_entries=100))) == 0
    assert err(update, proc, fd, u32(1), fdval(create_map(proc, HASH, flags=u.BPF_F_NO_PREALLOC))) == EINVAL
    fd = outer(proc, t, inner_array(proc))
    assert err(update, proc, fd, u32(0), fdval(inner_array(proc, max_entries=9))) == EINVAL


# -- HASH_OF_MAPS ----------------------------------------------------------------------

def test_hash_of_maps_elements(proc, profile):
    tmpl = inner_array(proc)
    fd = outer(proc, HOM, tmpl, max_entries=3, flags=u.BPF_F_ZERO_SEED)
    a, b = inner_array(proc), inner_array(proc)
    # the fd is resolved before the flags are looked at
    assert err(update, proc, fd, u32(1), fdval(99), 3) == EBADF
    assert err(update, proc, fd, u32(1), fdval(a), 3) == EINVAL
    assert err(update, proc, fd, u32(1), fdval(99), u.BPF_F_LOCK) == EINVAL  # syscall layer, first
    assert err(update, proc, fd, u32(1), fdval(a), u.BPF_EXIST) == ENOENT
    assert err(update, proc, fd, u32(1), fdval(0)) == EINVAL
    assert err(update, proc, fd, u32(1), fdval(inner_array(proc, max_entries=2))) == EINVAL
    for k in (1, 2, 3):
        assert err(update, proc, fd, u32(k), fdval(a), u.BPF_NOEXIST) == 0
    assert err(update, proc, fd, u32(1), fdval(b), u.BPF_NOEXIST) == EEXIST
    assert err(update, proc, fd, u32(4), fdval(b)) == E2BIG
    assert err(update, proc, fd, u32(4), fdval(99)) == EBADF
    order = keys(proc, fd, 4)
    assert order == [u32(2), u32(3), u32(1)]  # zero seed: 3 and 1 share a bucket, 3 (the later) at its head
    # a present key is updated in place (6.18): allowed when full, and its place in the walk stays; before,
    # a new element replaced it at the head of its bucket (1 goes before 3, then 3 before 1 again)
    moves = [[u32(2), u32(1), u32(3)], [u32(2), u32(1), u32(3)], order]
    for k, moved in zip((1, 2, 3), moves):
        assert err(update, proc, fd, u32(k), fdval(b), u.BPF_EXIST) == 0
        assert keys(proc, fd, 4) == (order if profile.fd_htab_update_in_place else moved)
    assert lookup(proc, fd, u32(2), 4) == u32(map_id(proc, b))
    assert err(lookup, proc, fd, u32(9), 4) == ENOENT
    assert err(lookup_and_delete, proc, fd, u32(1), 4) == ENOTSUPP
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 8, 4, 4)
    assert (r.errno, r.count) == (ENOENT, 3)
    assert r.keys[:12] == b"".join(order) and r.values[:12] == u32(map_id(proc, b)) * 3
    assert err(delete, proc, fd, u32(2)) == 0
    assert err(delete, proc, fd, u32(2)) == ENOENT
    r = batch(proc, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH, fd, 8, 4, 4)
    assert (r.errno, r.count) == (ENOENT, 2)
    assert keys(proc, fd, 4) == []
    r = batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 2, 4, 4, keys=u32(5) + u32(6), values=fdval(a) + fdval(99))
    assert (r.errno, r.count) == (EBADF, 1)


# -- references ------------------------------------------------------------------------

@pytest.mark.parametrize("t", [AOM, HOM])
def test_outer_map_holds_its_inner_maps(proc, t):
    tmpl = inner_array(proc)
    fd = outer(proc, t, tmpl)
    tmpl_id = map_id(proc, tmpl)
    proc.close(tmpl)
    assert wait_gone(proc, tmpl_id)  # the template is not kept
    ids = fill_with_inner_arrays(proc, fd, 3)
    assert all(id_alive(proc, i) for i in ids)
    delete(proc, fd, u32(0))
    assert wait_gone(proc, ids[0])
    m = inner_array(proc)
    update(proc, fd, u32(1), fdval(m))  # replacing drops the old one
    assert wait_gone(proc, ids[1])
    assert id_alive(proc, ids[2])
    # the same map under two keys is held twice
    update(proc, fd, u32(3), fdval(m))
    m_id = map_id(proc, m)
    proc.close(m)
    delete(proc, fd, u32(1))
    assert id_alive(proc, m_id)
    outer_id = map_id(proc, fd)
    proc.close(fd)
    assert wait_gone(proc, outer_id)
    assert wait_gone(proc, ids[2]) and wait_gone(proc, m_id)


INNER_TYPES = [
    # (inner map type, key_size, value_size, max_entries, flags, errno of the outer MAP_CREATE)
    (u.BPF_MAP_TYPE_CGROUP_STORAGE, 16, 8, 0, 0, ENOTSUPP),  # no map_meta_equal
    (u.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, 16, 8, 0, 0, ENOTSUPP),
    (u.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, 0, 0),
    (u.BPF_MAP_TYPE_USER_RINGBUF, 0, 0, 4096, 0, 0),
    (u.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 4, 0, 0),
    (u.BPF_MAP_TYPE_CGROUP_ARRAY, 4, 4, 4, 0, 0),
    (u.BPF_MAP_TYPE_STACK_TRACE, 4, 8, 4, 0, 0),
    (u.BPF_MAP_TYPE_DEVMAP, 4, 4, 4, 0, 0),
    (u.BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, 4, 0, 0),
    (u.BPF_MAP_TYPE_CPUMAP, 4, 4, 4, 0, 0),
    (u.BPF_MAP_TYPE_XSKMAP, 4, 4, 4, 0, 0),
    (u.BPF_MAP_TYPE_SOCKMAP, 4, 4, 4, 0, 0),
    (u.BPF_MAP_TYPE_SOCKHASH, 4, 4, 4, 0, 0),
    (u.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 4, 4, 0, 0),
    (u.BPF_MAP_TYPE_BLOOM_FILTER, 0, 4, 4, 0, 0),
    (u.BPF_MAP_TYPE_STACK, 0, 4, 4, 0, 0),
    (u.BPF_MAP_TYPE_ARENA, 0, 0, 1, u.BPF_F_MMAPABLE, 0),
]


@pytest.mark.parametrize("it,ks,vs,n,flags,want", INNER_TYPES, ids=[u.map_type_name(r[0]) for r in INNER_TYPES])
def test_which_types_can_be_inner_maps(proc, profile, it, ks, vs, n, flags, want):
    need_map_type(profile, it)
    inner = create_map(proc, it, key_size=ks, value_size=vs, max_entries=n, flags=flags)
    assert [err(outer, proc, t, inner) for t in (AOM, HOM)] == [want, want]


def test_other_types_ignore_inner_map_fd(proc):
    assert err(create_map, proc, HASH, inner_map_fd=99) == 0
    assert err(create_map, proc, ARRAY, inner_map_fd=99) == 0


@pytest.mark.parametrize("cmd", [u.BPF_MAP_LOOKUP_AND_DELETE_BATCH, u.BPF_MAP_DELETE_BATCH])
def test_hash_of_maps_batch_deletes_release_inner_maps(proc, cmd):
    fd = outer(proc, HOM, inner_array(proc))
    ids = fill_with_inner_arrays(proc, fd, 3)
    if cmd == u.BPF_MAP_DELETE_BATCH:
        r = batch(proc, cmd, fd, 2, 4, 4, keys=u32(0) + u32(2))
        assert (r.errno, r.count) == (0, 2)
        gone, kept = [ids[0], ids[2]], [ids[1]]
    else:
        r = batch(proc, cmd, fd, 8, 4, 4)
        assert (r.errno, r.count) == (ENOENT, 3)
        assert sorted(r.values[:12][i:i + 4] for i in (0, 4, 8)) == sorted(u32(i) for i in ids)
        gone, kept = ids, []
    assert all(wait_gone(proc, i) for i in gone)
    assert all(id_alive(proc, i) for i in kept)
