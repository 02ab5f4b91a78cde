"""Memory accounting: what each map costs the memory cgroup, against a limit.

The real kernel charges a map's memory to the creating task's memory cgroup.
Structures allocated up front (array values, preallocated hash elements, the
bucket array) are charged at MAP_CREATE; a map that grows per element (a hash
table created with BPF_F_NO_PREALLOC, an LPM trie, a device map's entries) is
charged one element at a time as it grows. Past the cgroup's limit MAP_CREATE
fails with ENOMEM.

``Kernel(memory_limit=N)`` gives the emulated machine a cgroup of N bytes;
the default is DEFAULT_MEMORY_LIMIT (1 GiB), and None is unlimited (only the
real size checks of each map type apply).

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

The emulator's own memory follows what is stored, never max_entries, so the
charge is a model of the host's, not of Python's heap.
"""
import errno

from .errors import bpf_error

DEFAULT_MEMORY_LIMIT = 1 << 30  # Kernel(memory_limit=None) is unlimited


def charge(m, count=None):
    """What map m counts against the memory cgroup's limit (with ``count`` elements, default now):
    its memlock figure less its per-CPU values."""
    return m.mem_usage(count) - m.percpu_mem_usage(count)


def growth(m):
    """Bytes one more element adds to m's charge (0 for a preallocated map)."""
    n = m.count()
    return charge(m, n + 1) - charge(m, n)


class MemCg:
    """One memory cgroup: ``limit`` bytes (None = unlimited) and the maps charged to it."""

    def __init__(self, limit=None):
        if limit is not None and limit < 0:
            raise ValueError("memory_limit must be >= 0 or None")
        self.limit = limit
        self._maps = {}  # id(map) -> map, pruned of freed maps as it is read
        self._prune_at = 64
        # room known to be left under the limit: usage() only grows by what grow() and charge_map()
        # allow, so this is a lower bound and element inserts need not re-sum every map each time
        self._headroom = 0
        self._headroom_for = limit

    def maps(self):
        for k in [k for k, m in self._maps.items() if m.freed]:
            del self._maps[k]
        return list(self._maps.values())

    def usage(self):
        """Bytes charged against the limit now: the sum of the live maps' limit charges."""
        return sum(charge(m) for m in self.maps())

    def charge_map(self, m):
        """MAP_CREATE: charge a new map, ENOMEM past the limit."""
        if self.limit is not None and self.usage() + charge(m) > self.limit:
            raise bpf_error(errno.ENOMEM, "map needs %d bytes, the memory cgroup has %d of %d left"
                            % (charge(m), max(self.limit - self.usage(), 0), self.limit))
        self._maps[id(m)] = m
        self._headroom = 0
        if len(self._maps) > self._prune_at:
            self._prune_at = 2 * len(self.maps()) + 64

    def grow(self, m):
        """An element is about to be added to m: ENOMEM if its memory would pass the limit."""
        if self.limit is None:
            return
        n = growth(m)
        if n <= self._headroom and self._headroom_for == self.limit:
            self._headroom -= n
            return
        self._headroom, self._headroom_for = self.limit - self.usage(), self.limit
        if n > self._headroom:
            raise bpf_error(errno.ENOMEM, "the memory cgroup limit (%d bytes) is reached" % self.limit)
        self._headroom -= n

    def violations(self, live_maps):
        out = []
        charged = {id(m) for m in self.maps()}
        for m in live_maps:
            if m.id and id(m) not in charged:
                out.append("%r is alive but not charged to the memory cgroup" % (m,))
        if self.limit is not None:
            used = self.usage()
            if used > self.limit:
                out.append("memory cgroup usage %d over its limit %d" % (used, self.limit))
        return out
