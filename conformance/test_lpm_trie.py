"""LPM_TRIE: creation (all checks after CAP_BPF), longest-prefix lookup, update/delete rules,
get_next_key postorder, generic batches."""
import functools
import random

import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import (batch, create_map, delete, err, freeze, keys, lookup, lookup_and_delete, next_key, u32,
                      update)

L = u.BPF_MAP_TYPE_LPM_TRIE
NP = u.BPF_F_NO_PREALLOC


def trie(proc, key_size=8, value_size=4, max_entries=64, flags=NP):
    return create_map(proc, L, key_size=key_size, value_size=value_size, max_entries=max_entries, flags=flags)


def k(plen, data):
    """An LPM key: u32 prefixlen (host order) then the data bytes."""
    return u32(plen) + bytes(data)


def ip(s):
    return bytes(int(x) for x in s.split("."))


@pytest.mark.parametrize("ks,vs,me,flags,expected", [
    (8, 4, 1, NP, 0),
    (8, 4, 1, 0, 22),                          # NO_PREALLOC is mandatory
    (8, 4, 0, NP, 22),
    (4, 4, 1, NP, 22),                         # key 5..260
    (5, 4, 1, NP, 0),
    (260, 4, 1, NP, 0),
    (261, 4, 1, NP, 22),
    (8, 0, 1, NP, 22),
    (8, 4194008, 1, NP, 0),                    # KMALLOC_MAX_SIZE - 256 - sizeof(node), up to 6.12 (40)
    (8, 4194009, 1, NP, "max"),
    (8, 4194024, 1, NP, "max"),                # ... since 6.13 (24)
    (8, 4194025, 1, NP, 22),
    (8, 4, 1, NP | u.BPF_F_ZERO_SEED, 22),
    (8, 4, 1, NP | u.BPF_F_RDONLY_PROG | u.BPF_F_WRONLY_PROG, 22),
    (8, 4, 1, NP | u.BPF_F_NUMA_NODE | u.BPF_F_RDONLY_PROG, 0),
])
def test_creation(proc, profile, ks, vs, me, flags, expected):
    if expected == "max":  # below the largest value, which is the version's: 4 MiB less 256 and a node header
        expected = 0 if vs <= (1 << 22) - 256 - profile.size("lpm_trie_node") else 22
    assert err(trie, proc, key_size=ks, value_size=vs, max_entries=me, flags=flags) == expected


def test_every_creation_check_is_after_CAP_BPF(backend):
    t = backend.spawn(uid=1000, caps=())
    assert err(trie, t, flags=0) == 1
    assert err(trie, t, key_size=3) == 1
    assert err(trie, t) == 1


def test_longest_prefix_lookup(proc):
    fd = trie(proc)
    update(proc, fd, k(8, ip("10.0.0.0")), u32(8))
    update(proc, fd, k(16, ip("10.1.0.0")), u32(16))
    update(proc, fd, k(24, ip("10.1.2.0")), u32(24))
    update(proc, fd, k(0, ip("0.0.0.0")), u32(0))
    assert lookup(proc, fd, k(32, ip("10.1.2.3")), 4) == u32(24)
    assert lookup(proc, fd, k(32, ip("10.1.3.3")), 4) == u32(16)
    assert lookup(proc, fd, k(32, ip("10.9.3.3")), 4) == u32(8)
    assert lookup(proc, fd, k(32, ip("11.0.0.1")), 4) == u32(0)
    assert lookup(proc, fd, k(20, ip("10.1.2.3")), 4) == u32(16)   # key prefixlen caps the match
    assert lookup(proc, fd, k(24, ip("10.1.2.255")), 4) == u32(24)
    assert err(lookup, proc, fd, k(33, ip("10.1.2.3")), 4) == 2    # prefixlen > max: ENOENT
    delete(proc, fd, k(0, ip("0.0.0.0")))
    assert err(lookup, proc, fd, k(32, ip("11.0.0.1")), 4) == 2


def test_update_rules(proc):
    fd = trie(proc, max_entries=2)
    assert err(update, proc, fd, k(33, ip("1.0.0.0")), u32(1)) == 22
    assert err(update, proc, fd, k(8, ip("1.0.0.0")), u32(1), 3) == 22
    assert err(update, proc, fd, k(33, ip("1.0.0.0")), u32(1), 3) == 22
    assert err(update, proc, fd, k(8, ip("1.0.0.0")), u32(1), u.BPF_EXIST) == 2
    update(proc, fd, k(8, ip("1.0.0.0")), u32(1), u.BPF_NOEXIST)
    assert err(update, proc, fd, k(8, ip("1.2.3.4")), u32(2), u.BPF_NOEXIST) == 17  # same /8
    update(proc, fd, k(16, ip("1.2.0.0")), u32(2))
    assert err(update, proc, fd, k(24, ip("1.2.3.0")), u32(3)) == 28               # full: ENOSPC
    assert err(update, proc, fd, k(24, ip("1.2.3.0")), u32(3), u.BPF_EXIST) == 2   # ENOENT wins
    update(proc, fd, k(8, ip("1.9.9.9")), u32(9))                                  # replace when full
    update(proc, fd, k(16, ip("1.2.7.7")), u32(7), u.BPF_EXIST)
    assert lookup(proc, fd, k(32, ip("1.2.3.4")), 4) == u32(7)
    # the stored data is the last update's bytes, bits past the prefix included
    assert keys(proc, fd, 8) == [k(16, ip("1.2.7.7")), k(8, ip("1.9.9.9"))]


def test_delete_is_exact(proc):
    fd = trie(proc)
    update(proc, fd, k(16, ip("10.1.0.0")), u32(16))
    update(proc, fd, k(16, ip("10.3.0.0")), u32(17))   # creates an intermediate /14 node
    assert err(delete, proc, fd, k(14, ip("10.0.0.0"))) == 2
    assert err(delete, proc, fd, k(24, ip("10.1.0.0"))) == 2
    assert err(delete, proc, fd, k(33, ip("10.1.0.0"))) == 22
    delete(proc, fd, k(16, ip("10.1.99.99")))           # bits past the prefix do not matter
    assert err(lookup, proc, fd, k(32, ip("10.1.0.1")), 4) == 2
    assert lookup(proc, fd, k(32, ip("10.3.0.1")), 4) == u32(17)
    assert err(lookup_and_delete, proc, fd, k(16, ip("10.3.0.0")), 4) == 524


def test_get_next_key_postorder(proc):
    fd = trie(proc)
    for p in [(16, "192.168.0.0"), (24, "192.168.0.0"), (24, "192.168.128.0"), (24, "192.168.1.0")]:
        update(proc, fd, k(p[0], ip(p[1])), u32(0))
    order = [k(24, ip("192.168.0.0")), k(24, ip("192.168.1.0")), k(24, ip("192.168.128.0")),
             k(16, ip("192.168.0.0"))]
    assert keys(proc, fd, 8) == order
    # a key that is not stored (or only an intermediate node) restarts from the first
    assert next_key(proc, fd, k(23, ip("192.168.0.0")), 8) == order[0]
    assert next_key(proc, fd, k(33, ip("192.168.0.0")), 8) == order[0]
    assert next_key(proc, fd, k(24, ip("192.168.1.77")), 8) == order[2]
    assert err(next_key, proc, fd, order[-1], 8) == 2
    empty = trie(proc)
    assert err(next_key, proc, empty, None, 8) == 2
    assert err(next_key, proc, empty, k(8, ip("1.0.0.0")), 8) == 2


def random_prefixes(rng, n, nbytes):
    out = []
    for _ in range(n):
        plen = rng.choice([0, 1, 2, 3, 7, 8, 9, 12, 15, 16] + list(range(nbytes * 8 - 3, nbytes * 8 + 1)))
        out.append(k(plen, bytes(rng.getrandbits(8) & rng.choice([0x0F, 0xF0, 0xFF]) for _ in range(nbytes))))
    return out


class Model:
    """A brute-force model of the documented rules: LPM by scanning, next key by the postorder comparator."""

    def __init__(self, max_entries, nbytes):
        self.max_entries, self.max_plen, self.d = max_entries, nbytes * 8, {}

    @staticmethod
    def bits(key):
        plen = int.from_bytes(key[:4], "little")
        return "".join(format(b, "08b") for b in key[4:])[:plen]

    def update(self, key, flags):
        if self.bits(key) is None or int.from_bytes(key[:4], "little") > self.max_plen:
            return 22
        b = self.bits(key)
        if b in self.d:
            if flags == 1:
                return 17
        elif len(self.d) >= self.max_entries:
            return 28
        self.d[b] = key
        return 0

    def delete(self, key):
        if int.from_bytes(key[:4], "little") > self.max_plen:
            return 22
        return 0 if self.d.pop(self.bits(key), None) else 2

    def order(self):
        def cmp(p, q):
            n = min(len(p), len(q))
            if p[:n] != q[:n]:
                return -1 if p[:n] < q[:n] else 1
            return len(q) - len(p)
        return sorted(self.d, key=functools.cmp_to_key(cmp))

    def lookup(self, key):
        plen = int.from_bytes(key[:4], "little")
        if plen > self.max_plen:
            return 2
        b = self.bits(key)
        hits = [p for p in self.d if b.startswith(p)]
        return self.d[max(hits, key=len)] if hits else 2

    def next_key(self, key):
        order = self.order()
        if not order:
            return 2
        b = self.bits(key)
        if int.from_bytes(key[:4], "little") > self.max_plen or b not in self.d:
            return self.d[order[0]]
        i = order.index(b) + 1
        return self.d[order[i]] if i < len(order) else 2


def outcome(fn, *args):
    try:
        return fn(*args)
    except OSError as e:
        return e.errno


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_prefixes_match_the_model(proc, seed):
    rng = random.Random(seed)
    nbytes = 2
    fd = trie(proc, key_size=4 + nbytes, max_entries=120)
    model = Model(120, nbytes)
    values = {}
    for i, key in enumerate(random_prefixes(rng, 150, nbytes)):
        flags = rng.choice([0, 0, 1])
        want = model.update(key, flags)
        assert err(update, proc, fd, key, u32(i), flags) == want
        if want == 0:
            values[model.bits(key)] = u32(i)
    for key in random_prefixes(rng, 30, nbytes):
        assert err(delete, proc, fd, key) == model.delete(key)
    walk = keys(proc, fd, 4 + nbytes)
    assert walk == [model.d[b] for b in model.order()] and len(walk) > 40
    for key in random_prefixes(rng, 60, nbytes):
        hit = model.lookup(key)
        want = values[model.bits(hit)] if isinstance(hit, bytes) else hit
        assert outcome(lookup, proc, fd, key, 4) == want
        assert outcome(next_key, proc, fd, key, 4 + nbytes) == model.next_key(key)


def test_generic_batches(proc):
    fd = trie(proc)
    ks = [k(24, ip("10.0.0.0")), k(8, ip("10.0.0.0")), k(24, ip("10.0.1.0"))]
    r = batch(proc, u.BPF_MAP_UPDATE_BATCH, fd, 3, 8, 4, keys=b"".join(ks), values=u32(1) + u32(2) + u32(3))
    assert (r.errno, r.count) == (0, 3)
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 2, 8, 4, batch_size=8)
    assert (r.errno, r.count, r.out_batch) == (0, 2, ks[2])
    assert r.keys == ks[0] + ks[2] and r.values == u32(1) + u32(3)
    r = batch(proc, u.BPF_MAP_LOOKUP_BATCH, fd, 2, 8, 4, in_batch=ks[2], batch_size=8)
    assert (r.errno, r.count, r.out_batch) == (2, 1, ks[1])
    r = batch(proc, u.BPF_MAP_DELETE_BATCH, fd, 3, 8, 4, keys=ks[0] + k(9, ip("1.0.0.0")) + ks[1])
    assert (r.errno, r.count) == (2, 1)
    assert keys(proc, fd, 8) == [ks[2], ks[1]]
    assert batch(proc, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH, fd, 1, 8, 4, batch_size=8).errno == 524
    freeze(proc, fd)
    assert err(update, proc, fd, ks[0], u32(1)) == 1
