"""/proc/<pid>/fdinfo/<fd>: the VFS lines, then bpf_map_show_fdinfo's lines for a map.

The ``memlock`` line is the kernel's ``map->ops->map_mem_usage()``: the size of
the structures the kernel would have allocated, in bytes. Those formulas were
measured on the host (Linux 6.18, x86_64) and fitted; they are collected in
:data:`MEM_USAGE`, keyed by map type, with the struct sizes they use. Types
not in the table answer ``m.mem_usage()`` (the object maps define it).

``mnt_id`` and ``ino`` belong to the kernel's single anonymous inode that every
bpf-map fd shares; their numbers depend on the boot, so the emulator prints
fixed ones (:data:`ANON_MNT_ID`, :data:`ANON_INO`) and comparisons ignore them.
"""
from . import uapi
from .bpf_map import round_up, roundup_pow_of_two

ANON_MNT_ID = 15
ANON_INO = 1
O_WRONLY = 0o1
O_RDWR = 0o2
O_CLOEXEC = 0o2000000
PAGE_SIZE = 4096

# struct sizes on x86_64 (fitted from the host's memlock numbers)
BPF_ARRAY = 312  # struct bpf_array up to its value area
BPF_HTAB = 832  # struct bpf_htab
HTAB_BUCKET = 16
HTAB_ELEM = 48  # struct htab_elem without key and value
HASHTAB_MAP_LOCK_COUNT = 8
LLIST_NODE = 8
LPM_NODE = 24  # struct lpm_trie_node without data
BPF_QUEUE_STACK = 312
BPF_BLOOM = 312

T = uapi
PERCPU_HASHES = (T.BPF_MAP_TYPE_PERCPU_HASH, T.BPF_MAP_TYPE_LRU_PERCPU_HASH)
LRU_HASHES = (T.BPF_MAP_TYPE_LRU_HASH, T.BPF_MAP_TYPE_LRU_PERCPU_HASH)


def page_align(n):
    return round_up(n, PAGE_SIZE)


def array_mem_usage(m):
    elem = round_up(m.value_size, 8)
    n = m.max_entries
    if m.map_type == T.BPF_MAP_TYPE_PERCPU_ARRAY:
        return BPF_ARRAY + n * 8 + n * elem * m.kernel.ncpus
    if m.map_flags & T.BPF_F_MMAPABLE:
        return page_align(BPF_ARRAY) + page_align(n * elem)
    return BPF_ARRAY + n * elem


def fd_array_mem_usage(m):
    """Arrays of fds (prog/perf/cgroup arrays, array of maps) keep one pointer per slot."""
    return BPF_ARRAY + m.max_entries * 8


def htab_mem_usage(m):
    """htab_map_mem_usage: preallocated tables count every element, others the ones present."""
    ncpus = m.kernel.ncpus
    percpu = m.map_type in PERCPU_HASHES
    lru = m.map_type in LRU_HASHES
    fd_htab = m.map_type == T.BPF_MAP_TYPE_HASH_OF_MAPS
    value = round_up(m.value_size, 8)
    elem = HTAB_ELEM + round_up(m.key_size, 8) + (8 if percpu or fd_htab else value)
    usage = BPF_HTAB + HTAB_BUCKET * roundup_pow_of_two(m.max_entries) + 4 * ncpus * HASHTAB_MAP_LOCK_COUNT
    if not m.map_flags & T.BPF_F_NO_PREALLOC:
        n = m.max_entries
        if not (percpu or lru or fd_htab):
            n += ncpus  # extra elements for in-place replacement
        usage += elem * n
        if percpu:
            usage += value * ncpus * n
        elif not lru:
            usage += 8 * ncpus
        return usage
    n = m.count()
    usage += (elem + LLIST_NODE) * n
    if percpu:
        usage += (LLIST_NODE + 8) * n + value * ncpus * n
    return usage


def lpm_mem_usage(m):
    return (LPM_NODE + m.key_size - 4 + m.value_size) * m.count()


def queue_stack_mem_usage(m):
    return BPF_QUEUE_STACK + (m.max_entries + 1) * m.value_size


def bloom_mem_usage(m):
    nr_hashes = (m.map_extra & 0xF) or 5
    nr_bits = m.max_entries * nr_hashes // 5 * 7
    if m.max_entries * nr_hashes > 0xFFFFFFFF or nr_bits > 1 << 31:
        nr_bits = 1 << 31
    else:
        nr_bits = 64 if nr_bits <= 64 else roundup_pow_of_two(nr_bits)
    return BPF_BLOOM + round_up(nr_bits // 8, 8)


MEM_USAGE = {
    T.BPF_MAP_TYPE_ARRAY: array_mem_usage,
    T.BPF_MAP_TYPE_PERCPU_ARRAY: array_mem_usage,
    T.BPF_MAP_TYPE_ARRAY_OF_MAPS: fd_array_mem_usage,
    T.BPF_MAP_TYPE_HASH: htab_mem_usage,
    T.BPF_MAP_TYPE_PERCPU_HASH: htab_mem_usage,
    T.BPF_MAP_TYPE_LRU_HASH: htab_mem_usage,
    T.BPF_MAP_TYPE_LRU_PERCPU_HASH: htab_mem_usage,
    T.BPF_MAP_TYPE_HASH_OF_MAPS: htab_mem_usage,
    T.BPF_MAP_TYPE_LPM_TRIE: lpm_mem_usage,
    T.BPF_MAP_TYPE_QUEUE: queue_stack_mem_usage,
    T.BPF_MAP_TYPE_STACK: queue_stack_mem_usage,
    T.BPF_MAP_TYPE_BLOOM_FILTER: bloom_mem_usage,
}


def map_mem_usage(m):
    fn = MEM_USAGE.get(m.map_type)
    return fn(m) if fn else m.mem_usage()


def file_flags(f):
    """f_flags of a bpf anon-inode file: the access mode, and O_CLOEXEC, which the kernel keeps in f_flags."""
    from .objects import FMODE_READ, FMODE_WRITE
    mode = f.mode & (FMODE_READ | FMODE_WRITE)
    acc = O_RDWR if mode == FMODE_READ | FMODE_WRITE else O_WRONLY if mode == FMODE_WRITE else 0
    return acc | O_CLOEXEC


def fdinfo(task, fd, f):
    """The text of /proc/<pid>/fdinfo/<fd> for the open file f."""
    m = f.obj if f.kind == "map" else None
    if m is None:
        return "pos:\t0\nflags:\t0%o\nmnt_id:\t%d\nino:\t%d\n" % (O_RDWR, ANON_MNT_ID, ANON_INO + 1)
    lines = [
        ("pos", "0"),
        ("flags", "0%o" % file_flags(f)),
        ("mnt_id", str(ANON_MNT_ID)),
        ("ino", str(ANON_INO)),
        ("map_type", str(m.map_type)),
        ("key_size", str(m.key_size)),
        ("value_size", str(m.value_size)),
        ("max_entries", str(m.max_entries)),
        ("map_flags", "%#x" % m.map_flags),  # the kernel's %#x prints 0x0 for zero
        ("map_extra", "%#x" % m.map_extra),
        ("memlock", str(map_mem_usage(m))),
        ("map_id", str(m.id)),
        ("frozen", "1" if m.frozen else "0"),
    ]
    return "".join("%s:\t%s\n" % kv for kv in lines)
