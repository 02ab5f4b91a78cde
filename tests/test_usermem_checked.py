"""LocalMemory's checked copies (bpfemu/usermem.py) against what the kernel's copy_from_user/copy_to_user do.

A read is a pwrite(2) from the caller's address into a per-thread memfd read back through its mapping; a
write a pread(2) from that memfd; read_apply_write both around an operation. Each must give EFAULT where
bpf(2) gives it (NULL page, unmapped, PROT_NONE, and read-only for writes), also when only the end of
the range is bad, and the element commands must leave the caller's memory as the real syscall made in this
process leaves it (a read-only value out cannot be mirrored by the conformance suite's host child).
"""
import ctypes
import errno
import mmap
import threading

import pytest

import bpfemu
from bpfemu import uapi as u
from bpfemu.testing.backends import need_host
from bpfemu.testing.support import create_map, u32, u64, update
from bpfemu.usermem import LocalMemory

pytestmark = pytest.mark.bpf_bad_pointers

PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


@pytest.fixture(params=["prot_none", "read_only", "unmapped"])
def edge(request):
    """(address of a page boundary, protection of the page after it): the page before is read-write."""
    base = _libc.mmap(None, 2 * PAGE, 3, 0x22, -1, 0)
    second = base + PAGE
    if request.param == "unmapped":
        assert _libc.munmap(second, PAGE) == 0
    else:
        assert _libc.mprotect(second, PAGE, 0 if request.param == "prot_none" else 1) == 0
    ctypes.memmove(base, bytes(range(256)) * (PAGE // 256), PAGE)
    yield second, request.param
    _libc.munmap(base, PAGE if request.param == "unmapped" else 2 * PAGE)


def efault(fn, *args):
    with pytest.raises(OSError) as e:
        fn(*args)
    return e.value.errno == errno.EFAULT


@pytest.mark.parametrize("inside", [0, 1, 7])
def test_reads_fault_where_the_range_leaves_readable_memory(edge, inside):
    at, kind = edge
    mem = LocalMemory()
    assert mem.checked
    good = at - 64
    if kind == "read_only":
        assert mem.read(at - inside, 8) == ctypes.string_at(at - inside, 8)
        k, v = mem.read2(good, 4, at - inside, 8)
        assert (k, v) == (ctypes.string_at(good, 4), ctypes.string_at(at - inside, 8))
        return
    assert efault(mem.read, at - inside, 8)
    assert efault(mem.read2, good, 4, at - inside, 8)  # the second range faults
    assert efault(mem.read2, at - inside, 8, good, 4)  # the first one
    assert mem.read(good, 8) == ctypes.string_at(good, 8)  # and the scratch still works afterwards
    calls = []
    assert efault(mem.read_apply_write, at - inside, 8, lambda key, arg: calls.append(key) or b"x", 0, good)
    assert calls == []  # the operation does not run when the key faults


@pytest.mark.parametrize("inside", [0, 3, 7])
def test_writes_fault_where_the_range_leaves_writable_memory(edge, inside):
    at, kind = edge
    mem = LocalMemory()
    before = ctypes.string_at(at - 8, 8)
    assert efault(mem.write, at - inside, b"ABCDEFGH")
    # copy_to_user lands the bytes before the fault
    assert ctypes.string_at(at - 8, 8) == before[:8 - inside] + b"ABCDEFGH"[:inside]
    src = ctypes.create_string_buffer(b"abcd", 4)
    assert efault(mem.read_apply_write, ctypes.addressof(src), 4, lambda key, arg: key * 2, 0, at - inside)
    assert ctypes.string_at(at - 8, 8) == before[:8 - inside] + b"abcdabcd"[:inside]
    dst = ctypes.create_string_buffer(8)
    mem.read_apply_write(ctypes.addressof(src), 4, lambda key, arg: key + arg, b"efgh", ctypes.addressof(dst))
    assert dst.raw == b"abcdefgh"


def test_the_null_page_and_kernel_addresses():
    mem = LocalMemory()
    buf = ctypes.create_string_buffer(8)
    for bad in (0, 16, 4095, 1 << 63, (1 << 64) - 4):
        assert efault(mem.read, bad, 4)
        assert efault(mem.write, bad, b"abcd")
        assert efault(mem.read2, ctypes.addressof(buf), 4, bad, 4)
        assert efault(mem.read_apply_write, bad, 4, lambda k, a: k, 0, ctypes.addressof(buf))
        assert efault(mem.read_apply_write, ctypes.addressof(buf), 4, lambda k, a: k, 0, bad)


def test_a_value_out_into_a_read_only_page_as_the_real_syscall():
    """LOOKUP_ELEM whose value runs into a read-only page: EFAULT and the same bytes before the fault, on
    an emulated task and through the real bpf(2) in this process."""
    need_host(own_process="a read-only page of this process")
    results = []
    for sys in (bpfemu.Kernel().spawn(), bpfemu.Host()):
        for map_type in (u.BPF_MAP_TYPE_HASH, u.BPF_MAP_TYPE_ARRAY):
            fd = create_map(sys, map_type, 4, 8, max_entries=4)
            update(sys, fd, u32(2), u64(0x1122334455667788))
            for inside in (0, 3, 7):
                base = _libc.mmap(None, 2 * PAGE, 3, 0x22, -1, 0)
                try:
                    assert _libc.mprotect(base + PAGE, PAGE, 1) == 0
                    ctypes.memmove(base + PAGE - 8, b"\xee" * 8, 8)
                    k = ctypes.create_string_buffer(u32(2), 4)
                    a = u.make_attr(map_fd=fd, key=ctypes.addressof(k), value=base + PAGE - inside)
                    try:
                        sys.bpf(u.BPF_MAP_LOOKUP_ELEM, a)
                        got = 0
                    except OSError as e:
                        got = e.errno
                    results.append((map_type, inside, got, ctypes.string_at(base + PAGE - 8, 16)))
                finally:
                    _libc.munmap(base, 2 * PAGE)
            sys.close(fd)
    emu, host = results[:len(results) // 2], results[len(results) // 2:]
    assert emu == host
    assert all(r[2] == errno.EFAULT for r in emu)


@pytest.mark.parametrize("pages", [1, 2, 4, 8, 64, 256])
def test_a_hole_just_unmapped_stays_a_hole_at_a_threads_first_copy(pages):
    """A pointer into memory the caller has just unmapped is EFAULT, as bpf(2) gives it, also when the copy
    is the thread's first (when the thread's scratch memfd is mapped): the scratch must not land in the hole.
    It did for a hole of exactly its size (4 pages): the "bad" key was then read from the scratch."""
    out = []

    def fresh_thread():
        mem = LocalMemory()
        base = _libc.mmap(None, pages * PAGE, 3, 0x22, -1, 0)
        assert _libc.munmap(base, pages * PAGE) == 0
        dst = ctypes.create_string_buffer(8)
        for at in (base, base + pages * PAGE // 2, base + pages * PAGE - 8):
            out.append(efault(mem.read, at, 8))
            out.append(efault(mem.read_apply_write, at, 8, lambda k, a: k, 0, ctypes.addressof(dst)))
            out.append(efault(mem.write, at, b"12345678"))

    th = threading.Thread(target=fresh_thread)
    th.start()
    th.join()
    assert out == [True] * 9
