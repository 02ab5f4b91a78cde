"""Hash LOOKUP_BATCH / LOOKUP_AND_DELETE_BATCH in chunks (count smaller than the map, out_batch passed back
as in_batch, as libbpf and cilium/ebpf dump maps): the walk order kept between the chunks
(hashtab._WalkOrder, with the deletes held back, _HeldDeletes) gives exactly what the walk index gives and
what a one-by-one model of the kernel's buckets gives, with the map changed between the chunks in every
way (updates, replacements, deletes, a program's in-place writes, GET_NEXT_KEY, whole-map batches), faults
at the same element, keeps nothing once the walk ends, and is used under the kernel lock."""
import ctypes
import mmap
import random
import threading
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bpfemu
from bpfemu import uapi as u
from bpfemu.jhash import htab_map_hash
from bpfemu.testing.fuzz import examples

from .test_hashtab_many import _batch_bytes, _filled_maps, _numpy_min, _walk

LOOKUP, LOOKUP_AND_DELETE = u.BPF_MAP_LOOKUP_BATCH, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH


def _model_batch(m, cmd, count, in_batch):
    """The kernel's batch, bucket by bucket, computed from GET_NEXT_KEY's walk and jhash; deletes one by one.
    (errno, count, out_batch, key bytes, value bytes) as _batch_bytes gives them (buffers of count+1)."""
    ks, vs = m.key_size, m.value_size
    mask = m.n_buckets - 1
    if in_batch >= m.n_buckets:
        return 2, 0, 0, bytes(count * ks + 1), bytes(count * vs + 1)
    buckets = {}
    for k, v in _walk(m):
        buckets.setdefault(htab_map_hash(k, m.hashrnd) & mask, []).append((k, v))
    taken = []
    err, out = 2, m.n_buckets  # ENOENT
    for bi in sorted(b for b in buckets if b >= in_batch):
        if len(buckets[bi]) > count - len(taken):
            err, out = (28 if not taken else 0), bi  # ENOSPC
            break
        taken += buckets[bi]
    if cmd == LOOKUP_AND_DELETE:
        for k, _ in taken:
            m.delete(k)
    kb = b"".join(k for k, _ in taken)
    vb = b"".join(v for _, v in taken)
    return (err, len(taken), out, kb + bytes(count * ks + 1 - len(kb)), vb + bytes(count * vs + 1 - len(vb)))


@settings(max_examples=examples(50), deadline=None)
@given(salt=st.integers(0, 2**32), ks=st.one_of(st.integers(1, 40), st.sampled_from([4, 8, 100])),
       vs=st.sampled_from([1, 4, 8, 13, 64]), n=st.integers(40, 400), zero_seed=st.booleans(),
       max_entries=st.sampled_from([300, 512, 70000]),
       steps=st.lists(st.tuples(st.sampled_from(["chunk"] * 8 + ["update", "delete", "write", "next", "whole",
                                                             "restart"]),
                                st.integers(1, 200), st.booleans()), min_size=4, max_size=30))
def test_chunks_match_the_index_walk_and_the_model(salt, ks, vs, n, zero_seed, max_entries, steps):
    rnd = random.Random(salt)
    kernel = bpfemu.Kernel()
    task = kernel.spawn()
    maps = _filled_maps(task, 3, ks, vs, max_entries, zero_seed, rnd, n)
    universe = list(maps[0][1].elems) + [rnd.getrandbits(8 * ks).to_bytes(ks, "little") for _ in range(20)]
    in_batch = 0
    for op, arg, flag in steps:
        if op in ("chunk", "whole", "restart"):
            cmd = LOOKUP_AND_DELETE if flag else LOOKUP
            count = len(maps[0][1].elems) + 1 if op == "whole" else arg
            start = 0 if op == "restart" else in_batch
            got = []
            for (fd, m), bound in zip(maps, (16, 1 << 62)):  # the kept order; the walk index
                with _numpy_min(bound):
                    got.append(_batch_bytes(task, fd, cmd, count, start, ks, vs))
            got.append(_model_batch(maps[2][1], cmd, count, start))
            assert got[0] == got[1] == got[2], (op, cmd, count, start)
            if got[0][0] == 0:
                in_batch = got[0][2]
            elif got[0][0] == 2:
                in_batch = 0
        elif op == "update":
            k = rnd.choice(universe)
            v = rnd.getrandbits(8 * vs).to_bytes(vs, "little")
            for _, m in maps:
                if len(m.elems) < m.max_entries or k in m.elems:
                    m.update(k, v, 0)
        elif op == "delete":
            k = rnd.choice(universe)
            for _, m in maps:
                if k in m.elems:
                    m.delete(k)
        elif op == "write":  # a program's lookup and in-place write
            k = rnd.choice(universe)
            b = arg % vs
            for _, m in maps:
                r = m.value_region(k)
                if r is not None:
                    r[0][b] ^= 0x5A
        else:  # a GET_NEXT_KEY step from a key (starts a walk index)
            k = rnd.choice(universe) if flag else None
            outs = []
            for _, m in maps:
                try:
                    outs.append(m.get_next_key(k))
                except OSError as e:
                    outs.append(e.errno)
            assert outs[0] == outs[1] == outs[2]
        assert [m.self_check() for _, m in maps] == [[], [], []]
    walks = [_walk(m) for _, m in maps]
    assert walks[0] == walks[1] == walks[2]
    bpfemu.check_invariants(kernel)


def _dump(task, fd, cmd, count, ks=4, vs=8):
    """The whole map in chunks of ``count``: [(errno, count, out_batch, keys, values)] per call."""
    calls, in_batch = [], 0
    while True:
        r = _batch_bytes(task, fd, cmd, count, in_batch, ks, vs)
        calls.append(r)
        if r[0]:
            return calls
        in_batch = r[2]


def _big_map(task, n, flags=0):
    fd = task.bpf(u.BPF_MAP_CREATE, u.make_attr(map_type=u.BPF_MAP_TYPE_HASH, key_size=4, value_size=8,
                                               max_entries=n, map_flags=flags))
    m = task.fdtable[fd][0].obj
    keys = b"".join(i.to_bytes(4, "little") for i in range(n))
    assert m.update_many(task, keys, b"".join((i * 7).to_bytes(8, "little") for i in range(n)), n, 0) == (n, None)
    return fd, m


@pytest.mark.parametrize("cmd", [LOOKUP, LOOKUP_AND_DELETE])
def test_a_big_dump_in_chunks_is_the_index_walk(cmd):
    """4,000 elements in chunks of 100 (the default BATCH_NUMPY_MIN): every call as the index walk gives it."""
    task = bpfemu.Kernel().spawn()
    (fa, a), (fb, b) = _big_map(task, 4000, u.BPF_F_ZERO_SEED), _big_map(task, 4000, u.BPF_F_ZERO_SEED)
    got = _dump(task, fa, cmd, 100)
    assert a._walk is None and a._held is None  # (used, and gone at the end)
    with _numpy_min(1 << 62):
        want = _dump(task, fb, cmd, 100)
    assert got == want and got[-1][0] == 2
    assert sum(c[1] for c in got) == 4000
    assert _walk(a) == _walk(b)


def test_held_deletes_apply_on_any_use():
    """Between chunks of LOOKUP_AND_DELETE_BATCH the deletes are held; anything that uses the map sees them
    applied (lookup, count, update, GET_NEXT_KEY), and what the map keeps is the same as with the index."""
    task = bpfemu.Kernel().spawn()
    fd, m = _big_map(task, 3000)
    r = _batch_bytes(task, fd, LOOKUP_AND_DELETE, 500, 0, 4, 8)
    assert r[0] == 0 and r[1] > 400 and m._held is not None
    gone = [r[3][i:i + 4] for i in range(0, 4 * r[1], 4)]
    assert m.count() == 3000 - r[1] and m._held is None  # applied by the use
    assert all(m.elems.get(k) is None for k in gone)
    r2 = _batch_bytes(task, fd, LOOKUP_AND_DELETE, 500, r[2], 4, 8)
    assert r2[0] == 0 and m._held is not None
    with pytest.raises(OSError):
        m.lookup(r2[3][:4])
    assert m._held is None and m.count() == 3000 - r[1] - r2[1]


def test_memory_goes_back_when_the_walk_ends_or_the_map_changes():
    task = bpfemu.Kernel().spawn()
    fd, m = _big_map(task, 20000)
    _dump(task, fd, LOOKUP, 1000)  # (imports NumPy and warms up)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        _batch_bytes(task, fd, LOOKUP, 1000, 0, 4, 8)
        assert m._walk is not None
        assert tracemalloc.get_traced_memory()[0] - base > 20000 * 8  # the order is kept...
        m.update((5).to_bytes(4, "little"), bytes(8), 0)  # ...until the map changes
        assert m._walk is None
        assert tracemalloc.get_traced_memory()[0] - base < 4096
        _dump(task, fd, LOOKUP, 1000)
        assert m._walk is None  # the walk reached the end
        assert tracemalloc.get_traced_memory()[0] - base < 4096
    finally:
        tracemalloc.stop()


@pytest.mark.bpf_bad_pointers
@pytest.mark.parametrize("seed", range(4))
def test_chunks_fault_like_the_index_walk(seed):
    """Chunks whose keys or values run into a PROT_NONE or read-only page fault at the same element with
    the kept order as with the index walk: errno, count, out_batch, every byte, the keys left."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = 4096
    rnd = random.Random(seed)
    for _ in range(6):
        ks, vs = rnd.choice([1, 4, 6, 12, 20]), rnd.choice([2, 8, 24])
        n = rnd.choice([300, 900])
        count = rnd.choice([37, 100, 250])
        zero_seed = rnd.random() < 0.5
        cmd = rnd.choice([LOOKUP, LOOKUP_AND_DELETE])
        koff, voff = rnd.randrange(0, 3 * page), rnd.randrange(0, 3 * page)
        badk, badv = rnd.random() < 0.6, rnd.random() < 0.6
        prot = rnd.choice([0, 1])
        salt = rnd.getrandbits(32)
        outs = []
        for bound in (16, 1 << 62):
            task = bpfemu.Kernel().spawn()
            (fd, m), = _filled_maps(task, 1, ks, vs, 2048, zero_seed, random.Random(salt), n)
            if not zero_seed:
                m.hashrnd = salt
            mm = mmap.mmap(-1, 24 * page)
            buf = ctypes.c_char.from_buffer(mm)
            base = ctypes.addressof(buf)
            mm[:] = b"\xaa" * (24 * page)
            if badk:
                libc.mprotect(base + 3 * page, page, prot)
            if badv:
                libc.mprotect(base + 16 * page, page, prot)
            ib, ob = ctypes.c_uint32(0), ctypes.c_uint32(0xFFFFFFFF)
            calls = []
            with _numpy_min(bound):
                for i in range(n // count + 2):  # a dump: each chunk a step further into the buffers
                    a = u.make_attr(**{"batch.map_fd": fd, "batch.keys": base + 3 * page - koff + i * count * ks // 3,
                                       "batch.values": base + 16 * page - voff + i * count * vs // 3,
                                       "batch.count": count, "batch.in_batch": ctypes.addressof(ib) if i else 0,
                                       "batch.out_batch": ctypes.addressof(ob)})
                    try:
                        task.bpf(cmd, a)
                        r = 0
                    except OSError as e:
                        r = e.errno
                    calls.append((r, a.batch.count, ob.value))
                    if r == 2:
                        break
                    if r == 0:
                        ib.value = ob.value
            libc.mprotect(base + 3 * page, page, 3)
            libc.mprotect(base + 16 * page, page, 3)
            outs.append((calls, bytes(mm), _walk(m), m.self_check()))
            del buf
            mm.close()
        assert outs[0] == outs[1], (ks, vs, n, count, cmd, koff, voff, badk, badv, prot)


def test_threads_dumping_one_map_in_chunks():
    """Four threads dump one map in chunks at once (the order is made and used under the kernel lock): each
    gets every element once, in the order of a dump alone."""
    kernel = bpfemu.Kernel()
    task = kernel.spawn()
    fd, m = _big_map(task, 5000)
    want = _dump(task, fd, LOOKUP, 300)
    got, errors = [], []

    def run():
        try:
            for _ in range(5):
                got.append(_dump(task, fd, LOOKUP, 300))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 20 and all(g == want for g in got)
