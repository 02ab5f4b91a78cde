"""Hash maps (HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH): creation checks and their order,
element flags, full maps, per-CPU layout, bucket order with BPF_F_ZERO_SEED, batches,
frozen and read-only/write-only fds.

Orders are checked against a small bucket model written here (jhash of the key with seed 0,
n_buckets = roundup_pow_of_two(max_entries), new elements at the bucket head); the host
kernel is what proves the model. LRU maps are checked here for invariants; which element the
kernel evicts, and when, is in conformance/test_lru.py.
"""
import random
import struct

import pytest

from bpfemu import uapi as u
from bpfemu.jhash import htab_map_hash

from bpfemu.testing.support import unprivileged
from bpfemu.testing.support import (addr, batch, buf, create_map, delete, err, freeze, keys, lookup, lookup_and_delete, map_info,
                      make_attr, next_key, possible_cpus, u32, update)

NCPU = possible_cpus()  # the host's, which the emulated kernels take too
EPERM, ENOENT, E2BIG, EFAULT, EEXIST, EINVAL, ENOSPC, ENOTSUPP = 1, 2, 7, 14, 17, 22, 28, 524
HASH, PERCPU_HASH = u.BPF_MAP_TYPE_HASH, u.BPF_MAP_TYPE_PERCPU_HASH
LRU_HASH, LRU_PERCPU_HASH = u.BPF_MAP_TYPE_LRU_HASH, u.BPF_MAP_TYPE_LRU_PERCPU_HASH
PERCPU = (PERCPU_HASH, LRU_PERCPU_HASH)
ZS, NOPRE, NOLRU = u.BPF_F_ZERO_SEED, u.BPF_F_NO_PREALLOC, u.BPF_F_NO_COMMON_LRU
LOOKUP_BATCH, LOOKUP_AND_DELETE_BATCH = u.BPF_MAP_LOOKUP_BATCH, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH
UPDATE_BATCH, DELETE_BATCH = u.BPF_MAP_UPDATE_BATCH, u.BPF_MAP_DELETE_BATCH


def vsize(map_type, value_size):
    """The userspace value buffer: per-CPU maps take round_up(value_size, 8) per possible CPU."""
    return (value_size + 7) // 8 * 8 * NCPU if map_type in PERCPU else value_size


def roundup_pow2(n):
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


class BucketModel:
    """The order GET_NEXT_KEY and the batch walk follow, for a ZERO_SEED map."""

    def __init__(self, max_entries, moves_on_update=True):
        self.n = roundup_pow2(max_entries)
        self.moves = moves_on_update
        self.buckets = {}

    def bucket(self, k):
        return htab_map_hash(k, 0) & (self.n - 1)

    def update(self, k):
        lst = self.buckets.setdefault(self.bucket(k), [])
        if k in lst:
            if not self.moves:
                return
            lst.remove(k)
        lst.insert(0, k)

    def delete(self, k):
        self.buckets[self.bucket(k)].remove(k)

    def order(self):
        return [k for b in sorted(self.buckets) for k in self.buckets[b]]


def key_of(i, key_size):
    return struct.pack("<I", i * 2654435761 & 0xFFFFFFFF).ljust(key_size, bytes([i & 0xFF]))[:key_size]


# -- MAP_CREATE ---------------------------------------------------------------------

CREATE_CASES = [
    # (type, key_size, value_size, max_entries, flags, errno)
    (HASH, 4, 8, 16, u.BPF_F_MMAPABLE, EINVAL),
    (HASH, 4, 8, 16, u.BPF_F_RDONLY_PROG | u.BPF_F_WRONLY_PROG, EINVAL),
    (HASH, 4, 8, 16, u.BPF_F_RDONLY_PROG, 0),
    (HASH, 4, 8, 16, NOLRU, EINVAL),
    (PERCPU_HASH, 4, 8, 16, NOLRU, EINVAL),
    (LRU_HASH, 4, 8, 16, NOPRE, ENOTSUPP),
    (LRU_PERCPU_HASH, 4, 8, 16, NOPRE | NOLRU, ENOTSUPP),
    (LRU_HASH, 4, 8, 16, NOPRE | u.BPF_F_MMAPABLE, EINVAL),
    (HASH, 0, 8, 16, 0, EINVAL),
    (HASH, 4, 0, 16, 0, EINVAL),
    (HASH, 4, 8, 0, 0, EINVAL),
    (LRU_HASH, 0, 8, 16, NOPRE, ENOTSUPP),  # the flag checks come before the size checks
    (HASH, 4194248, 8, 1, NOPRE, E2BIG),  # key + value >= KMALLOC_MAX_SIZE - sizeof(htab_elem)
    (HASH, 8, 4194248, 1, NOPRE, E2BIG),
    (HASH, 4194247, 8, 1, NOPRE, 0),
    (HASH, 1024, 8, 4, 0, 0),  # no MAX_BPF_STACK limit on the key
    (PERCPU_HASH, 4, 32768, 4, 0, 0),
    (PERCPU_HASH, 4, 32761, 4, 0, 0),  # round_up(value_size, 8) == PCPU_MIN_UNIT_SIZE
    (PERCPU_HASH, 4, 32769, 4, 0, E2BIG),
    (LRU_PERCPU_HASH, 4, 32769, 4, 0, E2BIG),
    (HASH, 4, 8, (1 << 27) + 1, NOPRE, E2BIG),
    (HASH, 4, 8, 1 << 31, NOPRE, E2BIG),
    (HASH, 4, 8, 0xFFFFFFFF, NOPRE, E2BIG),
    (LRU_HASH, 4, 8, 0xFFFFFFFF, NOLRU, E2BIG),
    (PERCPU_HASH, 4, 8, (1 << 27) + 1, NOPRE, E2BIG),
]


@pytest.mark.parametrize("t,ks,vs,n,flags,want", CREATE_CASES)
def test_create(proc, t, ks, vs, n, flags, want):
    assert err(create_map, proc, t, key_size=ks, value_size=vs, max_entries=n, flags=flags) == want


@pytest.mark.parametrize("t", [PERCPU_HASH, LRU_PERCPU_HASH, LRU_HASH])
def test_numa_node_refused_for_percpu_kinds(proc, t):
    flags = u.BPF_F_NUMA_NODE | (NOLRU if t == LRU_HASH else 0)
    assert err(create_map, proc, t, flags=flags, numa_node=0) == EINVAL
    assert err(create_map, proc, HASH, flags=u.BPF_F_NUMA_NODE, numa_node=0) == 0


def test_create_check_order_vs_privileges(backend, profile):
    bpf_only = backend.spawn(uid=1000, caps=("CAP_BPF",))
    nobody = backend.spawn(uid=1000, caps=())
    # ZERO_SEED needs CAP_SYS_ADMIN, and that check is the first of htab_map_alloc_check
    assert err(create_map, bpf_only, HASH, flags=ZS) == EPERM
    assert err(create_map, bpf_only, HASH, flags=ZS | u.BPF_F_MMAPABLE) == EPERM
    assert err(create_map, bpf_only, HASH, flags=ZS, key_size=0) == EPERM
    # the other alloc checks run before the capability check
    assert err(create_map, nobody, LRU_HASH, key_size=0) == unprivileged(profile, EINVAL)
    assert err(create_map, nobody, LRU_HASH, flags=NOPRE) == unprivileged(profile, ENOTSUPP)
    assert err(create_map, nobody, PERCPU_HASH, value_size=40000) == unprivileged(profile, E2BIG)
    assert err(create_map, nobody, LRU_HASH) == EPERM
    # the max_entries limit is checked at allocation, after the capability check
    assert err(create_map, nobody, LRU_HASH, max_entries=1 << 28) == EPERM
    assert err(create_map, bpf_only, LRU_HASH, max_entries=1 << 28) == E2BIG
    assert err(create_map, bpf_only, HASH, max_entries=1 << 28, flags=NOPRE) == E2BIG


@pytest.mark.parametrize("t", [LRU_HASH, LRU_PERCPU_HASH])
@pytest.mark.parametrize("n", [1, 3, 5, 16])
def test_no_common_lru_rounds_max_entries_up_to_cpus(proc, t, n):
    fd = create_map(proc, t, max_entries=n, flags=NOLRU)
    assert map_info(proc, fd).max_entries == (n + NCPU - 1) // NCPU * NCPU
    fd = create_map(proc, t, max_entries=n)
    assert map_info(proc, fd).max_entries == n


# -- element commands ----------------------------------------------------------------

@pytest.mark.parametrize("t", [HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH])
def test_update_flags(proc, t):
    fd = create_map(proc, t, flags=ZS)
    vs = vsize(t, 8)
    v = bytes(range(vs))
    k = u32(1)
    assert err(update, proc, fd, k, v, 3) == EINVAL
    assert err(update, proc, fd, k, v, u.BPF_F_LOCK) == EINVAL  # no bpf_spin_lock in the value
    assert err(update, proc, fd, k, v, 8) == EINVAL
    assert err(update, proc, fd, k, v, u.BPF_EXIST) == ENOENT
    assert err(update, proc, fd, k, v, u.BPF_NOEXIST) == 0
    assert err(update, proc, fd, k, v, u.BPF_NOEXIST) == EEXIST
    assert err(update, proc, fd, k, v[::-1], u.BPF_EXIST) == 0
    assert lookup(proc, fd, k, vs) == v[::-1]
    assert err(update, proc, fd, k, v, u.BPF_ANY) == 0
    assert err(lookup, proc, fd, k, vs, u.BPF_F_LOCK) == EINVAL
    assert err(lookup, proc, fd, k, vs, 8) == EINVAL
    assert err(lookup, proc, fd, u32(2), vs) == ENOENT
    assert err(delete, proc, fd, u32(2)) == ENOENT
    assert err(delete, proc, fd, k) == 0
    assert err(delete, proc, fd, k) == ENOENT


@pytest.mark.parametrize("t,flags", [(HASH, 0), (HASH, NOPRE), (PERCPU_HASH, 0), (PERCPU_HASH, NOPRE)])
def test_full_map(proc, t, flags):
    fd = create_map(proc, t, max_entries=4, flags=flags | ZS)
    vs = vsize(t, 8)
    for i in range(4):
        update(proc, fd, u32(i), bytes([i]) * vs)
    assert err(update, proc, fd, u32(9), bytes(vs)) == E2BIG
    assert err(update, proc, fd, u32(9), bytes(vs), u.BPF_NOEXIST) == E2BIG
    assert err(update, proc, fd, u32(9), bytes(vs), u.BPF_EXIST) == ENOENT
    assert err(update, proc, fd, u32(2), bytes(vs), u.BPF_NOEXIST) == EEXIST
    # replacing the value of a present key works in a full map, as often as wanted
    for _ in range(3):
        for i in range(4):
            assert err(update, proc, fd, u32(i), bytes([i + 100]) * vs) == 0
            assert err(update, proc, fd, u32(i), bytes([i + 50]) * vs, u.BPF_EXIST) == 0
    assert [lookup(proc, fd, u32(i), vs) for i in range(4)] == [bytes([i + 50]) * vs for i in range(4)]
    delete(proc, fd, u32(0))
    assert err(update, proc, fd, u32(9), bytes(vs)) == 0
    assert err(update, proc, fd, u32(10), bytes(vs)) == E2BIG
    assert sorted(keys(proc, fd, 4)) == sorted(u32(i) for i in (1, 2, 3, 9))


@pytest.mark.parametrize("t", PERCPU)
@pytest.mark.parametrize("value_size", [1, 5, 8, 12])
def test_percpu_value_layout(proc, t, value_size):
    fd = create_map(proc, t, value_size=value_size, flags=ZS)
    step = (value_size + 7) // 8 * 8
    # every CPU's slice carries its own bytes; the padding up to 8 bytes is stored too
    want = b"".join(bytes([c + 1]) * value_size + b"\xff" * (step - value_size) for c in range(NCPU))
    update(proc, fd, u32(1), want)
    assert lookup(proc, fd, u32(1), step * NCPU) == want
    assert lookup_and_delete(proc, fd, u32(1), step * NCPU) == want
    assert err(lookup, proc, fd, u32(1), step * NCPU) == ENOENT


@pytest.mark.parametrize("t", [HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH])
def test_lookup_and_delete(proc, t):
    fd = create_map(proc, t, flags=ZS)
    vs = vsize(t, 8)
    update(proc, fd, u32(1), b"\x07" * vs)
    update(proc, fd, u32(2), b"\x08" * vs)
    assert err(lookup_and_delete, proc, fd, u32(1), vs, u.BPF_F_LOCK) == EINVAL
    assert err(lookup_and_delete, proc, fd, u32(1), vs, 8) == EINVAL
    assert lookup_and_delete(proc, fd, u32(1), vs) == b"\x07" * vs
    assert err(lookup_and_delete, proc, fd, u32(1), vs) == ENOENT
    assert keys(proc, fd, 4) == [u32(2)]


# -- order ---------------------------------------------------------------------------

@pytest.mark.parametrize("t,flags,moves", [(HASH, 0, True), (HASH, NOPRE, True), (PERCPU_HASH, 0, False),
                                           (PERCPU_HASH, NOPRE, False)])
@pytest.mark.parametrize("key_size", [1, 3, 4, 6, 8, 13, 16])
def test_zero_seed_order_is_the_bucket_walk(proc, t, flags, moves, key_size):
    """HASH moves a replaced key to its bucket head; PERCPU_HASH rewrites it in place."""
    n = 48
    fd = create_map(proc, t, key_size=key_size, max_entries=n, flags=flags | ZS)
    vs = vsize(t, 8)
    model = BucketModel(n, moves_on_update=moves)
    rng = random.Random(key_size)
    universe = sorted({key_of(i, key_size) for i in range(200)})
    live = []
    for step in range(160):
        k = rng.choice(universe)
        if k in live and rng.random() < 0.4:
            delete(proc, fd, k)
            model.delete(k)
            live.remove(k)
        elif k in live or len(live) < n:
            update(proc, fd, k, bytes([step & 0xFF]) * vs)
            model.update(k)
            if k not in live:
                live.append(k)
        if step % 20 == 19:
            assert keys(proc, fd, key_size) == model.order()
    assert keys(proc, fd, key_size) == model.order()


@pytest.mark.parametrize("key_size", [4, 5])
def test_zero_seed_order_with_many_keys(proc, key_size):
    n = 1024
    fd = create_map(proc, HASH, key_size=key_size, max_entries=n, flags=ZS | NOPRE)
    model = BucketModel(n)
    ks = [key_of(i, key_size) for i in range(900)]
    for k in ks:
        update(proc, fd, k, bytes(8))
        model.update(k)
    for k in ks[::3]:
        delete(proc, fd, k)
        model.delete(k)
    for k in ks[1::7] + ks[::9]:  # present ones move to their bucket head, deleted ones come back
        update(proc, fd, k, bytes(8))
        model.update(k)
    assert keys(proc, fd, key_size) == model.order()


def test_get_next_key_edges(proc):
    fd = create_map(proc, HASH, max_entries=8, flags=ZS)
    assert err(next_key, proc, fd, None, 4) == ENOENT
    assert err(next_key, proc, fd, u32(5), 4) == ENOENT
    for i in range(5):
        update(proc, fd, u32(i), bytes(8))
    order = keys(proc, fd, 4)
    assert len(order) == 5
    # a key that is not there restarts the walk
    assert next_key(proc, fd, u32(77), 4) == order[0]
    assert next_key(proc, fd, None, 4) == order[0]
    assert err(next_key, proc, fd, order[-1], 4) == ENOENT


def test_random_seed_walk_visits_every_key_once(proc):
    want = {struct.pack("<Q", i * 7919) for i in range(200)}
    fd = create_map(proc, HASH, key_size=8, max_entries=256)
    for k in want:
        update(proc, fd, k, bytes(8))
    got = keys(proc, fd, 8)
    assert len(got) == len(want) and set(got) == want
    for k in sorted(want)[::3]:
        delete(proc, fd, k)
        want.discard(k)
    got = keys(proc, fd, 8)
    assert len(got) == len(want) and set(got) == want


# -- batches -------------------------------------------------------------------------

def filled(proc, t, n_keys, max_entries=16, flags=ZS, key_size=4):
    fd = create_map(proc, t, key_size=key_size, max_entries=max_entries, flags=flags)
    model = BucketModel(max_entries, moves_on_update=t not in PERCPU)
    vs = vsize(t, 8)
    for i in range(n_keys):
        k = key_of(i, key_size)
        update(proc, fd, k, struct.pack("<Q", i + 1) * (vs // 8))
        model.update(k)
    return fd, model


def value_for(t, k, key_size=4):
    i = [key_of(j, key_size) for j in range(64)].index(k)
    return struct.pack("<Q", i + 1) * (vsize(t, 8) // 8)


@pytest.mark.parametrize("t", [HASH, PERCPU_HASH])
@pytest.mark.parametrize("cmd", [LOOKUP_BATCH, LOOKUP_AND_DELETE_BATCH])
@pytest.mark.parametrize("chunk", [2, 3, 5, 100])
def test_batch_walk(proc, t, cmd, chunk):
    fd, model = filled(proc, t, 11)
    vs = vsize(t, 8)
    got_keys, got_values, in_batch, calls = b"", b"", None, 0
    buckets = {b: list(ks) for b, ks in model.buckets.items() if ks}
    while True:
        r = batch(proc, cmd, fd, chunk, 4, vs, in_batch=in_batch)
        calls += 1
        start = struct.unpack("<I", in_batch)[0] if in_batch else 0
        # whole buckets, in bucket order, as many as fit in chunk
        want, total = [], 0
        stop = None
        for b in sorted(buckets):
            if b < start:
                continue
            if len(buckets[b]) > chunk - total:
                stop = b
                break
            want += buckets[b]
            total += len(buckets[b])
        if stop is not None and total == 0:
            assert (r.errno, r.count, r.out_batch) == (ENOSPC, 0, u32(stop))
            chunk += 1
            continue
        assert r.count == len(want)
        assert r.keys[:4 * r.count] == b"".join(want)
        assert r.values[:vs * r.count] == b"".join(value_for(t, k) for k in want)
        got_keys += r.keys[:4 * r.count]
        got_values += r.values[:vs * r.count]
        if stop is None:
            assert r.errno == ENOENT and r.out_batch == u32(16)
            break
        assert r.errno == 0 and r.out_batch == u32(stop)
        in_batch = r.out_batch
    assert got_keys == b"".join(model.order())
    remaining = keys(proc, fd, 4)
    assert remaining == ([] if cmd == LOOKUP_AND_DELETE_BATCH else model.order())


@pytest.mark.parametrize("key_size,value_size", [(4, 8), (5, 3), (16, 24), (37, 8)])
def test_big_batches_are_the_zero_seed_walk(proc, key_size, value_size):
    """Thousands of elements with deletes and replacements: a whole-map LOOKUP_BATCH gives every key and
    value in the bucket walk's order, and LOOKUP_AND_DELETE_BATCH from a bucket in the middle takes the
    walk from there on and leaves the rest."""
    n = 4096
    fd = create_map(proc, HASH, key_size=key_size, value_size=value_size, max_entries=n, flags=ZS)
    model = BucketModel(n)
    rng = random.Random(key_size)
    ks = [key_of(i, key_size) for i in range(3000)]
    values = {}
    for step, k in enumerate(ks + rng.sample(ks, 600)):  # then 600 replacements: each moves to its bucket head
        values[k] = bytes([(step + j) & 0xFF for j in range(value_size)])
        update(proc, fd, k, values[k])
        model.update(k)
    for k in rng.sample(ks, 700):
        delete(proc, fd, k)
        model.delete(k)
        del values[k]
    order = model.order()
    r = batch(proc, LOOKUP_BATCH, fd, len(order) + 3, key_size, value_size)
    assert (r.errno, r.count, r.out_batch) == (ENOENT, len(order), u32(n))
    assert r.keys[:key_size * r.count] == b"".join(order)
    assert r.values[:value_size * r.count] == b"".join(values[k] for k in order)
    start = sorted(model.buckets)[len(model.buckets) // 2]
    tail = [k for b in sorted(model.buckets) if b >= start for k in model.buckets[b]]
    r = batch(proc, LOOKUP_AND_DELETE_BATCH, fd, len(order), key_size, value_size, in_batch=u32(start))
    assert (r.errno, r.count, r.out_batch) == (ENOENT, len(tail), u32(n))
    assert r.keys[:key_size * r.count] == b"".join(tail)
    assert r.values[:value_size * r.count] == b"".join(values[k] for k in tail)
    assert keys(proc, fd, key_size) == order[:len(order) - len(tail)]


@pytest.mark.parametrize("cmd", [LOOKUP_BATCH, LOOKUP_AND_DELETE_BATCH])
def test_batch_edges(proc, cmd):
    fd, model = filled(proc, HASH, 6)
    # count 0: nothing happens, nothing is written
    r = batch(proc, cmd, fd, 0, 4, 8)
    assert (r.errno, r.count, r.out_batch) == (0, 0, b"\xee" * 4)
    # a bucket index past the table: ENOENT, count 0, out_batch untouched
    for start in (16, 17, 0xFFFFFFFF):
        r = batch(proc, cmd, fd, 4, 4, 8, in_batch=u32(start))
        assert (r.errno, r.count, r.out_batch) == (ENOENT, 0, b"\xee" * 4)
    # flags
    assert batch(proc, cmd, fd, 4, 4, 8, flags=1).errno == EINVAL
    assert batch(proc, cmd, fd, 4, 4, 8, elem_flags=u.BPF_F_LOCK).errno == EINVAL
    assert batch(proc, cmd, fd, 4, 4, 8, elem_flags=u.BPF_EXIST).errno == EINVAL
    # an empty map: ENOENT at once, out_batch = n_buckets
    fd2 = create_map(proc, HASH, max_entries=16, flags=ZS)
    r = batch(proc, cmd, fd2, 4, 4, 8)
    assert (r.errno, r.count, r.out_batch) == (ENOENT, 0, u32(16))
    assert keys(proc, fd, 4) == model.order()


def colliding_keys(n_buckets, how_many):
    """Distinct u32 keys that share bucket 0 of a ZERO_SEED table of n_buckets."""
    out, i = [], 0
    while len(out) < how_many:
        if htab_map_hash(u32(i), 0) & (n_buckets - 1) == 0:
            out.append(u32(i))
        i += 1
    return out


@pytest.mark.parametrize("cmd", [LOOKUP_BATCH, LOOKUP_AND_DELETE_BATCH])
def test_batch_never_splits_a_bucket(proc, cmd):
    fd = create_map(proc, HASH, max_entries=8, flags=ZS)
    ks = colliding_keys(8, 3)
    for k in ks:
        update(proc, fd, k, k * 2)
    for count in (1, 2):
        r = batch(proc, cmd, fd, count, 4, 8)
        assert (r.errno, r.count, r.out_batch) == (ENOSPC, 0, u32(0))
    r = batch(proc, cmd, fd, 3, 4, 8)
    assert (r.errno, r.count, r.out_batch) == (ENOENT, 3, u32(8))
    assert r.keys == b"".join(ks[::-1])
    # one more key in another bucket after it: a call that fits only the first bucket returns 0
    fd = create_map(proc, HASH, max_entries=8, flags=ZS)
    for k in ks[:2]:
        update(proc, fd, k, k * 2)
    other = next(u32(i) for i in range(100) if htab_map_hash(u32(i), 0) & 7 == 5)
    update(proc, fd, other, other * 2)
    update(proc, fd, ks[2], ks[2] * 2)
    r = batch(proc, cmd, fd, 3, 4, 8)
    assert (r.errno, r.count, r.out_batch) == (0, 3, u32(5))
    r = batch(proc, cmd, fd, 3, 4, 8, in_batch=r.out_batch)
    assert (r.errno, r.count, r.out_batch, r.keys[:4]) == (ENOENT, 1, u32(8), other)


@pytest.mark.parametrize("cmd", [LOOKUP_BATCH, LOOKUP_AND_DELETE_BATCH])
def test_batch_efault(proc, cmd):
    fd, model = filled(proc, HASH, 6)
    r = batch(proc, cmd, fd, 10, 4, 8, null=("keys",))
    assert (r.errno, r.count) == (EFAULT, 0)
    fd, model = filled(proc, HASH, 6)
    r = batch(proc, cmd, fd, 10, 4, 8, null=("values",))
    assert (r.errno, r.count) == (EFAULT, 0)
    fd, model = filled(proc, HASH, 6)
    r = batch(proc, cmd, fd, 10, 4, 8, null=("out_batch",))
    assert r.errno == EFAULT
    # the elements were copied and, for the delete variant, deleted before the fault
    assert r.keys[:24] == b"".join(model.order())
    assert keys(proc, fd, 4) == ([] if cmd == LOOKUP_AND_DELETE_BATCH else model.order())


def test_update_and_delete_batch_stop_at_the_first_error(proc):
    fd = create_map(proc, HASH, max_entries=4, flags=ZS)
    update(proc, fd, u32(1), bytes(8))
    ks = [u32(i) for i in (2, 3, 4, 5, 6)]
    r = batch(proc, UPDATE_BATCH, fd, 5, 4, 8, keys=b"".join(ks), values=bytes(range(40)))
    assert (r.errno, r.count) == (E2BIG, 3)
    assert sorted(keys(proc, fd, 4)) == [u32(i) for i in (1, 2, 3, 4)]
    assert lookup(proc, fd, u32(3), 8) == bytes(range(8, 16))
    r = batch(proc, DELETE_BATCH, fd, 4, 4, 8, keys=b"".join(u32(i) for i in (1, 2, 9, 3)))
    assert (r.errno, r.count) == (ENOENT, 2)
    assert sorted(keys(proc, fd, 4)) == [u32(i) for i in (3, 4)]
    # elem_flags may only be BPF_F_LOCK (and that needs a spin lock): BPF_NOEXIST is refused,
    # before count is touched
    r = batch(proc, UPDATE_BATCH, fd, 1, 4, 8, keys=u32(7), values=bytes(8), elem_flags=u.BPF_NOEXIST)
    assert (r.errno, r.count) == (EINVAL, 1)
    r = batch(proc, UPDATE_BATCH, fd, 1, 4, 8, keys=u32(7), values=bytes(8), elem_flags=u.BPF_F_LOCK)
    assert r.errno == EINVAL
    # count 0 does nothing
    assert batch(proc, DELETE_BATCH, fd, 0, 4, 8, keys=u32(3)).errno == 0
    r = batch(proc, UPDATE_BATCH, fd, 2, 4, 8, null=("keys",))
    assert (r.errno, r.count) == (EFAULT, 0)  # count is written back even with EFAULT
    assert sorted(keys(proc, fd, 4)) == [u32(i) for i in (3, 4)]


def test_batch_percpu_values(proc):
    fd, model = filled(proc, PERCPU_HASH, 5)
    vs = vsize(PERCPU_HASH, 8)
    r = batch(proc, LOOKUP_BATCH, fd, 10, 4, vs)
    assert r.errno == ENOENT and r.count == 5
    assert r.values[:5 * vs] == b"".join(value_for(PERCPU_HASH, k) for k in model.order())


# -- permissions ---------------------------------------------------------------------

def test_frozen_map_refuses_writes(proc):
    fd, model = filled(proc, HASH, 3)
    freeze(proc, fd)
    k = model.order()[0]
    assert err(update, proc, fd, u32(99), bytes(8)) == EPERM
    assert err(delete, proc, fd, k) == EPERM
    assert err(lookup_and_delete, proc, fd, k, 8) == EPERM
    assert batch(proc, UPDATE_BATCH, fd, 1, 4, 8, keys=u32(99), values=bytes(8)).errno == EPERM
    assert batch(proc, DELETE_BATCH, fd, 1, 4, 8, keys=k).errno == EPERM
    assert batch(proc, LOOKUP_AND_DELETE_BATCH, fd, 8, 4, 8).errno == EPERM
    assert lookup(proc, fd, k, 8) == value_for(HASH, k)
    r = batch(proc, LOOKUP_BATCH, fd, 8, 4, 8)
    assert (r.errno, r.count) == (ENOENT, 3)
    assert keys(proc, fd, 4) == model.order()


def test_rdonly_and_wronly_fds(proc):
    ro = create_map(proc, HASH, flags=ZS | u.BPF_F_RDONLY)
    assert map_info(proc, ro).map_flags == ZS
    assert err(update, proc, ro, u32(1), bytes(8)) == EPERM
    assert err(delete, proc, ro, u32(1)) == EPERM
    assert err(lookup_and_delete, proc, ro, u32(1), 8) == EPERM
    assert err(lookup, proc, ro, u32(1), 8) == ENOENT
    assert err(next_key, proc, ro, None, 4) == ENOENT
    assert batch(proc, LOOKUP_BATCH, ro, 4, 4, 8).errno == ENOENT
    assert batch(proc, LOOKUP_AND_DELETE_BATCH, ro, 4, 4, 8).errno == EPERM
    assert batch(proc, UPDATE_BATCH, ro, 1, 4, 8, keys=u32(1), values=bytes(8)).errno == EPERM
    wo = create_map(proc, HASH, flags=ZS | u.BPF_F_WRONLY)
    assert err(update, proc, wo, u32(1), bytes(8)) == 0
    assert err(lookup, proc, wo, u32(1), 8) == EPERM
    assert err(next_key, proc, wo, None, 4) == EPERM
    assert err(lookup_and_delete, proc, wo, u32(1), 8) == EPERM
    assert batch(proc, LOOKUP_BATCH, wo, 4, 4, 8).errno == EPERM
    assert batch(proc, DELETE_BATCH, wo, 1, 4, 8, keys=u32(1)).errno == 0
    assert err(create_map, proc, HASH, flags=u.BPF_F_RDONLY | u.BPF_F_WRONLY) == EINVAL


# -- LRU -------------------------------------------------------------------------------

@pytest.mark.parametrize("t", [LRU_HASH, LRU_PERCPU_HASH])
@pytest.mark.parametrize("flags", [0, NOLRU])
def test_lru_invariants(proc, t, flags):
    fd = create_map(proc, t, max_entries=16, flags=flags | ZS)
    n = map_info(proc, fd).max_entries
    vs = vsize(t, 8)
    rng = random.Random(t * 10 + flags)
    for step in range(150):
        k = u32(rng.randrange(60))
        v = struct.pack("<Q", step) * (vs // 8)
        r = rng.random()
        if r < 0.7:
            assert err(update, proc, fd, k, v) == 0  # never E2BIG: something is evicted
            assert lookup(proc, fd, k, vs) == v
        elif r < 0.85:
            e = err(update, proc, fd, k, v, u.BPF_NOEXIST)
            assert e in (0, EEXIST)
            if e == 0:
                assert lookup(proc, fd, k, vs) == v
        else:
            e = err(delete, proc, fd, k)
            assert e in (0, ENOENT)
            assert err(lookup, proc, fd, k, vs) == ENOENT
        if step % 5 == 4:
            ks = keys(proc, fd, 4)
            assert len(ks) == len(set(ks)) <= n


@pytest.mark.parametrize("cmd", [LOOKUP_BATCH, LOOKUP_AND_DELETE_BATCH])
def test_batch_bad_in_batch_pointer(proc, cmd):
    fd, model = filled(proc, HASH, 3)
    kb, vb = buf(40), buf(80)
    a = make_attr(**{"batch.map_fd": fd, "batch.count": 5, "batch.in_batch": 8, "batch.keys": addr(kb),
                     "batch.values": addr(vb)})
    assert err(proc.bpf, cmd, a) == EFAULT
    assert a.batch.count == 0  # written as 0 before in_batch is read
    a = make_attr(**{"batch.map_fd": fd, "batch.count": 0, "batch.in_batch": 8})
    assert err(proc.bpf, cmd, a) == 0  # count 0: nothing is read
    assert keys(proc, fd, 4) == model.order()


@pytest.mark.parametrize("t", [HASH, PERCPU_HASH, LRU_HASH])
def test_lookup_and_delete_with_a_bad_value_pointer_still_deletes(proc, t):
    fd = create_map(proc, t, flags=ZS)
    vs = vsize(t, 8)
    update(proc, fd, u32(1), bytes(vs))
    k = buf(u32(1))
    a = make_attr(map_fd=fd, key=addr(k), value=0)
    assert err(proc.bpf, u.BPF_MAP_LOOKUP_AND_DELETE_ELEM, a) == EFAULT
    assert keys(proc, fd, 4) == []
    assert err(proc.bpf, u.BPF_MAP_LOOKUP_AND_DELETE_ELEM, a) == ENOENT
