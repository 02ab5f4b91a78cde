"""LRU hash maps: which keys an update evicts, and when (kernel/bpf/bpf_lru_list.c; bpfemu/maps/bpf_lru_list.py).

The kernel's choice is an implementation detail users hit: eviction comes in batches, before the map
is full, depends on the CPU an update runs on, and can remove the very key an update is about. Each
test pins its task to a CPU (``sched_setaffinity``: a real one on the host, the emulated task's CPU
on the emulator) and expects exactly what the host does. ``test_random_sequences_agree_with_host``
runs random sequences of every LRU operation on random CPUs on both machines, compared step by step.
"""
import os
import random
import struct

import pytest

from bpfemu import Kernel, Host, uapi as u
from bpfemu.host.sysinfo import host_possible_cpus
from bpfemu.testing.backends import need_host, real_kernel, twin_kernel
from bpfemu.testing.support import batch, create_map, delete, err, keys, lookup, lookup_and_delete, map_info, update

NCPUS = host_possible_cpus() or 2
LRU_HASH, LRU_PERCPU_HASH = u.BPF_MAP_TYPE_LRU_HASH, u.BPF_MAP_TYPE_LRU_PERCPU_HASH
NOLRU, ZS = u.BPF_F_NO_COMMON_LRU, u.BPF_F_ZERO_SEED
EEXIST, ENOENT = 17, 2


def k(i):
    return struct.pack("<I", i)


def present(proc, fd):
    return sorted(struct.unpack("<I", x)[0] for x in keys(proc, fd, 4))


def target_free(proc, max_entries):
    """How many nodes a CPU takes from the common list at once: clamp(max_entries / CPUs / 2, 1, 128), or 128
    whatever the size where the kernel version's profile says the target is fixed (6.1)."""
    if proc.profile.lru_target_free == "fixed":
        return 128
    return min(max(max_entries // NCPUS // 2, 1), 128)


def evicted_in_one_go(t, max_entries):
    """How many of the oldest keys of a full map, filled from one CPU, the next node taken evicts: the last
    batch took max_entries % t free nodes and shrank the rest of t from the inactive list; a map smaller
    than t (a fixed target) had no inactive elements then, and loses them all now."""
    return max_entries if max_entries < t else t - max_entries % t


@pytest.mark.parametrize("max_entries", [8, 16, 32, 600])
def test_common_lru_evicts_in_batches(proc, max_entries):
    """One more key than max_entries, from one CPU: the CPU takes target_free nodes at a time; once the
    free list cannot give that many, the oldest inactive elements make up the rest, in one go. Keys
    0..8 into max_entries 8 (2 CPUs) leave 2..8 (6.1, whose target is 128: only 8); at 600 the batch is
    128 - 600 % 128 = 40 keys."""
    proc.sched_setaffinity({0})
    fd = create_map(proc, LRU_HASH, 4, 8, max_entries)
    for i in range(max_entries + 1):
        update(proc, fd, k(i), bytes(8))
    gone = evicted_in_one_go(target_free(proc, max_entries), max_entries)
    assert present(proc, fd) == list(range(gone, max_entries + 1))


def test_an_update_that_fails_has_evicted(proc):
    """The node is taken before the key is looked up: BPF_NOEXIST on a present key in a full map is EEXIST,
    and the batch eviction it caused stays. Where the batch takes the whole map (6.1's fixed target of 128)
    the key is gone by the time it is looked up, and BPF_NOEXIST succeeds."""
    proc.sched_setaffinity({0})
    fd = create_map(proc, LRU_HASH, 4, 8, 8)
    for i in range(8):
        update(proc, fd, k(i), bytes(8))
    gone = evicted_in_one_go(target_free(proc, 8), 8)
    if gone < 8:
        assert err(update, proc, fd, k(7), bytes(8), u.BPF_NOEXIST) == EEXIST
        assert present(proc, fd) == list(range(gone, 8))
    else:
        assert err(update, proc, fd, k(7), bytes(8), u.BPF_NOEXIST) == 0
        assert present(proc, fd) == [7]
    assert err(update, proc, fd, k(0), bytes(8), u.BPF_EXIST) == ENOENT  # the one just evicted


@pytest.mark.parametrize("cpu", [0, 1])
def test_no_common_lru_update_of_its_own_key(proc, cpu):
    """BPF_F_NO_COMMON_LRU, one node per CPU (max_entries = CPUs): key 0 inserted from CPU 0 holds CPU 0's
    node. Updating it with BPF_EXIST from CPU 0 must take CPU 0's node back first, evicting key 0:
    ENOENT, and the map is empty. From CPU 1 the update takes CPU 1's node and succeeds."""
    if NCPUS < 2:
        pytest.skip("needs two possible CPUs")
    fd = create_map(proc, LRU_HASH, 4, 8, NCPUS, NOLRU)
    proc.sched_setaffinity({0})
    update(proc, fd, k(0), bytes(8))
    proc.sched_setaffinity({cpu})
    if cpu == 0:
        assert err(update, proc, fd, k(0), b"\1" * 8, u.BPF_EXIST) == ENOENT
        assert present(proc, fd) == []
    else:
        assert err(update, proc, fd, k(0), b"\1" * 8, u.BPF_EXIST) == 0
        assert present(proc, fd) == [0] and lookup(proc, fd, k(0), 8) == b"\1" * 8


def test_no_common_lru_one_cpu_fills_its_share(proc):
    """Each CPU owns max_entries / CPUs nodes: from one CPU only that share of the map is ever filled, and
    its list gives up 4 (PERCPU_FREE_TARGET) of the oldest at a time."""
    proc.sched_setaffinity({0})
    me = 8 * NCPUS
    fd = create_map(proc, LRU_HASH, 4, 8, me, NOLRU)
    for i in range(me):
        update(proc, fd, k(i), bytes(8))
    assert present(proc, fd) == list(range(me - 8, me))


def test_a_replaced_key_survives_eviction(proc):
    """Replacing a key sets the reference bit of its new node, which then goes to the active list: the
    elements evicted next are others, older or not."""
    proc.sched_setaffinity({0})
    fd = create_map(proc, LRU_HASH, 4, 8, 8)
    for i in range(8):
        update(proc, fd, k(i), bytes(8))
    update(proc, fd, k(0), b"\2" * 8)  # evicts a batch, and k(0) is new and referenced
    for i in range(8, 14):
        update(proc, fd, k(i), bytes(8))
    assert 0 in present(proc, fd)
    assert lookup(proc, fd, k(0), 8) == b"\2" * 8


def test_lru_percpu_exist_takes_no_node(proc):
    """LRU_PERCPU_HASH updates a present key in place, and with BPF_EXIST takes no node at all: a full map
    evicts nothing. BPF_ANY takes one (and may evict) even for a present key."""
    proc.sched_setaffinity({0})
    fd = create_map(proc, LRU_PERCPU_HASH, 4, 8, 8)
    vs = 8 * NCPUS
    for i in range(8):
        update(proc, fd, k(i), bytes(vs))
    before = present(proc, fd)
    update(proc, fd, k(before[-1]), b"\3" * vs, u.BPF_EXIST)
    assert present(proc, fd) == before
    update(proc, fd, k(before[-1]), b"\4" * vs)
    assert len(present(proc, fd)) < len(before) and lookup(proc, fd, k(before[-1]), vs) == b"\4" * vs


# -- random sequences on random CPUs, both machines ------------------------------------------------------

SPECS = [(LRU_HASH, 4, 8, 8, 0), (LRU_HASH, 4, 8, 13, 0), (LRU_HASH, 4, 8, 40, 0), (LRU_HASH, 4, 8, 6, NOLRU),
         (LRU_HASH, 4, 8, 16, NOLRU), (LRU_PERCPU_HASH, 4, 8, 8, 0), (LRU_PERCPU_HASH, 4, 8, 10, NOLRU),
         (LRU_HASH, 4, 8, 300, 0)]


def _op(rng, nkeys, spec):
    t, ks, vs, me, flags = spec
    r = rng.random()
    key = k(rng.randrange(nkeys))
    if r < 0.45:
        return ("update", key, rng.choice([0, 0, 0, u.BPF_NOEXIST, u.BPF_EXIST]))
    if r < 0.55:
        return ("delete", key)
    if r < 0.6:
        return ("lookup_and_delete", key)
    if r < 0.65:
        return ("lookup", key)
    if r < 0.75:
        return ("cpu", rng.randrange(NCPUS))
    if r < 0.8:
        return ("update_batch", [k(rng.randrange(nkeys)) for _ in range(rng.randint(1, 6))])
    if r < 0.85:
        return ("delete_batch", [k(rng.randrange(nkeys)) for _ in range(rng.randint(1, 4))])
    if r < 0.9:
        return ("lookup_and_delete_batch", rng.randint(1, 6))
    return ("walk",)


def _run(proc, fd, spec, op, step):
    t, ks, vs, me, flags = spec
    uvs = vs * NCPUS if t == LRU_PERCPU_HASH else vs
    value = struct.pack("<Q", step) * (uvs // 8)
    name = op[0]
    if name == "cpu":
        proc.sched_setaffinity({op[1]})
        return None
    if name == "update":
        return err(update, proc, fd, op[1], value, op[2])
    if name == "delete":
        return err(delete, proc, fd, op[1])
    if name == "lookup":
        try:
            return lookup(proc, fd, op[1], uvs)
        except OSError as e:
            return e.errno
    if name == "lookup_and_delete":
        try:
            return lookup_and_delete(proc, fd, op[1], uvs)
        except OSError as e:
            return e.errno
    if name == "update_batch":
        r = batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, len(op[1]), ks, uvs, keys=b"".join(op[1]),
                  values=value * len(op[1]))
        return r.errno, r.count
    if name == "delete_batch":
        r = batch(proc, u.BPF_MAP_DELETE_BATCH, fd, len(op[1]), ks, uvs, keys=b"".join(op[1]))
        return r.errno, r.count
    if name == "lookup_and_delete_batch":
        r = batch(proc, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH, fd, op[1], ks, uvs)
        return r.errno, r.count, r.keys, r.values, r.out_batch
    return keys(proc, fd, ks)


def _contents(proc, fd, spec):
    """Every key and value in bucket order, in one LOOKUP_BATCH (which, like a walk, sets no reference bit)."""
    t, ks, vs, me, flags = spec
    uvs = vs * NCPUS if t == LRU_PERCPU_HASH else vs
    n = me + NCPUS
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, n, ks, uvs)
    assert r.errno in (0, ENOENT), r
    return r.count, r.keys[:r.count * ks], r.values[:r.count * uvs]


def agree(emu, host, seed, steps, spec):
    """Run one random sequence on both; the first disagreement as text, or None."""
    rng = random.Random("lru/%d/%r" % (seed, spec))
    t, ks, vs, me, flags = spec
    fds = [create_map(p, t, ks, vs, me, flags | ZS) for p in (emu, host)]
    nkeys = rng.choice([me + 2, 2 * me, 4 * me])
    log = []
    try:
        for p in (emu, host):
            p.sched_setaffinity({0})
        for step in range(steps):
            op = _op(rng, nkeys, spec)
            r = [_run(p, fd, spec, op, step) for p, fd in zip((emu, host), fds)]
            log.append((op, r[1]))
            if r[0] != r[1]:
                return "step %d %r: emu %r host %r\nafter %r" % (step, op, r[0], r[1], log[-15:-1])
            walks = [_contents(p, fd, spec) for p, fd in zip((emu, host), fds)]
            if walks[0] != walks[1]:
                return "step %d %r: keys emu %r host %r\nafter %r" % (step, op, walks[0], walks[1], log[-15:-1])
        return None
    finally:
        for p, fd in zip((emu, host), fds):
            p.close(fd)


@pytest.fixture(scope="module")
def two_machines():
    need_host()
    emu = twin_kernel().spawn()  # the real kernel's version, whatever --bpf-kernel says
    host = real_kernel().spawn()
    yield emu, host
    host.exit()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "%s-%d-%s" % (u.map_type_name(s[0]), s[3], s[4]))
def test_random_sequences_agree_with_host(two_machines, spec):
    emu, host = two_machines
    for seed in range(int(os.environ.get("BPFEMU_LRU_SEEDS", 3))):
        problem = agree(emu, host, seed, 120, spec)
        assert problem is None, problem


if __name__ == "__main__":
    import sys
    lo, hi = int(sys.argv[1]), int(sys.argv[2])
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 400
    emu, host = Kernel().spawn(), Host().spawn()
    total = bad = 0
    for seed in range(lo, hi + 1):
        for spec in SPECS:
            problem = agree(emu, host, seed, steps, spec)
            total += steps
            if problem:
                bad += 1
                print("seed %d %r: DISAGREEMENT %s" % (seed, spec, problem), flush=True)
        print("seed %d: %d steps so far, %d disagreements" % (seed, total, bad), flush=True)
    host.exit()
