"""Memory accounting: what each map costs the memory cgroup, against a limit.

The real kernel charges a map's memory to the creating task's memory cgroup.
Structures allocated up front (array values, preallocated hash elements, the
bucket array) are charged at MAP_CREATE; a hash table created with
BPF_F_NO_PREALLOC is charged one element at a time as it grows. Past the
cgroup's limit MAP_CREATE fails with ENOMEM.

``Kernel(memory_limit=N)`` gives the emulated machine a cgroup of N bytes;
the default is DEFAULT_MEMORY_LIMIT (1 GiB), and None is unlimited (only the
real size checks of each map type apply). Each live map is charged its ``memlock`` figure of fdinfo (the
kernel's ``map_mem_usage``), with the formulas below measured on the host
(x86_64, 4 KiB pages); types without a formula here are charged their
header plus what they store.

Growth past the limit: the host invokes the cgroup's OOM killer (the task
doing the update is killed when it is the only one in the cgroup); an
emulator cannot kill its caller, so a growing update fails with ENOMEM, which
is what the kernel's allocation returns when reclaim and OOM give nothing.

Per-CPU values are in the memlock figure but not charged against the limit:
on the host (6.18, cgroup v1) a PERCPU_ARRAY or PERCPU_HASH whose per-CPU
values alone are twice the cgroup's limit is created fine and the cgroup's
usage grows only by the pointers and elements (conformance/test_memlock.py::
test_per_cpu_values_are_not_charged_to_the_limit). ``limit_charge`` is what the
limit sees; ``map_charge`` stays the memlock figure.

The emulator's own memory follows what is stored, never max_entries, so the
charge is a model of the host's, not of Python's heap.
"""
import errno

from . import uapi
from .bpf_map import round_up, roundup_pow_of_two
from .errors import bpf_error

DEFAULT_MEMORY_LIMIT = 1 << 30  # Kernel(memory_limit=None) is unlimited
PAGE_SIZE = 4096
MAP_HEADER = 312  # sizeof(struct bpf_array) and the other small map headers, as memlock shows them
HTAB_HEADER = 832  # sizeof(struct bpf_htab)
HTAB_ELEM = 48  # sizeof(struct htab_elem) before the key
BUCKET = 16
LOCK_COUNT = 8  # HASHTAB_MAP_LOCK_COUNT per-CPU ints
LLIST_NODE = 8
PTR = 8

U = uapi
HASH_TYPES = frozenset((U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_MAP_TYPE_LRU_HASH,
                        U.BPF_MAP_TYPE_LRU_PERCPU_HASH, U.BPF_MAP_TYPE_HASH_OF_MAPS))
PERCPU_HASH = frozenset((U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_MAP_TYPE_LRU_PERCPU_HASH))
LRU_HASH = frozenset((U.BPF_MAP_TYPE_LRU_HASH, U.BPF_MAP_TYPE_LRU_PERCPU_HASH))


def _htab(m, ncpus):
    percpu = m.map_type in PERCPU_HASH
    lru = m.map_type in LRU_HASH
    prealloc = not m.map_flags & U.BPF_F_NO_PREALLOC
    vs = round_up(m.value_size, 8)
    elem = HTAB_ELEM + round_up(m.key_size, 8) + (PTR if percpu else vs)
    usage = HTAB_HEADER + BUCKET * roundup_pow_of_two(m.max_entries) + 4 * ncpus * LOCK_COUNT
    if prealloc:
        n = m.max_entries + (ncpus if not percpu and not lru else 0)
        usage += elem * n
        if percpu:
            usage += vs * ncpus * n
        elif not lru:
            usage += PTR * ncpus
    else:
        n = m.count()
        usage += (elem + LLIST_NODE) * n
        if percpu:
            usage += (LLIST_NODE + PTR + vs * ncpus) * n
    return usage


def growth(m):
    """Bytes one more element costs a map charged per element (0 when preallocated)."""
    if m.map_type not in HASH_TYPES or not m.map_flags & U.BPF_F_NO_PREALLOC:
        return 0
    ncpus = m.kernel.ncpus
    vs = round_up(m.value_size, 8)
    if m.map_type in PERCPU_HASH:  # the per-CPU value itself is not charged to the limit (see above)
        return HTAB_ELEM + round_up(m.key_size, 8) + PTR + LLIST_NODE + LLIST_NODE + PTR
    return HTAB_ELEM + round_up(m.key_size, 8) + vs + LLIST_NODE


def map_charge(m):
    """The bytes the host charges for map m now (its fdinfo memlock)."""
    try:
        from . import fdinfo
    except ImportError:
        fdinfo = None
    fn = getattr(fdinfo, "memlock", None)
    if callable(fn):
        return fn(m)
    ncpus = m.kernel.ncpus
    t = m.map_type
    vs = round_up(m.value_size, 8)
    if t == U.BPF_MAP_TYPE_ARRAY:
        if m.map_flags & U.BPF_F_MMAPABLE:
            return PAGE_SIZE + round_up(vs * m.max_entries, PAGE_SIZE)
        return MAP_HEADER + vs * m.max_entries
    if t == U.BPF_MAP_TYPE_PERCPU_ARRAY:
        return MAP_HEADER + (PTR + vs * ncpus) * m.max_entries
    if t in HASH_TYPES:
        return _htab(m, ncpus)
    if t in (U.BPF_MAP_TYPE_QUEUE, U.BPF_MAP_TYPE_STACK):
        return MAP_HEADER + (m.max_entries + 1) * m.value_size
    return MAP_HEADER + m.mem_usage()


def percpu_bytes(m):
    """The per-CPU value storage inside map_charge(m), which the cgroup limit does not see."""
    t = m.map_type
    if t != U.BPF_MAP_TYPE_PERCPU_ARRAY and t not in PERCPU_HASH:
        return 0
    per_elem = round_up(m.value_size, 8) * m.kernel.ncpus
    if t == U.BPF_MAP_TYPE_PERCPU_ARRAY or not m.map_flags & U.BPF_F_NO_PREALLOC:
        return per_elem * m.max_entries
    return per_elem * m.count()


def limit_charge(m):
    """What map m counts against the memory cgroup's limit: its memlock less per-CPU values."""
    return map_charge(m) - percpu_bytes(m)


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
        return sum(limit_charge(m) for m in self.maps())

    def charge_map(self, m):
        """MAP_CREATE: charge a new map, ENOMEM past the limit."""
        if self.limit is not None and self.usage() + limit_charge(m) > self.limit:
            raise bpf_error(errno.ENOMEM, "map needs %d bytes, the memory cgroup has %d of %d left"
                            % (limit_charge(m), max(self.limit - self.usage(), 0), self.limit))
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
