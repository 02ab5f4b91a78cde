"""The memory limit: an emulated ``Kernel(memory_limit=L)`` against a host task in a memory
cgroup limited to L bytes.

Host side: a fresh HostTask child is moved into a new memory cgroup (a child of ours;
cgroup v1 ``memory.limit_in_bytes`` + ``tasks`` on this host, v2 ``memory.max`` +
``cgroup.procs`` where that is what is mounted), removed again at the end.

What is compared, and why only this: the host cgroup also charges whatever else the child
allocates after the move (its Python heap growing, socket buffers, page tables), so its
usage is "the maps + a little noise" and an exact byte-for-byte boundary cannot be
compared. Both sides must agree where the noise cannot matter:
- a map whose memlock figure is far above the limit: MAP_CREATE fails with ENOMEM;
- small maps well under it: created fine;
- per-CPU values do not count (a host finding: see test_per_cpu_values_are_not_charged_to_the_limit);
- the limit is on the sum: two maps each well under the limit but together over it --
  the second fails with ENOMEM, and succeeds once the first is closed (the host frees and
  uncharges asynchronously, so that creation is retried for a few seconds).
Growth of a BPF_F_NO_PREALLOC hash past the limit is not compared: the host answers it
with the cgroup's OOM killer (the child is SIGKILLed), the emulator with ENOMEM
(bpfemu/memcg.py says why).
"""
import errno
import os
import time

import pytest

import bpfemu
from bpfemu import uapi as u

from .bpfhelp import create_map, err, update, u32, u64
from .conftest import EmuBackend, _need_host

LIMIT = 32 << 20
MiB = 1 << 20
ARRAY, HASH = u.BPF_MAP_TYPE_ARRAY, u.BPF_MAP_TYPE_HASH


def _own_memcg():
    """(cgroup directory of this process's memory controller, 'v1' or 'v2'), or (None, reason)."""
    for line in open("/proc/self/cgroup"):
        hier, ctrls, path = line.rstrip("\n").split(":", 2)
        if "memory" in ctrls.split(","):
            d = "/sys/fs/cgroup/memory" + path
            if os.path.exists(os.path.join(d, "memory.limit_in_bytes")):
                return d, "v1"
    for line in open("/proc/self/cgroup"):
        if line.startswith("0::"):
            d = "/sys/fs/cgroup" + line.rstrip("\n")[3:]
            if "memory" in open(os.path.join(d, "cgroup.controllers")).read().split() if os.path.exists(
                    os.path.join(d, "cgroup.controllers")) else False:
                return d, "v2"
    return None, "no memory cgroup controller is mounted"


class HostCgroup:
    """A child memory cgroup of ours with ``limit`` bytes; ``.add(pid)`` moves a process in."""

    def __init__(self, limit):
        parent, self.version = _own_memcg()
        if parent is None:
            raise OSError(errno.ENOENT, self.version)
        self.path = os.path.join(parent, "bpfemu_memlock_%d" % os.getpid())
        os.mkdir(self.path)
        limit_file = "memory.limit_in_bytes" if self.version == "v1" else "memory.max"
        self._write(limit_file, limit)

    def _write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(value))

    def add(self, pid):
        self._write("tasks" if self.version == "v1" else "cgroup.procs", pid)

    def remove(self):
        deadline = time.monotonic() + 5
        while True:
            try:
                os.rmdir(self.path)
                return
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:  # EBUSY: a task is still leaving
                    raise
                time.sleep(0.05)


@pytest.fixture(params=["emu", "host"])
def limited(request):
    """A privileged task whose maps are charged to a memory cgroup of LIMIT bytes."""
    if request.param == "emu":
        b = EmuBackend(memory_limit=LIMIT)
        yield b.spawn()
        b.close()
        return
    _need_host(needs="a memory cgroup of the host")
    try:
        cg = HostCgroup(LIMIT)
    except OSError as e:
        pytest.skip("cannot make a memory cgroup here: %s" % e)  # e.g. a read-only cgroupfs in a container
    task = bpfemu.Host().spawn()
    try:
        cg.add(task.pid)
        yield task
    finally:
        task.exit()
        cg.remove()


def test_a_map_over_the_limit_is_enomem(limited):
    assert err(create_map, limited, ARRAY, 4, 4096, max_entries=2 * LIMIT // 4096) == errno.ENOMEM
    # a preallocated hash: ~80 bytes per element before the value, 1 MiB elements
    assert err(create_map, limited, HASH, 8, 8, max_entries=1 << 20) == errno.ENOMEM
    # a per-CPU array whose pointer array alone (8 bytes an entry) is twice the limit
    assert err(create_map, limited, u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, max_entries=LIMIT // 4) == errno.ENOMEM


def test_per_cpu_values_are_not_charged_to_the_limit(limited):
    """Host finding (6.18, cgroup v1): per-CPU value storage is in the map's memlock figure but
    not charged against memory.limit_in_bytes -- maps whose per-CPU values are twice the limit
    (on two or more CPUs) are created, and can be created again and again."""
    fds = [create_map(limited, u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4096, max_entries=LIMIT // 4096) for _ in range(3)]
    fds.append(create_map(limited, u.BPF_MAP_TYPE_PERCPU_HASH, 8, 4096, max_entries=LIMIT // 4096))
    assert len(fds) == 4


def test_small_maps_fit(limited):
    fds = [create_map(limited, t, 4, 8, max_entries=64) for t in (ARRAY, HASH, u.BPF_MAP_TYPE_PERCPU_HASH)]
    fds.append(create_map(limited, ARRAY, 4, 4096, max_entries=LIMIT // 4096 // 8))  # an eighth of the limit
    for fd in fds:
        update(limited, fd, u32(1), u64(7) + bytes(4096 - 8) if fd == fds[-1] else u64(7))


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


def test_emulator_charge_follows_the_limit_exactly():
    """Emulator only (the host boundary is blurred by the child's own allocations, see above):
    a map exactly at the remaining budget fits, one byte-page more does not."""
    from bpfemu import memcg
    k = bpfemu.Kernel(memory_limit=1 * MiB)
    t = k.spawn()
    n = (1 * MiB - memcg.MAP_HEADER) // 8
    fd = create_map(t, ARRAY, 4, 8, max_entries=n)
    assert k.memcg.usage() == memcg.MAP_HEADER + 8 * n <= 1 * MiB
    assert err(create_map, t, ARRAY, 4, 8, max_entries=64) == errno.ENOMEM
    t.close(fd)
    assert k.memcg.usage() == 0
    assert err(create_map, t, ARRAY, 4, 8, max_entries=n) == 0
    bpfemu.check_invariants(k)
