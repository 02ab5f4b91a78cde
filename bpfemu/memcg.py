"""Memory accounting: what each map costs, against the machine's memory and an optional memory cgroup limit.

The real kernel charges a map's memory to the creating task's memory cgroup.
Structures allocated up front (array values, preallocated hash elements, the
bucket array) are charged at MAP_CREATE; a map that grows per element (a hash
table created with BPF_F_NO_PREALLOC, an LPM trie, a device map's entries) is
charged one element at a time as it grows.

Two bounds, as on a host:

- the machine: ``Kernel(machine_memory=N)``, default the host's MemTotal. The
  kernel refuses (ENOMEM) a vmalloc area larger than all of its RAM at once,
  and a machine cannot hold maps adding up to more than its memory; the
  emulator so refuses a map, or an element, that would take the maps past
  ``machine_memory`` (counting everything, per-CPU values too). This is the
  default model: a host with no memory-cgroup limit creates a 1 GiB RINGBUF or a
  no-prealloc hash of 2^27 entries, and fails only what exceeds its memory.
  (Where the host has no errno to give -- a per-CPU map whose values exceed the
  machine, elements past its memory -- it invokes the OOM killer; the emulator
  cannot kill its caller and answers ENOMEM.)
- a memory cgroup: ``Kernel(memory_limit=N)`` gives the maps a cgroup of N
  bytes (default None: no limit, as on this host); past it MAP_CREATE and a
  growing update fail with ENOMEM.

What a map is charged is its own figure: ``m.mem_usage()`` (the ``memlock`` of
fdinfo, the kernel's ``map_mem_usage``, defined in each map type's file) less
``m.percpu_mem_usage()``. This module knows no map types. The host decides
both parts (conformance/test_memlock.py): a map's kernel-memory charge in a
fresh memory cgroup is its memlock figure, except for per-CPU values, which are
in memlock but not charged against the limit -- on the host (6.18, cgroup v1)
a PERCPU_ARRAY or PERCPU_HASH whose per-CPU values alone are twice the
cgroup's limit is created fine and the cgroup's usage grows only by the
pointers and elements.

Growth past the limit: the host invokes the cgroup's OOM killer (the task
doing the update is killed when it is the only one in the cgroup); an
emulator cannot kill its caller, so a growing update fails with ENOMEM, which
is what the kernel's allocation returns when reclaim and OOM give nothing.

A map leaves the accounting when it is freed (its last reference gone), at once.
The emulator's own memory follows what is stored, never max_entries, so the
charge is a model of the host's, not of Python's heap.
"""
import errno

from .errors import bpf_error

DEFAULT_MEMORY_LIMIT = None  # Kernel(memory_limit=N) gives the maps a memory cgroup of N bytes
DEFAULT_MACHINE_MEMORY = 8 << 30  # where the host's MemTotal cannot be read


def charge(m, count=None):
    """What map m counts against the memory cgroup's limit (with ``count`` elements, default now):
    its memlock figure less its per-CPU values."""
    return m.mem_usage(count) - m.percpu_mem_usage(count)


def footprint(m, count=None):
    """What map m takes of the machine's memory: its whole memlock figure, per-CPU values included."""
    return m.mem_usage(count)


def _growth(fn, m):
    n = m.count()
    return fn(m, n + 1) - fn(m, n)


def growth(m):
    """Bytes one more element adds to m's charge (0 for a preallocated map)."""
    return _growth(charge, m)


class MemCg:
    """The maps' memory: ``limit`` bytes of a memory cgroup (None = no cgroup limit) on a machine of
    ``machine`` bytes (None = unbounded)."""

    def __init__(self, limit=None, machine=None):
        if limit is not None and limit < 0:
            raise ValueError("memory_limit must be >= 0 or None")
        if machine is not None and machine < 0:
            raise ValueError("machine_memory must be >= 0 or None")
        self.limit = limit
        self.machine = machine
        self._maps = {}  # id(map) -> map, charged until the map is freed
        # room known to be left under each bound: usage only grows by what grow() and charge_map()
        # allow, so these are lower bounds and element inserts need not re-sum every map each time
        self._headroom = {"limit": 0, "machine": 0}

    def maps(self):
        """The maps charged now (live maps)."""
        return list(self._maps.values())

    def usage(self):
        """Bytes charged against the limit now: the sum of the live maps' limit charges."""
        return sum(charge(m) for m in self._maps.values())

    def machine_usage(self):
        """Bytes of the machine's memory the live maps take (per-CPU values included)."""
        return sum(footprint(m) for m in self._maps.values())

    def _bounds(self):
        if self.limit is not None:
            yield "limit", self.limit, charge, self.usage
        if self.machine is not None:
            yield "machine", self.machine, footprint, self.machine_usage

    def charge_map(self, m):
        """MAP_CREATE: charge a new map, ENOMEM past the limit or the machine's memory."""
        for name, bound, cost, used in self._bounds():
            need, have = cost(m), used()
            if have + need > bound:
                raise bpf_error(errno.ENOMEM, "map needs %d bytes, the %s has %d of %d left" % (
                    need, "memory cgroup" if name == "limit" else "machine", max(bound - have, 0), bound))
        self._maps[id(m)] = m
        self._headroom = {"limit": 0, "machine": 0}

    def uncharge(self, m):
        """The map was freed: its memory is given back at once."""
        if self._maps.pop(id(m), None) is not None:
            self._headroom = {"limit": 0, "machine": 0}

    def grow(self, m):
        """An element is about to be added to m: ENOMEM if its memory would pass a bound."""
        for name, bound, cost, used in self._bounds():
            n = _growth(cost, m)
            if n <= self._headroom[name]:
                self._headroom[name] -= n
                continue
            room = bound - used()
            if n > room:
                raise bpf_error(errno.ENOMEM, "the %s (%d bytes) is full" % (
                    "memory cgroup limit" if name == "limit" else "machine's memory", bound))
            self._headroom[name] = room - n

    def violations(self, live_maps):
        out = []
        live = {id(m) for m in live_maps}
        for m in live_maps:
            if m.id and id(m) not in self._maps:
                out.append("%r is alive but not charged to the memory cgroup" % (m,))
        for k, m in self._maps.items():
            if k not in live or m.freed:
                out.append("freed %r is still charged to the memory cgroup" % (m,))
        for name, bound, _cost, used in self._bounds():
            if used() > bound:
                out.append("memory %s: usage %d over %d" % (name, used(), bound))
        return out
