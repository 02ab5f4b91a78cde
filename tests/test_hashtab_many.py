"""The plain hash map's update_many/delete_many (the batch commands' bodies, with the hashes computed together)
leave exactly the state, walk order, count and errno of the one-by-one generic ones."""
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
                                                min_size=1, max_size=6))
def test_the_batch_bodies_match_one_by_one(salt, max_entries, zero_seed, prealloc, rounds):
    rnd = random.Random(salt)
    flags = (u.BPF_F_ZERO_SEED if zero_seed else 0) | (0 if prealloc else u.BPF_F_NO_PREALLOC)
    kernel = bpfemu.Kernel()
    task = kernel.spawn()
    fast, slow = _hash_map(task, max_entries, flags), _hash_map(task, max_entries, flags)
    slow.hashrnd = fast.hashrnd
    for op, count, uflags in rounds:
        keys = b"".join(rnd.randrange(100).to_bytes(4, "little") for _ in range(count))
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
    for i in range(count):
        e = m.elems[i.to_bytes(4, "little")]
        assert e.hash == htab_map_hash(e.key, m.hashrnd) and e.bucket == e.hash & (m.n_buckets - 1)
