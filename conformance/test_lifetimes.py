"""Object lifetimes: an object lives while an fd (in any task), a pin or an outer map holds it.

Tasks come from fork, dup, spawn and fd passing (SCM_RIGHTS on the host). Whether an object is
alive is read from its id: MAP_GET_FD_BY_ID gives ENOENT once it is freed (the host frees
asynchronously, so disappearing is polled with wait_gone).
"""
import errno

import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import (array_map, create_map, delete, err, hash_map, id_alive, lookup, map_id, obj_get, pin,
                      u32, u64, update, wait_gone)


def test_close_of_a_closed_fd_is_EBADF(proc):
    fd = hash_map(proc)
    proc.close(fd)
    assert err(proc.close, fd) == errno.EBADF
    assert err(proc.close, 999) == errno.EBADF


def test_new_fds_take_the_lowest_free_number(proc):
    a, b, c = hash_map(proc), hash_map(proc), hash_map(proc)
    assert (a, b, c) == (3, 4, 5)
    proc.close(b)
    assert proc.dup(a) == 4
    assert hash_map(proc) == 6


def test_dup_shares_the_object_and_the_last_close_frees_it(proc):
    fd = hash_map(proc)
    mid = map_id(proc, fd)
    fd2 = proc.dup(fd)
    update(proc, fd, u32(1), u64(7))
    assert lookup(proc, fd2, u32(1), 8) == u64(7)
    assert map_id(proc, fd2) == mid
    proc.close(fd)
    assert id_alive(proc, mid)
    proc.close(fd2)
    assert wait_gone(proc, mid)
    assert err(proc.bpf, u.BPF_MAP_GET_FD_BY_ID, u.make_attr(map_id=mid)) == errno.ENOENT


def test_fork_shares_open_maps_until_both_close(proc):
    fd = hash_map(proc)
    mid = map_id(proc, fd)
    child = proc.fork()
    try:
        update(child, fd, u32(1), u64(2))
        assert lookup(proc, fd, u32(1), 8) == u64(2)
        proc.close(fd)
        assert id_alive(proc, mid)
        assert lookup(child, fd, u32(1), 8) == u64(2)
        child.exit()
        assert wait_gone(proc, mid)
    finally:
        child.exit()


def test_exit_closes_every_fd(backend, proc):
    t = backend.spawn()
    ids = [map_id(t, hash_map(t)) for _ in range(3)]
    t.exit()
    assert all(wait_gone(proc, i) for i in ids)


def test_unprivileged_forked_child_keeps_using_inherited_fds(proc):
    fd = hash_map(proc)
    child = proc.fork(uid=1000, caps=())
    try:
        update(child, fd, u32(3), u64(4))
        assert lookup(child, fd, u32(3), 8) == u64(4)
        assert err(hash_map, child, flags=0) == errno.EPERM  # but cannot create maps itself
        assert err(child.bpf, u.BPF_MAP_GET_NEXT_ID, u.make_attr(start_id=0)) == errno.EPERM
    finally:
        child.exit()


def test_send_fds_passes_the_open_file(backend, proc):
    other = backend.spawn(uid=1000, caps=())
    fd = hash_map(proc)
    ro = obj_get_rdonly(proc, fd)
    mid = map_id(proc, fd)
    got = proc.send_fds(other, [fd, ro])
    assert len(got) == 2 and got[0] != got[1]
    update(other, got[0], u32(1), u64(9))
    assert lookup(proc, fd, u32(1), 8) == u64(9)
    # the access mode travels with the open file
    assert err(update, other, got[1], u32(1), u64(1)) == errno.EPERM
    proc.close(fd)
    proc.close(ro)
    assert id_alive(proc, mid)
    other.exit()
    assert wait_gone(proc, mid)


def obj_get_rdonly(proc, fd):
    """A read-only fd of the same map (through its id)."""
    return proc.bpf(u.BPF_MAP_GET_FD_BY_ID, u.make_attr(map_id=map_id(proc, fd), open_flags=u.BPF_F_RDONLY))


def test_send_fds_of_a_closed_fd_is_EBADF(backend, proc):
    other = backend.spawn()
    assert err(proc.send_fds, other, [77]) == errno.EBADF


def test_received_fds_take_the_lowest_free_numbers(backend, proc):
    other = backend.spawn()
    fds = [hash_map(proc) for _ in range(2)]
    theirs = hash_map(other)
    other.close(theirs)
    assert proc.send_fds(other, fds) == [3, 4]


def test_pin_survives_the_exit_of_its_creator(backend, proc):
    t = backend.spawn()
    fd = hash_map(t)
    update(t, fd, u32(5), u64(6))
    mid = map_id(t, fd)
    pin(t, fd, proc.bpffs + "/kept")
    t.exit()
    fd2 = obj_get(proc, proc.bpffs + "/kept")
    assert map_id(proc, fd2) == mid
    assert lookup(proc, fd2, u32(5), 8) == u64(6)


def test_unlink_of_the_last_holder_frees_the_object(backend, proc):
    t = backend.spawn()
    mid = map_id(t, hash_map(t))
    pin(t, 3, proc.bpffs + "/m")
    t.exit()
    assert id_alive(proc, mid)
    proc.unlink(proc.bpffs + "/m")
    assert wait_gone(proc, mid)


def test_unlink_with_an_fd_still_open_keeps_the_object(proc):
    fd = hash_map(proc)
    mid = map_id(proc, fd)
    pin(proc, fd, proc.bpffs + "/m")
    proc.unlink(proc.bpffs + "/m")
    assert id_alive(proc, mid)
    proc.close(fd)
    assert wait_gone(proc, mid)


def test_two_pins_of_one_object(proc):
    fd = hash_map(proc)
    mid = map_id(proc, fd)
    pin(proc, fd, proc.bpffs + "/a")
    pin(proc, fd, proc.bpffs + "/b")
    proc.close(fd)
    proc.unlink(proc.bpffs + "/a")
    assert id_alive(proc, mid)
    proc.unlink(proc.bpffs + "/b")
    assert wait_gone(proc, mid)


def test_rename_over_a_pin_drops_the_replaced_object(proc):
    keep, lose = hash_map(proc), hash_map(proc)
    keep_id, lose_id = map_id(proc, keep), map_id(proc, lose)
    pin(proc, keep, proc.bpffs + "/keep")
    pin(proc, lose, proc.bpffs + "/lose")
    proc.close(keep)
    proc.close(lose)
    proc.rename(proc.bpffs + "/keep", proc.bpffs + "/lose")
    assert wait_gone(proc, lose_id)
    assert map_id(proc, obj_get(proc, proc.bpffs + "/lose")) == keep_id


def test_objects_from_OBJ_GET_hold_like_any_fd(proc):
    fd = hash_map(proc)
    mid = map_id(proc, fd)
    pin(proc, fd, proc.bpffs + "/m")
    proc.close(fd)
    fd2 = obj_get(proc, proc.bpffs + "/m")
    proc.unlink(proc.bpffs + "/m")
    assert id_alive(proc, mid)
    proc.close(fd2)
    assert wait_gone(proc, mid)


def _outer(proc, inner_fd):
    return create_map(proc, u.BPF_MAP_TYPE_ARRAY_OF_MAPS, key_size=4, value_size=4, max_entries=2,
                      inner_map_fd=inner_fd)


def test_an_outer_map_holds_its_inner_maps(proc):
    inner = array_map(proc, value_size=4, max_entries=1)
    inner_id = map_id(proc, inner)
    outer = _outer(proc, inner)
    update(proc, outer, u32(0), u32(inner))
    proc.close(inner)
    assert id_alive(proc, inner_id)
    assert lookup(proc, outer, u32(0), 4) == u32(inner_id)
    delete(proc, outer, u32(0))
    assert wait_gone(proc, inner_id)


def test_freeing_the_outer_map_frees_the_inner_ones(proc):
    inner = array_map(proc, value_size=4, max_entries=1)
    inner_id = map_id(proc, inner)
    outer = _outer(proc, inner)
    outer_id = map_id(proc, outer)
    update(proc, outer, u32(0), u32(inner))
    update(proc, outer, u32(1), u32(inner))  # two slots: two references
    proc.close(inner)
    delete(proc, outer, u32(0))
    assert id_alive(proc, inner_id)
    proc.close(outer)
    assert wait_gone(proc, outer_id)
    assert wait_gone(proc, inner_id)


def test_a_template_inner_map_is_not_held(proc):
    inner = array_map(proc, value_size=4, max_entries=1)
    inner_id = map_id(proc, inner)
    outer = _outer(proc, inner)
    proc.close(inner)
    assert wait_gone(proc, inner_id)
    assert id_alive(proc, map_id(proc, outer))
