"""The emulator's memory cgroup on its own: the exact boundary the host cannot show (its cgroup also
charges the child's own allocations, see conformance/test_memlock.py)."""
import errno

import bpfemu
from bpfemu import uapi as u
from bpfemu.testing.support import create_map, err, keys, update

MiB = 1 << 20
ARRAY = u.BPF_MAP_TYPE_ARRAY


def test_emulator_charge_follows_the_limit_exactly():
    """A map exactly at the remaining budget fits, one more element does not."""
    k = bpfemu.Kernel(memory_limit=1 * MiB)
    t = k.spawn()
    BPF_ARRAY = k.profile.size("bpf_array")
    n = (1 * MiB - BPF_ARRAY) // 8
    fd = create_map(t, ARRAY, 4, 8, max_entries=n)
    assert k.memcg.usage() == BPF_ARRAY + 8 * n <= 1 * MiB
    assert err(create_map, t, ARRAY, 4, 8, max_entries=64) == errno.ENOMEM
    t.close(fd)
    assert k.memcg.usage() == 0
    assert err(create_map, t, ARRAY, 4, 8, max_entries=n) == 0
    assert err(create_map, t, ARRAY, 4, 8, max_entries=1) == errno.ENOMEM
    bpfemu.check_invariants(k)


def test_growing_maps_stop_at_the_limit():
    """Every map type that grows per element asks the cgroup first: ENOMEM, and nothing half-applied."""
    k = bpfemu.Kernel(memory_limit=4096)
    t = k.spawn()
    lpm = create_map(t, u.BPF_MAP_TYPE_LPM_TRIE, 8, 100, 1000, u.BPF_F_NO_PREALLOC)
    dev = create_map(t, u.BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, 8)
    n = 0
    while err(update, t, lpm, (32).to_bytes(4, "little") + n.to_bytes(4, "big"), bytes(100)) == 0:
        n += 1
    assert 0 < n < 4096 // 128
    assert err(update, t, lpm, (32).to_bytes(4, "little") + n.to_bytes(4, "big"), bytes(100)) == errno.ENOMEM
    assert len(keys(t, lpm, 8)) == n
    assert k.memcg.usage() <= 4096
    bpfemu.check_invariants(k)
    t.close(lpm)
    assert err(update, t, dev, (0).to_bytes(4, "little"), (1).to_bytes(4, "little")) == 0
    bpfemu.check_invariants(k)
