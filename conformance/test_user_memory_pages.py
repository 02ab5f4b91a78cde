"""Batches whose key or value arrays run into an inaccessible page.

The emulator reads the small pieces of a batch from whole pages and queues writes to pages it
already wrote (bpfemu/usermem.py, UserCopy): these tests pin down that EFAULT still comes at
exactly the element the kernel stops at, with the count and the map state the kernel leaves.
"""
import ctypes
import errno
import struct
import mmap

import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import create_map, err, keys, lookup, u32, update

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


# -- scalar attr fields written back across a page the caller cannot write --------------------------------

class ReadOnlyHalf:
    """Two readable pages, one of them (the first or the second) read-only."""

    def __init__(self, ro_second):
        self.mm = mmap.mmap(-1, 2 * PAGE)
        self.base = ctypes.addressof(ctypes.c_char.from_buffer(self.mm))
        self.ro = self.base + (PAGE if ro_second else 0)

    def place(self, attr, field, split):
        """Copy attr so that ``field`` has ``split`` bytes before the page boundary; returns (addr, size)."""
        off, size = u.attr_field(field)
        raw = bytes(attr)[:off + size + 8]
        at = self.base + PAGE - off - split
        ctypes.memmove(at, raw, len(raw))
        assert _libc.mprotect(self.ro, PAGE, 1) == 0
        return at, len(raw)

    def field(self, at, field):
        off, size = u.attr_field(field)
        return ctypes.string_at(at + off, size)

    def close(self):
        _libc.mprotect(self.ro, PAGE, 3)


def _scalar_cases(who):
    """(command, attr, the field it writes back) with a result that differs from the field's input."""
    arr = create_map(who, u.BPF_MAP_TYPE_ARRAY, 4, 8, 4)
    h = create_map(who, u.BPF_MAP_TYPE_HASH, 4, 8, 4, flags=u.BPF_F_ZERO_SEED)
    ks = (ctypes.c_uint32 * 4)(0, 1, 2, 9)  # index 9 is past the array: E2BIG after 3 elements
    vs = (ctypes.c_uint64 * 4)(10, 11, 12, 13)
    info = ctypes.create_string_buffer(200)

    def batch(fd, count):
        return u.make_attr(**{"batch.map_fd": fd, "batch.count": count, "batch.keys": ctypes.addressof(ks),
                              "batch.values": ctypes.addressof(vs)})
    keep = (ks, vs, info)
    return keep, arr, h, [
        (u.BPF_MAP_GET_NEXT_ID, u.make_attr(start_id=0, next_id=0xAAAAAAAA), "next_id"),
        (u.BPF_OBJ_GET_INFO_BY_FD, u.make_attr(**{"info.bpf_fd": h, "info.info_len": 200,
                                                  "info.info": ctypes.addressof(info)}), "info.info_len"),
        (u.BPF_MAP_UPDATE_BATCH, batch(arr, 4), "batch.count"),
        (u.BPF_MAP_UPDATE_BATCH, batch(h, 3), "batch.count"),
        (u.BPF_MAP_LOOKUP_BATCH, batch(h, 3), "batch.count"),
        (u.BPF_MAP_DELETE_BATCH, batch(h, 3), "batch.count"),
    ]


@pytest.mark.parametrize("ro_second", [True, False], ids=["rw|ro", "ro|rw"])
@pytest.mark.parametrize("split", [1, 2, 3])
def test_scalar_attr_fields_are_stored_whole_or_not_at_all(proc, backend, ro_second, split):
    """next_id, info_len, batch.count straddling a read-only page: EFAULT, and not one byte of the field
    written (the kernel's store of a u32 field faults as a whole). On the host the caller is this process
    (a HostTask child copies the attr into its own writable memory)."""
    from bpfemu import Host
    who = Host() if backend.name == "host" else proc
    keep, arr, h, cases = _scalar_cases(who)
    for cmd, attr, field in cases:
        mem = ReadOnlyHalf(ro_second)
        try:
            at, size = mem.place(attr, field, split)
            before = mem.field(at, field)
            with pytest.raises(OSError) as e:
                who.bpf(cmd, at, size)
            assert e.value.errno == EFAULT and mem.field(at, field) == before, (cmd, field)
        finally:
            mem.close()
    # every batch command stores count = 0 before its first element (6.18), so that store faulted first
    assert [lookup(who, arr, u32(i), 8) for i in range(3)] == [bytes(8)] * 3
    assert keys(who, h, 4) == []
    for fd in (arr, h):
        who.close(fd)


@pytest.mark.parametrize("voff", [4, 8, 12, 0])
def test_lookup_batch_into_overlapping_keys_and_values(backend, proc, voff):
    """LOOKUP_BATCH whose values buffer overlaps its keys buffer: the kernel copies each element's key, then
    its value, so later elements overwrite earlier ones in the shared bytes. (Found by the differential
    fuzzer: a host task in a child process copied each buffer separately, which the host kernel in the
    caller's process does not; the child now shares one copy between overlapping buffers.)"""
    for task in (proc, backend.spawn()):  # on the host: this process, and a child task
        fd = create_map(task, u.BPF_MAP_TYPE_ARRAY, 4, 8, 8)
        for i in range(8):
            update(task, fd, struct.pack("<I", i), struct.pack("<Q", 0xA0 + i))
        buf = ctypes.create_string_buffer(bytes(range(256)) * 16, 4096)
        attr = u.make_attr(**{"batch.keys": ctypes.addressof(buf), "batch.values": ctypes.addressof(buf) + voff,
                              "batch.out_batch": ctypes.addressof(buf) + 4092, "batch.map_fd": fd,
                              "batch.count": 64})
        assert err(task.bpf, u.BPF_MAP_LOOKUP_BATCH, attr) == errno.ENOENT
        assert attr.batch.count == 8
        want = bytearray(bytes(range(256)) * 16)
        for i in range(8):  # the kernel's order: key i, then value i
            want[4 * i:4 * i + 4] = struct.pack("<I", i)
            want[voff + 8 * i:voff + 8 * i + 8] = struct.pack("<Q", 0xA0 + i)
        want[4092:4096] = struct.pack("<I", 7)  # out_batch: the last key
        assert buf.raw == bytes(want), task
