"""Element commands whose key or value runs into a page the kernel cannot read or write.

LOOKUP_ELEM and UPDATE_ELEM copy the key (and an update's value) with copy_from_user and a lookup's
value out with copy_to_user. The emulator's checked copies of these (bpfemu/usermem.py: a pwrite(2)
from the caller's address into a memfd it reads through a mapping, a pread(2) from that memfd into the
caller's address) must give what the kernel gives: EFAULT for a key or value that ends in a PROT_NONE
page, the map untouched (a read-only page reads); EFAULT for a value out that ends in a PROT_NONE page,
with the bytes before the fault written as the kernel writes them.
"""
import ctypes
import mmap

import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import create_map, err, lookup, u32, u64, update

pytestmark = pytest.mark.bpf_bad_pointers

EFAULT = 14
PAGE = mmap.PAGESIZE
HASH, ARRAY = u.BPF_MAP_TYPE_HASH, u.BPF_MAP_TYPE_ARRAY
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


class TwoPages:
    """Two pages of our memory; the second one's protection is the test's (PROT_NONE or PROT_READ)."""

    def __init__(self, second):
        self.mm = mmap.mmap(-1, 2 * PAGE)
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.mm))
        self.edge = self.base + PAGE
        assert _libc.mprotect(self.edge, PAGE, second) == 0

    def put(self, addr, data):
        ctypes.memmove(addr, data, len(data))

    def get(self, addr, n):
        return ctypes.string_at(addr, n)

    def close(self):
        _libc.mprotect(self.edge, PAGE, 3)


@pytest.fixture(params=[0, 1], ids=["prot_none", "read_only"])
def pages(request):
    p = TwoPages(request.param)
    p.prot = request.param
    yield p
    p.close()


def state(proc, fd, n):
    return [lookup(proc, fd, u32(i), 8) for i in range(n)]


def filled(proc, map_type):
    fd = create_map(proc, map_type, 4, 8, max_entries=4)
    for i in range(3):
        update(proc, fd, u32(i), u64(100 + i))
    return fd


@pytest.mark.parametrize("map_type", [HASH, ARRAY])
@pytest.mark.parametrize("inside", [0, 1, 3])  # bytes of the 4-byte key before the edge (0: wholly past it)
def test_a_key_that_runs_past_the_edge(proc, pages, map_type, inside):
    fd = filled(proc, map_type)
    before = state(proc, fd, 3)
    kaddr = pages.edge - inside
    if inside:
        pages.put(kaddr, u32(1)[:inside])
    v = ctypes.create_string_buffer(u64(7), 8)
    want = EFAULT if pages.prot == 0 else 0  # a read-only page is readable
    a = u.make_attr(map_fd=fd, key=kaddr, value=ctypes.addressof(v))
    got = err(proc.bpf, u.BPF_MAP_UPDATE_ELEM, a)
    if want:
        assert got == want
        assert state(proc, fd, 3) == before
        assert err(proc.bpf, u.BPF_MAP_LOOKUP_ELEM, a) == EFAULT
        assert v.raw == u64(7)  # nothing looked up, nothing written
    else:  # a read-only page reads: the key is the bytes there
        key = pages.get(kaddr, 4)
        index_ok = map_type == HASH or int.from_bytes(key, "little") < 4
        assert got == (0 if index_ok else 7)  # E2BIG: an array index out of range
        if index_ok:
            assert lookup(proc, fd, key, 8) == u64(7)


@pytest.mark.parametrize("map_type", [HASH, ARRAY])
@pytest.mark.parametrize("inside", [0, 4, 7])  # bytes of the 8-byte value before the edge
def test_an_update_value_that_runs_past_the_edge(proc, pages, map_type, inside):
    fd = filled(proc, map_type)
    before = state(proc, fd, 3)
    vaddr = pages.edge - inside
    if inside:
        pages.put(vaddr, u64(99)[:inside])
    k = ctypes.create_string_buffer(u32(1), 4)
    a = u.make_attr(map_fd=fd, key=ctypes.addressof(k), value=vaddr)
    if pages.prot == 0:
        assert err(proc.bpf, u.BPF_MAP_UPDATE_ELEM, a) == EFAULT
        assert state(proc, fd, 3) == before  # not half applied
        k2 = ctypes.create_string_buffer(u32(3), 4)  # a new key (the hash map has room): not inserted
        a = u.make_attr(map_fd=fd, key=ctypes.addressof(k2), value=vaddr)
        assert err(proc.bpf, u.BPF_MAP_UPDATE_ELEM, a) == EFAULT
        assert state(proc, fd, 3) == before
        assert err(lookup, proc, fd, u32(3), 8) == (2 if map_type == HASH else 0)
    else:  # readable: the value is the bytes there
        assert err(proc.bpf, u.BPF_MAP_UPDATE_ELEM, a) == 0
        assert lookup(proc, fd, u32(1), 8) == pages.get(vaddr, 8)


@pytest.mark.parametrize("map_type", [HASH, ARRAY])
@pytest.mark.parametrize("inside", [0, 3, 7])  # bytes of the 8-byte value out before the edge
def test_a_lookup_value_that_runs_past_the_edge(proc, map_type, inside):
    # PROT_NONE only: the host backend's child mirrors our readable memory and copies what the kernel wrote
    # back with memmove, which a read-only page does not take (tests/test_usermem_checked.py compares a
    # read-only value out with the syscall made in this process)
    pages = TwoPages(0)
    try:
        _lookup_value_past_the_edge(proc, pages, map_type, inside)
    finally:
        pages.close()


def _lookup_value_past_the_edge(proc, pages, map_type, inside):
    fd = filled(proc, map_type)
    vaddr = pages.edge - inside
    pages.put(pages.edge - 8, b"\xee" * 8)
    k = ctypes.create_string_buffer(u32(2), 4)
    a = u.make_attr(map_fd=fd, key=ctypes.addressof(k), value=vaddr)
    assert err(proc.bpf, u.BPF_MAP_LOOKUP_ELEM, a) == EFAULT
    # copy_to_user writes what fits before the fault
    assert pages.get(pages.edge - 8, 8) == b"\xee" * (8 - inside) + u64(102)[:inside]
    # a key that is not there: ENOENT before any copy out
    k = ctypes.create_string_buffer(u32(9 if map_type == HASH else 2), 4)
    if map_type == HASH:
        assert err(proc.bpf, u.BPF_MAP_LOOKUP_ELEM, u.make_attr(map_fd=fd, key=ctypes.addressof(k),
                                                                  value=vaddr)) == 2
