"""The syscall front: attr size and tail rules, unknown commands, bad pointers."""
import ctypes

import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import addr, buf, err, hash_map, make_attr

ATTR = u.ATTR_SIZE


def big_attr(n, **fields):
    """A bytearray of n bytes starting with an attr holding fields."""
    b = bytearray(max(n, ATTR))
    a = make_attr(**fields)
    b[:ATTR] = bytes(a)
    return b


def test_the_kernel_union_bpf_attr_is_ATTR_SIZE_bytes(proc, profile):
    """A nonzero last byte of the kernel's union is inside it (CHECK_ATTR of MAP_CREATE: EINVAL); the byte
    after it is past it (E2BIG): the union is ``profile.attr_size`` bytes (uapi.ATTR_SIZE in the newest)."""
    size = profile.attr_size
    b = big_attr(size + 1, map_type=u.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=4, max_entries=1)
    b[size - 1] = 1
    assert err(proc.bpf, u.BPF_MAP_CREATE, b, size) == 22
    b[size - 1], b[size] = 0, 1
    assert err(proc.bpf, u.BPF_MAP_CREATE, b, size + 1) == 7
    b[size] = 0
    assert proc.bpf(u.BPF_MAP_CREATE, b, size + 1) == 3


@pytest.mark.parametrize("size", [ATTR + 1, ATTR + 8, 4096])
def test_larger_attr_with_zero_tail_is_accepted(proc, size):
    b = big_attr(size, map_type=u.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=4, max_entries=1)
    assert proc.bpf(u.BPF_MAP_CREATE, b, size) == 3


@pytest.mark.parametrize("at", [ATTR, ATTR + 7, 4095])
def test_nonzero_tail_gives_E2BIG(proc, at):
    b = big_attr(4096, map_type=u.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=4, max_entries=1)
    b[at] = 1
    assert err(proc.bpf, u.BPF_MAP_CREATE, b, 4096) == 7


def test_size_over_a_page_gives_E2BIG_even_when_zero(proc):
    b = big_attr(4097, map_type=u.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=4, max_entries=1)
    assert err(proc.bpf, u.BPF_MAP_CREATE, b, 4097) == 7


def test_E2BIG_wins_over_unknown_command(proc):
    b = bytearray(200)
    b[190] = 1
    assert err(proc.bpf, 999, b, 200) == 7


def test_short_size_reads_as_zero_filled(proc):
    # only map_type..max_entries are passed: the rest reads as zero
    a = make_attr(map_type=u.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=4, max_entries=1, map_flags=0xFFFF)
    assert proc.bpf(u.BPF_MAP_CREATE, a, 16) == 3
    # with map_flags inside the size, the garbage flags are seen
    assert err(proc.bpf, u.BPF_MAP_CREATE, a, 20) == 22


def test_size_zero_is_an_all_zero_attr(proc):
    # MAP_CREATE of map type 0 (UNSPEC): EINVAL
    assert err(proc.bpf, u.BPF_MAP_CREATE, bytearray(ATTR), 0) == 22


@pytest.mark.parametrize("cmd", [u.MAX_BPF_CMD, 100, 0x7FFFFFFF, -1])
def test_unknown_command_gives_EINVAL(proc, cmd):
    assert err(proc.bpf, cmd & 0xFFFFFFFF if cmd < 0 else cmd, bytearray(ATTR)) == 22


def test_nonzero_byte_after_last_field_gives_EINVAL(proc):
    fd = hash_map(proc)
    k, v = buf(4), buf(8)
    a = bytearray(make_attr(map_fd=fd, key=addr(k), value=addr(v)))
    a[u.offsetofend("flags")] = 1  # first byte after MAP_LOOKUP_ELEM's last field
    assert err(proc.bpf, u.BPF_MAP_LOOKUP_ELEM, a) == 22
    # MAP_DELETE_ELEM's last field is key: a value pointer is refused
    a = make_attr(map_fd=fd, key=addr(k), value=addr(v))
    assert err(proc.bpf, u.BPF_MAP_DELETE_ELEM, a) == 22


def test_attr_at_NULL_gives_EFAULT(proc):
    assert err(proc.bpf, u.BPF_MAP_CREATE, 0, ATTR) == 14


def test_attr_at_NULL_with_size_zero_is_read_as_nothing(proc):
    # nothing to copy: the all-zero attr of MAP_CREATE is map type 0 (EINVAL), not EFAULT
    assert err(proc.bpf, u.BPF_MAP_CREATE, 0, 0) == 22


def test_null_key_pointer_gives_EFAULT(proc):
    fd = hash_map(proc)
    v = buf(8)
    assert err(proc.bpf, u.BPF_MAP_LOOKUP_ELEM, make_attr(map_fd=fd, key=0, value=addr(v))) == 14
    assert err(proc.bpf, u.BPF_MAP_UPDATE_ELEM, make_attr(map_fd=fd, key=0, value=addr(v))) == 14
    assert err(proc.bpf, u.BPF_MAP_DELETE_ELEM, make_attr(map_fd=fd, key=0)) == 14


def test_null_value_pointer(proc):
    fd = hash_map(proc)
    k = buf(b"\1\0\0\0")
    # update reads the value before anything else: EFAULT
    assert err(proc.bpf, u.BPF_MAP_UPDATE_ELEM, make_attr(map_fd=fd, key=addr(k), value=0)) == 14
    # lookup of a missing key never touches the value: ENOENT
    assert err(proc.bpf, u.BPF_MAP_LOOKUP_ELEM, make_attr(map_fd=fd, key=addr(k), value=0)) == 2
    v = buf(8)
    proc.bpf(u.BPF_MAP_UPDATE_ELEM, make_attr(map_fd=fd, key=addr(k), value=addr(v)))
    # lookup of a present key writes the value: EFAULT
    assert err(proc.bpf, u.BPF_MAP_LOOKUP_ELEM, make_attr(map_fd=fd, key=addr(k), value=0)) == 14


def test_unmapped_pointer_gives_EFAULT(proc):
    fd = hash_map(proc)
    v = buf(8)
    bad = 0x10  # inside the never-mapped first page
    assert err(proc.bpf, u.BPF_MAP_UPDATE_ELEM, make_attr(map_fd=fd, key=bad, value=addr(v))) == 14


def test_ctypes_attr_and_bytearray_attr_are_the_same_call(proc):
    a = make_attr(map_type=u.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=4, max_entries=1)
    fd1 = proc.bpf(u.BPF_MAP_CREATE, a)
    fd2 = proc.bpf(u.BPF_MAP_CREATE, bytearray(bytes(a)))
    assert (fd1, fd2) == (3, 4)
    assert ctypes.sizeof(a) == ATTR
