"""The invariant checker, the memory model and bounded allocation (emulator only)."""
import errno
import tracemalloc

import pytest

import bpfemu
from bpfemu import uapi as u
from bpfemu.testing import support as h


def _kernel(**kw):
    k = bpfemu.Kernel(**kw)
    return k, k.spawn()


def test_checker_passes_on_normal_use():
    k, p = _kernel()
    fd = h.hash_map(p)
    h.update(p, fd, b"1234", b"12345678")
    h.pin(p, fd, "/sys/fs/bpf/m")
    p.dup(fd)
    child = p.fork()
    p.close(fd)
    child.exit()
    bpfemu.check_invariants(k)
    p.unlink("/sys/fs/bpf/m")
    p.exit()
    bpfemu.check_invariants(k)
    assert k.objects() == []


@pytest.mark.parametrize("corrupt, words", [
    (lambda k, m, f: m.holders.clear(), "no holder"),
    (lambda k, m, f: setattr(f, "count", 0), "counted 0"),
    (lambda k, m, f: setattr(m, "max_entries", 0), "max_entries 0"),
    (lambda k, m, f: k.idr["map"].objs.__setitem__(99, m), "two ids"),
    (lambda k, m, f: setattr(m, "freed", True), "freed"),
    (lambda k, m, f: m.buckets.clear(), "in buckets"),
])
def test_checker_sees_corruption(corrupt, words):
    k, p = _kernel()
    fd = h.hash_map(p)
    h.update(p, fd, b"1234", b"12345678")
    corrupt(k, p.fdget(fd).obj, p.fdget(fd))
    with pytest.raises(bpfemu.InvariantError) as e:
        bpfemu.check_invariants(k)
    assert words in str(e.value)


def test_memlock_matches_host_figures():
    # fdinfo memlock measured on the host (2 possible CPUs)
    k, p = _kernel(ncpus=2)
    cases = [(u.BPF_MAP_TYPE_ARRAY, 4, 8, 16, 0, 440), (u.BPF_MAP_TYPE_ARRAY, 4, 100, 1000, u.BPF_F_MMAPABLE, 110592),
             (u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 100, 1000, 0, 216312), (u.BPF_MAP_TYPE_HASH, 8, 100, 1000, 0, 177616),
             (u.BPF_MAP_TYPE_HASH, 8, 8, 16, u.BPF_F_NO_PREALLOC, 1152), (u.BPF_MAP_TYPE_PERCPU_HASH, 8, 8, 16, 0, 2432),
             (u.BPF_MAP_TYPE_LRU_HASH, 8, 100, 1000, 0, 177280), (u.BPF_MAP_TYPE_QUEUE, 0, 8, 16, 0, 448)]
    for t, ks, vs, me, fl, want in cases:
        fd = h.create_map(p, t, key_size=ks, value_size=vs, max_entries=me, flags=fl)
        assert p.fdget(fd).obj.mem_usage() == want, (t, ks, vs, me, fl)
    fd = h.create_map(p, u.BPF_MAP_TYPE_HASH, key_size=8, value_size=8, max_entries=16, flags=u.BPF_F_NO_PREALLOC)
    for i in range(10):
        h.update(p, fd, h.u64(i), h.u64(i))
    assert p.fdget(fd).obj.mem_usage() == 1872  # the host's figure after 10 elements


def test_memory_limit_refuses_creation_and_growth():
    k, p = _kernel(memory_limit=64 << 10)
    assert h.err(h.array_map, p, value_size=1 << 20, max_entries=64) == errno.ENOMEM
    fd = h.hash_map(p, key_size=8, value_size=1024, max_entries=1000, flags=u.BPF_F_NO_PREALLOC)
    n = 0
    while h.err(h.update, p, fd, h.u64(n), bytes(1024)) == 0:
        n += 1
    assert h.err(h.update, p, fd, h.u64(n), bytes(1024)) == errno.ENOMEM
    assert 40 < n < 64
    assert h.err(h.update, p, fd, h.u64(0), b"x" * 1024) == 0  # replacing costs nothing
    h.delete(p, fd, h.u64(0))
    assert h.err(h.update, p, fd, h.u64(n), bytes(1024)) == 0  # freed memory is reusable
    bpfemu.check_invariants(k)
    p.close(fd)
    assert k.memcg.usage() == 0


def test_default_memory_is_the_machines():
    """No memory cgroup limit by default; the machine's memory (the host's MemTotal) bounds the maps, one
    map or their sum, and memory_limit= is the explicit cgroup."""
    from bpfemu.host.sysinfo import host_total_memory
    k, p = _kernel()
    assert k.memcg.limit is None and k.memcg.machine == (host_total_memory() or 8 << 30)
    assert h.err(h.array_map, p, value_size=1 << 20, max_entries=2048) == 0  # 2 GiB
    k, p = _kernel(machine_memory=3 << 30)
    big = h.array_map(p, value_size=1 << 20, max_entries=2048)
    assert h.err(h.array_map, p, value_size=1 << 20, max_entries=1024) == errno.ENOMEM  # the sum passes 3 GiB
    p.close(big)
    assert k.memcg.maps() == [] and k.memcg.machine_usage() == 0  # freed at once, not at the next create
    assert h.err(h.array_map, p, value_size=1 << 20, max_entries=1024) == 0
    k, p = _kernel(memory_limit=1 << 30)
    assert h.err(h.array_map, p, value_size=1 << 20, max_entries=2048) == errno.ENOMEM
    k, p = _kernel(machine_memory=None)
    assert h.err(h.array_map, p, value_size=1 << 20, max_entries=1 << 20) == 0  # 1 TiB, unbounded
    bpfemu.check_invariants(k)


@pytest.mark.parametrize("t, ks, vs, me, fl", [
    (u.BPF_MAP_TYPE_ARRAY, 4, 1 << 20, 1 << 30, 0),
    (u.BPF_MAP_TYPE_ARRAY, 4, 8, (1 << 31) - 1, 0),
    (u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 32768, 1 << 30, 0),
    (u.BPF_MAP_TYPE_HASH, 4, (1 << 22) - 100, 1 << 27, 0),
    (u.BPF_MAP_TYPE_HASH, 4, 8, 1 << 27, u.BPF_F_NO_PREALLOC),
    (u.BPF_MAP_TYPE_LRU_HASH, 4, 8, 1 << 27, 0),
    (u.BPF_MAP_TYPE_QUEUE, 0, 1 << 20, 1 << 30, 0),
    (u.BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, (1 << 31) - 1, 0),
])
def test_huge_maps_cost_little_python_memory(t, ks, vs, me, fl):
    """Whatever the sizes asked for, the emulator's heap grows with what is stored."""
    for limit in (None, 1 << 30):
        k, p = _kernel(memory_limit=limit)
        tracemalloc.start()
        try:
            fd = h.create_map(p, t, key_size=ks, value_size=vs, max_entries=me, flags=fl)
        except OSError:
            fd = None
        if fd is not None and ks:
            h.err(h.update, p, fd, bytes(ks), bytes(p.fdget(fd).obj.user_value_size))
            h.err(h.lookup, p, fd, bytes(ks), p.fdget(fd).obj.user_value_size)
            h.err(h.next_key, p, fd, None, ks)
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        bound = 1 << 20 if fd is None or not ks else 5 * p.fdget(fd).obj.user_value_size + (1 << 20)
        assert peak < bound, (t, me, peak)
        bpfemu.check_invariants(k)
