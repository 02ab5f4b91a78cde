"""Hash table maps (the kernel's hashtab.c): HASH, PERCPU_HASH, LRU_HASH,
LRU_PERCPU_HASH and HASH_OF_MAPS.

Elements sit in ``n_buckets = roundup_pow_of_two(max_entries)`` buckets chosen
by jhash of the key (seed 0 with BPF_F_ZERO_SEED, else a per-map value drawn
from the kernel's deterministic generator). A bucket is a list, head first: a
new element goes to the head, and replacing a key's value inserts the new
element at the head and unlinks the old one, except for per-CPU values,
HASH_OF_MAPS values and BPF_F_LOCK updates, which are replaced in place.
GET_NEXT_KEY and the batch commands walk buckets in index order and each bucket
from its head, so with BPF_F_ZERO_SEED the order is the kernel's.

A full map refuses a new key with E2BIG. An LRU map never does: an update takes
a node from the LRU lists (:mod:`bpfemu.maps.bpf_lru_list`) before it looks the
key up, and that may evict other elements, in batches and before the map is
full, depending on the CPU the update runs on (``Task.cpu``); the model is the
kernel's, deterministic for a given sequence of calls and CPUs.

Only buckets that hold something exist (memory follows the elements, not
max_entries); ``_nonempty`` keeps their indices sorted for the walks.
"""
import errno
import struct
from itertools import islice

from sortedcontainers import SortedList

from .. import uapi
from ..caps import CAP_SYS_ADMIN
from ..errors import ENOTSUPP, bpf_error
from ..jhash import htab_map_hash, jhash_many
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

HTAB_CREATE_FLAG_MASK = (uapi.BPF_F_NO_PREALLOC | uapi.BPF_F_NO_COMMON_LRU | uapi.BPF_F_NUMA_NODE
                         | BPF_F_ACCESS_MASK | uapi.BPF_F_ZERO_SEED)


class Elem:
    """An element (struct htab_elem)."""

    __slots__ = ("key", "value", "bucket", "hash")

    def __init__(self, key, value, h, bucket):
        self.key, self.value, self.hash, self.bucket = key, value, h, bucket


class LruElem(Elem):
    """An element of an LRU map, which is also a node of its LRU lists (struct bpf_lru_node)."""

    __slots__ = ("lru_prev", "lru_next", "lru_type", "ref", "cpu")


class HashMap(BpfMap):
    """HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH (htab_map_ops and its per-CPU and LRU variants)."""

    fd_values = False  # HASH_OF_MAPS: values are held inner maps, replaced in place
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
        self.elems = {}  # key bytes -> Elem
        self.buckets = {}  # bucket index -> [Elem, ...] head first
        self._nonempty = SortedList()
        self.lru_list = None
        if self.lru:
            self.lru_list = Lru(self.max_entries, kernel.ncpus, bool(attr.map_flags & uapi.BPF_F_NO_COMMON_LRU),
                                self._lru_del_from_htab)

    def count(self):
        return len(self.elems)

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

    # -- bucket list primitives ----------------------------------------------
    def _add_head(self, elem):
        b = self.buckets.get(elem.bucket)
        if b is None:
            self.buckets[elem.bucket] = [elem]
            self._nonempty.add(elem.bucket)
        else:
            b.insert(0, elem)
        self.elems[elem.key] = elem

    def _unlink(self, elem):
        b = self.buckets[elem.bucket]
        del b[b.index(elem)]  # Elem has no __eq__: index() finds this very object
        if not b:
            del self.buckets[elem.bucket]
            self._nonempty.remove(elem.bucket)
        if self.elems.get(elem.key) is elem:
            del self.elems[elem.key]
        self.free_value(elem.value)

    def free_value(self, value):
        """Drop what a stored value holds (of-maps release the inner map)."""

    # -- values ----------------------------------------------------------------
    # An element's value is a bytearray of its own, which a program's lookup maps in place (the element's
    # storage): replacing a key's value makes a new element (a new bytearray), as the kernel allocates a
    # new htab_elem; in-place updates (per-CPU, BPF_F_LOCK) replace the stored value between program runs.
    def to_kernel_value(self, value):
        """Userspace value bytes -> stored value (a bytearray the element owns).

        Per-CPU values are kept in the user layout: the kernel copies each CPU's
        round_up(value_size, 8) bytes whole, padding included."""
        return bytearray(value)

    def to_user_value(self, stored):
        return bytes(stored)

    def value_region(self, key, cpu=0):
        """htab_map_lookup_elem (and the per-CPU and LRU variants): the element's value storage."""
        e = self.elems.get(bytes(key))
        if e is None:
            return None
        return e.value, round_up(self.value_size, 8) * cpu if self.percpu else 0

    def prog_update(self, key, value, flags, cpu=0):
        """htab_percpu_map_update_elem from a program (onallcpus false): a new element gets ``value`` on
        CPU ``cpu`` and zeroes on the others; an existing one has that CPU's copy overwritten in place."""
        if not self.percpu:
            return BpfMap.prog_update(self, key, value, flags, cpu)
        key = bytes(key)
        stride = round_up(self.value_size, 8)
        off = stride * cpu
        old = self.elems.get(key)
        if old is not None and not self.lru and flags in (uapi.BPF_ANY, uapi.BPF_EXIST):
            old.value[off:off + self.value_size] = bytes(value[:self.value_size])
            return
        full = bytearray(old.value) if old is not None else bytearray(stride * self.kernel.ncpus)
        full[off:off + self.value_size] = bytes(value[:self.value_size])
        self.update(key, full, flags)  # a new element, or an LRU update (the LRU lists take their node)

    def for_each_elem(self, cpu=0):
        """bpf_for_each_hash_elem: buckets in index order, each from its head; the callback may delete."""
        off = round_up(self.value_size, 8) * cpu if self.percpu else 0
        for b in list(self._nonempty):
            for e in list(self.buckets.get(b, ())):
                yield e.key, (e.value, off)

    # -- ops ---------------------------------------------------------------------
    def lookup(self, key, flags=0):
        e = self.elems.get(bytes(key))
        if e is None:
            raise bpf_error(errno.ENOENT)
        return self.to_user_value(e.value)

    def check_update_flags(self, flags):
        if (flags & ~uapi.BPF_F_LOCK) > uapi.BPF_EXIST or (self.percpu and flags > uapi.BPF_EXIST):
            raise bpf_error(errno.EINVAL, "bad update flags")

    def update(self, key, value, flags):
        self.check_update_flags(flags)
        key = bytes(key)
        stored = self.to_kernel_value(value)
        if self.lru:
            self._lru_update(key, stored, flags)
        else:
            self.insert(key, stored, flags)

    # -- LRU (htab_lru_map_update_elem, __htab_lru_percpu_map_update_elem) -------------------------------
    def _lru_del_from_htab(self, elem):
        """htab_lru_map_delete_node: the LRU lists give up elem; remove it from the table if it is there."""
        if self.elems.get(elem.key) is not elem:
            return False
        self._unlink(elem)
        return True

    def _lru_update(self, key, stored, flags):
        """Take a node first (which may evict, even elements of the key updated), then check the flags
        against what is left; a node not used goes back. LRU_HASH replaces the element (the new one has
        its reference bit set), LRU_PERCPU_HASH updates a present key in place (setting its bit) and
        takes no node for BPF_EXIST."""
        if flags > uapi.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad update flags")
        h = htab_map_hash(key, self.hashrnd)
        new = None
        if not (self.percpu and flags == uapi.BPF_EXIST):
            new = self.lru_list.pop_free(self.kernel.smp_processor_id(),
                                         lambda: LruElem(key, stored, h, h & (self.n_buckets - 1)))
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
            self._add_head(new)
            return
        new.ref = 1
        self._replace(old, new)
        self.lru_list.push_free(old)

    def _replace(self, old, new):
        """new takes the head of old's bucket and old leaves it (hlist add head, then del)."""
        b = self.buckets[old.bucket]
        i = b.index(old)  # Elem has no __eq__: index() finds this very object
        if i:
            del b[i]
            b.insert(0, new)
        else:
            b[0] = new
        self.elems[new.key] = new
        self.free_value(old.value)

    def insert(self, key, stored, flags):
        mode = flags & ~uapi.BPF_F_LOCK
        old = self.elems.get(key)
        if old is not None and mode == uapi.BPF_NOEXIST:
            raise bpf_error(errno.EEXIST)
        if old is None and mode == uapi.BPF_EXIST:
            raise bpf_error(errno.ENOENT)
        if old is not None and (self.percpu or flags & uapi.BPF_F_LOCK
                                or self.fd_values and self.kernel.profile.fd_htab_update_in_place):
            # copied into the existing element: its place in the bucket stays
            self.free_value(old.value)
            old.value = stored
            return
        if old is None:
            if len(self.elems) >= self.max_entries:
                raise bpf_error(errno.E2BIG, "map is full")
            if not self.prealloc:
                self.kernel.memcg.grow(self)  # ENOMEM past the memory limit
            h = htab_map_hash(key, self.hashrnd)
            self._add_head(Elem(key, stored, h, h & (self.n_buckets - 1)))
            return
        # the old element leaves; the new one takes the head of the same bucket (which so stays
        # non-empty: _nonempty is left alone)
        self._replace(old, Elem(key, stored, old.hash, old.bucket))

    # -- many elements at once (the batch commands) -------------------------------------------
    def _plain(self):
        """A HASH map whose updates are exactly check_update_flags + insert of the value bytes (no LRU, no
        per-CPU values, no special fields, not a subclass with its own values)."""
        return type(self) is HashMap and not self.lru and not self.percpu and self.record is None

    def update_many(self, task, kbuf, vbuf, count, flags):
        """BpfMap.update_many, for a plain hash map with the hashes of all the keys computed together
        (jhash_many) and the non-empty bucket index updated once; the elements land as one by one."""
        if not self._plain() or count < 16:
            return super().update_many(task, kbuf, vbuf, count, flags)
        ks, vs = self.key_size, self.value_size
        try:
            self.check_update_flags(flags)
        except OSError as e:
            return 0, e
        mode = flags & ~uapi.BPF_F_LOCK  # BPF_F_LOCK never gets here: the map has no spin lock
        hashes = jhash_many(kbuf, ks, count, self.hashrnd)
        elems, buckets, nb1, max_entries = self.elems, self.buckets, self.n_buckets - 1, self.max_entries
        grow = None if self.prealloc else self.kernel.memcg.grow
        new_buckets = []
        ko = vo = 0
        i = 0
        try:
            for i in range(count):
                key = kbuf[ko:ko + ks]
                old = elems.get(key)
                if old is None:
                    if mode == uapi.BPF_EXIST:
                        raise bpf_error(errno.ENOENT)
                    if len(elems) >= max_entries:
                        raise bpf_error(errno.E2BIG, "map is full")
                    if grow is not None:
                        grow(self)
                    h = hashes[i]
                    bi = h & nb1
                    e = elems[key] = Elem(key, vbuf[vo:vo + vs], h, bi)
                    b = buckets.get(bi)
                    if b is None:
                        buckets[bi] = [e]
                        new_buckets.append(bi)
                    else:
                        b.insert(0, e)
                else:
                    if mode == uapi.BPF_NOEXIST:
                        raise bpf_error(errno.EEXIST)
                    b = buckets[old.bucket]
                    e = elems[key] = Elem(key, vbuf[vo:vo + vs], old.hash, old.bucket)
                    j = b.index(old)
                    if j:
                        del b[j]
                        b.insert(0, e)
                    else:
                        b[0] = e
                ko += ks
                vo += vs
        except OSError as e:
            return i, e
        finally:
            if new_buckets:
                self._nonempty.update(new_buckets)
        return count, None

    def delete_many(self, kbuf, count):
        """BpfMap.delete_many for a plain hash map, with the emptied buckets leaving the non-empty bucket
        index together."""
        if not self._plain() or count < 16:
            return super().delete_many(kbuf, count)
        ks = self.key_size
        elems, buckets = self.elems, self.buckets
        emptied = []
        ko = 0
        i = 0
        try:
            for i in range(count):
                e = elems.pop(kbuf[ko:ko + ks], None)
                if e is None:
                    raise bpf_error(errno.ENOENT)
                b = buckets[e.bucket]
                if len(b) == 1:
                    del buckets[e.bucket]
                    emptied.append(e.bucket)
                else:
                    del b[b.index(e)]
                ko += ks
        except OSError as e:
            return i, e
        finally:
            self._drop_buckets(emptied)
        return count, None

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

    def _free_elem(self, e):
        """An element left the table: an LRU map's node goes back to its free list."""
        if self.lru_list is not None:
            self.lru_list.push_free(e)

    def delete(self, key):
        e = self.elems.get(bytes(key))
        if e is None:
            raise bpf_error(errno.ENOENT)
        self._unlink(e)
        self._free_elem(e)

    def lookup_and_delete(self, key, flags):
        if (flags & ~uapi.BPF_F_LOCK) or (self.percpu and flags):
            raise bpf_error(errno.EINVAL)
        e = self.elems.get(bytes(key))
        if e is None:
            raise bpf_error(errno.ENOENT)
        value = self.to_user_value(e.value)
        self._unlink(e)
        self._free_elem(e)
        return value

    def lookup_and_delete_sys(self, key, flags):
        return self.lookup_and_delete(key, flags)

    def get_next_key(self, key):
        i = 0
        if key is not None:
            e = self.elems.get(bytes(key))
            if e is not None:
                b = self.buckets[e.bucket]
                pos = b.index(e)
                if pos + 1 < len(b):
                    return b[pos + 1].key
                i = e.bucket + 1
        pos = self._nonempty.bisect_left(i)
        if pos == len(self._nonempty):
            raise bpf_error(errno.ENOENT)
        return self.buckets[self._nonempty[pos]][0].key

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
        total = 0
        err = 0
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
        # the stored value is what userspace sees (no per-CPU layout, no object behind it)
        raw_values = cls.batch_value is HashMap.batch_value and cls.to_user_value is HashMap.to_user_value
        bv = self.batch_value
        unlink = self._unlink
        buckets = self.buckets
        elems = self.elems
        # a plain map's emptied buckets leave the non-empty index together at the end (every bucket the
        # batch deletes from is emptied whole)
        fast_delete = do_delete and self._plain()
        emptied = []
        try:
            for batch in todo:
                bucket = buckets[batch]
                n = len(bucket)
                if n > max_count - total:
                    if total == 0:
                        err = errno.ENOSPC
                    break
                if n == 1:
                    e = bucket[0]
                    kparts, vparts = [e.key], [e.value if raw_values else bv(e)]
                else:
                    kparts = [e.key for e in bucket]
                    vparts = [e.value for e in bucket] if raw_values else [bv(e) for e in bucket]
                if do_delete:
                    if fast_delete:
                        del buckets[batch]
                        emptied.append(batch)
                        for e in bucket:
                            del elems[e.key]
                    else:
                        for e in list(bucket):
                            unlink(e)
                            self._free_elem(e)
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
            raise bpf_error(err)
        return 0

    def batch_value(self, e):
        return self.to_user_value(e.value)

    def on_free(self):
        for e in list(self.elems.values()):
            self.free_value(e.value)
        self.elems.clear()
        self.buckets.clear()
        self._nonempty.clear()

    def self_check(self):
        """Buckets, the element index, the non-empty bucket index and the LRU list agree."""
        out = []
        seen = 0
        for b, lst in self.buckets.items():
            if not lst:
                out.append("%r keeps empty bucket %d" % (self, b))
            for e in lst:
                seen += 1
                if e.bucket != b or self.elems.get(e.key) is not e:
                    out.append("%r: element %s misfiled (bucket %d)" % (self, e.key.hex(), b))
                if len(e.key) != self.key_size:
                    out.append("%r: key %s has the wrong size" % (self, e.key.hex()))
        if seen != len(self.elems):
            out.append("%r: %d elements indexed, %d in buckets" % (self, len(self.elems), seen))
        if list(self._nonempty) != sorted(self.buckets):
            out.append("%r: non-empty bucket index out of date" % (self,))
        if self.lru_list is not None:
            out.extend("%r: %s" % (self, p) for p in self.lru_list.self_check(list(self.elems.values()),
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
        return [e.value for e in self.elems.values()]
