"""MAP_CREATE / LOOKUP / UPDATE / DELETE / GET_NEXT_KEY on a hash and an array map: the common errnos."""
import pytest

from bpfemu import uapi as u

from bpfemu.testing.support import array_map, delete, err, hash_map, keys, lookup, next_key, u32, u64, update


def test_hash_round_trip(proc):
    fd = hash_map(proc, key_size=4, value_size=8, max_entries=4)
    assert update(proc, fd, u32(1), u64(100)) == 0
    assert lookup(proc, fd, u32(1), 8) == u64(100)
    assert err(lookup, proc, fd, u32(2), 8) == 2
    assert delete(proc, fd, u32(1)) == 0
    assert err(delete, proc, fd, u32(1)) == 2
    assert err(lookup, proc, fd, u32(1), 8) == 2


def test_hash_update_flags(proc):
    fd = hash_map(proc)
    assert err(update, proc, fd, u32(1), u64(1), u.BPF_EXIST) == 2
    assert update(proc, fd, u32(1), u64(1), u.BPF_NOEXIST) == 0
    assert err(update, proc, fd, u32(1), u64(2), u.BPF_NOEXIST) == 17
    assert update(proc, fd, u32(1), u64(3), u.BPF_EXIST) == 0
    assert lookup(proc, fd, u32(1), 8) == u64(3)
    assert err(update, proc, fd, u32(1), u64(3), 3) == 22
    assert err(update, proc, fd, u32(1), u64(3), u.BPF_F_LOCK) == 22  # no spin lock in the value


def test_hash_full_gives_E2BIG_and_existing_keys_still_update(proc):
    fd = hash_map(proc, max_entries=2)
    update(proc, fd, u32(1), u64(1))
    update(proc, fd, u32(2), u64(2))
    assert err(update, proc, fd, u32(3), u64(3)) == 7
    assert update(proc, fd, u32(1), u64(10)) == 0
    assert lookup(proc, fd, u32(1), 8) == u64(10)


def test_hash_get_next_key_walk(proc):
    fd = hash_map(proc, max_entries=64)
    assert err(next_key, proc, fd, None, 4) == 2  # empty
    for i in range(20):
        update(proc, fd, u32(i * 7), u64(i))
    walk = keys(proc, fd, 4)
    assert sorted(walk) == sorted(u32(i * 7) for i in range(20))
    # a key that is not in the map restarts the walk from the first key
    assert next_key(proc, fd, u32(12345), 4) == walk[0]


def test_hash_zero_seed_order_is_the_kernels(proc):
    fd = hash_map(proc, max_entries=8, flags=u.BPF_F_ZERO_SEED)
    for i in range(8):
        update(proc, fd, u32(i), u64(i))
    order = [int.from_bytes(k, "little") for k in keys(proc, fd, 4)]
    # fixed by the kernel's jhash2 and bucket lists (new keys at the head)
    assert sorted(order) == list(range(8))
    assert order == EXPECTED_ZERO_SEED_ORDER


EXPECTED_ZERO_SEED_ORDER = [0, 4, 7, 2, 1, 6, 5, 3]  # as the host kernel walks them


def test_array_round_trip(proc):
    fd = array_map(proc, key_size=4, value_size=8, max_entries=4)
    assert lookup(proc, fd, u32(0), 8) == u64(0)  # elements exist from the start, zeroed
    assert update(proc, fd, u32(3), u64(33)) == 0
    assert lookup(proc, fd, u32(3), 8) == u64(33)
    assert err(lookup, proc, fd, u32(4), 8) == 2
    assert err(update, proc, fd, u32(4), u64(1)) == 7
    assert err(update, proc, fd, u32(1), u64(1), u.BPF_NOEXIST) == 17
    assert update(proc, fd, u32(1), u64(1), u.BPF_EXIST) == 0
    assert err(delete, proc, fd, u32(1)) == 22


def test_array_get_next_key(proc):
    fd = array_map(proc, max_entries=3)
    assert next_key(proc, fd, None, 4) == u32(0)
    assert next_key(proc, fd, u32(0), 4) == u32(1)
    assert next_key(proc, fd, u32(1), 4) == u32(2)
    assert err(next_key, proc, fd, u32(2), 4) == 2
    assert next_key(proc, fd, u32(99), 4) == u32(0)


@pytest.mark.parametrize("map_type,ks,vs,me,expected", [
    (u.BPF_MAP_TYPE_HASH, 0, 8, 1, 22),
    (u.BPF_MAP_TYPE_HASH, 4, 0, 1, 22),
    (u.BPF_MAP_TYPE_HASH, 4, 8, 0, 22),
    (u.BPF_MAP_TYPE_ARRAY, 8, 8, 1, 22),
    (u.BPF_MAP_TYPE_ARRAY, 4, 0, 1, 22),
    (u.BPF_MAP_TYPE_ARRAY, 4, 8, 0, 22),
    (u.BPF_MAP_TYPE_UNSPEC, 4, 8, 1, 22),
    (9999, 4, 8, 1, 22),
])
def test_map_create_common_errnos(proc, map_type, ks, vs, me, expected):
    from bpfemu.testing.support import create_map
    assert err(create_map, proc, map_type, ks, vs, me) == expected


def test_map_create_name_rules(proc):
    from bpfemu.testing.support import create_map
    assert create_map(proc, u.BPF_MAP_TYPE_ARRAY, name=b"ok_name.1") >= 3
    assert err(create_map, proc, u.BPF_MAP_TYPE_ARRAY, name=b"bad-name") == 22
    assert err(create_map, proc, u.BPF_MAP_TYPE_ARRAY, name=b"x" * 16) == 22  # no room for the NUL
    assert create_map(proc, u.BPF_MAP_TYPE_ARRAY, name=b"x" * 15) >= 3
