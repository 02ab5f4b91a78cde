"""fd numbering and the lifetime of a map through dup, fork, close and exit."""
from bpfemu import uapi as u

from bpfemu.testing.support import array_map, err, hash_map, lookup, map_id, u32, u64, update, wait_gone


def test_fds_start_at_3_and_take_the_lowest_free(proc):
    fds = [array_map(proc, max_entries=1) for _ in range(4)]
    assert fds == [3, 4, 5, 6]
    proc.close(4)
    assert array_map(proc, max_entries=1) == 4
    proc.close(3)
    proc.close(5)
    assert array_map(proc, max_entries=1) == 3
    assert array_map(proc, max_entries=1) == 5
    assert array_map(proc, max_entries=1) == 7


def test_close_of_a_closed_fd_is_EBADF(proc):
    fd = array_map(proc, max_entries=1)
    proc.close(fd)
    assert err(proc.close, fd) == 9
    assert err(proc.close, 77) == 9


def test_map_commands_on_a_closed_fd_give_EBADF(proc):
    fd = hash_map(proc)
    proc.close(fd)
    assert err(update, proc, fd, u32(1), u64(1)) == 9
    assert err(lookup, proc, fd, u32(1), 8) == 9


def test_map_command_on_a_non_map_fd_gives_EINVAL(proc):
    # fd 0 is open but it is no map
    assert err(update, proc, 0, u32(1), u64(1)) == 22


def test_dup_shares_the_map(proc):
    fd = hash_map(proc)
    fd2 = proc.dup(fd)
    assert fd2 == fd + 1
    update(proc, fd, u32(1), u64(7))
    proc.close(fd)
    assert lookup(proc, fd2, u32(1), 8) == u64(7)


def test_map_lives_while_any_fd_holds_it(backend):
    proc = backend.spawn()
    fd = hash_map(proc)
    mid = map_id(proc, fd)
    update(proc, fd, u32(1), u64(5))
    fd2 = proc.dup(fd)
    proc.close(fd)
    assert lookup(proc, fd2, u32(1), 8) == u64(5)
    proc.close(fd2)
    watcher = backend.spawn()
    assert wait_gone(watcher, mid)


def test_fork_shares_open_maps_and_exit_drops_them(backend):
    proc = backend.spawn()
    fd = hash_map(proc)
    mid = map_id(proc, fd)
    child = proc.fork()
    proc.close(fd)
    # the child still holds the map through the fd it inherited
    update(child, fd, u32(2), u64(9))
    assert lookup(child, fd, u32(2), 8) == u64(9)
    # a new fd in the child is the lowest free one: the inherited fd is taken
    assert array_map(child, max_entries=1) == fd + 1
    child.exit()
    assert wait_gone(proc, mid)


def test_fork_child_fd_table_is_a_copy(proc):
    fd = hash_map(proc)
    child = proc.fork()
    child.close(fd)
    # closing in the child does not close the parent's fd
    update(proc, fd, u32(1), u64(1))
    assert lookup(proc, fd, u32(1), 8) == u64(1)
    child.exit()


def test_map_create_returns_cloexec_fd_from_the_same_table(proc):
    fd = hash_map(proc)
    fd2 = proc.dup(fd)
    proc.close(fd)
    assert hash_map(proc) == fd
    assert u.BPF_MAP_CREATE == 0
    proc.close(fd2)
