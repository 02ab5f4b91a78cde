"""LPM_TRIE maps (the kernel's lpm_trie.c).

A key is a u32 prefixlen (host byte order) followed by data_size bytes, read
most significant bit first. The kernel keeps a compressed binary trie; its
observable behaviour follows from the set of stored prefixes alone:

- lookup returns the value of the longest stored prefix that the key's first
  prefixlen bits start with;
- get_next_key walks the trie in postorder (child 0, child 1, node), which is
  the order of :func:`order_key`: at the first differing bit 0 comes first,
  and a prefix comes after every longer prefix it covers.

So the emulator stores the entries in a dict keyed by the prefix itself and a
sorted list of their order keys: memory is proportional to the entries.
"""
import bisect
import errno
import struct

from .. import uapi
from ..btf.uapi import BTF_KIND_STRUCT
from ..errors import bpf_error
from ..limits import KMALLOC_MAX_SIZE
from .bpf_map import (BpfMap, generic_map_delete_batch, generic_map_lookup_batch, generic_map_update_batch,
                      map_flags_access_ok)

LPM_DATA_SIZE_MIN, LPM_DATA_SIZE_MAX = 1, 256


def lpm_val_size_max(profile):
    """LPM_VAL_SIZE_MAX: what a node can hold besides its header (sizeof(struct lpm_trie_node), which the
    kernel version's profile gives) and the largest prefix data."""
    return KMALLOC_MAX_SIZE - LPM_DATA_SIZE_MAX - profile.size("lpm_trie_node")
LPM_KEY_SIZE_MIN, LPM_KEY_SIZE_MAX = 4 + LPM_DATA_SIZE_MIN, 4 + LPM_DATA_SIZE_MAX
LPM_CREATE_FLAG_MASK = (uapi.BPF_F_NO_PREALLOC | uapi.BPF_F_NUMA_NODE | uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY
                        | uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY_PROG)


def prefix_bits(data, prefixlen):
    """The first prefixlen bits of data as a '0'/'1' string (MSB first)."""
    nbytes = (prefixlen + 7) // 8
    if not nbytes:
        return ""
    return format(int.from_bytes(data[:nbytes], "big"), "0%db" % (nbytes * 8))[:prefixlen]


def order_key(bits):
    """Sort key of a stored prefix in the trie's postorder: the bits, then a terminator above both bit values."""
    return bits + "2"


class LpmTrieMap(BpfMap):
    """LPM_TRIE (trie_map_ops), with the generic batch operations."""

    lookup_batch = generic_map_lookup_batch
    update_batch = generic_map_update_batch
    delete_batch = generic_map_delete_batch

    def __init__(self, kernel, attr):
        flags = attr.map_flags
        # trie_alloc: every check runs after the capability check
        if (attr.max_entries == 0 or not flags & uapi.BPF_F_NO_PREALLOC
                or flags & ~LPM_CREATE_FLAG_MASK
                or not map_flags_access_ok(flags)
                or not LPM_KEY_SIZE_MIN <= attr.key_size <= LPM_KEY_SIZE_MAX
                or not 1 <= attr.value_size <= lpm_val_size_max(kernel.profile)):
            raise bpf_error(errno.EINVAL, "invalid LPM trie attributes")
        super().__init__(kernel, attr)
        self.data_size = attr.key_size - 4
        self.max_prefixlen = self.data_size * 8
        self.entries = {}  # prefix bits -> (stored key bytes, value bytearray)
        self.order = []    # sorted order_key() of every entry

    def count(self):
        return len(self.entries)

    def map_check_btf(self, btf, key_type, value_type):
        """trie_check_btf: the key type is a struct (struct bpf_lpm_trie_key_u8 and its data)."""
        if key_type.kind != BTF_KIND_STRUCT:
            raise bpf_error(errno.EINVAL, "an LPM trie's key type must be a struct")

    def mem_usage(self, count=None):
        """trie_mem_usage: a node (header, prefix data, value) per stored prefix; the empty trie counts 0."""
        n = len(self.entries) if count is None else count
        return n * (self.kernel.profile.size("lpm_trie_node") + self.data_size + self.value_size)

    def _split(self, key):
        key = bytes(key)
        return struct.unpack("<I", key[:4])[0], key[4:]

    def _stored_prefix(self, key):
        """The prefix an update or delete names (EINVAL past max_prefixlen)."""
        plen, data = self._split(key)
        if plen > self.max_prefixlen:
            raise bpf_error(errno.EINVAL, "prefixlen %d above %d" % (plen, self.max_prefixlen))
        return prefix_bits(data, plen)

    def _match(self, key):
        """The entry of the longest stored prefix that key's prefix starts with, or None."""
        plen, data = self._split(key)
        if plen <= self.max_prefixlen:
            bits = prefix_bits(data, plen)
            for n in range(plen, -1, -1):
                hit = self.entries.get(bits[:n])
                if hit is not None:
                    return hit
        return None

    def lookup(self, key, flags=0):
        hit = self._match(key)
        if hit is None:
            raise bpf_error(errno.ENOENT)
        return bytes(hit[1])

    def value_region(self, key, cpu=0):
        """trie_lookup_elem from a program: the matched node's value (an update makes a new node)."""
        hit = self._match(key)
        return None if hit is None else (hit[1], 0)

    def update(self, key, value, flags):
        if flags > uapi.BPF_EXIST:
            raise bpf_error(errno.EINVAL, "bad update flags")
        bits = self._stored_prefix(key)
        if bits in self.entries:
            if flags == uapi.BPF_NOEXIST:
                raise bpf_error(errno.EEXIST)
        else:
            if flags == uapi.BPF_EXIST:
                raise bpf_error(errno.ENOENT)
            if len(self.entries) >= self.max_entries:
                raise bpf_error(errno.ENOSPC, "the trie is full")
            self.kernel.memcg.grow(self)  # ENOMEM past the memory limit
            bisect.insort(self.order, order_key(bits))
        self.entries[bits] = (bytes(key), bytearray(value))

    def delete(self, key):
        bits = self._stored_prefix(key)
        if bits not in self.entries:
            raise bpf_error(errno.ENOENT)
        del self.entries[bits]
        ok = order_key(bits)
        del self.order[bisect.bisect_left(self.order, ok)]

    def get_next_key(self, key):
        if not self.order:
            raise bpf_error(errno.ENOENT)
        i = 0
        if key is not None:
            plen, data = self._split(key)
            if plen <= self.max_prefixlen:
                bits = prefix_bits(data, plen)
                if bits in self.entries:
                    i = bisect.bisect_right(self.order, order_key(bits))
                    if i == len(self.order):
                        raise bpf_error(errno.ENOENT)
        return self.entries[self.order[i][:-1]][0]
