"""Many Python threads on ONE emulated Kernel: maps and the fd table hammered at once.

Every command runs under ``kernel.lock`` (bpfemu/syscall/sys_bpf.py), so the emulated kernel is
linearizable: whatever the interleaving, the result must be one some serial order of the
same calls produces. The test makes that checkable:

- each writer thread owns a range of keys nobody else touches, so every result it sees
  (created, replaced, EEXIST, ENOENT, a batch's count) is decided by its own history alone
  and is predicted exactly by a per-thread model; the final map equals the union of the
  models, and per key ``inserts - deletes`` is 1 when present and 0 when absent;
- walkers never see a key twice in one GET_NEXT_KEY walk of maps whose concurrent
  updates are in place: a PERCPU_HASH (an update of an existing per-CPU element copies
  the new value into the element where it stands) and an ARRAY (slots never move). A
  plain HASH is deliberately NOT held to this: there an update replaces the element with
  a new one at the head of its bucket, in the kernel too, so a walk that has passed the
  old element can meet the key again. On the churning plain HASH walks only have to end
  cleanly (ENOENT), with keys of the right shape;
- fd threads dup, close, reopen by id, pin, OBJ_GET and unlink, in the writers' own
  task and in forked tasks, only ever closing fds they created, so no EBADF can occur;
- a checker thread runs ``check_invariants`` while all this goes on (it takes the same
  lock, so it sees the state between two commands), and once more at the end.

Expected OSErrors: EEXIST (BPF_NOEXIST on a present key) and ENOENT (BPF_EXIST or
delete on an absent key, a batch delete reaching an absent key, the end of a walk or of
a batch lookup). Any other errno, or any other exception, fails the test.
"""
import ctypes
import errno
import random
import struct
import threading
import time

import bpfemu
from bpfemu import uapi as u
from bpfemu.testing.support import (err, keys, create_map, hash_map, lookup, map_fd_by_id, map_id, next_key, obj_get,
                                 pin, update, delete)

WRITERS = 4
KEYS_PER_WRITER = 64
ROUNDS = 150
EXPECTED = {errno.EEXIST, errno.ENOENT}


def k32(n):
    return struct.pack("<I", n)


def v64(n):
    return struct.pack("<Q", n)


def _batch(task, cmd, fd, ks, vs=None):
    """(errno, count) of an update/delete batch of keys ks (and values vs)."""
    kb = (ctypes.c_uint32 * len(ks))(*ks)
    vb = (ctypes.c_uint64 * len(ks))(*vs) if vs is not None else None
    a = u.make_attr(**{"batch.map_fd": fd, "batch.keys": ctypes.addressof(kb),
                       "batch.values": ctypes.addressof(vb) if vb is not None else 0, "batch.count": len(ks)})
    try:
        task.bpf(cmd, a)
        return 0, a.batch.count
    except OSError as e:
        return e.errno, a.batch.count


class Writer:
    """Owns keys [base, base + KEYS_PER_WRITER) of the hash map; predicts every result."""

    def __init__(self, task, fd, index):
        self.task, self.fd = task, fd
        self.keys = list(range(index * 1000, index * 1000 + KEYS_PER_WRITER))
        self.rnd = random.Random(index)
        self.model = {}  # key -> value
        self.inserts = dict.fromkeys(self.keys, 0)
        self.deletes = dict.fromkeys(self.keys, 0)
        self.seq = 0

    def value(self):
        self.seq += 1
        return self.seq  # strictly increasing: the final value is the last one written

    def step(self):
        rnd, key = self.rnd, self.rnd.choice(self.keys)
        op = rnd.randrange(7)
        present = key in self.model
        if op <= 2:  # update with BPF_ANY / BPF_NOEXIST / BPF_EXIST
            flags = (u.BPF_ANY, u.BPF_NOEXIST, u.BPF_EXIST)[op]
            v = self.value()
            want = {u.BPF_NOEXIST: errno.EEXIST if present else 0,
                    u.BPF_EXIST: 0 if present else errno.ENOENT}.get(flags, 0)
            got = err(update, self.task, self.fd, k32(key), v64(v), flags)
            assert got == want, (key, flags, got, want)
            if not got:
                self.inserts[key] += not present
                self.model[key] = v
        elif op == 3:  # delete
            got = err(delete, self.task, self.fd, k32(key))
            assert got == (0 if present else errno.ENOENT)
            if present:
                self.deletes[key] += 1
                del self.model[key]
        elif op == 4:  # update batch of a few of our keys
            ks = rnd.sample(self.keys, 5)
            vs = [self.value() for _ in ks]
            assert _batch(self.task, u.BPF_MAP_UPDATE_BATCH, self.fd, ks, vs) == (0, 5)
            for k, v in zip(ks, vs):
                self.inserts[k] += k not in self.model
                self.model[k] = v
        elif op == 5:  # delete batch: stops with ENOENT at the first absent key, count = deleted
            ks = rnd.sample(self.keys, 4)
            n = next((i for i, k in enumerate(ks) if k not in self.model), len(ks))
            want = (0 if n == len(ks) else errno.ENOENT, n)
            assert _batch(self.task, u.BPF_MAP_DELETE_BATCH, self.fd, ks) == want
            for k in ks[:n]:
                self.deletes[k] += 1
                del self.model[k]
        else:  # lookup: the value we last wrote, or ENOENT
            try:
                got = lookup(self.task, self.fd, k32(key), 8)
                assert present and got == v64(self.model[key]), (key, got)
            except OSError as e:
                assert e.errno == errno.ENOENT and not present


def _lookup_batch_all(task, fd):
    """One LOOKUP_BATCH pass over the hash map; ends with ENOENT."""
    ks, vs = (ctypes.c_uint32 * 64)(), (ctypes.c_uint64 * 64)()
    token, first = ctypes.c_uint32(), True
    while True:
        a = u.make_attr(**{"batch.map_fd": fd, "batch.keys": ctypes.addressof(ks), "batch.values": ctypes.addressof(vs),
                           "batch.count": 64, "batch.out_batch": ctypes.addressof(token),
                           "batch.in_batch": 0 if first else ctypes.addressof(token)})
        first = False
        try:
            task.bpf(u.BPF_MAP_LOOKUP_BATCH, a)
        except OSError as e:
            assert e.errno == errno.ENOENT, e
            return


def test_threads_on_one_kernel_serialize():
    kernel = bpfemu.Kernel()
    t0 = kernel.spawn()
    bpffs = "/sys/fs/bpf"
    hfd = hash_map(t0, key_size=4, value_size=8, max_entries=WRITERS * KEYS_PER_WRITER)
    pfd = create_map(t0, u.BPF_MAP_TYPE_PERCPU_HASH, 4, 8, max_entries=64, flags=u.BPF_F_ZERO_SEED)
    afd = create_map(t0, u.BPF_MAP_TYPE_ARRAY, 4, 8, max_entries=64)
    ncpus = kernel.ncpus
    for i in range(64):
        update(t0, pfd, k32(i), v64(0) * ncpus)
    # writers 0 and 1 share t0 (one fd table), 2 and 3 run in forked tasks (fds inherited)
    tasks = [t0, t0, t0.fork(), t0.fork()]
    writers = [Writer(tasks[i], hfd, i) for i in range(WRITERS)]
    stop = threading.Event()
    failures = []
    last = {"percpu": {}, "array": {}}
    stats = {"walks": 0, "checks": 0, "fd_cycles": 0}

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: B902 -- reported by the main thread
                failures.append((fn.__name__, e))
                stop.set()
        return run

    def writer_loop(w):
        def write():
            for _ in range(ROUNDS * KEYS_PER_WRITER // 4):
                w.step()
        return write

    def in_place_updater():
        """Rewrites existing keys of the PERCPU_HASH and ARRAY in place, values increasing."""
        rnd, seq = random.Random(99), 0
        while not stop.is_set() and seq < 100000:
            seq += 1
            k = rnd.randrange(64)
            update(t0, pfd, k32(k), v64(seq) * ncpus, u.BPF_EXIST)
            last["percpu"][k] = seq
            update(t0, afd, k32(k), v64(seq))
            last["array"][k] = seq

    def walker():
        task = t0.fork()
        while not stop.is_set():
            for fd, size, in_place in ((pfd, 4, True), (afd, 4, True), (hfd, 4, False)):
                ks = keys(task, fd, size)
                assert all(len(k) == size for k in ks)
                if in_place:
                    assert len(ks) == len(set(ks)) == 64, "a walk visited a key twice: %r" % ks
            _lookup_batch_all(task, hfd)
            stats["walks"] += 1
        task.exit()

    def fd_churn():
        """dup/close, reopen by id, pin/OBJ_GET/unlink -- in t0 (shared with writers) and a fork."""
        mine = t0.fork()
        ids = [map_id(t0, fd) for fd in (hfd, pfd, afd)]
        n = 0
        while not stop.is_set() and n < 5000:
            n += 1
            task = t0 if n % 2 else mine
            src = (hfd, pfd, afd)[n % 3]
            d = task.dup(src)
            byid = map_fd_by_id(task, ids[n % 3])
            assert map_id(task, byid) == ids[n % 3]
            path = "%s/t%d_%d" % (bpffs, id(task) & 0xffff, n)
            pin(task, d, path)
            got = obj_get(task, path)
            assert map_id(task, got) == ids[n % 3]
            task.unlink(path)
            for fd in (d, byid, got):
                task.close(fd)
            stats["fd_cycles"] += 1
        mine.exit()

    def checker():
        while not stop.is_set():
            bpfemu.check_invariants(kernel)
            stats["checks"] += 1
            time.sleep(0.005)

    workers = [threading.Thread(target=guard(writer_loop(w))) for w in writers]
    background = [threading.Thread(target=guard(f)) for f in (in_place_updater, walker, fd_churn, checker)]
    started = time.monotonic()
    for t in workers + background:
        t.start()
    for t in workers:
        t.join(20)
    stop.set()
    for t in background:
        t.join(20)
    assert not failures, failures
    assert not any(t.is_alive() for t in workers + background)
    assert time.monotonic() - started < 60  # ~2 s alone; generous for a loaded CI machine
    assert stats["walks"] and stats["checks"] and stats["fd_cycles"]

    # the final state is the serial one: each writer's model, nothing else
    expected = {}
    for w in writers:
        expected.update(w.model)
        for k in w.keys:
            assert w.inserts[k] - w.deletes[k] == (1 if k in w.model else 0), k
    found = {struct.unpack("<I", k)[0] for k in keys(t0, hfd, 4)}
    assert found == set(expected)
    for k, v in expected.items():
        assert lookup(t0, hfd, k32(k), 8) == v64(v)
    for k, v in last["percpu"].items():
        assert lookup(t0, pfd, k32(k), 8 * ncpus) == v64(v) * ncpus
        assert lookup(t0, afd, k32(k), 8) == v64(v)
    # the forked writers' tasks exit; the maps are held by t0's three fds only
    for t in tasks[2:]:
        t.exit()
    bpfemu.check_invariants(kernel)
    assert set(t0.fds()) - {0, 1, 2} == {hfd, pfd, afd}  # 0-2: the task's stdio
    assert not [p for p, _ in kernel.fs.pins() if p.startswith(bpffs + "/t")]
    for fd in (hfd, pfd, afd):
        t0.close(fd)
    bpfemu.check_invariants(kernel)
    assert not kernel.objects("map")


def test_close_racing_with_use_gives_ebadf_or_result():
    """One thread closes and re-creates fds while another uses whatever number is there:
    every call either works or fails with EBADF (closed) / EINVAL (the number now names a
    non-map fd? never here: only maps are created) -- the only races a program can see."""
    kernel = bpfemu.Kernel()
    t = kernel.spawn()
    fd0 = hash_map(t, key_size=4, value_size=8, max_entries=8)
    stop = threading.Event()
    errs, failures = set(), []

    def user():
        try:
            while not stop.is_set():
                for fd in range(fd0, fd0 + 4):
                    try:
                        update(t, fd, k32(1), v64(1))
                        lookup(t, fd, k32(1), 8)
                    except OSError as e:
                        errs.add(e.errno)
        except BaseException as e:  # noqa: B902
            failures.append(e)

    th = threading.Thread(target=user)
    th.start()
    try:
        for _ in range(300):
            d = t.dup(fd0)
            t.close(d)
            n = hash_map(t, key_size=4, value_size=8, max_entries=8)
            t.close(n)
    finally:
        stop.set()
        th.join(10)
    assert not failures, failures
    assert errs <= {errno.EBADF, errno.ENOENT}, errs
    bpfemu.check_invariants(kernel)


def test_exit_and_syscalls_serialize():
    """A task exits while another thread creates maps on it: each MAP_CREATE either ran before the exit
    (its fd closed by the exit) or fails with ESRCH after it. No map may outlive the task in a file that
    no fd names, and check_invariants must hold (it would report such an orphaned file)."""
    for _ in range(60):
        k = bpfemu.Kernel()
        t = k.spawn()
        made, errs = [], []
        go = threading.Event()

        def creator():
            go.wait()
            while True:
                try:
                    made.append(hash_map(t, max_entries=1))
                except OSError as e:
                    errs.append(e.errno)
                    return

        th = threading.Thread(target=creator)
        th.start()
        go.set()
        time.sleep(0.0005)
        t.exit()
        th.join()
        assert errs == [errno.ESRCH]
        bpfemu.check_invariants(k)
        assert k.objects() == []


def test_orphaned_files_are_invariant_violations():
    """An open file that holds an object but is in no live task's fd table and in no mapping."""
    from bpfemu.invariants import violations
    k = bpfemu.Kernel()
    t = k.spawn()
    fd = hash_map(t)
    f = t.fdtable.pop(fd)[0]  # what a task that exited mid-syscall left behind
    assert any("orphaned" in v for v in violations(k)), violations(k)
    f.put()
    assert violations(k) == []
