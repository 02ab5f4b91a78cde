"""Threads on one bpfemu.Map and on one task, on both backends (on the host: one real child process).

Each of 8 threads owns a range of keys and checks every value it reads back against what it wrote; a
Map that shared its key and value buffers between threads, or a host task whose conversation with its
child interleaved, fails these at once. The GIL switch interval is lowered meanwhile so that threads
interleave inside every call.
"""
import contextlib
import errno
import sys
import threading

import pytest

from bpfemu import Map
from bpfemu import uapi as u
from bpfemu.testing.support import err, u32

THREADS = 8
ROUNDS = 60


@contextlib.contextmanager
def switching_often():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def run_threads(work, n=THREADS):
    """Run work(i) on n threads started together; every exception is re-raised here."""
    barrier = threading.Barrier(n)
    failures = []

    def body(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as e:  # noqa: B902 - collected and re-raised in the test's thread
            failures.append((i, e))

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    with switching_often():
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if failures:
        raise AssertionError("%d of %d threads failed, first: thread %d: %r"
                             % (len(failures), n, failures[0][0], failures[0][1])) from failures[0][1]


def test_one_hash_map_from_8_threads(proc):
    m = Map.create(proc, "hash", key="I", value="Q", max_entries=THREADS * 16, flags=u.BPF_F_ZERO_SEED)
    last = {}

    def work(t):
        for i in range(ROUNDS):
            k = t * 1000 + i % 16
            v = (t << 32) | i
            m[k] = v
            assert m[k] == v and m.lookup(k) == v and m.get(k) == v and k in m
            if i % 4 == 3:
                assert m.lookup_and_delete(k) == v
                assert k not in m and m.get(k, "gone") == "gone"
                with pytest.raises(KeyError):
                    m[k]
                with pytest.raises(FileNotFoundError):
                    m.delete(k)
            elif i % 4 == 2:
                del m[k]
                assert k not in m
            else:
                last[k] = v
        for k, v in m.items():  # the others keep writing meanwhile: only our own keys are predictable
            assert v >> 32 == k // 1000, (k, v)

    run_threads(work)
    want = {}
    for t in range(THREADS):
        for i in range(ROUNDS):
            k = t * 1000 + i % 16
            if i % 4 in (0, 1):
                want[k] = (t << 32) | i
            else:
                want.pop(k, None)
    assert dict(m.items()) == want


def test_one_percpu_array_from_8_threads(proc):
    m = Map.create(proc, "percpu_array", key="I", value="Q", max_entries=THREADS)
    n = m.ncpus

    def work(t):
        for i in range(ROUNDS):
            vals = [(t << 40) | (i << 8) | c for c in range(n)]
            m[t] = vals
            assert m[t] == vals
            assert m.sum(t) == sum(vals) and m.max(t) == max(vals)

    run_threads(work)
    assert [m[t] for t in range(THREADS)] == [[(t << 40) | ((ROUNDS - 1) << 8) | c for c in range(n)]
                                             for t in range(THREADS)]


def test_batches_and_walks_from_8_threads(proc):
    m = Map.create(proc, "hash", key="I", value="I", max_entries=THREADS * 8, flags=u.BPF_F_ZERO_SEED)

    def work(t):
        keys = [t * 100 + j for j in range(8)]
        for i in range(ROUNDS // 4):
            assert m.update_batch(keys, [k + i for k in keys]) == 8
            got = dict(m.lookup_batch().items())
            assert all(got[k] == k + i for k in keys)
            assert set(keys) <= set(m.keys())
        assert m.delete_batch(keys) == 8

    run_threads(work)
    assert len(m) == 0 and dict(m.items()) == {}


def test_raw_calls_on_one_task_from_8_threads(proc):
    """The raw surface itself: map calls, fds, dup/close, errors, all on one task at once."""
    def work(t):
        m = Map.create(proc, "array", key="I", value="I", max_entries=4)
        for i in range(ROUNDS // 2):
            m[i % 4] = t * 1000 + i
            assert m[i % 4] == t * 1000 + i
            fd = proc.dup(m.fd)
            assert fd in proc.fds()
            with Map.from_fd(proc, fd, key="I", value="I") as again:
                assert again.id == m.id and again[i % 4] == t * 1000 + i
            assert again.closed  # (its fd number may already be another thread's: not closed again here)
            assert err(m.lookup, 4) == errno.ENOENT
            with pytest.raises(OSError) as ei:
                proc.close(-1)
            assert ei.value.errno == errno.EBADF
        m.close()

    run_threads(work)
    assert proc.fds() == [0, 1, 2]


def test_closing_while_other_threads_use_the_map(proc):
    """close() from one thread while seven use the Map: each call either completes on this map or is EBADF;
    none reaches the maps created afterwards on the reused fd."""
    m = Map.create(proc, "array", key="I", value="I", max_entries=1)
    m[0] = 7
    seen = []

    def work(t):
        if t == 0:
            m.close()
            others = [Map.create(proc, "array", key="I", value="I", max_entries=1) for _ in range(4)]
            for o in others:
                o[0] = 99
            seen.append(others)
            return
        for _ in range(ROUNDS):
            try:
                assert m[0] == 7
                m[0] = 7
            except OSError as e:
                assert e.errno == errno.EBADF and "closed" in str(e)

    run_threads(work)
    assert all(o[0] == 99 for o in seen[0])
