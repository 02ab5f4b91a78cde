"""Object ids: *_GET_NEXT_ID enumeration and *_GET_FD_BY_ID.

The host has objects of its own (maps and programs of other processes come and go), so these
tests never assume which ids exist: they compare the ids of objects they create themselves.
"""
import errno

import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import (create_map, err, get_next_id, hash_map, lookup, make_attr, map_fd_by_id, map_id,
                      next_key, u32, u64, update, wait_gone)

INT_MAX = 2**31 - 1
NEXT_ID_CMDS = [u.BPF_MAP_GET_NEXT_ID, u.BPF_PROG_GET_NEXT_ID, u.BPF_LINK_GET_NEXT_ID, u.BPF_BTF_GET_NEXT_ID]


def enumerate_ids(proc, start, upto, cmd=u.BPF_MAP_GET_NEXT_ID):
    """Ids the kernel returns from start, until one is past upto (or the end)."""
    out, i = [], start
    while True:
        try:
            i = get_next_id(proc, i, cmd)
        except OSError as e:
            assert e.errno == errno.ENOENT
            return out
        out.append(i)
        if i >= upto:
            return out


def test_ids_increase(proc):
    ids = [map_id(proc, hash_map(proc)) for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3 and ids[0] > 0


def test_enumeration_returns_our_ids_in_order(proc):
    ids = [map_id(proc, hash_map(proc)) for _ in range(4)]
    seen = enumerate_ids(proc, ids[0] - 1, ids[-1])
    assert seen == sorted(seen)
    assert [i for i in seen if i in ids] == ids
    assert get_next_id(proc, ids[1] - 1) == ids[1]  # start_id itself is excluded: next is strictly greater


@pytest.mark.parametrize("cmd", NEXT_ID_CMDS, ids=lambda c: u.cmd_name(c))
def test_next_id_ENOENT_at_the_end(proc, cmd):
    assert err(get_next_id, proc, INT_MAX - 1, cmd) == errno.ENOENT


@pytest.mark.parametrize("cmd", NEXT_ID_CMDS, ids=lambda c: u.cmd_name(c))
@pytest.mark.parametrize("start", [INT_MAX, INT_MAX + 1, 2**32 - 1])
def test_start_id_from_INT_MAX_is_EINVAL(proc, cmd, start):
    assert err(get_next_id, proc, start, cmd) == errno.EINVAL


def test_next_id_with_open_flags_is_EINVAL(proc):
    # open_flags lies past next_id, the command's last field
    assert err(proc.bpf, u.BPF_MAP_GET_NEXT_ID, make_attr(start_id=0, open_flags=u.BPF_F_RDONLY)) == errno.EINVAL


def test_a_freed_id_leaves_the_enumeration_and_is_not_reused(proc):
    fd = hash_map(proc)
    old = map_id(proc, fd)
    proc.close(fd)
    assert wait_gone(proc, old)
    assert err(map_fd_by_id, proc, old) == errno.ENOENT
    assert old not in enumerate_ids(proc, old - 1, old)
    new = map_id(proc, hash_map(proc))
    assert new > old


def test_fd_by_id_opens_the_same_map(proc):
    fd = hash_map(proc)
    fd2 = map_fd_by_id(proc, map_id(proc, fd))
    assert fd2 != fd
    update(proc, fd, u32(1), u64(11))
    assert lookup(proc, fd2, u32(1), 8) == u64(11)


@pytest.mark.parametrize("missing", [0, INT_MAX - 1])
def test_fd_by_id_of_a_missing_id_is_ENOENT(proc, missing):
    assert err(map_fd_by_id, proc, missing) == errno.ENOENT


def test_fd_by_id_RDONLY_gives_a_read_only_fd(proc):
    fd = hash_map(proc)
    update(proc, fd, u32(1), u64(1))
    ro = map_fd_by_id(proc, map_id(proc, fd), u.BPF_F_RDONLY)
    assert lookup(proc, ro, u32(1), 8) == u64(1)
    assert next_key(proc, ro, None, 4) == u32(1)
    assert err(update, proc, ro, u32(1), u64(2)) == errno.EPERM
    assert err(proc.bpf, u.BPF_MAP_DELETE_ELEM, make_attr(map_fd=ro, key=0)) == errno.EPERM


def test_fd_by_id_WRONLY_gives_a_write_only_fd(proc):
    fd = hash_map(proc)
    wo = map_fd_by_id(proc, map_id(proc, fd), u.BPF_F_WRONLY)
    update(proc, wo, u32(1), u64(2))
    assert err(lookup, proc, wo, u32(1), 8) == errno.EPERM
    assert err(next_key, proc, wo, None, 4) == errno.EPERM
    assert lookup(proc, fd, u32(1), 8) == u64(2)


def test_fd_by_id_mode_does_not_depend_on_how_the_map_was_created(proc):
    fd = create_map(proc, u.BPF_MAP_TYPE_HASH, flags=u.BPF_F_RDONLY)
    assert err(update, proc, fd, u32(1), u64(1)) == errno.EPERM
    rw = map_fd_by_id(proc, map_id(proc, fd))
    update(proc, rw, u32(1), u64(1))


@pytest.mark.parametrize("flags", [u.BPF_F_RDONLY | u.BPF_F_WRONLY, 1, u.BPF_F_RDONLY_PROG, u.BPF_F_PATH_FD,
                                   u.BPF_F_TOKEN_FD])
def test_fd_by_id_other_open_flags_are_EINVAL(proc, flags):
    fd = hash_map(proc)
    assert err(map_fd_by_id, proc, map_id(proc, fd), flags) == errno.EINVAL


def test_fd_by_id_checks_flags_before_the_id(proc):
    assert err(map_fd_by_id, proc, INT_MAX - 1, 1) == errno.EINVAL


@pytest.mark.parametrize("cmd,field", [(u.BPF_PROG_GET_FD_BY_ID, "prog_id"), (u.BPF_LINK_GET_FD_BY_ID, "link_id"),
                                       (u.BPF_BTF_GET_FD_BY_ID, "btf_id")])
def test_other_kinds_fd_by_id(proc, cmd, field):
    assert err(proc.bpf, cmd, make_attr(**{field: INT_MAX - 1})) == errno.ENOENT
    # progs and links take no open_flags at all; BTF only BPF_F_TOKEN_FD
    assert err(proc.bpf, cmd, make_attr(**{field: INT_MAX - 1, "open_flags": u.BPF_F_RDONLY})) == errno.EINVAL
