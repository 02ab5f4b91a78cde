"""Batches whose key or value arrays run into an inaccessible page.

The emulator reads the small pieces of a batch from whole pages and queues writes to pages it
already wrote (bpfemu/usermem.py, UserCopy): these tests pin down that EFAULT still comes at
exactly the element the kernel stops at, with the count and the map state the kernel leaves.
"""
import ctypes
import mmap

import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import create_map, keys, lookup, u32

# bad pointers (guard pages, unmapped memory): skipped where bpfemu cannot detect them (not Linux,
# process_vm_readv blocked), with the reason
pytestmark = pytest.mark.bpf_bad_pointers


EFAULT = 14
PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


class TwoPages:
    """Two pages of our memory, the second made inaccessible (PROT_NONE)."""

    def __init__(self):
        self.mm = mmap.mmap(-1, 2 * PAGE)
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.mm))
        assert _libc.mprotect(self.base + PAGE, PAGE, 0) == 0

    def put(self, off, data):
        ctypes.memmove(self.base + off, data, len(data))

    def close(self):
        _libc.mprotect(self.base + PAGE, PAGE, 3)


@pytest.fixture
def pages():
    p = TwoPages()
    yield p
    p.close()


def _batch(proc, cmd, fd, count, keys_addr, values_addr):
    a = u.make_attr(**{"batch.map_fd": fd, "batch.keys": keys_addr, "batch.values": values_addr,
                       "batch.count": count})
    try:
        proc.bpf(cmd, a)
        return 0, a.batch.count
    except OSError as e:
        return e.errno, a.batch.count


# 10 whole keys fit before the bad page; with shift 2 the 11th key straddles the boundary
@pytest.mark.parametrize("shift", [0, 2])
def test_update_batch_keys_into_a_bad_page(proc, pages, shift):
    fd = create_map(proc, u.BPF_MAP_TYPE_HASH, 4, 8, max_entries=64)
    off = PAGE - 40 - shift
    pages.put(off, b"".join(u32(i) for i in range(10)))
    values = (ctypes.c_uint64 * 20)(*range(100, 120))
    r = _batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 20, pages.base + off, ctypes.addressof(values))
    assert r == (EFAULT, 10)
    assert sorted(keys(proc, fd, 4)) == [u32(i) for i in range(10)]
    assert lookup(proc, fd, u32(9), 8) == (109).to_bytes(8, "little")


def test_update_batch_values_into_a_bad_page(proc, pages):
    fd = create_map(proc, u.BPF_MAP_TYPE_HASH, 4, 8, max_entries=64)
    ks = (ctypes.c_uint32 * 20)(*range(20))
    off = PAGE - 8 * 7
    pages.put(off, b"".join((200 + i).to_bytes(8, "little") for i in range(7)))
    r = _batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 20, ctypes.addressof(ks), pages.base + off)
    assert r == (EFAULT, 7)
    assert sorted(keys(proc, fd, 4)) == [u32(i) for i in range(7)]


def test_delete_batch_keys_into_a_bad_page(proc, pages):
    fd = create_map(proc, u.BPF_MAP_TYPE_HASH, 4, 8, max_entries=64)
    ks = (ctypes.c_uint32 * 30)(*range(30))
    vs = (ctypes.c_uint64 * 30)()
    assert _batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 30, ctypes.addressof(ks), ctypes.addressof(vs)) == (0, 30)
    off = PAGE - 4 * 12
    pages.put(off, b"".join(u32(i) for i in range(12)))
    r = _batch(proc, u.BPF_MAP_DELETE_BATCH, fd, 30, pages.base + off, 0)
    assert r == (EFAULT, 12)
    assert sorted(keys(proc, fd, 4)) == [u32(i) for i in range(12, 30)]


def test_lookup_batch_values_into_a_read_only_page(proc, pages):
    """The writes of a batch fault where the output runs into a page we cannot write."""
    fd = create_map(proc, u.BPF_MAP_TYPE_ARRAY, 4, 8, max_entries=32)
    ks = (ctypes.c_uint32 * 32)(*range(32))
    vs = (ctypes.c_uint64 * 32)(*range(500, 532))
    assert _batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 32, ctypes.addressof(ks), ctypes.addressof(vs)) == (0, 32)
    out_keys = (ctypes.c_uint32 * 32)()
    out_batch = ctypes.c_uint32()
    off = PAGE - 8 * 9
    a = u.make_attr(**{"batch.map_fd": fd, "batch.keys": ctypes.addressof(out_keys),
                       "batch.values": pages.base + off, "batch.count": 32,
                       "batch.out_batch": ctypes.addressof(out_batch)})
    try:
        proc.bpf(u.BPF_MAP_LOOKUP_BATCH, a)
        r = 0
    except OSError as e:
        r = e.errno
    assert r == EFAULT
    got = bytes(pages.mm[off:PAGE])
    assert got == b"".join((500 + i).to_bytes(8, "little") for i in range(9))
    assert list(out_keys)[:9] == list(range(9))


def test_attr_object_over_an_inaccessible_page_gives_EFAULT(proc, pages):
    """A ctypes attr made with from_address does not own its memory: it is read with the checked
    copy (the emulator copies owned attrs directly), so an unreadable one is EFAULT, not a crash."""
    at = u.bpf_attr.from_address(pages.base + PAGE)
    with pytest.raises(OSError) as e:
        proc.bpf(u.BPF_MAP_CREATE, at)
    assert e.value.errno == EFAULT
    # straddling: the first bytes readable, the rest not
    at = u.bpf_attr.from_address(pages.base + PAGE - 16)
    with pytest.raises(OSError) as e:
        proc.bpf(u.BPF_MAP_CREATE, at)
    assert e.value.errno == EFAULT
