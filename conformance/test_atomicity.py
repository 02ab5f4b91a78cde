"""Atomicity: a command that fails leaves no partial change, unless the kernel leaves one.

- single-element updates are all-or-nothing: E2BIG (full), EEXIST/ENOENT (flags) and
  EFAULT (value or key unreadable) leave every key and value as it was;
- batch update/delete stop at the first failing element: ``count`` is the number applied
  and exactly those elements are applied (E2BIG, ENOENT, and EFAULT
  where the keys or values buffer runs into an UNMAPPED page, so element k faults);
- lookup-and-delete whose copy-out faults has already deleted the element (the kernel
  deletes, then copies out);
- a HASH_OF_MAPS update with a bad inner fd keeps the old inner map, which stays alive
  exactly as long as the outer map holds it.

conformance/test_user_memory_pages.py covers the same batch faults against a PROT_NONE
page; here the page is unmapped, and the whole map state is compared after each failure.
"""
import ctypes
import mmap

import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import (create_map, delete, err, hash_map, id_alive, keys, lookup, lookup_and_delete, map_id, u32, u64,
                      need_bad_pointer_detection, update, wait_gone)

ENOENT, EBADF, EEXIST, EFAULT, EINVAL, E2BIG = 2, 9, 17, 14, 22, 7
PAGE = mmap.PAGESIZE
HASH, ARRAY, QUEUE = u.BPF_MAP_TYPE_HASH, u.BPF_MAP_TYPE_ARRAY, u.BPF_MAP_TYPE_QUEUE


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


class PageThenHole:
    """One read-write page whose successor is unmapped: a buffer placed at its end faults there."""

    def __init__(self):
        self.libc = _libc()
        base = self.libc.mmap(None, 2 * PAGE, 3, 0x22, -1, 0)  # PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
        assert base not in (None, ctypes.c_void_p(-1).value)
        assert self.libc.munmap(base + PAGE, PAGE) == 0
        self.base = base

    def put_tail(self, data):
        """Copy data so that it ends exactly at the hole; return its address."""
        addr = self.base + PAGE - len(data)
        ctypes.memmove(addr, data, len(data))
        return addr

    def close(self):
        self.libc.munmap(self.base, PAGE)


@pytest.fixture
def hole():
    need_bad_pointer_detection()  # the hole is unmapped memory
    h = PageThenHole()
    yield h
    h.close()


def state(proc, fd, value_size=8):
    """{key: value} of a map, walked with GET_NEXT_KEY and looked up one by one."""
    return {k: lookup(proc, fd, k, value_size) for k in keys(proc, fd, 4)}


def batch(proc, cmd, fd, count, keys_addr, values_addr=0, elem_flags=0):
    """(errno, count written back) of an update/delete batch."""
    a = u.make_attr(**{"batch.map_fd": fd, "batch.keys": keys_addr, "batch.values": values_addr,
                       "batch.count": count, "batch.elem_flags": elem_flags})
    try:
        proc.bpf(cmd, a)
        return 0, a.batch.count
    except OSError as e:
        return e.errno, a.batch.count


def arr(ctype, items):
    return (ctype * len(items))(*items)


def addr(c):
    return ctypes.addressof(c)


# -- single elements --------------------------------------------------------------------

@pytest.mark.parametrize("map_type", [HASH, ARRAY])
def test_failed_single_updates_change_nothing(proc, hole, map_type):
    fd = create_map(proc, map_type, 4, 8, max_entries=2, flags=u.BPF_F_ZERO_SEED if map_type == HASH else 0)
    update(proc, fd, u32(0), u64(10))
    update(proc, fd, u32(1), u64(11))
    before = state(proc, fd)
    bad_value = hole.base + PAGE - 4  # 4 of the 8 value bytes readable
    attempts = [
        (u32(2), u64(99), 0, E2BIG),  # hash: full; array: index out of range
        (u32(0), u64(99), u.BPF_NOEXIST, EEXIST),
    ]
    for key, value, flags, want in attempts:
        assert err(update, proc, fd, key, value, flags) == want
        assert state(proc, fd) == before
    for key in (u32(0), u32(1)):  # an existing key with an unreadable value
        k = ctypes.create_string_buffer(key, 4)
        a = u.make_attr(map_fd=fd, key=addr(k), value=bad_value, flags=0)
        assert err(proc.bpf, u.BPF_MAP_UPDATE_ELEM, a) == EFAULT
        assert state(proc, fd) == before
    if map_type == HASH:
        delete(proc, fd, u32(1))
        before = state(proc, fd)
        k = ctypes.create_string_buffer(u32(5), 4)
        a = u.make_attr(map_fd=fd, key=addr(k), value=bad_value)
        assert err(proc.bpf, u.BPF_MAP_UPDATE_ELEM, a) == EFAULT  # a new key: not inserted
        a = u.make_attr(map_fd=fd, key=hole.base + PAGE - 2, value=addr(ctypes.create_string_buffer(8)))
        assert err(proc.bpf, u.BPF_MAP_UPDATE_ELEM, a) == EFAULT  # key unreadable
        assert err(update, proc, fd, u32(1), u64(1), u.BPF_EXIST) == ENOENT
        assert state(proc, fd) == before


@pytest.mark.parametrize("map_type", [HASH, QUEUE])
def test_lookup_and_delete_faulting_copy_out_still_deletes(proc, hole, map_type):
    """The kernel removes the element into a kernel buffer, then copies it out: the copy
    faults (EFAULT) and the element is gone anyway."""
    if map_type == HASH:
        fd = hash_map(proc, key_size=4, value_size=8, max_entries=4)
        update(proc, fd, u32(1), u64(5))
        update(proc, fd, u32(2), u64(6))
        k = ctypes.create_string_buffer(u32(1), 4)
        a = u.make_attr(map_fd=fd, key=addr(k), value=hole.base + PAGE - 3)
        assert err(proc.bpf, u.BPF_MAP_LOOKUP_AND_DELETE_ELEM, a) == EFAULT
        assert state(proc, fd) == {u32(2): u64(6)}
        assert bytes((ctypes.c_char * 3).from_address(hole.base + PAGE - 3)) == u64(5)[:3]  # the part that fit
    else:
        fd = create_map(proc, QUEUE, 0, 8, max_entries=4)
        for v in (5, 6):
            update(proc, fd, None, u64(v))
        a = u.make_attr(map_fd=fd, key=0, value=hole.base + PAGE - 3)
        assert err(proc.bpf, u.BPF_MAP_LOOKUP_AND_DELETE_ELEM, a) == EFAULT
        assert lookup_and_delete(proc, fd, None, 8) == u64(6)  # 5 was popped by the faulting call
        assert err(lookup_and_delete, proc, fd, None, 8) == ENOENT


# -- batches ------------------------------------------------------------------------------

def test_update_batch_stops_at_a_full_map(proc):
    fd = hash_map(proc, key_size=4, value_size=8, max_entries=5)
    update(proc, fd, u32(100), u64(1))
    ks, vs = arr(ctypes.c_uint32, range(10)), arr(ctypes.c_uint64, range(50, 60))
    assert batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 10, addr(ks), addr(vs)) == (E2BIG, 4)
    assert state(proc, fd) == dict([(u32(100), u64(1))] + [(u32(i), u64(50 + i)) for i in range(4)])


def test_update_batch_with_noexist_elem_flags_is_refused_whole(proc):
    """elem_flags takes only BPF_F_LOCK: BPF_NOEXIST is EINVAL before any element, count untouched."""
    fd = hash_map(proc, key_size=4, value_size=8, max_entries=16)
    update(proc, fd, u32(3), u64(7))
    ks, vs = arr(ctypes.c_uint32, range(6)), arr(ctypes.c_uint64, range(20, 26))
    assert batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 6, addr(ks), addr(vs), u.BPF_NOEXIST) == (EINVAL, 6)
    assert state(proc, fd) == {u32(3): u64(7)}


def test_update_batch_stops_at_an_array_index_out_of_range(proc):
    fd = create_map(proc, ARRAY, 4, 8, max_entries=4)
    ks, vs = arr(ctypes.c_uint32, [0, 1, 9, 2]), arr(ctypes.c_uint64, [1, 2, 3, 4])
    assert batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 4, addr(ks), addr(vs)) == (E2BIG, 2)
    assert state(proc, fd) == {u32(0): u64(1), u32(1): u64(2), u32(2): u64(0), u32(3): u64(0)}


def test_delete_batch_stops_at_an_absent_key(proc):
    fd = hash_map(proc, key_size=4, value_size=8, max_entries=16)
    for i in range(6):
        update(proc, fd, u32(i), u64(i))
    ks = arr(ctypes.c_uint32, [0, 1, 42, 2])
    assert batch(proc, u.BPF_MAP_DELETE_BATCH, fd, 4, addr(ks)) == (ENOENT, 2)
    assert state(proc, fd) == {u32(i): u64(i) for i in range(2, 6)}


@pytest.mark.parametrize("straddle", [0, 2])
def test_update_batch_keys_end_at_an_unmapped_page(proc, hole, straddle):
    """Keys 0..6 fit before the hole (with straddle 2, key 7 is half readable): count 7."""
    fd = hash_map(proc, key_size=4, value_size=8, max_entries=32)
    update(proc, fd, u32(100), u64(1))
    kaddr = hole.put_tail(b"".join(u32(i) for i in range(7)) + u32(7)[:straddle])
    vs = arr(ctypes.c_uint64, range(40, 52))
    assert batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 12, kaddr, addr(vs)) == (EFAULT, 7)
    assert state(proc, fd) == dict([(u32(100), u64(1))] + [(u32(i), u64(40 + i)) for i in range(7)])


def test_update_batch_values_end_at_an_unmapped_page(proc, hole):
    fd = create_map(proc, ARRAY, 4, 8, max_entries=16)
    ks = arr(ctypes.c_uint32, range(10))
    vaddr = hole.put_tail(b"".join(u64(70 + i) for i in range(5)))
    assert batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 10, addr(ks), vaddr) == (EFAULT, 5)
    got = state(proc, fd)
    assert [got[u32(i)] for i in range(16)] == [u64(70 + i) for i in range(5)] + [u64(0)] * 11


def test_delete_batch_keys_end_at_an_unmapped_page(proc, hole):
    fd = hash_map(proc, key_size=4, value_size=8, max_entries=32)
    for i in range(10):
        update(proc, fd, u32(i), u64(i))
    kaddr = hole.put_tail(b"".join(u32(i) for i in (9, 3, 5)))
    assert batch(proc, u.BPF_MAP_DELETE_BATCH, fd, 8, kaddr) == (EFAULT, 3)
    assert state(proc, fd) == {u32(i): u64(i) for i in range(10) if i not in (9, 3, 5)}


# -- maps of maps -------------------------------------------------------------------------

def test_hash_of_maps_bad_inner_fd_keeps_the_old_inner_map(proc):
    tmpl = create_map(proc, ARRAY, 4, 8, max_entries=4)
    fd = create_map(proc, u.BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, max_entries=4, flags=u.BPF_F_ZERO_SEED,
                    inner_map_fd=tmpl)
    old = create_map(proc, ARRAY, 4, 8, max_entries=4)
    old_id = map_id(proc, old)
    update(proc, fd, u32(1), u32(old))
    proc.close(old)  # the outer map is now its only holder
    wrong = create_map(proc, ARRAY, 4, 8, max_entries=2)  # max_entries differs from the template
    wrong_id = map_id(proc, wrong)
    for value, want in ((u32(999), EBADF), (u32(wrong), EINVAL), (u32(fd), EINVAL)):
        assert err(update, proc, fd, u32(1), value) == want
        assert err(update, proc, fd, u32(2), value) == want
        assert keys(proc, fd, 4) == [u32(1)]
        assert lookup(proc, fd, u32(1), 4) == u32(old_id)
    bad = ctypes.create_string_buffer(u32(1), 4)
    a = u.make_attr(map_fd=fd, key=addr(bad), value=8)  # value pointer in the NULL page
    assert err(proc.bpf, u.BPF_MAP_UPDATE_ELEM, a) == EFAULT
    assert lookup(proc, fd, u32(1), 4) == u32(old_id)
    proc.close(wrong)
    assert wait_gone(proc, wrong_id)  # the rejected map was not kept by the outer map
    assert id_alive(proc, old_id)  # the old inner map's reference from the outer map is intact
    delete(proc, fd, u32(1))
    assert wait_gone(proc, old_id)
