"""fork() of a process that uses an emulated Kernel from several threads.

A real process may fork while another of its threads is inside bpf(2), and its child can make bpf() calls at
once: the syscall holds no lock in user space. The emulator's kernel lock is a Python lock held in this
process while a call runs; a fork copies it as it is, held by a thread the child does not have, so the
child's first call would wait for ever. The Kernel's fork handlers let fork() wait until no other thread is
inside the kernel (the child gets a consistent kernel and a free lock).
"""
import ctypes
import os
import signal
import threading
import time

import pytest

import bpfemu
from bpfemu import uapi as u
from bpfemu.testing.support import create_map, lookup, u32, u64, update

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


def _in_child(fn, timeout=20):
    """Run fn() in a fork()ed child: its exit status (0 when fn returned True; SIGALRM when it hung)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            signal.alarm(timeout)
            code = 0 if fn() else 1
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]


def test_fork_while_another_thread_holds_the_kernel_lock():
    k = bpfemu.Kernel()
    t = k.spawn(uid=0)
    fd = create_map(t, u.BPF_MAP_TYPE_HASH, 4, 8, max_entries=8)
    update(t, fd, u32(1), u64(11))
    held, release = threading.Event(), threading.Event()

    def inside_the_kernel():  # what a thread in the middle of a bpf() call holds
        with k.lock:
            held.set()
            release.wait(10)

    th = threading.Thread(target=inside_the_kernel)
    th.start()
    held.wait(10)
    threading.Timer(0.3, release.set).start()

    def child():
        update(t, fd, u32(2), u64(22))
        return lookup(t, fd, u32(1), 8) == u64(11) and lookup(t, fd, u32(2), 8) == u64(22)

    status = _in_child(child)
    th.join()
    assert status == 0, "child status %#x (SIGALRM %d: it waited for ever on the kernel lock)" % (
        status, signal.SIGALRM)
    assert lookup(t, fd, u32(1), 8) == u64(11)  # the parent goes on


def test_fork_while_threads_make_calls():
    """Threads busy with element commands (checked copies through their scratch memfds) while the main
    thread forks: each child makes calls on its own and in threads of its own."""
    k = bpfemu.Kernel()
    t = k.spawn(uid=0)
    fd = create_map(t, u.BPF_MAP_TYPE_HASH, 4, 8, max_entries=64)
    stop = threading.Event()
    errors = []

    def busy(j):
        key, val = ctypes.create_string_buffer(u32(j), 4), ctypes.create_string_buffer(8)
        i = 0
        try:
            while not stop.is_set():
                update(t, fd, u32(j), u64(i))
                t.bpf(u.BPF_MAP_LOOKUP_ELEM, u.make_attr(map_fd=fd, key=ctypes.addressof(key),
                                                           value=ctypes.addressof(val)))
                assert val.raw == u64(i)
                i += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ths = [threading.Thread(target=busy, args=(j,)) for j in range(3)]
    for th in ths:
        th.start()

    def child():
        for i in range(200):
            update(t, fd, u32(10), u64(i))
            if lookup(t, fd, u32(10), 8) != u64(i):
                return False
        out = []
        cts = [threading.Thread(target=lambda j=j: out.append(
            [update(t, fd, u32(20 + j), u64(j)), lookup(t, fd, u32(20 + j), 8)][1] == u64(j))) for j in range(3)]
        for c in cts:
            c.start()
        for c in cts:
            c.join()
        return out == [True] * 3

    try:
        statuses = []
        for _ in range(5):
            time.sleep(0.01)
            statuses.append(_in_child(child))
    finally:
        stop.set()
        for th in ths:
            th.join()
    assert not errors
    assert statuses == [0] * 5


def test_a_child_does_not_copy_through_its_parents_memfds():
    """The scratch memfds of threads that ended are kept for the next thread (bpfemu/usermem.py _POOL); a
    fork()ed child shares them with its parent (a memfd is one file in both), so it must make its own."""
    from bpfemu import usermem
    k = bpfemu.Kernel()
    t = k.spawn(uid=0)
    fd = create_map(t, u.BPF_MAP_TYPE_HASH, 4, 8, max_entries=8)
    th = threading.Thread(target=update, args=(t, fd, u32(1), u64(11)))
    th.start()
    th.join()
    parents = {os.fstat(m[0]).st_ino for m in usermem._POOL}
    if not parents:
        pytest.skip("no scratch memfd here (copies are not checked, or no memfd_create)")

    def child():
        if usermem._POOL:
            return False
        out = []
        c = threading.Thread(target=lambda: out.append(lookup(t, fd, u32(1), 8)))
        c.start()
        c.join()
        return out == [u64(11)] and not parents & open_inodes()

    def open_inodes():
        out = set()
        for f in os.listdir("/proc/self/fd"):
            try:
                out.add(os.stat("/proc/self/fd/" + f).st_ino)
            except OSError:
                pass
        return out

    assert _in_child(child) == 0
