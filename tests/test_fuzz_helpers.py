"""The fuzz harness itself (bpfemu.testing.fuzz): what makes its comparisons between backends meaningful."""
import ctypes
import errno

import pytest

from bpfemu import uapi as u
from bpfemu.testing.fuzz import NPAGES, PAGE, Arena, Call, Ptr
from bpfemu.usermem import LocalMemory


@pytest.fixture
def arenas():
    a, b = Arena(7, "/x"), Arena(7, "/y")
    yield a, b
    a.close()
    b.close()


def test_two_arenas_of_one_seed_hold_the_same_bytes(arenas):
    a, b = arenas
    assert a.pages()[1:] == b.pages()[1:]
    assert a.base != b.base


@pytest.mark.bpf_bad_pointers
def test_a_guard_pointer_is_unreadable(arenas):
    a, _b = arenas
    p = a.addr(Ptr("guard", 1))
    assert p == a.page(1) + PAGE
    with pytest.raises(OSError) as e:
        LocalMemory().read(p, 1)
    assert e.value.errno == errno.EFAULT
    assert LocalMemory().read(p - 1, 1) == ctypes.string_at(p - 1, 1)


def test_an_attr_ends_at_the_last_page_with_its_fields_in_place(arenas):
    a, _b = arenas
    call = Call(u.BPF_MAP_LOOKUP_ELEM, {"map_fd": 5, "key": Ptr("buf", 1, 8), "flags": 4})
    at, size = a.build(call)
    assert size == u.ATTR_SIZE and at + size == a.page(NPAGES - 1) + PAGE
    raw = ctypes.string_at(at, size)
    off, n = u.attr_field("key")
    assert int.from_bytes(raw[off:off + n], "little") == a.page(1) + 8
    assert u.bpf_attr.from_buffer_copy(raw).map_fd == 5 and u.bpf_attr.from_buffer_copy(raw).flags == 4
