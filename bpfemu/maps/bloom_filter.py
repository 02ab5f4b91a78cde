"""BLOOM_FILTER maps (the kernel's bloom_filter.c).

A set of bit indexes: pushing a value sets k bits, each the jhash of the value
with seed + i, masked to the bit array size; peeking reports whether all k are
set. With BPF_F_ZERO_SEED the seed is 0, so the false positives are the
host's, bit for bit. Only the set bits are stored.
"""
import errno

from .. import uapi
from ..errors import bpf_error
from ..jhash import jhash, jhash2
from ..limits import KMALLOC_MAX_SIZE, round_up, roundup_pow_of_two
from .bpf_map import BpfMap, map_flags_access_ok

U32_MAX = 0xFFFFFFFF
BLOOM_CREATE_FLAG_MASK = (uapi.BPF_F_NUMA_NODE | uapi.BPF_F_ZERO_SEED | uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY
                          | uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY_PROG)
DEFAULT_NR_HASHES = 5
NR_HASHES_MASK = 0xF


def bitset_mask(max_entries, nr_hashes):
    """The bit index mask: about 7/5 bits per hash per entry, a power of two of at least 64 bits."""
    nr_bits = max_entries * nr_hashes
    if nr_bits > U32_MAX:
        return U32_MAX
    nr_bits = nr_bits // 5 * 7
    if nr_bits > U32_MAX or nr_bits > 1 << 31:
        return U32_MAX
    return 63 if nr_bits <= 64 else roundup_pow_of_two(nr_bits) - 1


class BloomFilterMap(BpfMap):
    """BLOOM_FILTER (bloom_filter_map_ops)."""

    @classmethod
    def alloc_check(cls, attr, task):
        if attr.value_size > KMALLOC_MAX_SIZE:
            raise bpf_error(errno.E2BIG, "value_size above KMALLOC_MAX_SIZE")

    def __init__(self, kernel, attr):
        flags = attr.map_flags
        # bloom_map_alloc: these run after the capability check
        if (attr.key_size != 0 or attr.value_size == 0 or attr.max_entries == 0
                or flags & ~BLOOM_CREATE_FLAG_MASK
                or not map_flags_access_ok(flags)
                or attr.map_extra & ~NR_HASHES_MASK):
            raise bpf_error(errno.EINVAL, "invalid bloom filter attributes")
        super().__init__(kernel, attr)
        self.nr_hashes = (attr.map_extra & NR_HASHES_MASK) or DEFAULT_NR_HASHES
        self.bitset_mask = bitset_mask(attr.max_entries, self.nr_hashes)
        self.hash_seed = 0 if flags & uapi.BPF_F_ZERO_SEED else kernel.next_random()
        self.bits = set()

    def count(self):
        return len(self.bits)

    def map_check_btf(self, btf, key_type, value_type):
        """bloom_map_check_btf: keyless."""
        if key_type.kind != 0:
            raise bpf_error(errno.EINVAL, "a bloom filter has no key type")

    def mem_usage(self, count=None):
        """bloom_map_mem_usage: the header and the whole bit array, in 8-byte words."""
        return self.kernel.profile.size("bpf_bloom_filter") + round_up((self.bitset_mask + 1) // 8, 8)

    def _bits(self, value):
        value = bytes(value)
        h = jhash2 if len(value) % 4 == 0 else jhash
        return [h(value, (self.hash_seed + i) & U32_MAX) & self.bitset_mask for i in range(self.nr_hashes)]

    # -- the syscall's key-less element ops -----------------------------------
    def update_sys(self, task, key, value, flags):
        self.push(value, flags)

    def push(self, value, flags):
        if flags != uapi.BPF_ANY:
            raise bpf_error(errno.EINVAL, "bloom filter push takes BPF_ANY only")
        self.bits.update(self._bits(value))

    def peek_value(self, value):
        """LOOKUP_ELEM: 0 when every bit of the value is set (maybe a false positive), else ENOENT."""
        if not all(b in self.bits for b in self._bits(value)):
            raise bpf_error(errno.ENOENT, "not in the filter")

    def lookup(self, key, flags=0):
        raise bpf_error(errno.ENOENT)

    def delete(self, key):
        raise bpf_error(errno.EOPNOTSUPP, "bloom filters cannot delete")

    def get_next_key(self, key):
        raise bpf_error(errno.EOPNOTSUPP, "bloom filters have no keys")
