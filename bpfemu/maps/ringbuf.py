"""RINGBUF and USER_RINGBUF maps (the kernel's ringbuf.c).

A ring buffer has no syscall element ops (ENOTSUPP): programs write records (bpf_ringbuf_reserve/submit/
discard/output, :mod:`bpfemu.prog.funcs.ringbuf`) and userspace reads them through mmap, as libbpf's
ring_buffer__consume does: the consumer position page (the only page that may be mapped writable), the
producer position page, then the data pages, which the kernel maps twice in a row so that a record that
wraps around the end reads as one piece.

The emulator keeps that layout in one flat mmapable area (``area``): page 0 the consumer position, page 1
the producer position (and the pending position after it), then the data, then a second copy of the data.
The program writes a reserved record in place (its region is a view of the area); when a record is
committed, :meth:`RingBuf.commit` copies what lies past the first copy into the start of the data and the
record into the second copy, so that every mapping reads what the kernel's double mapping shows. Each record
starts with an 8-byte header: its length with the busy (bit 31) and discard (bit 30) bits, then its page
offset from the start of the kernel's struct bpf_ringbuf (the data starts 3 pages in).
"""
import errno
import struct

from .. import uapi as F
from ..errors import ENOTSUPP, bpf_error
from ..limits import PAGE_SIZE
from .bpf_map import ObjMap, bpf_map_area_mmapable_alloc

BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8
RINGBUF_MAX_RECORD_SZ = 0xFFFFFFFF // 4
RINGBUF_PGOFF = 1          # the consumer position's page in struct bpf_ringbuf
RINGBUF_POS_PAGES = 2      # consumer and producer position pages
RINGBUF_DATA_PGOFF = RINGBUF_PGOFF + RINGBUF_POS_PAGES
BPF_RB_AVAIL_DATA, BPF_RB_RING_SIZE, BPF_RB_CONS_POS, BPF_RB_PROD_POS = 0, 1, 2, 3
U64 = struct.Struct("<Q")
U32 = struct.Struct("<I")


class RingBuf(ObjMap):
    """A ring buffer: records from programs, read through mmap; no syscall element op works."""

    def __init__(self, kernel, attr):
        me = attr.max_entries
        if attr.map_flags & ~F.BPF_F_NUMA_NODE:
            raise bpf_error(errno.EINVAL, "ring buffers take only BPF_F_NUMA_NODE")
        if attr.key_size or attr.value_size or me == 0 or me & (me - 1) or me % PAGE_SIZE:
            raise bpf_error(errno.EINVAL, "ring buffer: no key/value, a power-of-2 multiple of the page size")
        super().__init__(kernel, attr)
        self.mask = me - 1
        self.area = bpf_map_area_mmapable_alloc(kernel, RINGBUF_POS_PAGES * PAGE_SIZE + 2 * me)
        self.data_off = RINGBUF_POS_PAGES * PAGE_SIZE

    def mem_usage(self, count=None):
        data_pages = self.max_entries // PAGE_SIZE
        meta_pages = 3
        # the pages themselves, and a page pointer for each mapping (data pages are mapped twice)
        return self.kernel.profile.size("bpf_ringbuf_map") + PAGE_SIZE * (meta_pages + data_pages) + 8 * (meta_pages + 2 * data_pages)

    def lookup_sys(self, key, flags):
        raise bpf_error(ENOTSUPP)

    def update(self, key, value, flags):
        raise bpf_error(ENOTSUPP)

    def delete(self, key):
        raise bpf_error(ENOTSUPP)

    def get_next_key(self, key):
        raise bpf_error(ENOTSUPP)

    # -- positions -------------------------------------------------------------------------------------
    @property
    def consumer_pos(self):
        return U64.unpack_from(self.area, 0)[0]

    @property
    def producer_pos(self):
        return U64.unpack_from(self.area, PAGE_SIZE)[0]

    @property
    def pending_pos(self):
        return U64.unpack_from(self.area, PAGE_SIZE + 8)[0]

    def _set(self, off, v):
        U64.pack_into(self.area, off, v & 0xFFFFFFFFFFFFFFFF)

    def _mirror(self, pos, n):
        """Make both copies of the data agree on the n bytes written at ring position pos (which may run
        past the end of the first copy)."""
        size = self.max_entries
        start = self.data_off + (pos & self.mask)
        end = start + n
        first_end = self.data_off + size
        area = self.area
        if end > first_end:  # the part in the second copy goes to the start of the first
            area[self.data_off:self.data_off + end - first_end] = area[first_end:end]
        stop = min(end, first_end)
        area[start + size:stop + size] = area[start:stop]

    # -- the producer side (bpf_ringbuf_reserve / commit / query) ---------------------------------------
    def reserve(self, size):
        """__bpf_ringbuf_reserve: the area offset of a new busy record of ``size`` bytes (after its header),
        or None when it does not fit."""
        if size > RINGBUF_MAX_RECORD_SZ:
            return None
        n = (size + BPF_RINGBUF_HDR_SZ + 7) & ~7
        if n > self.max_entries:
            return None
        cons = self.consumer_pos
        pend = self.pending_pos
        prod = self.producer_pos
        while prod - pend > 0:
            hdr = self.data_off + (pend & self.mask)
            hlen = U32.unpack_from(self.area, hdr)[0]
            if hlen & BPF_RINGBUF_BUSY_BIT:
                break
            pend += ((hlen & ~BPF_RINGBUF_DISCARD_BIT) + BPF_RINGBUF_HDR_SZ + 7) & ~7
        self._set(PAGE_SIZE + 8, pend)
        new_prod = prod + n
        if new_prod - cons > self.mask or new_prod - pend > self.mask:
            return None
        hdr = self.data_off + (prod & self.mask)
        pg_off = RINGBUF_DATA_PGOFF + ((prod & self.mask) >> 12)
        struct.pack_into("<II", self.area, hdr, size | BPF_RINGBUF_BUSY_BIT, pg_off)
        self._mirror(prod, BPF_RINGBUF_HDR_SZ)
        self._set(PAGE_SIZE, new_prod)
        return hdr + BPF_RINGBUF_HDR_SZ

    def commit(self, rec, discard=False):
        """bpf_ringbuf_commit of the record at area offset ``rec``: clear its busy bit (set the discard
        bit); the record, as the program left it, shows in both copies of the data."""
        hdr = rec - BPF_RINGBUF_HDR_SZ
        hlen = U32.unpack_from(self.area, hdr)[0]
        new = hlen ^ BPF_RINGBUF_BUSY_BIT
        if discard:
            new |= BPF_RINGBUF_DISCARD_BIT
        U32.pack_into(self.area, hdr, new)
        pos = hdr - self.data_off
        self._mirror(pos, BPF_RINGBUF_HDR_SZ + (hlen & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)))

    def record_size(self, rec):
        """The size of the record whose data starts at area offset rec."""
        return U32.unpack_from(self.area, rec - BPF_RINGBUF_HDR_SZ)[0] & ~(BPF_RINGBUF_BUSY_BIT
                                                                             | BPF_RINGBUF_DISCARD_BIT)

    def query(self, flags):
        """bpf_ringbuf_query."""
        if flags == BPF_RB_AVAIL_DATA:
            return self.producer_pos - self.consumer_pos
        if flags == BPF_RB_RING_SIZE:
            return self.max_entries
        if flags == BPF_RB_CONS_POS:
            return self.consumer_pos
        if flags == BPF_RB_PROD_POS:
            return self.producer_pos
        return 0

    # -- mmap ------------------------------------------------------------------------------------------
    def map_mmap(self, length, pgoff, writable=True):
        """ringbuf_map_mmap_kern: a writable mapping only of the consumer page (EPERM); the rest read-only,
        within the position pages and the data mapped twice (EINVAL past them)."""
        if writable and (pgoff != 0 or length != PAGE_SIZE):
            raise bpf_error(errno.EPERM, "only the consumer position page may be mapped writable")
        if pgoff * PAGE_SIZE + length > len(self.area):
            raise bpf_error(errno.EINVAL, "mapping runs past the ring buffer")
        start = pgoff * PAGE_SIZE
        return memoryview(self.area)[start:start + length]

    @property
    def mmap_area(self):
        return self.area


class UserRingBuf(RingBuf):
    """USER_RINGBUF: the same area, written by userspace and drained by programs (bpf_user_ringbuf_drain)."""

    def map_mmap(self, length, pgoff, writable=True):
        """ringbuf_map_mmap_user: writable mappings of the producer side, not of the consumer page."""
        if writable and pgoff == 0:
            raise bpf_error(errno.EPERM, "the consumer position page of a user ring buffer is read-only")
        if pgoff * PAGE_SIZE + length > len(self.area):
            raise bpf_error(errno.EINVAL, "mapping runs past the ring buffer")
        start = pgoff * PAGE_SIZE
        return memoryview(self.area)[start:start + length]
