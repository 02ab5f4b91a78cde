"""The kernel-version profile governs every way into the syscall.

Task.bpf has short ways for a whole attr Python owns (no size given): the LOOKUP/UPDATE fast path
(syscall.sys_bpf.sys_bpf_elem), the owned-attr path of the other commands, and Task.map_elem (the typed
Map API). Each must answer as the long way (an explicit size) does for the same version: the version's
sizeof(union bpf_attr) (E2BIG past it), and its per-command facts.
"""
import ctypes
import errno

import pytest

import bpfemu
from bpfemu import profiles, uapi as u
from bpfemu.testing.support import create_map, make_attr

PAST_6_1 = 150  # an attr byte past 6.1's 144-byte union bpf_attr, inside 6.12's and 6.18's


def _errno(fn):
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


@pytest.mark.parametrize("version", profiles.VERSIONS)
@pytest.mark.parametrize("cmd", [u.BPF_MAP_LOOKUP_ELEM, u.BPF_MAP_UPDATE_ELEM, u.BPF_MAP_GET_NEXT_KEY,
                                 u.BPF_MAP_CREATE])
def test_owned_attr_ways_answer_as_the_sized_way(version, cmd):
    t = bpfemu.Kernel(version=version).spawn()
    fd = create_map(t, u.BPF_MAP_TYPE_HASH, 4, 4, 8)
    k, v = ctypes.c_uint32(1), ctypes.c_uint32(2)
    if cmd == u.BPF_MAP_CREATE:
        a = make_attr(map_type=u.BPF_MAP_TYPE_ARRAY, key_size=4, value_size=4, max_entries=1)
    else:
        a = make_attr(map_fd=fd, key=ctypes.addressof(k), value=ctypes.addressof(v))
    (ctypes.c_char * ctypes.sizeof(a)).from_buffer(a)[PAST_6_1] = b"\x01"
    owned = _errno(lambda: t.bpf(cmd, a))
    sized = _errno(lambda: t.bpf(cmd, a, ctypes.sizeof(a)))
    assert owned == sized
    if profiles.get(version).attr_size <= PAST_6_1:
        assert owned == errno.E2BIG


@pytest.mark.parametrize("version", profiles.VERSIONS)
def test_map_elem_lookup_and_delete_follows_the_versions_map_types(version):
    t = bpfemu.Kernel(version=version).spawn()
    fd = create_map(t, u.BPF_MAP_TYPE_STACK_TRACE, 4, 8, 4)
    key = bytes(4)
    k, v = ctypes.c_uint32(0), ctypes.create_string_buffer(8)
    by_map_elem = _errno(lambda: t.map_elem(u.BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, key))
    by_syscall = _errno(lambda: t.bpf(u.BPF_MAP_LOOKUP_AND_DELETE_ELEM,
                                      make_attr(map_fd=fd, key=ctypes.addressof(k), value=ctypes.addressof(v))))
    assert by_map_elem == by_syscall
    served = u.BPF_MAP_TYPE_STACK_TRACE in profiles.get(version).lookup_and_delete_types
    assert (by_map_elem == bpfemu.ENOTSUPP) != served
