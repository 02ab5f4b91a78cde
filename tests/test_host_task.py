"""Host().spawn() tasks as a user meets them: many threads on one task, a child that dies, and the private
bpffs every Host's tasks share at /sys/fs/bpf (nothing of theirs reaches the machine's).

Host only: skipped where the real syscall is unusable, failed then with BPFEMU_REQUIRE_HOST=1.
"""
import errno
import os
import signal
import threading

import pytest

from bpfemu import Map
from bpfemu import uapi as u
from bpfemu.host import Host
from bpfemu.testing.backends import HostBackend, need_host
from bpfemu.testing.support import (array_map, err, hash_map, lookup, map_id, obj_get, pin, u32, u64, update,
                                    wait_gone)

THREADS = 8


@pytest.fixture
def host():
    need_host()
    h = Host()
    yield h
    h.exit()
    h.close_namespace()


def run_threads(work, n=THREADS):
    barrier = threading.Barrier(n)
    results = [None] * n

    def body(i):
        barrier.wait()
        try:
            results[i] = ("ok", work(i))
        except BaseException as e:  # noqa: B902 - returned to the test's thread
            results[i] = ("raised", e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return results


def test_8_threads_on_one_spawned_task_with_every_result_checked(host):
    task = host.spawn()

    def work(i):
        fd = hash_map(task, key_size=4, value_size=8, max_entries=64)
        for j in range(40):
            update(task, fd, u32(j), u64(i * 1000 + j))
            assert lookup(task, fd, u32(j), 8) == u64(i * 1000 + j)
            d = task.dup(fd)
            assert map_id(task, d) == map_id(task, fd)
            task.close(d)
            assert err(lookup, task, fd, u32(99), 8) == errno.ENOENT
            assert err(task.close, 10 ** 6) == errno.EBADF
        child = task.fork()
        [theirs] = task.send_fds(child, [fd])
        assert lookup(child, theirs, u32(39), 8) == u64(i * 1000 + 39)
        child.exit()
        task.close(fd)
        return i

    results = run_threads(work)
    assert results == [("ok", i) for i in range(THREADS)], results
    assert task.fds() == [0, 1, 2]
    task.exit()


def test_a_dead_child_is_ESRCH_for_every_thread_and_never_EOFError(host):
    task = host.spawn()
    fd = array_map(task)
    os.kill(task.pid, signal.SIGKILL)

    def work(i):
        return err(lookup, task, fd, u32(0), 8)

    results = run_threads(work)
    assert results == [("ok", errno.ESRCH)] * THREADS, results
    assert not task.alive
    with pytest.raises(OSError) as ei:
        task.fds()
    assert ei.value.errno == errno.ESRCH and "host task %d is gone" % task.pid in str(ei.value)
    task.exit()  # nothing left to end


def test_an_interrupted_call_ends_the_task_instead_of_desynchronising_it(host, monkeypatch):
    import bpfemu.host.task as task_mod
    task = host.spawn()
    fd = array_map(task)

    def interrupted(addr, n):
        raise KeyboardInterrupt

    monkeypatch.setattr(task_mod, "read_partial", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lookup(task, fd, u32(0), 8)
    monkeypatch.undo()
    assert err(lookup, task, fd, u32(0), 8) == errno.ESRCH


def test_tasks_pin_into_a_private_bpffs_at_sys_fs_bpf(host):
    assert host.private_bpffs == (True, "")
    machine_before = sorted(os.listdir("/sys/fs/bpf"))
    a = host.spawn()
    m = Map.create(a, "hash", key="I", value="I", max_entries=4)
    m[1] = 11
    m.pin("/sys/fs/bpf/shared")
    assert a.bpffs == "/sys/fs/bpf" and a.statfs("/sys/fs/bpf").f_type == u.BPF_FS_MAGIC
    assert a.listdir("/sys/fs/bpf") == ["maps.debug", "progs.debug", "shared"]
    # the machine's /sys/fs/bpf (this process's view) has nothing of it
    assert sorted(os.listdir("/sys/fs/bpf")) == machine_before and "shared" not in machine_before
    # every task of this Host sees it: spawned, forked, and forks of tasks
    b, c = host.spawn(uid=0), host.fork()
    for t in (b, c, a.fork()):
        fd = obj_get(t, "/sys/fs/bpf/shared")
        assert map_id(t, fd) == m.id and lookup(t, fd, u32(1), 4) == u32(11)
        t.close(fd)
    # another Host is another machine view: its own empty bpffs
    other = Host()
    o = other.spawn()
    assert o.listdir("/sys/fs/bpf") == ["maps.debug", "progs.debug"]
    assert err(obj_get, o, "/sys/fs/bpf/shared") == errno.ENOENT
    pin(o, hash_map(o), "/sys/fs/bpf/shared")  # the same path, no EEXIST
    m.close()
    for t in (a, b, c, o):
        t.exit()
    other.close_namespace()


def test_the_pins_go_with_the_last_task(host):
    t = host.spawn()
    fd = hash_map(t)
    mid = map_id(t, fd)
    pin(t, fd, "/sys/fs/bpf/left")
    t.close(fd)
    t.exit()
    host.close_namespace()
    probe = Host()
    assert wait_gone(probe, mid), "the pinned map outlived its namespace"
    # and the next run can pin at the same path
    again = Host()
    n = again.spawn()
    pin(n, hash_map(n), "/sys/fs/bpf/left")
    n.exit()
    again.close_namespace()


def test_the_host_backend_pins_under_sys_fs_bpf_and_mounts_nothing_on_the_machine():
    need_host()
    with open("/proc/self/mountinfo") as f:
        own = [line for line in f if " - bpf " in line and "/sys/fs/bpf" in line.split()[4]]
    b = HostBackend()
    try:
        assert b.bpffs == "/sys/fs/bpf"
        p = b.spawn()
        pin(p, hash_map(p), b.bpffs + "/m")
        assert p.listdir(b.bpffs) == ["m", "maps.debug", "progs.debug"]
        with open("/proc/self/mountinfo") as f:
            now = [line for line in f if " - bpf " in line and "/sys/fs/bpf" in line.split()[4]]
        assert now == own  # the tasks' bpffs is mounted in their namespace only
    finally:
        b.close()
