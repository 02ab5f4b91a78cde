"""Hash table maps (the kernel's hashtab.c): HASH, PERCPU_HASH, LRU_HASH,
LRU_PERCPU_HASH and HASH_OF_MAPS.

Elements sit in ``n_buckets = roundup_pow_of_two(max_entries)`` buckets chosen
by jhash of the key (seed 0 with BPF_F_ZERO_SEED, else a per-map value drawn
from the kernel's deterministic generator). In the kernel a bucket is a list,
head first: a new element goes to the head, and replacing a key's value inserts
the new element at the head and unlinks the old one, except for per-CPU values,
HASH_OF_MAPS values and BPF_F_LOCK updates, which are replaced in place.
GET_NEXT_KEY and the batch commands walk buckets in index order and each bucket
from its head, so with BPF_F_ZERO_SEED the order is the kernel's.

Storage (memory follows the elements, not max_entries, and a plain map keeps
nothing per element but its key and value): ``elems`` maps key bytes to the
stored value (an LRU map: to its node, which holds the value), in the order the
elements were added: a replacement that makes a new element moves its key to
the end, an in-place one leaves it. So within a bucket the kernel's order, head
first, is the reverse of ``elems``' order, and a bucket is a function of the
key's hash: the walk index (``buckets``: bucket -> keys head first, ``_where``:
key -> bucket, ``_nonempty``: the sorted non-empty buckets) is built only when
something walks the map (GET_NEXT_KEY, the batch lookups, for_each), kept up to
date while it exists, and dropped when a walk reaches the end of the map. The batch lookups of a plain map
walk without it: a whole-map batch sorts all elements by bucket once (with NumPy from BATCH_NUMPY_MIN
elements on), and a dump in chunks keeps that order between its calls (``_WalkOrder``, dropped on any other
change and at the end of the walk), holding its own deletes back until the map is used otherwise
(``_HeldDeletes``: the ``elems`` property applies them at its first use).
Values are stored as ``bytes``; a program's lookup turns the element's value
into a ``bytearray`` in place (its storage from then on, written through).

A full map refuses a new key with E2BIG. An LRU map never does: an update takes
a node from the LRU lists (:mod:`bpfemu.maps.bpf_lru_list`) before it looks the
key up, and that may evict other elements, in batches and before the map is
full, depending on the CPU the update runs on (``Task.cpu``); the model is the
kernel's, deterministic for a given sequence of calls and CPUs.
"""
import errno
import struct
from bisect import bisect_left, bisect_right
from itertools import islice

from sortedcontainers import SortedList

from .. import uapi
from ..caps import CAP_SYS_ADMIN
from ..errors import ENOTSUPP, bpf_error
from ..jhash import htab_map_hash, jhash_array, jhash_many, numpy_or_none
from ..limits import KMALLOC_MAX_SIZE, PAGE_SIZE, PCPU_MIN_UNIT_SIZE, round_up, roundup_pow_of_two
from .bpf_lru_list import Lru
from .bpf_map import (BPF_F_ACCESS_MASK, BpfMap, batch_elem_flags, generic_map_delete_batch, generic_map_update_batch,
                      map_check_no_btf,
                      map_flags_access_ok)
from .map_in_map import OfMaps

# struct sizes on x86_64, as map_mem_usage counts them (fitted to the host's memlock figures)
HTAB_ELEM_SIZE = 48  # sizeof(struct htab_elem) without the key
HTAB_BUCKET_SIZE = 16  # sizeof(struct bucket)
HASHTAB_MAP_LOCK_COUNT = 8  # per-CPU lock counters
LLIST_NODE = 8

# A whole-map lookup batch (_htab_batch_whole) of at least this many elements makes the kernel's walk order
# with NumPy, imported then (a fresh Kernel() never imports it; the import costs ~85 ms of CPU once, the
# pure-Python order ~0.5 us per element, NumPy's ~0.1); smaller ones, or without NumPy, in pure Python. The
# two give the same bytes (tests/test_hashtab_many.py moves the bound to compare them).
BATCH_NUMPY_MIN = 1024

HTAB_CREATE_FLAG_MASK = (uapi.BPF_F_NO_PREALLOC | uapi.BPF_F_NO_COMMON_LRU | uapi.BPF_F_NUMA_NODE
                         | BPF_F_ACCESS_MASK | uapi.BPF_F_ZERO_SEED)


class _WalkOrder:
    """The walk order of a plain hash map, made with NumPy, kept between the chunks of one batch walk
    (HashMap._htab_batch_walk): ``kout`` and ``vout``, the keys and the values laid end to end in the
    kernel's order (buckets in index order, each newest first); ``values``, None if no value was a
    bytearray when the order was made, else the stored values in that order (the objects in ``elems``: a
    program writes a value in place only once it is a bytearray, and making one drops the order, so these
    are read when a chunk copies them); ``buckets``, each element's bucket (a sorted uint32 array); and the
    run ``lo``..``hi`` - 1 of the order that the chunks deleted (whole buckets)."""

    __slots__ = ("kout", "vout", "values", "buckets", "lo", "hi")

    def __init__(self, kout, vout, values, buckets):
        self.kout, self.vout, self.values, self.buckets = kout, vout, values, buckets
        self.lo = self.hi = 0


class _HeldDeletes:
    """The deletes of a LOOKUP_AND_DELETE_BATCH walk in chunks not applied to ``elems`` yet: the elements
    ``lo``..``hi`` - 1 of the walk order ``walk`` (whole buckets). Deleting 1,000 keys scattered over a big
    dict costs ~0.5 us each in cache misses; held until the walk ends, they go with one ``clear()`` or in
    ``elems``' own order. While deletes are held the map's ``elems`` property applies them at its first use
    from anywhere, so nothing sees the map otherwise than as it is."""

    __slots__ = ("elems", "walk", "lo", "hi")

    def __init__(self, elems, walk, lo, hi):
        self.elems, self.walk, self.lo, self.hi = elems, walk, lo, hi


class LruElem:
    """An element of an LRU map, which is also a node of its LRU lists (struct htab_elem with its
    struct bpf_lru_node); a plain map's elements have no object of their own."""

    __slots__ = ("key", "value", "lru_prev", "lru_next", "lru_type", "ref", "cpu")

    def __init__(self, key, value):
        self.key, self.value = key, value


class HashMap(BpfMap):
    """HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH (htab_map_ops and its per-CPU and LRU variants)."""

    fd_values = False  # HASH_OF_MAPS: values are held inner maps, replaced in place
    # the walk index, while there is one (instance attributes then): bucket -> keys head first,
    # key -> bucket, the sorted non-empty buckets
    buckets = _where = _nonempty = None
    # a plain map's walk order made with NumPy for batches in chunks (_WalkOrder), while there is one: dropped
    # on any change to ``elems`` but the chunks' own deletes, and when a walk reaches the end of the map
    _walk = None
    _held = None  # _HeldDeletes, while a walk in chunks holds deletes back (``elems`` is not set then)
    update_batch = generic_map_update_batch
    delete_batch = generic_map_delete_batch

    @classmethod
    def alloc_check(cls, attr, task):
        """htab_map_alloc_check."""
        t = attr.map_type
        flags = attr.map_flags
        lru = t in (uapi.BPF_MAP_TYPE_LRU_HASH, uapi.BPF_MAP_TYPE_LRU_PERCPU_HASH)
        percpu = t in (uapi.BPF_MAP_TYPE_PERCPU_HASH, uapi.BPF_MAP_TYPE_LRU_PERCPU_HASH)
        prealloc = not flags & uapi.BPF_F_NO_PREALLOC
        percpu_lru = flags & uapi.BPF_F_NO_COMMON_LRU
        if flags & uapi.BPF_F_ZERO_SEED and not task.capable(CAP_SYS_ADMIN):
            raise bpf_error(errno.EPERM, "BPF_F_ZERO_SEED needs CAP_SYS_ADMIN")
        if flags & ~HTAB_CREATE_FLAG_MASK or not map_flags_access_ok(flags):
            raise bpf_error(errno.EINVAL, "map_flags not valid for a hash map")
        if not lru and percpu_lru:
            raise bpf_error(errno.EINVAL, "BPF_F_NO_COMMON_LRU is for LRU maps")
        if lru and not prealloc:
            raise bpf_error(ENOTSUPP, "LRU maps are always preallocated")
        if flags & uapi.BPF_F_NUMA_NODE and attr.numa_node != 0xFFFFFFFF and (percpu or percpu_lru):
            raise bpf_error(errno.EINVAL, "per-CPU hash maps take no NUMA node")
        if attr.max_entries == 0 or attr.key_size == 0 or attr.value_size == 0:
            raise bpf_error(errno.EINVAL, "key_size, value_size and max_entries must be nonzero")
        if attr.key_size + attr.value_size >= KMALLOC_MAX_SIZE - HTAB_ELEM_SIZE:
            raise bpf_error(errno.E2BIG, "key_size + value_size too large")
        if percpu and round_up(attr.value_size, 8) > PCPU_MIN_UNIT_SIZE:
            raise bpf_error(errno.E2BIG, "per-CPU value larger than a percpu unit")

    def __init__(self, kernel, attr):
        super().__init__(kernel, attr)
        t = attr.map_type
        self.lru = t in (uapi.BPF_MAP_TYPE_LRU_HASH, uapi.BPF_MAP_TYPE_LRU_PERCPU_HASH)
        self.percpu = t in (uapi.BPF_MAP_TYPE_PERCPU_HASH, uapi.BPF_MAP_TYPE_LRU_PERCPU_HASH)
        self.prealloc = not (attr.map_flags & uapi.BPF_F_NO_PREALLOC)
        if self.lru and attr.map_flags & uapi.BPF_F_NO_COMMON_LRU:
            # each CPU's LRU list gets the same number of elements
            n = kernel.ncpus
            m = round_up(self.max_entries, n)
            if m > 0xFFFFFFFF:
                m = self.max_entries // n * n
            self.max_entries = m
        if self.max_entries > 1 << 31:
            raise bpf_error(errno.E2BIG, "max_entries too large for a hash table")
        self.n_buckets = roundup_pow_of_two(self.max_entries)
        if self.n_buckets > 0xFFFFFFFF // HTAB_BUCKET_SIZE:
            raise bpf_error(errno.E2BIG, "max_entries > 2^27: the bucket array would overflow")
        self.hashrnd = 0 if attr.map_flags & uapi.BPF_F_ZERO_SEED else kernel.next_random()
        self.elems = {}  # key bytes -> stored value (LRU: its node), oldest element first
        self.lru_list = None
        if self.lru:
            self.lru_list = Lru(self.max_entries, kernel.ncpus, bool(attr.map_flags & uapi.BPF_F_NO_COMMON_LRU),
                                self._lru_del_from_htab, kernel.profile.lru_target_free)

    def count(self):
        return len(self.elems)

    # ``elems`` is a property, not a __getattr__ fallback: a class with __getattr__ is not specialized by
    # CPython's adaptive interpreter, which made every attribute of a hash map slower (m[k] = v 0.63 -> 0.71x)
    @property
    def elems(self):
        """key bytes -> stored value; held deletes (_HeldDeletes) are applied first."""
        if self._held is not None:
            return self._apply_held()
        return self._elems

    @elems.setter
    def elems(self, d):
        self._elems = d

    def _apply_held(self):
        """Apply the held deletes: the elements of the run, by one ``clear()`` if they are all, else in
        ``elems``' order (or one by one when they are few)."""
        held = self._held
        d = held.elems
        self._held = None
        self.elems = d
        e = held.hi - held.lo
        if e == len(d):
            d.clear()
            return d
        ks = self.key_size
        kout = held.walk.kout
        keys = [kout[o:o + ks] for o in range(held.lo * ks, held.hi * ks, ks)]
        if e * 8 < len(d):
            for k in keys:
                del d[k]
        else:
            gone = set(keys)
            for k in [k for k in d if k in gone]:
                del d[k]
        return d

    def map_check_btf(self, btf, key_type, value_type):
        """htab_map_check_btf: a hash table needs a key type."""
        if key_type.kind == 0:
            raise bpf_error(errno.EINVAL, "a hash map needs a btf_key_type_id")

    def mem_usage(self, count=None):
        """htab_map_mem_usage: the table, its buckets and locks, and the elements: every one of a
        preallocated table (plus a spare per CPU for in-place replacement of plain hashes), else the ones
        stored, each with its free-list node."""
        ncpus = self.kernel.ncpus
        value = round_up(self.value_size, 8)
        elem = HTAB_ELEM_SIZE + round_up(self.key_size, 8) + (8 if self.percpu or self.fd_values else value)
        usage = self.kernel.profile.size("bpf_htab") + HTAB_BUCKET_SIZE * self.n_buckets + 4 * ncpus * HASHTAB_MAP_LOCK_COUNT
        if self.prealloc:
            n = self.max_entries
            if not (self.percpu or self.lru or self.fd_values and self.kernel.profile.fd_htab_update_in_place):
                n += ncpus  # a spare element per CPU (htab_has_extra_elems)
            if not (self.percpu or self.lru):
                usage += 8 * ncpus  # the per-CPU extra element pointers
            return usage + elem * n + self.percpu_mem_usage(count)
        n = self.count() if count is None else count
        usage += (elem + LLIST_NODE) * n
        if self.percpu:
            usage += (LLIST_NODE + 8) * n
        return usage + self.percpu_mem_usage(count)

    def percpu_mem_usage(self, count=None):
        if not self.percpu:
            return 0
        n = self.max_entries if self.prealloc else self.count() if count is None else count
        return round_up(self.value_size, 8) * self.kernel.ncpus * n

    # -- the walk index ------------------------------------------------------------------------
    def _bucket(self, key):
        return htab_map_hash(key, self.hashrnd) & (self.n_buckets - 1)

    def _index(self):
        """The walk index (``buckets``), built from ``elems`` if there is none: each key's bucket from
        the hashes of all keys computed together, each bucket's keys newest first."""
        buckets = self.buckets
        if buckets is not None:
            return buckets
        keys = list(reversed(self.elems))  # newest first: a bucket's head first
        mask = self.n_buckets - 1
        where = self._where = dict(zip(keys, [h & mask for h in
                                              jhash_many(b"".join(keys), self.key_size, len(keys), self.hashrnd)]))
        buckets = self.buckets = {}
        get = buckets.get
        for k, bi in where.items():
            b = get(bi)
            if b is None:
                buckets[bi] = [k]
            else:
                b.append(k)
        self._nonempty = SortedList(buckets)
        return buckets

    def _drop_index(self):
        """A walk reached the end of the map: the index goes (the next walk builds it again)."""
        self.buckets = self._where = self._nonempty = self._walk = None

    def _ix_add(self, key):
        """key is new: the head of its bucket."""
        bi = self._where[key] = self._bucket(key)
        b = self.buckets.get(bi)
        if b is None:
            self.buckets[bi] = [key]
            self._nonempty.add(bi)
        else:
            b.insert(0, key)

    def _ix_head(self, key):
        """key's element was replaced by a new one: the new one takes the head of the bucket."""
        b = self.buckets[self._where[key]]
        i = b.index(key)
        if i:
            del b[i]
            b.insert(0, key)

    def _ix_del(self, key):
        bi = self._where.pop(key)
        b = self.buckets[bi]
        if len(b) == 1:
            del self.buckets[bi]
            self._nonempty.remove(bi)
        else:
            b.remove(key)

    # -- elements ------------------------------------------------------------------------------
    def _unlink(self, key):
        """The element of key leaves the table (its node, for an LRU map, is the caller's)."""
        stored = self.elems.pop(key)
        self._walk = None
        if self.buckets is not None:
            self._ix_del(key)
        self.free_value(stored.value if self.lru else stored)
        return stored

    def free_value(self, value):
        """Drop what a stored value holds (of-maps release the inner map)."""

    # -- values ----------------------------------------------------------------
    # An element's value is stored as the bytes it was given; a program's lookup makes it a bytearray in
    # place (the element's storage a program reads and writes). Replacing a key's value makes a new
    # element (new bytes), as the kernel allocates a new htab_elem; in-place updates (per-CPU, BPF_F_LOCK)
    # replace the stored value between program runs.
    def to_kernel_value(self, value):
        """Userspace value bytes -> stored value.

        Per-CPU values are kept in the user layout: the kernel copies each CPU's
        round_up(value_size, 8) bytes whole, padding included."""
        return bytes(value)

    def to_user_value(self, stored):
        return bytes(stored)

    def _storage(self, key):
        """The value of key as a bytearray the element keeps (made so in place), or None."""
        stored = self.elems.get(key)
        if stored is None:
            return None
        if self.lru:
            v = stored.value
            if type(v) is not bytearray:
                v = stored.value = bytearray(v)
            return v
        if type(stored) is not bytearray:
            stored = self.elems[key] = bytearray(stored)  # an existing key: its place in elems stays
            self._walk = None  # (a walk order holds the stored values: this one is another object now)
        return stored

    def value_region(self, key, cpu=0):
        """htab_map_lookup_elem (and the per-CPU and LRU variants): the element's value storage."""
        v = self._storage(bytes(key))
        if v is None:
            return None
        return v, round_up(self.value_size, 8) * cpu if self.percpu else 0

    def prog_update(self, key, value, flags, cpu=0):
        """htab_percpu_map_update_elem from a program (onallcpus false): a new element gets ``value`` on
        CPU ``cpu`` and zeroes on the others; an existing one has that CPU's copy overwritten in place."""
        if not self.percpu:
            return BpfMap.prog_update(self, key, value, flags, cpu)
        key = bytes(key)
        stride = round_up(self.value_size, 8)
        off = stride * cpu
        stored = self.elems.get(key)
        old = None if stored is None else stored.value if self.lru else stored
        if old is not None and not self.lru and flags in (uapi.BPF_ANY, uapi.BPF_EXIST):
            self._storage(key)[off:off + self.value_size] = bytes(value[:self.value_size])
            return
        full = bytearray(old) if old is not None else bytearray(stride * self.kernel.ncpus)
        full[off:off + self.value_size] = bytes(value[:self.value_size])
        self.update(key, full, flags)  # a new element, or an LRU update (the LRU lists take their node)

    def for_each_elem(self, cpu=0):
        """bpf_for_each_hash_elem: buckets in index order, each from its head; the callback may delete."""
        off = round_up(self.value_size, 8) * cpu if self.percpu else 0
        self._index()
        in_place = self.percpu or self.fd_values or self.has_spin_lock()
        elems = self.elems
        for bi in list(self._nonempty):
            keys = self._index().get(bi)
            if not keys:
                continue
            # the bucket as it is when the walk reaches it; an element replaced in place shows its
            # new value, one deleted or replaced by a new element meanwhile its value of then
            snap = []
            for k in keys:
                v = self._storage(k)  # (a bytearray now, for the program to write through)
                snap.append((k, elems[k] if self.lru else v))
            for k, stored in snap:
                if self.lru:  # the node's value, as it is now (LRU_PERCPU_HASH replaces it in place)
                    yield k, (self._storage(k) if elems.get(k) is stored else stored.value, off)
                    continue
                if in_place and k in elems:
                    stored = self._storage(k)
                yield k, (stored, off)

    # -- ops ---------------------------------------------------------------------
    def lookup(self, key, flags=0):
        stored = self.elems.get(bytes(key))
        if stored is None:
            raise bpf_error(errno.ENOENT)
        return self.to_user_value(stored.value if self.lru else stored)

    def check_update_flags(self, flags):
        if (flags & ~uapi.BPF_F_LOCK) > uapi.BPF_EXIST or (self.percpu and flags > uapi.BPF_EXIST):
            raise bpf_error(errno.EINVAL, "bad update flags")

    def update(self, key, value, flags):
        if (flags & ~uapi.BPF_F_LOCK) > uapi.BPF_EXIST or (self.percpu and flags > uapi.BPF_EXIST):
            raise bpf_error(errno.EINVAL, "bad update flags")  # check_update_flags
        key = bytes(key)
        stored = self.to_kernel_value(value)
        if self.lru:
            self._lru_update(key, stored, flags)
            return
        if not flags and not (self.percpu or self.fd_values):
            # BPF_ANY of an existing key: insert's replacement, without the calls
            elems = self.elems
            old = elems.get(key)
            if old is not None:
                del elems[key]
                elems[key] = stored
                self._walk = None
                if self.buckets is not None:
                    self._ix_head(key)
                return
        self.insert(key, stored, flags)

    # -- LRU (htab_lru_map_update_elem, __htab_lru_percpu_map_update_elem) -------------------------------
    def _lru_del_from_htab(self, elem):
        """htab_lru_map_delete_node: the LRU lists give up elem; remove it from the table if it is there."""
        if self.elems.get(elem.key) is not elem:
            return False
        self._unlink(elem.key)
        return True

    def _lru_update(self, key, stored, flags):
        """Take a node first (which may evict, even elements of the key updated), then check the flags
        against what is left; a node not used goes back. LRU_HASH replaces the element (the new one has
        its reference bit set), LRU_PERCPU_HASH updates a present key in place (setting its bit) and
        takes no node for BPF_EXIST."""
        if flags > uapi.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad update flags")
        new = None
        if not (self.percpu and flags == uapi.BPF_EXIST):
            new = self.lru_list.pop_free(self.kernel.smp_processor_id(), lambda: LruElem(key, stored))
            if new is None:
                raise bpf_error(errno.ENOMEM, "no free LRU node for this CPU")
        old = self.elems.get(key)
        try:
            if old is not None and flags == uapi.BPF_NOEXIST:
                raise bpf_error(errno.EEXIST)
            if old is None and flags == uapi.BPF_EXIST:
                raise bpf_error(errno.ENOENT)
        except OSError:
            if new is not None:
                self.lru_list.push_free(new)
            raise
        if old is not None and self.percpu:
            old.ref = 1
            old.value = stored
            if new is not None:
                self.lru_list.push_free(new)
            return
        if old is None:
            self.elems[key] = new
            self._walk = None
            if self.buckets is not None:
                self._ix_add(key)
            return
        new.ref = 1
        self._replace(key, old, new)
        self.lru_list.push_free(old)

    def _replace(self, key, old, new):
        """A new element for key takes the head of its bucket and the old one leaves it (hlist add head,
        then del): the key moves to the end of ``elems``."""
        elems = self.elems
        del elems[key]
        elems[key] = new
        self._walk = None
        if self.buckets is not None:
            self._ix_head(key)
        self.free_value(old.value if self.lru else old)

    def insert(self, key, stored, flags):
        mode = flags & ~uapi.BPF_F_LOCK
        elems = self.elems
        old = elems.get(key)
        if old is None:
            if mode == uapi.BPF_EXIST:
                raise bpf_error(errno.ENOENT)
            if len(elems) >= self.max_entries:
                raise bpf_error(errno.E2BIG, "map is full")
            if not self.prealloc:
                self.kernel.memcg.grow(self)  # ENOMEM past the memory limit
            elems[key] = stored
            self._walk = None
            if self.buckets is not None:
                self._ix_add(key)
            return
        if mode == uapi.BPF_NOEXIST:
            raise bpf_error(errno.EEXIST)
        if (self.percpu or flags & uapi.BPF_F_LOCK
                or self.fd_values and self.kernel.profile.fd_htab_update_in_place):
            # copied into the existing element: its place in the bucket stays
            elems[key] = stored
            self._walk = None
            self.free_value(old)
            return
        self._replace(key, old, stored)

    # -- many elements at once (the batch commands) -------------------------------------------
    def _plain(self):
        """A HASH map whose updates are exactly check_update_flags + insert of the value bytes (no LRU, no
        per-CPU values, no special fields, not a subclass with its own values)."""
        return type(self) is HashMap and not self.lru and not self.percpu and self.record is None

    def update_many(self, task, kbuf, vbuf, count, flags):
        """BpfMap.update_many, for a plain hash map: the elements land as one by one would (new keys at
        the end of ``elems``, a replaced key moved there); a chunk of distinct new keys that fits goes in
        with one dict update."""
        if not self._plain() or count < 16:
            return super().update_many(task, kbuf, vbuf, count, flags)
        ks, vs = self.key_size, self.value_size
        self._walk = None
        try:
            self.check_update_flags(flags)
        except OSError as e:
            return 0, e
        mode = flags & ~uapi.BPF_F_LOCK  # BPF_F_LOCK never gets here: the map has no spin lock
        elems, max_entries = self.elems, self.max_entries
        keys = [kbuf[o:o + ks] for o in range(0, count * ks, ks)]
        if (mode != uapi.BPF_EXIST and self.prealloc and self.buckets is None
                and len(elems) + count <= max_entries and elems.keys().isdisjoint(keys)
                and len(set(keys)) == count):
            # all new, distinct and room for all: the same state as one by one
            elems.update(zip(keys, [vbuf[o:o + vs] for o in range(0, count * vs, vs)]))
            return count, None
        grow = None if self.prealloc else self.kernel.memcg.grow
        ix = self.buckets is not None
        vo = 0
        i = 0
        try:
            for i in range(count):
                key = keys[i]
                old = elems.get(key)
                if old is None:
                    if mode == uapi.BPF_EXIST:
                        raise bpf_error(errno.ENOENT)
                    if len(elems) >= max_entries:
                        raise bpf_error(errno.E2BIG, "map is full")
                    if grow is not None:
                        grow(self)
                    elems[key] = vbuf[vo:vo + vs]
                    if ix:
                        self._ix_add(key)
                else:
                    if mode == uapi.BPF_NOEXIST:
                        raise bpf_error(errno.EEXIST)
                    del elems[key]
                    elems[key] = vbuf[vo:vo + vs]
                    if ix:
                        self._ix_head(key)
                vo += vs
        except OSError as e:
            return i, e
        return count, None

    def delete_many(self, kbuf, count):
        """BpfMap.delete_many for a plain hash map: the keys leave ``elems`` (and the walk index, if
        there is one) without a call per key."""
        if not self._plain() or count < 16:
            return super().delete_many(kbuf, count)
        ks = self.key_size
        self._walk = None
        pop = self.elems.pop
        ix = self._ix_del if self.buckets is not None else None
        i = 0
        try:
            for i, o in enumerate(range(0, count * ks, ks)):
                key = kbuf[o:o + ks]
                if pop(key, None) is None:
                    raise bpf_error(errno.ENOENT)
                if ix is not None:
                    ix(key)
        except OSError as e:
            return i, e
        return count, None

    def _free_elem(self, stored):
        """An element left the table: an LRU map's node goes back to its free list."""
        if self.lru_list is not None:
            self.lru_list.push_free(stored)

    def delete(self, key):
        key = bytes(key)
        if key not in self.elems:
            raise bpf_error(errno.ENOENT)
        self._free_elem(self._unlink(key))

    def lookup_and_delete(self, key, flags):
        if (flags & ~uapi.BPF_F_LOCK) or (self.percpu and flags):
            raise bpf_error(errno.EINVAL)
        key = bytes(key)
        stored = self.elems.get(key)
        if stored is None:
            raise bpf_error(errno.ENOENT)
        value = self.to_user_value(stored.value if self.lru else stored)
        self._free_elem(self._unlink(key))
        return value

    def lookup_and_delete_sys(self, key, flags):
        return self.lookup_and_delete(key, flags)

    def get_next_key(self, key):
        buckets = self._index()
        i = 0
        if key is not None:
            key = bytes(key)
            bi = self._where.get(key)
            if bi is not None:
                b = buckets[bi]
                pos = b.index(key)
                if pos + 1 < len(b):
                    return b[pos + 1]
                i = bi + 1
        ne = self._nonempty
        pos = ne.bisect_left(i)
        if pos == len(ne):
            self._drop_index()
            raise bpf_error(errno.ENOENT)
        return buckets[ne[pos]][0]

    # -- batch ------------------------------------------------------------------
    def lookup_batch(self, ctx, b):
        return self._htab_batch(ctx, b, False)

    def lookup_and_delete_batch(self, ctx, b):
        return self._htab_batch(ctx, b, True)

    def _htab_batch(self, ctx, b, do_delete):
        """__htab_map_lookup_and_delete_batch: in/out_batch hold a u32 bucket index."""
        batch_elem_flags(self, b)
        if b.flags:
            raise bpf_error(errno.EINVAL, "batch.flags must be 0")
        max_count = b.count
        if not max_count:
            return 0
        ctx.put("batch.count", 0)
        batch = int.from_bytes(ctx.read(b.in_batch, 4), "little") if b.in_batch else 0
        if batch >= self.n_buckets:
            raise bpf_error(errno.ENOENT)
        ks, vs = self.key_size, self.user_value_size
        kbase, vbase = b.keys, b.values
        held = self._held
        if held is not None and held.walk is self._walk:
            # the next chunk of a walk that holds its deletes: only its order knows the elements left
            bound = min(max_count, len(held.elems) - (held.hi - held.lo))
            if (kbase + bound * ks <= vbase or vbase + bound * vs <= kbase) and self._htab_batch_walk(
                    ctx, b, do_delete, batch, numpy_or_none()):
                return 0
        n_elems = len(self.elems)  # (applies held deletes)
        if self.buckets is None and n_elems >= 16 and self._plain():
            bound = min(max_count, n_elems)
            if kbase + bound * ks <= vbase or vbase + bound * vs <= kbase:
                if max_count >= n_elems:
                    return self._htab_batch_whole(ctx, b, do_delete, batch)
                if n_elems >= BATCH_NUMPY_MIN:
                    np = numpy_or_none()
                    if np is not None and self._htab_batch_walk(ctx, b, do_delete, batch, np):
                        return 0
        total = 0
        err = 0
        buckets = self._index()
        # The non-empty buckets this call can visit (at most one per element, plus the one that
        # does not fit), taken once: nothing is added while the batch runs, and deleted buckets
        # are ones already passed.
        todo = list(islice(self._nonempty.irange(minimum=batch), max_count + 1))
        # Writes go out bucket by bucket (keys, then values), as the kernel copies them, as long as
        # they reach pages not yet written in this call: that is where a fault can come. Once a
        # page took a write, later pieces for it cannot fault; they are gathered and written
        # together before the next write to a new page and before the call ends. Only when the
        # key and value areas cannot overlap: otherwise the order of the pieces matters.
        bound = min(max_count, len(self.elems))
        gather = kbase + bound * ks <= vbase or vbase + bound * vs <= kbase
        kdone = vdone = 0  # end of the pages written so far in the key/value areas
        pk, pv, p0 = [], [], 0  # gathered keys and values, from element p0 on
        cls = type(self)
        # the stored value is what userspace sees (no per-CPU layout, no node, no object behind it)
        raw_values = (cls.batch_value is HashMap.batch_value and cls.to_user_value is HashMap.to_user_value
                      and not self.lru)
        bv = self.batch_value
        elems = self.elems
        where = self._where
        # a plain map's emptied buckets leave the non-empty index together at the end (every bucket the
        # batch deletes from is emptied whole)
        fast_delete = do_delete and self._plain()
        if do_delete:
            self._walk = None
        emptied = []
        try:
            for batch in todo:
                kparts = buckets[batch]
                n = len(kparts)
                if n > max_count - total:
                    if total == 0:
                        err = errno.ENOSPC
                    break
                if raw_values:
                    vparts = [elems[k] for k in kparts]
                else:
                    vparts = [bv(elems[k]) for k in kparts]
                if do_delete:
                    if fast_delete:
                        del buckets[batch]
                        emptied.append(batch)
                        for k in kparts:
                            del elems[k]
                            del where[k]
                    else:
                        kparts = list(kparts)  # the bucket's list changes as its keys leave
                        for k in kparts:
                            self._free_elem(self._unlink(k))
                kaddr, vaddr = kbase + total * ks, vbase + total * vs
                kend, vend = kaddr + n * ks, vaddr + n * vs
                if gather and kend <= kdone and vend <= vdone:
                    pk += kparts
                    pv += vparts
                else:
                    if pk:
                        ctx.write(kbase + p0 * ks, b"".join(pk))
                        ctx.write(vbase + p0 * vs, b"".join(pv))
                        pk, pv = [], []
                    ctx.write(kaddr, b"".join(kparts))
                    kdone = ((kend - 1) | (PAGE_SIZE - 1)) + 1
                    ctx.write(vaddr, b"".join(vparts))
                    vdone = ((vend - 1) | (PAGE_SIZE - 1)) + 1
                    p0 = total + n
                total += n
                batch += 1
                if batch >= self.n_buckets:
                    err = errno.ENOENT
                    break
            else:
                batch = self.n_buckets  # no non-empty bucket left
                err = errno.ENOENT
        finally:
            self._drop_buckets(emptied)
        if pk:
            ctx.write(kbase + p0 * ks, b"".join(pk))
            ctx.write(vbase + p0 * vs, b"".join(pv))
        ctx.write(b.out_batch, batch.to_bytes(4, "little"))
        ctx.put("batch.count", total)
        if err:
            if err == errno.ENOENT:
                self._drop_index()
            raise bpf_error(err)
        return 0

    def _htab_batch_whole(self, ctx, b, do_delete, batch):
        """_htab_batch of a plain map with no walk index, when every element from bucket ``batch`` on fits
        and the key and value areas do not overlap: the walk order comes from one sort of the elements by
        (bucket, newest first) instead of an index (with NumPy from BATCH_NUMPY_MIN elements on), and the
        copies are the ones _htab_batch makes (a bucket whose copy reaches a page not yet written in this
        call is copied on its own, after what was gathered before it; each bucket is deleted before its
        copy, so a copy that faults leaves the buckets up to its own deleted)."""
        ks = self.key_size
        self._walk = None  # the batch takes the rest of the map: a walk in chunks ends here
        np = numpy_or_none() if len(self.elems) >= BATCH_NUMPY_MIN else None
        walk = self._whole_order_numpy(batch, np) if np is not None else None
        if walk is None:
            walk = self._whole_order(batch)
        kout, vout, ends, drop = walk  # keys and values in walk order, each bucket's end, delete the first e
        n = len(kout) // ks
        self._copy_walk(ctx, b, kout, vout, ends, n, drop if do_delete else None)
        ctx.write(b.out_batch, self.n_buckets.to_bytes(4, "little"))
        ctx.put("batch.count", n)
        raise bpf_error(errno.ENOENT)

    def _copy_walk(self, ctx, b, kout, vout, ends, n, drop):
        """Copy ``n`` elements of a walk (keys ``kout``, values ``vout``, buckets ending at ``ends``) to
        the batch's keys and values as _htab_batch does: a bucket whose copy reaches a page not yet written
        in this call on its own, after what was gathered before it, the rest gathered. ``drop(e)`` (None
        for a lookup) deletes the first e elements: the buckets up to the one whose copy faults, else all."""
        ks, vs = self.key_size, self.value_size
        kbase, vbase = b.keys, b.values
        kdone = vdone = 0  # end of the pages written so far in the key/value areas
        p0 = 0  # what was gathered starts there
        gone = 0  # elements deleted so far (the deletes are made together, at the end or on a fault)
        j = 0
        nb = len(ends)
        try:
            while j < nb:
                # the buckets whose copies land in pages already written are gathered
                j = bisect_right(ends, min((kdone - kbase) // ks, (vdone - vbase) // vs), j)
                if j == nb:
                    break
                s, e = int(ends[j - 1]) if j else 0, int(ends[j])
                gone = e
                if p0 < s:
                    ctx.write(kbase + p0 * ks, kout[p0 * ks:s * ks])
                    ctx.write(vbase + p0 * vs, vout[p0 * vs:s * vs])
                kend, vend = kbase + e * ks, vbase + e * vs
                ctx.write(kbase + s * ks, kout[s * ks:e * ks])
                kdone = ((kend - 1) | (PAGE_SIZE - 1)) + 1
                ctx.write(vbase + s * vs, vout[s * vs:e * vs])
                vdone = ((vend - 1) | (PAGE_SIZE - 1)) + 1
                p0 = e
                j += 1
        except BaseException:
            if drop is not None and gone:
                drop(gone)
            raise
        if drop is not None and n:
            drop(n)
        if p0 < n:
            ctx.write(kbase + p0 * ks, kout[p0 * ks:])
            ctx.write(vbase + p0 * vs, vout[p0 * vs:])

    def _htab_batch_walk(self, ctx, b, do_delete, batch, np):
        """_htab_batch of a plain map with no walk index, from bucket ``batch`` on, when not every element
        fits (a dump in chunks: libbpf's and cilium/ebpf's batch loops pass out_batch back as in_batch): the
        walk order of the whole map (_WalkOrder) is made once with NumPy and kept for the next chunks until
        the map changes otherwise than by these chunks' deletes, or the walk reaches the end. The chunk is
        the longest run of whole buckets from ``batch`` on that fits in ``count``; the copies and deletes
        are _copy_walk's. False, with nothing done, where the order cannot serve (the caller walks the
        index then)."""
        w = self._walk
        if w is None:
            w = self._walk = self._walk_order(np)
            if w is None:
                return False
        sb = w.buckets
        n = len(sb)
        p = int(sb.searchsorted(batch, "left"))
        lo, hi = w.lo, w.hi
        end = n
        if lo < hi:  # the elements lo..hi-1 of the order were deleted by earlier chunks (whole buckets)
            if lo <= p < hi:
                p = hi
            elif p < lo:
                if hi < n:
                    return False  # this chunk would run across the deleted run: the index walk
                end = lo
        max_count = b.count
        if end - p <= max_count:
            q, out, err = end, self.n_buckets, errno.ENOENT
        else:
            out = int(sb[p + max_count])  # the first bucket that does not fit whole
            q = int(sb.searchsorted(out, "left"))
            err = 0 if q > p else errno.ENOSPC
        m = q - p
        if m:
            ks, vs = self.key_size, self.value_size
            kout = w.kout[p * ks:q * ks]
            values = w.values
            # values a program may have written in place since are read from their storage now
            vout = w.vout[p * vs:q * vs] if values is None else b"".join(values[p:q])
            cb = sb[p:q]
            ends = (np.flatnonzero(cb[1:] != cb[:-1]) + 1).tolist()
            ends.append(m)

            def drop(e):
                if values is not None:
                    values[p:p + e] = [None] * e
                # the deleted run grows by [p, p + e) (whole buckets, next to it or the first one)
                if w.lo == w.hi:
                    w.lo, w.hi = p, p + e
                elif p == w.hi:
                    w.hi = p + e
                elif p + e == w.lo:
                    w.lo = p
                else:  # not next to it: deleted now, and the order goes
                    elems = self.elems  # (applies held deletes)
                    for o in range(0, e * ks, ks):
                        del elems[kout[o:o + ks]]
                    self._walk = None
                    return
                # the deletes are held (_HeldDeletes), joined to those held already if they are next to them
                held = self._held
                if held is not None and held.walk is w and (p == held.hi or p + e == held.lo):
                    held.lo, held.hi = min(held.lo, p), max(held.hi, p + e)
                    return
                if held is not None:
                    self._apply_held()
                self._held = _HeldDeletes(self._elems, w, p, p + e)
                self._elems = None
            self._copy_walk(ctx, b, kout, vout, ends, m, drop if do_delete else None)
        ctx.write(b.out_batch, out.to_bytes(4, "little"))
        ctx.put("batch.count", m)
        if err:
            if err == errno.ENOENT:
                if self._held is not None:
                    self._apply_held()
                self._drop_index()
            raise bpf_error(err)
        return True

    def _walk_order(self, np):
        """The walk order of the whole map (a _WalkOrder), or None if the values are not all
        ``value_size`` bytes."""
        walk = self._numpy_walk(np)
        if walk is None:
            return None
        elems, count, kb, vb, order, sb = walk
        kout, vout = self._gather(np, kb, vb, order)
        values = None
        if bytearray in set(map(type, elems.values())):
            vals = list(elems.values())[::-1]
            values = [vals[i] for i in order.tolist()]
        return _WalkOrder(kout, vout, values, sb)

    def _numpy_walk(self, np):
        """What both NumPy walk orders start from: (elems, count, keys joined oldest first, values likewise,
        the walk order, each one's bucket), or None if the values are not all ``value_size`` bytes."""
        elems = self.elems
        count = len(elems)
        kb = b"".join(elems)  # oldest first
        vb = b"".join(elems.values())
        if len(kb) != count * self.key_size or len(vb) != count * self.value_size:
            return None
        order, sb = self._sorted_walk(np, kb, count)
        return elems, count, kb, vb, order, sb

    def _gather(self, np, kb, vb, order):
        """Keys and values (joined oldest first) as fixed-size records in walk ``order``: (keys, values)."""
        return (np.frombuffer(kb, dtype=np.dtype((np.void, self.key_size)))[::-1][order].tobytes(),
                np.frombuffer(vb, dtype=np.dtype((np.void, self.value_size)))[::-1][order].tobytes())

    def _sorted_walk(self, np, kb, count):
        """The walk order of the ``count`` keys ``kb`` (laid end to end, oldest first): (the positions of
        the keys newest first in walk order, each one's bucket in that order). The hashes as uint32 arrays
        (``jhash_array``); the order a stable sort of the buckets, newest first within one, by the low then
        the high 16 bits of the bucket (NumPy's stable sort of 16-bit values is a radix sort, several times
        faster than on 32)."""
        buckets = (jhash_array(kb, self.key_size, count, self.hashrnd) & np.uint32(self.n_buckets - 1))[::-1]
        order = np.argsort(buckets.astype(np.uint16), kind="stable")
        if self.n_buckets > 1 << 16:
            order = order[np.argsort((buckets >> np.uint32(16)).astype(np.uint16)[order], kind="stable")]
        return order, buckets[order]

    def _whole_order(self, batch):
        """The walk from bucket ``batch`` on of a plain map (for _htab_batch_whole), made in pure Python:
        (keys in walk order as one bytes, values likewise, [end of each bucket in elements], drop(e) that
        deletes the first e elements of the walk)."""
        elems = self.elems
        keys = list(elems)  # oldest first
        n = len(keys)
        mask = self.n_buckets - 1
        shift = n.bit_length()
        low = (1 << shift) - 1  # (bucket << shift) | (low - age): ascending = bucket order, newest first
        order = sorted([((h & mask) << shift) | (low - p)
                        for p, h in enumerate(jhash_many(b"".join(keys), self.key_size, n, self.hashrnd))])
        if batch:
            del order[:bisect_left(order, batch << shift)]
        n = len(order)
        obis = [x >> shift for x in order]
        order = [keys[low - (x & low)] for x in order]
        ends = [i for i in range(1, n) if obis[i] != obis[i - 1]]
        if n:
            ends.append(n)

        def drop(e):
            if e == len(elems):
                elems.clear()
            else:
                for k in order[:e]:
                    del elems[k]
        return b"".join(order), b"".join([elems[k] for k in order]), ends, drop

    def _whole_order_numpy(self, batch, np):
        """_whole_order with NumPy: the hashes of all keys as uint32 arrays (``jhash_array``), the walk
        order from a stable sort of the keys' buckets, newest first (two 16-bit radix passes), keys and
        values gathered as fixed-size records by that order. None if the values are not all
        ``value_size`` bytes (the pure-Python order then)."""
        walk = self._numpy_walk(np)
        if walk is None:
            return None
        elems, count, kb, vb, order, sb = walk
        if batch:
            start = int(sb.searchsorted(batch, "left"))
            order, sb = order[start:], sb[start:]
        n = len(order)
        ends = np.flatnonzero(sb[1:] != sb[:-1]) + 1
        if n:
            ends = np.append(ends, n)
        kout, vout = self._gather(np, kb, vb, order)

        def drop(e):
            if e == len(elems):
                elems.clear()
                return
            keys = list(elems)
            # the positions in elems (oldest first) of the first e elements of the walk, in elems' order
            for p in np.sort(count - 1 - order[:e]).tolist():
                del elems[keys[p]]
        return kout, vout, ends, drop

    def _drop_buckets(self, emptied):
        """Take the buckets ``emptied`` out of the non-empty bucket index, one by one or by a rebuild."""
        if not emptied:
            return
        ne = self._nonempty
        if len(emptied) * 8 < len(ne):
            for bi in emptied:
                ne.remove(bi)
        else:
            gone = set(emptied)
            self._nonempty = SortedList(bi for bi in ne if bi not in gone)

    def batch_value(self, stored):
        return self.to_user_value(stored.value if self.lru else stored)

    def on_free(self):
        for stored in list(self.elems.values()):
            self.free_value(stored.value if self.lru else stored)
        self.elems.clear()
        self._drop_index()

    def self_check(self):
        """Keys of the key size, LRU nodes filed under their keys, the walk index (when there is one)
        agreeing with the keys, their hashes and their order, and the LRU list."""
        out = []
        elems = self.elems
        for k, stored in elems.items():
            if len(k) != self.key_size:
                out.append("%r: key %s has the wrong size" % (self, k.hex()))
            elif self.lru and stored.key != k:
                out.append("%r: element %s misfiled under %s" % (self, stored.key.hex(), k.hex()))
        if self.buckets is not None:
            age = {k: i for i, k in enumerate(elems)}
            seen = 0
            mask = self.n_buckets - 1
            for bi, lst in self.buckets.items():
                if not lst:
                    out.append("%r keeps empty bucket %d" % (self, bi))
                seen += len(lst)
                for k in lst:
                    if k not in elems or self._where.get(k) != bi or self._bucket(k) != bi:
                        out.append("%r: key %s misfiled in buckets (bucket %d)" % (self, k.hex(), bi))
                if [age.get(k) for k in lst] != sorted((age.get(k, -1) for k in lst), reverse=True):
                    out.append("%r: bucket %d is not newest first" % (self, bi))
            if seen != len(elems) or len(self._where) != len(elems):
                out.append("%r: %d elements, %d in buckets" % (self, len(elems), seen))
            if list(self._nonempty) != sorted(self.buckets):
                out.append("%r: non-empty bucket index out of date" % (self,))
        w = self._walk
        if w is not None:  # a walk order kept between chunks: the order of the elements left, made again
            fresh = self._walk_order(numpy_or_none())
            ks, vs = self.key_size, self.value_size
            values = w.vout[:w.lo * vs] + w.vout[w.hi * vs:] if w.values is None else b"".join(
                w.values[:w.lo] + w.values[w.hi:])
            if (fresh is None or fresh.kout != w.kout[:w.lo * ks] + w.kout[w.hi * ks:] or fresh.vout != values
                    or fresh.buckets.tolist() != w.buckets[:w.lo].tolist() + w.buckets[w.hi:].tolist()):
                out.append("%r: the walk order kept between chunks is out of date" % (self,))
        if self.lru_list is not None:
            out.extend("%r: %s" % (self, p) for p in self.lru_list.self_check(list(elems.values()),
                                                                                self.max_entries))
        return out


class HashOfMaps(OfMaps, HashMap):
    """HASH_OF_MAPS (htab_of_maps_map_ops): inner maps by key, held by the outer map."""

    fd_values = True  # an existing key's inner map is swapped in place where profile.fd_htab_update_in_place
    map_check_btf = map_check_no_btf

    @classmethod
    def alloc_check(cls, attr, task):
        """fd_htab_map_alloc_check."""
        if attr.value_size != 4:
            raise bpf_error(errno.EINVAL, "value_size of a map of maps must be 4")
        super().alloc_check(attr, task)

    @property
    def user_value_size(self):
        return 4

    def to_user_value(self, inner):
        return struct.pack("<I", inner.id)

    def update_sys(self, task, key, value, flags):
        """bpf_fd_htab_map_update_elem: the fd first, then the flags and the table."""
        inner = self.take_inner(task, value)
        try:
            if flags > uapi.BPF_EXIST:
                raise bpf_error(errno.EINVAL, "bad update flags")
            self.insert(bytes(key), inner, flags)
        except OSError:
            inner.release(self)
            raise

    lookup_and_delete_sys = BpfMap.lookup_and_delete_sys  # not among the types the command serves

    def held_objects(self):
        return list(self.elems.values())
