"""BLOOM_FILTER: creation checks (mostly after CAP_BPF), push/peek, exact false positives with ZERO_SEED."""
import pytest

from bpfemu import uapi as u
from bpfemu.jhash import jhash, jhash2

from bpfemu.testing.support import unprivileged
from bpfemu.testing.support import (addr, batch, buf, create_map, delete, err, freeze, lookup, lookup_and_delete, next_key,
                      u32, u64, update)

B = u.BPF_MAP_TYPE_BLOOM_FILTER
ZS = u.BPF_F_ZERO_SEED


def bloom(proc, max_entries=16, value_size=4, flags=ZS, nr_hashes=0):
    return create_map(proc, B, key_size=0, value_size=value_size, max_entries=max_entries, flags=flags,
                      map_extra=nr_hashes)


def push(proc, fd, v, flags=0):
    return update(proc, fd, None, v, flags)


def present(proc, fd, v):
    """LOOKUP_ELEM reads the value from the caller: 0 when it may be present, else the errno."""
    b = buf(v)
    return err(proc.bpf, u.BPF_MAP_LOOKUP_ELEM, u.make_attr(map_fd=fd, key=0, value=addr(b)))


def reference_bits(value, nr_hashes, mask, seed=0):
    """The bit indexes the kernel's bloom filter sets for value (jhash2 for whole words, else jhash)."""
    h = jhash2 if len(value) % 4 == 0 else jhash
    return {h(value, seed + i) & mask for i in range(nr_hashes)}


@pytest.mark.parametrize("ks,vs,me,flags,extra,expected", [
    (0, 4, 1, 0, 0, 0),
    (4, 4, 1, 0, 0, 22),                     # key_size must be 0
    (0, 0, 1, 0, 0, 22),
    (0, 4, 0, 0, 0, 22),
    (0, 4, 1, u.BPF_F_NO_PREALLOC, 0, 22),
    (0, 4, 1, u.BPF_F_RDONLY_PROG | u.BPF_F_WRONLY_PROG, 0, 22),
    (0, 4, 1, 0, 0x10, 22),                  # only the low 4 bits of map_extra
    (0, 4, 1, 0, 15, 0),
    (0, (1 << 22) + 1, 1, 0, 0, 7),          # value_size above KMALLOC_MAX_SIZE: the only alloc_check
    (0, 4, 0xFFFFFFFF, 0, 15, 0),            # bit count overflow: 2^32 bits, still created
])
def test_creation(proc, ks, vs, me, flags, extra, expected):
    got = err(create_map, proc, B, key_size=ks, value_size=vs, max_entries=me, flags=flags, map_extra=extra)
    assert got == expected


def test_zero_seed_needs_no_CAP_SYS_ADMIN(backend):
    t = backend.spawn(uid=1000, caps=("CAP_BPF",))
    assert bloom(t, flags=ZS) >= 0


def test_checks_around_CAP_BPF(backend, profile):
    t = backend.spawn(uid=1000, caps=())
    assert err(bloom, t, value_size=(1 << 22) + 1) == unprivileged(profile, 7)     # alloc_check: before the capability
    assert err(bloom, t, max_entries=0) == 1                  # map_alloc checks: after it
    assert err(create_map, t, B, key_size=4, value_size=4, max_entries=1) == 1
    assert err(bloom, t, nr_hashes=0x10) == 1


def test_push_and_peek(proc):
    fd = bloom(proc, max_entries=1000)
    for i in range(50):
        push(proc, fd, u32(i))
    assert all(present(proc, fd, u32(i)) == 0 for i in range(50))
    assert present(proc, fd, u32(123456)) == 2
    assert err(push, proc, fd, u32(1), u.BPF_EXIST) == 22
    assert err(push, proc, fd, u32(1), u.BPF_NOEXIST) == 22
    assert err(push, proc, fd, u32(1), u.BPF_F_LOCK) == 22


@pytest.mark.parametrize("value_size,nr_hashes", [(4, 1), (8, 3), (5, 5), (3, 0)])
def test_false_positive_matches_the_host(proc, value_size, nr_hashes):
    # a tiny filter: max_entries 1 gives the minimum of 64 bits
    k = nr_hashes or 5
    fd = bloom(proc, max_entries=1, value_size=value_size, nr_hashes=nr_hashes)

    def val(i):
        return i.to_bytes(8, "little")[:value_size]

    pushed = [val(i) for i in range(3)]
    bits = set()
    for v in pushed:
        push(proc, fd, v)
        bits |= reference_bits(v, k, 63)
    fp = next(val(i) for i in range(3, 1 << 20) if reference_bits(val(i), k, 63) <= bits)
    miss = next(val(i) for i in range(3, 1 << 20) if not reference_bits(val(i), k, 63) <= bits)
    assert present(proc, fd, fp) == 0          # never pushed, yet the filter says "maybe"
    assert present(proc, fd, miss) == 2


def test_refused_operations(proc):
    fd = bloom(proc)
    push(proc, fd, u32(1))
    assert err(delete, proc, fd, None) == 95                 # EOPNOTSUPP
    assert err(delete, proc, fd, u32(1)) == 22               # a key pointer: EINVAL first
    assert err(next_key, proc, fd, None, 4) == 95
    assert err(next_key, proc, fd, u32(1), 4) == 22
    assert err(lookup_and_delete, proc, fd, None, 4) == 524
    assert err(update, proc, fd, u32(0), u32(1)) == 22
    assert err(lookup, proc, fd, u32(0), 4) == 22
    assert err(lookup, proc, fd, None, 4, u.BPF_F_LOCK) == 22
    for cmd in (u.BPF_MAP_LOOKUP_BATCH, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH, u.BPF_MAP_UPDATE_BATCH,
                u.BPF_MAP_DELETE_BATCH):
        assert batch(proc, cmd, fd, 1, 4, 4, keys=u32(0), values=u32(0)).errno == 524


def test_lookup_reads_the_value_pointer(proc):
    fd = bloom(proc)
    a = u.make_attr(map_fd=fd, key=0, value=0)
    assert err(proc.bpf, u.BPF_MAP_LOOKUP_ELEM, a) == 14     # the value is read first: EFAULT
    b = buf(u32(9))
    push(proc, fd, u32(9))
    proc.bpf(u.BPF_MAP_LOOKUP_ELEM, u.make_attr(map_fd=fd, key=0, value=addr(b)))
    assert b.raw == u32(9)                                    # nothing written back


def test_freeze_and_modes(proc):
    fd = bloom(proc)
    push(proc, fd, u64(1)[:4])
    freeze(proc, fd)
    assert err(push, proc, fd, u32(2)) == 1
    assert present(proc, fd, u32(1)) == 0
    wo = bloom(proc, flags=ZS | u.BPF_F_WRONLY)
    push(proc, wo, u32(1))
    assert present(proc, wo, u32(1)) == 1
