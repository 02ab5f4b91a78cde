"""The plain hash map's update_many/delete_many (the batch commands' bodies) leave exactly the state, walk
order, count and errno of the one-by-one generic ones, with and without a walk index present; the walk
index built from all the keys' hashes together files each key in its own bucket."""
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bpfemu
from bpfemu import uapi as u
from bpfemu.maps.bpf_map import BpfMap
from bpfemu.testing.fuzz import examples


def _hash_map(task, max_entries, flags):
    fd = task.bpf(u.BPF_MAP_CREATE, u.make_attr(map_type=u.BPF_MAP_TYPE_HASH, key_size=4, value_size=8,
                                               max_entries=max_entries, map_flags=flags))
    return task.fdtable[fd][0].obj


def _walk(m):
    out, key = [], None
    while True:
        try:
            key = m.get_next_key(key)
        except OSError:
            return out
        out.append((key, m.lookup(key)))


def _outcome(r):
    done, err = r
    return done, None if err is None else err.errno


@settings(max_examples=examples(60), deadline=None)
@given(salt=st.integers(0, 2**32), max_entries=st.integers(16, 80), zero_seed=st.booleans(),
       prealloc=st.booleans(), rounds=st.lists(st.tuples(st.sampled_from(["update", "delete"]),
                                                          st.integers(16, 60),
                                                          st.sampled_from([0, u.BPF_NOEXIST, u.BPF_EXIST, 3])),
                                                min_size=1, max_size=6),
       walking=st.booleans())
def test_the_batch_bodies_match_one_by_one(salt, max_entries, zero_seed, prealloc, rounds, walking):
    rnd = random.Random(salt)
    flags = (u.BPF_F_ZERO_SEED if zero_seed else 0) | (0 if prealloc else u.BPF_F_NO_PREALLOC)
    kernel = bpfemu.Kernel()
    task = kernel.spawn()
    fast, slow = _hash_map(task, max_entries, flags), _hash_map(task, max_entries, flags)
    slow.hashrnd = fast.hashrnd
    for op, count, uflags in rounds:
        keys = b"".join(rnd.randrange(100).to_bytes(4, "little") for _ in range(count))
        if walking:  # a walk has started: the ops keep its index up to date
            for m in (fast, slow):
                try:
                    m.get_next_key(None)
                except OSError:
                    pass
        if op == "update":
            values = bytes(rnd.getrandbits(8) for _ in range(8 * count))
            got = fast.update_many(task, keys, values, count, uflags)
            want = BpfMap.update_many(slow, task, keys, values, count, uflags)
        else:
            got = fast.delete_many(keys, count)
            want = BpfMap.delete_many(slow, keys, count)
        assert _outcome(got) == _outcome(want)
        assert _walk(fast) == _walk(slow)
        assert fast.self_check() == [] and slow.self_check() == []
        assert fast.mem_usage() == slow.mem_usage()
    bpfemu.check_invariants(kernel)


@pytest.mark.parametrize("count", [16, 1000])
def test_jhash_many_buckets_are_the_single_key_buckets(count):
    task = bpfemu.Kernel().spawn()
    m = _hash_map(task, 4096, 0)
    keys = b"".join(i.to_bytes(4, "little") for i in range(count))
    assert m.update_many(task, keys, bytes(8 * count), count, 0) == (count, None)
    from bpfemu.jhash import htab_map_hash
    m.get_next_key(None)  # builds the walk index
    for i in range(count):
        key = i.to_bytes(4, "little")
        bi = htab_map_hash(key, m.hashrnd) & (m.n_buckets - 1)
        assert m._where[key] == bi and key in m.buckets[bi]


def _lookup_batch(task, fd, cmd, count, in_batch):
    import ctypes
    okeys, ovalues = (ctypes.c_uint32 * count)(), (ctypes.c_uint64 * count)()
    ib, ob = ctypes.c_uint32(in_batch), ctypes.c_uint32()
    a = u.make_attr(**{"batch.map_fd": fd, "batch.count": count, "batch.keys": ctypes.addressof(okeys),
                       "batch.values": ctypes.addressof(ovalues), "batch.out_batch": ctypes.addressof(ob),
                       "batch.in_batch": ctypes.addressof(ib) if in_batch else 0})
    try:
        task.bpf(cmd, a)
        r = 0
    except OSError as e:
        r = e.errno
    n = a.batch.count
    return r, n, ob.value, list(okeys)[:n], list(ovalues)[:n]


@settings(max_examples=examples(40), deadline=None)
@given(salt=st.integers(0, 2**32), n=st.integers(16, 300), zero_seed=st.booleans(), delete=st.booleans(),
       spare=st.integers(0, 5), in_batch=st.integers(0, 600))
def test_whole_map_batch_matches_the_index_walk(salt, n, zero_seed, delete, spare, in_batch):
    """A lookup batch that takes every element from its bucket on (sorted once, no index) gives what the
    walk index gives: the same keys, values, order, count, out_batch, errno and keys left."""
    rnd = random.Random(salt)
    task = bpfemu.Kernel().spawn()
    fds = [task.bpf(u.BPF_MAP_CREATE, u.make_attr(map_type=u.BPF_MAP_TYPE_HASH, key_size=4, value_size=8,
                                                 max_entries=512, map_flags=u.BPF_F_ZERO_SEED if zero_seed else 0))
           for _ in range(2)]
    maps = [task.fdtable[fd][0].obj for fd in fds]
    maps[1].hashrnd = maps[0].hashrnd
    ops = [(rnd.randrange(700).to_bytes(4, "little"), rnd.getrandbits(64).to_bytes(8, "little"),
            rnd.random() < 0.2) for _ in range(n)]
    for m in maps:
        for k, v, drop in ops:
            if len(m.elems) < m.max_entries:
                m.update(k, v, 0)
            if drop:
                m.delete(k)
    indexed, whole = maps
    indexed.get_next_key(None)  # with an index the batch walks it
    assert whole.buckets is None
    cmd = u.BPF_MAP_LOOKUP_AND_DELETE_BATCH if delete else u.BPF_MAP_LOOKUP_BATCH
    count = len(whole.elems) + spare
    got = [_lookup_batch(task, fd, cmd, count, in_batch) for fd in fds]
    assert got[0] == got[1]
    assert _walk(indexed) == _walk(whole)
    assert indexed.self_check() == [] and whole.self_check() == []


# -- the whole-map batch's two ways of making the walk order: NumPy and pure Python ---------------------------
class _numpy_min:
    """Within the block, whole-map lookup batches of at least ``bound`` elements make their order with NumPy."""

    def __init__(self, bound):
        self.bound = bound

    def __enter__(self):
        from bpfemu.maps import hashtab
        self.saved, hashtab.BATCH_NUMPY_MIN = hashtab.BATCH_NUMPY_MIN, self.bound

    def __exit__(self, *exc):
        from bpfemu.maps import hashtab
        hashtab.BATCH_NUMPY_MIN = self.saved


def _filled_maps(task, copies, ks, vs, max_entries, zero_seed, rnd, n):
    """``copies`` hash maps with the same seed and the same history of n random updates (replacements
    included) and deletes; [(fd, map)]."""
    out = []
    for _ in range(copies):
        fd = task.bpf(u.BPF_MAP_CREATE, u.make_attr(map_type=u.BPF_MAP_TYPE_HASH, key_size=ks, value_size=vs,
                                                   max_entries=max_entries,
                                                   map_flags=u.BPF_F_ZERO_SEED if zero_seed else 0))
        out.append((fd, task.fdtable[fd][0].obj))
    for _, m in out[1:]:
        m.hashrnd = out[0][1].hashrnd
    universe = [rnd.getrandbits(8 * ks).to_bytes(ks, "little") for _ in range(max(2, n * 3 // 2))]
    ops = [(rnd.choice(universe), rnd.getrandbits(8 * vs).to_bytes(vs, "little"), rnd.random() < 0.2)
           for _ in range(n)]
    for _, m in out:
        for k, v, drop in ops:
            if len(m.elems) < m.max_entries or k in m.elems:
                m.update(k, v, 0)
            if drop:
                m.delete(k)
    return out


def _batch_bytes(task, fd, cmd, count, in_batch, ks, vs):
    """A lookup batch into fresh buffers: (errno, count, out_batch, key bytes, value bytes)."""
    import ctypes
    okeys, ovalues = ctypes.create_string_buffer(count * ks + 1), ctypes.create_string_buffer(count * vs + 1)
    ib, ob = ctypes.c_uint32(in_batch), ctypes.c_uint32()
    a = u.make_attr(**{"batch.map_fd": fd, "batch.count": count, "batch.keys": ctypes.addressof(okeys),
                       "batch.values": ctypes.addressof(ovalues), "batch.out_batch": ctypes.addressof(ob),
                       "batch.in_batch": ctypes.addressof(ib) if in_batch else 0})
    try:
        task.bpf(cmd, a)
        r = 0
    except OSError as e:
        r = e.errno
    return r, a.batch.count, ob.value, okeys.raw, ovalues.raw


@settings(max_examples=examples(60), deadline=None)
@given(salt=st.integers(0, 2**32), ks=st.one_of(st.integers(1, 72), st.sampled_from([4, 8, 12, 16, 100])),
       vs=st.sampled_from([1, 3, 4, 8, 13, 24, 64]), n=st.integers(16, 400), zero_seed=st.booleans(),
       delete=st.booleans(), spare=st.integers(0, 5), in_batch=st.one_of(st.just(0), st.integers(0, 1100)),
       max_entries=st.sampled_from([300, 512, 1000, 70000]))
def test_numpy_walk_order_matches_pure_python_and_the_index(salt, ks, vs, n, zero_seed, delete, spare, in_batch,
                                                            max_entries):
    """The whole-map batch gives the same bytes whether its order is made with NumPy or in pure Python,
    and the same as the walk index (a map that GET_NEXT_KEY started walking): keys, values, order, count,
    out_batch, errno and what is left, for any key and value size, seed and history."""
    rnd = random.Random(salt)
    kernel = bpfemu.Kernel()
    task = kernel.spawn()
    maps = _filled_maps(task, 3, ks, vs, max_entries, zero_seed, rnd, n)
    maps[2][1].get_next_key(None)  # the third walks its index
    cmd = u.BPF_MAP_LOOKUP_AND_DELETE_BATCH if delete else u.BPF_MAP_LOOKUP_BATCH
    in_batch = min(in_batch, maps[0][1].n_buckets)
    count = len(maps[0][1].elems) + spare
    got = []
    for (fd, m), bound in zip(maps, (0, 1 << 62, 0)):
        with _numpy_min(bound):
            got.append(_batch_bytes(task, fd, cmd, count, in_batch, ks, vs))
    assert got[0] == got[1] == got[2]
    walks = [_walk(m) for _, m in maps]
    assert walks[0] == walks[1] == walks[2]
    assert [m.self_check() for _, m in maps] == [[], [], []]
    bpfemu.check_invariants(kernel)


@pytest.mark.bpf_bad_pointers
@pytest.mark.parametrize("seed", range(6))
def test_numpy_walk_faults_like_pure_python(seed):
    """Keys or values that run into a PROT_NONE or read-only page: the NumPy order and the pure-Python one
    fault at the same element (errno, count, out_batch, every byte of the buffers, the keys left)."""
    import ctypes
    import mmap
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = 4096
    rnd = random.Random(seed)
    for _ in range(8):
        ks, vs = rnd.choice([1, 4, 6, 12, 20]), rnd.choice([2, 8, 24])
        n = rnd.choice([40, 300, 900])
        zero_seed = rnd.random() < 0.5
        cmd = rnd.choice([u.BPF_MAP_LOOKUP_BATCH, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH])
        # the areas start within reach of the bad pages (most cases fault somewhere in the walk)
        koff, voff = rnd.randrange(0, min(3 * page, ks * n * 3 // 4)), rnd.randrange(0, min(3 * page, vs * n * 3 // 4))
        badk, badv = rnd.random() < 0.6, rnd.random() < 0.6
        prot = rnd.choice([0, 1])
        salt = rnd.getrandbits(32)
        outs = []
        for bound in (0, 1 << 62):
            task = bpfemu.Kernel().spawn()
            (fd, m), = _filled_maps(task, 1, ks, vs, 2048, zero_seed, random.Random(salt), n)
            if not zero_seed:
                m.hashrnd = salt
            # keys from page 0-3 on (at most 18,000 bytes), values from page 13-16 on (at most 21,600)
            mm = mmap.mmap(-1, 24 * page)
            buf = ctypes.c_char.from_buffer(mm)
            base = ctypes.addressof(buf)
            mm[:] = b"\xaa" * (24 * page)
            if badk:
                libc.mprotect(base + 3 * page, page, prot)
            if badv:
                libc.mprotect(base + 16 * page, page, prot)
            ob = ctypes.c_uint32(0xFFFFFFFF)
            a = u.make_attr(**{"batch.map_fd": fd, "batch.keys": base + 3 * page - koff,
                               "batch.values": base + 16 * page - voff, "batch.count": len(m.elems),
                               "batch.out_batch": ctypes.addressof(ob)})
            with _numpy_min(bound):
                try:
                    task.bpf(cmd, a)
                    r = 0
                except OSError as e:
                    r = e.errno
            libc.mprotect(base + 3 * page, page, 3)
            libc.mprotect(base + 16 * page, page, 3)
            outs.append((r, a.batch.count, ob.value, bytes(mm), _walk(m)))
            del buf
            mm.close()
        assert outs[0] == outs[1], (ks, vs, n, cmd, koff, voff, badk, badv, prot)


def test_a_fresh_kernel_and_a_small_batch_do_not_import_numpy():
    import subprocess
    import sys
    code = ("import sys, ctypes, bpfemu\n"
            "from bpfemu import uapi as u\n"
            "t = bpfemu.Kernel().spawn()\n"
            "fd = t.bpf(u.BPF_MAP_CREATE, u.make_attr(map_type=u.BPF_MAP_TYPE_HASH, key_size=4, value_size=8,"
            " max_entries=64))\n"
            "k = (ctypes.c_uint32 * 32)(*range(32)); v = (ctypes.c_uint64 * 32)()\n"
            "t.bpf(u.BPF_MAP_UPDATE_BATCH, u.make_attr(**{'batch.map_fd': fd, 'batch.keys': ctypes.addressof(k),"
            " 'batch.values': ctypes.addressof(v), 'batch.count': 32}))\n"
            "ob = ctypes.c_uint32()\n"
            "try:\n"
            "    t.bpf(u.BPF_MAP_LOOKUP_BATCH, u.make_attr(**{'batch.map_fd': fd, 'batch.keys': ctypes.addressof(k),"
            " 'batch.values': ctypes.addressof(v), 'batch.count': 32, 'batch.out_batch': ctypes.addressof(ob)}))\n"
            "except OSError:\n"
            "    pass\n"
            "print('numpy' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
