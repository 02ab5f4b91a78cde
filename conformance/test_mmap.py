"""mmap(2) of BPF_F_MMAPABLE arrays: shared memory with the syscalls, freeze interplay, refusals.

``proc.mmap(fd, length, offset, writable)`` is a MAP_SHARED mapping of the map fd. On the host
the task is a child process, so the mapping is made in the test process from the same open file
(passed over SCM_RIGHTS): the kernel counts it as the map's writer just as it would the child's.
"""
import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import array_map, create_map, err, freeze, hash_map, lookup, u32, u64, update

PAGE = 4096
MM = u.BPF_F_MMAPABLE


def mmap_array(proc, value_size=12, max_entries=3, flags=0):
    return array_map(proc, value_size=value_size, max_entries=max_entries, flags=MM | flags)


def test_values_are_shared_both_ways(proc):
    fd = mmap_array(proc)
    with proc.mmap(fd, PAGE) as m:
        assert len(m) == PAGE and m[0:PAGE] == bytes(PAGE)
        m[16:20] = b"abcd"                      # element 1 starts at round_up(12, 8) = 16
        assert lookup(proc, fd, u32(1), 12) == b"abcd" + bytes(8)
        update(proc, fd, u32(2), b"x" * 12)
        assert m[32:48] == b"x" * 12 + bytes(4)  # the padding after a value stays as it was
        m[44:48] = b"pppp"
        assert lookup(proc, fd, u32(2), 12) == b"x" * 12


def test_second_page_at_an_offset(proc):
    fd = mmap_array(proc, value_size=8, max_entries=1024)  # 8 KiB of values
    with proc.mmap(fd, PAGE, offset=PAGE) as m:
        m[8:16] = u64(0x1234)
        assert lookup(proc, fd, u32(513), 8) == u64(0x1234)
    with proc.mmap(fd, 10) as m:               # a length inside the first page is fine
        assert len(m) == 10


def test_read_only_mapping_refuses_writes(proc):
    fd = mmap_array(proc)
    update(proc, fd, u32(0), b"v" * 12)
    with proc.mmap(fd, PAGE, writable=False) as m:
        assert m[0:12] == b"v" * 12
        with pytest.raises(TypeError):
            m[0:1] = b"w"


@pytest.mark.parametrize("length,offset", [(2 * PAGE, 0), (10, PAGE), (PAGE, 100), (0, 0)])
def test_mapping_outside_the_values_is_EINVAL(proc, length, offset):
    fd = mmap_array(proc)                       # 48 bytes of values: one page
    assert err(proc.mmap, fd, length, offset) == 22


def test_maps_that_cannot_be_mapped(proc):
    assert err(proc.mmap, array_map(proc), PAGE) == 22                       # not MMAPABLE
    assert err(proc.mmap, hash_map(proc), PAGE) == 524                       # no map_mmap op
    assert err(proc.mmap, create_map(proc, u.BPF_MAP_TYPE_PERCPU_ARRAY), PAGE) == 524
    assert err(proc.mmap, 99, PAGE) == 9


def test_writable_mapping_blocks_freeze_until_unmapped(proc):
    fd = mmap_array(proc)
    m = proc.mmap(fd, PAGE)
    assert err(freeze, proc, fd) == 16          # EBUSY: a writer is alive
    ro = proc.mmap(fd, PAGE, writable=False)    # read-only mappings do not count
    m.close()
    assert err(freeze, proc, fd) == 0
    assert err(proc.mmap, fd, PAGE) == 1        # frozen: no writable mapping (EPERM)
    with proc.mmap(fd, PAGE, writable=False) as r:
        assert r[0:4] == bytes(4)
    ro.close()


def test_fd_modes(proc):
    ro = mmap_array(proc, flags=u.BPF_F_RDONLY)
    assert err(proc.mmap, ro, PAGE) == 13       # EACCES: shared writable needs a writable fd
    # a read-only fd loses VM_SHARED in do_mmap, which bpf_map_mmap refuses: EINVAL
    assert err(proc.mmap, ro, PAGE, writable=False) == 22
    wo = mmap_array(proc, flags=u.BPF_F_WRONLY)
    assert err(proc.mmap, wo, PAGE) == 13       # every mapping needs a readable fd
    assert err(proc.mmap, wo, PAGE, writable=False) == 13
    rp = mmap_array(proc, flags=u.BPF_F_RDONLY_PROG)
    assert err(proc.mmap, rp, PAGE) == 13       # programs may only read it: no writable mapping
    with proc.mmap(rp, PAGE, writable=False) as m:
        assert m[0:4] == bytes(4)


def test_mapping_outlives_the_fd(proc):
    fd = mmap_array(proc)
    m = proc.mmap(fd, PAGE)
    update(proc, fd, u32(0), b"k" * 12)
    proc.close(fd)
    assert m[0:12] == b"k" * 12
    m[0:1] = b"z"
    m.close()
