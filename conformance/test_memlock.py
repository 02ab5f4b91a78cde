"""The memory cgroup: what each map is charged, and the limit, on an emulated ``Kernel(memory_limit=L)``
and on a host task in a memory cgroup (a child of ours: cgroup v1 ``memory.limit_in_bytes`` + ``tasks``
on this host, v2 ``memory.max`` + ``cgroup.procs`` where that is what is mounted), removed at the end.

What a map costs, per map type (``test_memory_cgroup_charge``): in a fresh cgroup, creating a large map
raises the cgroup's kernel-memory usage by the map's fdinfo ``memlock`` figure less its per-CPU values --
on the host within the cgroup's page-sized accounting (a 1% + 64 KiB margin on maps of megabytes),
exactly on the emulator. This is what decides the emulator's charge (bpfemu/memcg.py). Elements added
later to a map that grows per element (``test_memory_cgroup_charge_of_elements``) cost the host more
than their memlock figure: bpf_mem_alloc hands out each element from a slab size class (a 264-byte hash
element takes 512 bytes) and an LPM trie also allocates the intermediate nodes memlock does not count.
The emulator charges the memlock figure; the host's charge lies between it and 2.5 times it.

The limit: the host cgroup also charges whatever else the child allocates after the move (its Python
heap growing, socket buffers, page tables), so an exact byte-for-byte boundary cannot be compared.
Both sides must agree where the noise cannot matter:
- a map whose memlock figure is far above the limit: MAP_CREATE fails with ENOMEM;
- small maps well under it: created fine;
- per-CPU values do not count (see test_per_cpu_values_are_not_charged_to_the_limit);
- the limit is on the sum: two maps each well under the limit but together over it --
  the second fails with ENOMEM, and succeeds once the first is closed (the host frees and
  uncharges asynchronously, so that creation is retried for a few seconds).
Growth of a BPF_F_NO_PREALLOC hash past the limit is not compared: the host answers it
with the cgroup's OOM killer (the child is SIGKILLed), the emulator with ENOMEM
(bpfemu/memcg.py says why).
"""
import errno
import struct
import time

import pytest

from bpfemu import uapi as u
from bpfemu.testing.backends import need_host
from bpfemu.testing.support import (HostMemcg, addr, buf, create_map, err, fdinfo_value, make_attr, possible_cpus,
                                    update, u32, u64)

LIMIT = 32 << 20
MiB = 1 << 20
ARRAY, HASH = u.BPF_MAP_TYPE_ARRAY, u.BPF_MAP_TYPE_HASH
NCPUS = possible_cpus()  # the host's, which the emulated kernels take too


class Charged:
    """A task whose maps are charged to a fresh memory cgroup, and that cgroup's usage."""

    def __init__(self, backend, limit=None):
        self.task, self.backend, self.cg = backend.sys, backend, None
        if backend.profile.memlock != "map_mem_usage":
            pytest.skip("%s's memlock line is %s, an estimate the memory cgroup's charge does not follow (the "
                        "charge is modelled as memlock, which this version does not show)"
                        % (backend.profile.version, backend.profile.memlock))
        if backend.name == "host":
            need_host(own_process="a memory cgroup of this machine")
            try:
                self.cg = HostMemcg(limit)
            except OSError as e:
                pytest.skip("cannot make a memory cgroup here: %s" % e)  # e.g. a read-only cgroupfs
            self.cg.add(self.task.pid)

    def usage(self):
        return self.backend.kernel.memcg.usage() if self.cg is None else self.cg.kernel_usage()

    def close(self):
        if self.cg is not None:
            self.task.exit()
            self.cg.remove()


@pytest.fixture
def limited(bpf_backend):
    """A privileged task whose maps are charged to a memory cgroup of LIMIT bytes (the emulator's kernel
    takes it from the tests' bpf_kernel mark)."""
    c = Charged(bpf_backend, LIMIT)
    yield c.task
    c.close()


@pytest.fixture
def charged(bpf_backend):
    """A privileged task whose maps are charged to a fresh memory cgroup without a limit."""
    c = Charged(bpf_backend)
    yield c
    c.close()


LIMITED = pytest.mark.bpf_kernel(memory_limit=LIMIT)


# -- the charge of each map type ---------------------------------------------------------------------------
# (map type, key_size, value_size, max_entries, map_flags, map_extra, elements added) -- sizes that make the
# charge megabytes, so the host's page-sized accounting is a small part of it
CHARGE = {
    "ARRAY": (ARRAY, 4, 4096, 512, 0, 0, 0),
    "ARRAY_MMAPABLE": (ARRAY, 4, 1000, 2048, u.BPF_F_MMAPABLE, 0, 0),
    "PERCPU_ARRAY": (u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1 << 18, 0, 0, 0),
    "HASH": (HASH, 8, 64, 1 << 14, 0, 0, 0),
    "HASH_NO_PREALLOC": (HASH, 8, 200, 1 << 16, u.BPF_F_NO_PREALLOC, 0, 0),
    "PERCPU_HASH": (u.BPF_MAP_TYPE_PERCPU_HASH, 8, 64, 1 << 14, 0, 0, 0),
    "PERCPU_HASH_NO_PREALLOC": (u.BPF_MAP_TYPE_PERCPU_HASH, 8, 8, 1 << 16, u.BPF_F_NO_PREALLOC, 0, 0),
    "LRU_HASH": (u.BPF_MAP_TYPE_LRU_HASH, 8, 64, 1 << 14, 0, 0, 0),
    "LRU_PERCPU_HASH": (u.BPF_MAP_TYPE_LRU_PERCPU_HASH, 8, 64, 1 << 14, 0, 0, 0),
    "LPM_TRIE": (u.BPF_MAP_TYPE_LPM_TRIE, 8, 200, 1 << 16, u.BPF_F_NO_PREALLOC, 0, 0),
    "QUEUE": (u.BPF_MAP_TYPE_QUEUE, 0, 4096, 512, 0, 0, 0),
    "STACK": (u.BPF_MAP_TYPE_STACK, 0, 4096, 512, 0, 0, 0),
    "BLOOM_FILTER": (u.BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 1 << 21, 0, 0, 0),
    "PROG_ARRAY": (u.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 1 << 18, 0, 0, 0),
    "PERF_EVENT_ARRAY": (u.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 1 << 18, 0, 0, 0),
    "CGROUP_ARRAY": (u.BPF_MAP_TYPE_CGROUP_ARRAY, 4, 4, 1 << 18, 0, 0, 0),
    "ARRAY_OF_MAPS": (u.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 1 << 18, 0, 0, 0),
    "HASH_OF_MAPS": (u.BPF_MAP_TYPE_HASH_OF_MAPS, 8, 4, 1 << 15, 0, 0, 0),
    "STACK_TRACE": (u.BPF_MAP_TYPE_STACK_TRACE, 4, 64, 1 << 14, 0, 0, 0),
    "RINGBUF": (u.BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 21, 0, 0, 0),
    "USER_RINGBUF": (u.BPF_MAP_TYPE_USER_RINGBUF, 0, 0, 1 << 21, 0, 0, 0),
    "DEVMAP": (u.BPF_MAP_TYPE_DEVMAP, 4, 4, 1 << 18, 0, 0, 0),
    "DEVMAP_HASH": (u.BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, 1 << 18, 0, 0, 0),
    "XSKMAP": (u.BPF_MAP_TYPE_XSKMAP, 4, 4, 1 << 18, 0, 0, 0),
    "SOCKMAP": (u.BPF_MAP_TYPE_SOCKMAP, 4, 8, 1 << 18, 0, 0, 0),
    "SOCKHASH": (u.BPF_MAP_TYPE_SOCKHASH, 4, 8, 1 << 17, 0, 0, 0),
    "REUSEPORT_SOCKARRAY": (u.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, 1 << 18, 0, 0, 0),
    "ARENA": (u.BPF_MAP_TYPE_ARENA, 0, 0, 1 << 12, u.BPF_F_MMAPABLE, 0, 0),
}
# maps that grow per element, and how many elements the test adds (device maps take them one call at a time)
GROWING = {"HASH_NO_PREALLOC": 8192, "PERCPU_HASH_NO_PREALLOC": 8192, "LPM_TRIE": 8192, "DEVMAP": 2048,
           "DEVMAP_HASH": 2048}
PERCPU_VALUES = (u.BPF_MAP_TYPE_PERCPU_ARRAY, u.BPF_MAP_TYPE_PERCPU_HASH, u.BPF_MAP_TYPE_LRU_PERCPU_HASH)


def percpu_values(t, v, me, flags, n):
    """The per-CPU value storage in a map's memlock figure: on the host it is not charged to the cgroup."""
    if t not in PERCPU_VALUES:
        return 0
    stored = n if flags & u.BPF_F_NO_PREALLOC else me
    return (v + 7) // 8 * 8 * NCPUS * stored


def elements(t, k, v, n):
    """(keys, values) of n distinct elements as each type takes them from userspace."""
    if t == u.BPF_MAP_TYPE_LPM_TRIE:
        keys = b"".join(struct.pack("<I", 32) + struct.pack(">I", i) for i in range(n))
    else:
        keys = b"".join(struct.pack("<I", i) + bytes(k - 4) for i in range(n))
    if t in (u.BPF_MAP_TYPE_DEVMAP, u.BPF_MAP_TYPE_DEVMAP_HASH):
        return keys, u32(1) * n  # ifindex 1: loopback
    return keys, bytes((v + 7) // 8 * 8 * NCPUS if t in PERCPU_VALUES else v) * n


def update_batch(proc, fd, keys, values, n):
    kb, vb = buf(keys), buf(values)
    a = make_attr(**{"batch.map_fd": fd, "batch.keys": addr(kb), "batch.values": addr(vb), "batch.count": n})
    proc.bpf(u.BPF_MAP_UPDATE_BATCH, a)
    assert a.batch.count == n


def _create(proc, case):
    t, k, v, me, flags, extra, _n = CHARGE[case]
    inner = create_map(proc, ARRAY, 4, 4, 1) if t in (u.BPF_MAP_TYPE_ARRAY_OF_MAPS,
                                                      u.BPF_MAP_TYPE_HASH_OF_MAPS) else 0
    return create_map(proc, t, k, v, me, flags, map_extra=extra, inner_map_fd=inner)


def _charge_of_memlock(proc, fd, case, n=0):
    """What the model says the cgroup is charged: memlock less the per-CPU values."""
    t, _k, v, me, flags, _extra, _n = CHARGE[case]
    return int(fdinfo_value(proc, fd, "memlock")) - percpu_values(t, v, me, flags, n)


@pytest.mark.parametrize("case", sorted(CHARGE))
def test_memory_cgroup_charge(charged, case):
    before = charged.usage()
    fd = _create(charged.task, case)
    got = charged.usage() - before
    want = _charge_of_memlock(charged.task, fd, case)
    assert abs(got - want) <= want // 100 + 64 * 1024, (case, got, want)


@pytest.mark.parametrize("case", sorted(GROWING))
def test_memory_cgroup_charge_of_elements(charged, case):
    t, k, v = CHARGE[case][:3]
    n = GROWING[case]
    proc = charged.task
    fd = _create(proc, case)
    empty = _charge_of_memlock(proc, fd, case)
    keys, values = elements(t, k, v, n)
    before = charged.usage()
    if t in (u.BPF_MAP_TYPE_DEVMAP, u.BPF_MAP_TYPE_DEVMAP_HASH):  # device maps have no batch ops
        vs = len(values) // n
        for i in range(n):
            update(proc, fd, keys[i * k:(i + 1) * k], values[i * vs:(i + 1) * vs])
    else:
        update_batch(proc, fd, keys, values, n)
    got = charged.usage() - before
    want = _charge_of_memlock(proc, fd, case, n) - empty
    assert want > 0 and want - (want // 100 + 64 * 1024) <= got <= 2.5 * want, (case, got, want)


# -- the limit ------------------------------------------------------------------------------------------------

@LIMITED
def test_a_map_over_the_limit_is_enomem(limited):
    assert err(create_map, limited, ARRAY, 4, 4096, max_entries=2 * LIMIT // 4096) == errno.ENOMEM
    # a preallocated hash: ~80 bytes per element before the value, 1 MiB elements
    assert err(create_map, limited, HASH, 8, 8, max_entries=1 << 20) == errno.ENOMEM
    # a per-CPU array whose pointer array alone (8 bytes an entry) is twice the limit
    assert err(create_map, limited, u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, max_entries=LIMIT // 4) == errno.ENOMEM


@LIMITED
def test_per_cpu_values_are_not_charged_to_the_limit(limited):
    """Host finding (6.18, cgroup v1): per-CPU value storage is in the map's memlock figure but
    not charged against memory.limit_in_bytes -- maps whose memlock (their per-CPU values, on two or more
    CPUs) is above the limit are created, again and again, and work."""
    fds = [create_map(limited, u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4096, max_entries=LIMIT // 4096) for _ in range(3)]
    fds.append(create_map(limited, u.BPF_MAP_TYPE_PERCPU_HASH, 8, 4096, max_entries=LIMIT // 4096))
    for fd in fds:
        assert int(fdinfo_value(limited, fd, "memlock")) > LIMIT * NCPUS // 2
        update(limited, fd, u32(7) + bytes(4) if fd == fds[-1] else u32(7), bytes(4096 * NCPUS))


@LIMITED
def test_small_maps_fit(limited):
    fds = [create_map(limited, t, 4, 8, max_entries=64) for t in (ARRAY, HASH, u.BPF_MAP_TYPE_PERCPU_HASH)]
    fds.append(create_map(limited, ARRAY, 4, 4096, max_entries=LIMIT // 4096 // 8))  # an eighth of the limit
    for fd in fds:
        update(limited, fd, u32(1), u64(7) + bytes(4096 - 8) if fd == fds[-1] else u64(7))


@LIMITED
def test_the_limit_is_on_the_sum_of_the_maps(limited):
    big = dict(key_size=4, value_size=4096, max_entries=(LIMIT * 5 // 8) // 4096)  # 20 of the 32 MiB
    first = create_map(limited, ARRAY, **big)
    assert err(create_map, limited, ARRAY, **big) == errno.ENOMEM
    limited.close(first)
    deadline = time.monotonic() + 10  # the host uncharges the freed map asynchronously
    while True:
        e = err(create_map, limited, ARRAY, **big)
        if e != errno.ENOMEM or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert e == 0


# -- no cgroup limit: the machine -------------------------------------------------------------------------

def _pow2_at_most(n):
    return 1 << (n.bit_length() - 1)


def test_without_a_cgroup_limit_large_maps_are_created(backend, proc):
    """A fresh Kernel() has no memory cgroup limit, as this host: a 1 GiB RINGBUF and a BPF_F_NO_PREALLOC hash of
    2^27 entries (a 2 GiB bucket array of 16-byte buckets) are created (they once hit a 1 GiB default on the
    emulator). Each is closed before the next is made. On a machine with less RAM (a VM guest) each map is as
    large as a power of two no more than an eighth of the machine's memory allows (the backend's
    ``machine_memory``: MemTotal, or the emulator's model)."""
    room = _pow2_at_most(backend.machine_memory // 8) if backend.machine_memory else 1 << 31
    fd = create_map(proc, u.BPF_MAP_TYPE_RINGBUF, 0, 0, min(1 << 30, room))
    proc.close(fd)
    fd = create_map(proc, HASH, 4, 8, min(1 << 27, room // 16), u.BPF_F_NO_PREALLOC)
    proc.close(fd)


def test_a_map_larger_than_the_machine_is_enomem(proc):
    """An ARRAY whose values are larger than the machine's RAM (MemTotal, the kernel's totalram_pages): the
    vmalloc of the value area is refused at once, ENOMEM. The emulator's machine_memory is the host's
    MemTotal by default (off Linux, where there is none to read, memcg.DEFAULT_MACHINE_MEMORY)."""
    from bpfemu.host.sysinfo import host_total_memory
    from bpfemu.memcg import DEFAULT_MACHINE_MEMORY
    entries = (host_total_memory() or DEFAULT_MACHINE_MEMORY) // MiB + 1024
    assert err(create_map, proc, ARRAY, 4, MiB, entries) == errno.ENOMEM
