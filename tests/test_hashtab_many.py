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
