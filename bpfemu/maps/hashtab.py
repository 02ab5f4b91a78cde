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

A full map refuses a new key with E2BIG; an LRU map instead evicts its oldest
element, and does so before looking the key up, as the kernel takes a free node
first. Which element the kernel evicts depends on its per-CPU free lists (it may
even evict before the map is full); only the invariants are the contract.

Only buckets that hold something exist (memory follows the elements, not
max_entries); ``_nonempty`` keeps their indices sorted for the walks.
"""
import errno
import struct
from collections import OrderedDict
from itertools import islice

from sortedcontainers import SortedList

from .. import uapi
from ..caps import CAP_SYS_ADMIN
from ..errors import ENOTSUPP, bpf_error
from ..jhash import htab_map_hash
from ..limits import KMALLOC_MAX_SIZE, PAGE_SIZE, PCPU_MIN_UNIT_SIZE, round_up, roundup_pow_of_two
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
    __slots__ = ("key", "value", "bucket", "hash")

    def __init__(self, key, value, h, bucket):
        self.key, self.value, self.hash, self.bucket = key, value, h, bucket


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
        self.lru_order = OrderedDict() if self.lru else None  # key -> None, oldest first

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
        if self.lru_order is not None:
            self.lru_order[elem.key] = None
            self.lru_order.move_to_end(elem.key)

    def _unlink(self, elem):
        b = self.buckets[elem.bucket]
        del b[b.index(elem)]  # Elem has no __eq__: index() finds this very object
        if not b:
            del self.buckets[elem.bucket]
            self._nonempty.remove(elem.bucket)
        if self.elems.get(elem.key) is elem:
            del self.elems[elem.key]
            if self.lru_order is not None:
                self.lru_order.pop(elem.key, None)
        self.free_value(elem.value)

    def free_value(self, value):
        """Drop what a stored value holds (of-maps release the inner map)."""

    # -- values ----------------------------------------------------------------
    def to_kernel_value(self, value):
        """Userspace value bytes -> stored value.

        Per-CPU values are kept in the user layout: the kernel copies each CPU's
        round_up(value_size, 8) bytes whole, padding included."""
        return bytes(value)

    def to_user_value(self, stored):
        return stored

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
        self.insert(key, stored, flags)

    def insert(self, key, stored, flags):
        mode = flags & ~uapi.BPF_F_LOCK
        if self.lru and len(self.elems) >= self.max_entries and not (self.percpu and mode == uapi.BPF_EXIST):
            # An LRU update takes a free node before it looks the key up (LRU_PERCPU_HASH
            # not for BPF_EXIST). In a full map that evicts, even when the key is present or
            # the update then fails on its flags: the kernel (6.18) does the same.
            self._evict()
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
            if self.lru_order is not None:  # the kernel sets the node's reference bit
                self.lru_order.move_to_end(key)
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
        b = self.buckets[old.bucket]
        new = Elem(key, stored, old.hash, old.bucket)
        i = b.index(old)  # Elem has no __eq__: index() finds this very object
        if i:
            del b[i]
            b.insert(0, new)
        else:
            b[0] = new
        self.elems[key] = new
        if self.lru_order is not None:
            self.lru_order.move_to_end(key)
        self.free_value(old.value)

    def _evict(self):
        victim_key = next(iter(self.lru_order))
        self._unlink(self.elems[victim_key])

    def delete(self, key):
        e = self.elems.get(bytes(key))
        if e is None:
            raise bpf_error(errno.ENOENT)
        self._unlink(e)

    def lookup_and_delete(self, key, flags):
        if (flags & ~uapi.BPF_F_LOCK) or (self.percpu and flags):
            raise bpf_error(errno.EINVAL)
        e = self.elems.get(bytes(key))
        if e is None:
            raise bpf_error(errno.ENOENT)
        value = self.to_user_value(e.value)
        self._unlink(e)
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
        bv = self.batch_value
        unlink = self._unlink
        buckets = self.buckets
        for batch in todo:
            bucket = buckets[batch]
            n = len(bucket)
            if n > max_count - total:
                if total == 0:
                    err = errno.ENOSPC
                break
            if n == 1:
                e = bucket[0]
                kparts, vparts = [e.key], [bv(e)]
                if do_delete:
                    unlink(e)
            else:
                elems = list(bucket)
                kparts = [e.key for e in elems]
                vparts = [bv(e) for e in elems]
                if do_delete:
                    for e in elems:
                        unlink(e)
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
        if self.lru_order is not None and set(self.lru_order) != set(self.elems):
            out.append("%r: LRU list and elements differ" % (self,))
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
