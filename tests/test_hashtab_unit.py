"""Emulator-only properties of the hash maps and maps of maps (hashtab.py, map_in_map.py).

Random command sequences against a plain Python model (a dict for the contents and a
bucket list for the order), memory that follows the elements and not max_entries, the
batch walk agreeing with GET_NEXT_KEY, and the references maps of maps hold. The
kernel model's own invariants (bpfemu.check_invariants) are checked after each run.
"""
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

import bpfemu
from bpfemu import uapi as u
from bpfemu.jhash import htab_map_hash, jhash, jhash2
from bpfemu.testing.support import (batch, create_map, delete, err, keys, lookup, lookup_and_delete, map_id,
                                 u32, update)

SETTINGS = settings(max_examples=25, deadline=None)
ZS = u.BPF_F_ZERO_SEED
ENOENT, E2BIG, EEXIST = 2, 7, 17


def task():
    return bpfemu.Kernel(ncpus=2).spawn()


@SETTINGS
@given(st.binary(min_size=0, max_size=64).filter(lambda b: len(b) % 4 == 0), st.integers(0, 2**32 - 1))
def test_jhash2_equals_byte_jhash_for_whole_words(data, seed):
    assert jhash2(data, seed) == jhash(data, seed)


ops = st.lists(st.tuples(st.sampled_from(["update", "delete", "lookup_and_delete"]), st.integers(0, 19),
                         st.sampled_from([0, 0, 1, 2]), st.integers(0, 255)), max_size=60)


@SETTINGS
@given(ops, st.sampled_from([1, 3, 4, 7, 8]), st.sampled_from([0, u.BPF_F_NO_PREALLOC]),
       st.sampled_from([u.BPF_MAP_TYPE_HASH, u.BPF_MAP_TYPE_PERCPU_HASH]))
def test_hash_matches_a_dict_and_a_bucket_model(ops, key_size, flags, map_type):
    p = task()
    max_entries = 8
    fd = create_map(p, map_type, key_size=key_size, value_size=8, max_entries=max_entries, flags=flags | ZS)
    vs = 16 if map_type == u.BPF_MAP_TYPE_PERCPU_HASH else 8
    nb = 8
    contents, buckets = {}, {}
    for op, i, fl, v in ops:
        k = struct.pack("<I", i * 0x9E3779B1 & 0xFFFFFFFF).ljust(key_size, b"k")[:key_size]
        b = htab_map_hash(k, 0) & (nb - 1)
        if op == "update":
            val = bytes([v]) * vs
            want = (EEXIST if k in contents and fl == 1 else ENOENT if k not in contents and fl == 2
                    else E2BIG if k not in contents and len(contents) == max_entries else 0)
            assert err(update, p, fd, k, val, fl) == want
            if want == 0:
                lst = buckets.setdefault(b, [])
                if k in lst and map_type == u.BPF_MAP_TYPE_HASH:
                    lst.remove(k)
                if k not in lst:
                    lst.insert(0, k)
                contents[k] = val
        elif op == "delete":
            assert err(delete, p, fd, k) == (0 if k in contents else ENOENT)
        else:
            if k in contents:
                assert lookup_and_delete(p, fd, k, vs) == contents[k]
            else:
                assert err(lookup_and_delete, p, fd, k, vs) == ENOENT
        if op != "update" and k in contents:
            del contents[k]
            buckets[b].remove(k)
        assert keys(p, fd, key_size) == [x for bb in sorted(buckets) for x in buckets[bb]]
    for k, val in contents.items():
        assert lookup(p, fd, k, vs) == val
    bpfemu.check_invariants(p.kernel)


@SETTINGS
@given(st.sets(st.integers(0, 2**32 - 1), max_size=40), st.lists(st.integers(1, 9), min_size=1, max_size=30),
       st.booleans())
def test_batch_walk_equals_get_next_key_walk(keyset, counts, delete_too):
    p = task()
    fd = create_map(p, u.BPF_MAP_TYPE_HASH, max_entries=64)  # random seed: order is the map's own
    for k in keyset:
        update(p, fd, u32(k), u32(k) * 2)
    order = keys(p, fd, 4)
    cmd = u.BPF_MAP_LOOKUP_AND_DELETE_BATCH if delete_too else u.BPF_MAP_LOOKUP_BATCH
    got, in_batch, i = [], None, 0
    while True:
        count = counts[i % len(counts)]
        i += 1
        r = batch(p, cmd, fd, count, 4, 8, in_batch=in_batch)
        assert r.errno in (0, ENOENT, 28)
        if r.errno == 28:  # a bucket larger than count: nothing copied, retry bigger
            assert r.count == 0
            counts = [c + 1 for c in counts]
            continue
        ks = [r.keys[j:j + 4] for j in range(0, 4 * r.count, 4)]
        assert [r.values[j:j + 8] for j in range(0, 8 * r.count, 8)] == [k * 2 for k in ks]
        got += ks
        if r.errno == ENOENT:
            break
        in_batch = r.out_batch
    assert got == order
    assert keys(p, fd, 4) == ([] if delete_too else order)
    bpfemu.check_invariants(p.kernel)


def test_memory_follows_elements_not_max_entries():
    p = task()
    # (the memory cgroup charges the kernel's bucket array: keep it within the default limit)
    fd = create_map(p, u.BPF_MAP_TYPE_HASH, max_entries=1 << 24, flags=u.BPF_F_NO_PREALLOC)
    m = p.fdget(fd).obj
    assert m.n_buckets == 1 << 24 and not m.buckets and not m.elems
    for i in range(100):
        update(p, fd, u32(i), bytes(8))
    assert m.count() == 100 and len(m.buckets) <= 100
    fd = create_map(p, u.BPF_MAP_TYPE_PERCPU_HASH, max_entries=1 << 24, flags=u.BPF_F_NO_PREALLOC)
    update(p, fd, u32(1), bytes(16))
    m = p.fdget(fd).obj
    assert m.count() == 1 and len(m.buckets) == 1


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["put", "del"]), st.integers(0, 3), st.integers(0, 2)), max_size=30),
       st.sampled_from([u.BPF_MAP_TYPE_ARRAY_OF_MAPS, u.BPF_MAP_TYPE_HASH_OF_MAPS]))
def test_maps_of_maps_hold_exactly_what_they_store(ops, outer_type):
    p = task()
    inners = [create_map(p, u.BPF_MAP_TYPE_HASH) for _ in range(3)]
    fd = create_map(p, outer_type, key_size=4, value_size=4, max_entries=4, inner_map_fd=inners[0])
    outer = p.fdget(fd).obj
    stored = {}
    for op, k, which in ops:
        if op == "put":
            update(p, fd, u32(k), struct.pack("<i", inners[which]))
            stored[k] = which
        else:
            assert err(delete, p, fd, u32(k)) == (0 if k in stored else ENOENT)
            stored.pop(k, None)
        for w, ifd in enumerate(inners):
            m = p.fdget(ifd).obj
            assert m.holders.get(outer, 0) == sum(1 for x in stored.values() if x == w)
        for k2, w in stored.items():
            assert lookup(p, fd, u32(k2), 4) == u32(map_id(p, inners[w]))
    bpfemu.check_invariants(p.kernel)
    ids = [map_id(p, ifd) for ifd in inners]
    for ifd in inners:
        p.close(ifd)
    # what is still stored stays alive, held by the outer map only
    assert {o.id for o in p.kernel.objects("map")} == {outer.id} | {ids[w] for w in stored.values()}
    p.close(fd)
    assert p.kernel.objects("map") == []
    bpfemu.check_invariants(p.kernel)


def test_full_lru_map_evicts_before_looking_the_key_up():
    """6.18: an LRU update takes a free node first, so a full map loses its oldest element
    even when the update then fails on its flags (LRU_PERCPU_HASH: not for BPF_EXIST)."""
    p = task()
    for t, vs in ((u.BPF_MAP_TYPE_LRU_HASH, 8), (u.BPF_MAP_TYPE_LRU_PERCPU_HASH, 16)):
        fd = create_map(p, t, max_entries=4, flags=ZS)
        for i in range(4):
            update(p, fd, u32(i), bytes(vs))
        assert err(update, p, fd, u32(3), bytes(vs), 1) == EEXIST
        assert sorted(keys(p, fd, 4)) == [u32(1), u32(2), u32(3)]
        update(p, fd, u32(0), bytes(vs))
        assert err(update, p, fd, u32(3), bytes(vs), 2) == 0
        want = [u32(0), u32(1), u32(2), u32(3)] if t == u.BPF_MAP_TYPE_LRU_PERCPU_HASH else [u32(0), u32(2), u32(3)]
        assert sorted(keys(p, fd, 4)) == want
    bpfemu.check_invariants(p.kernel)
